"""emulate report: summary.csv, plots and report.html, from replayed runs and from
synthetic journals (a planted breaking point, random journals with hypothesis)."""

import csv
import re
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import emulate
from emulate.analysis.report import curves, summarise
from emulate.analysis.runs import load_runs
from emulate.analysis.stats import wilson
from emulate.cli.main import main

from .conftest import journal_row, write_journal

CONV = "conv/completion"
CHAT = "conv/chat-logprobs"


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def conv_report(replayed, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return emulate.report([replayed(CONV), replayed(CHAT)], out)


def test_summary_csv_matches_the_results_it_summarises(conv_report, replayed):
    results = _csv(replayed(CONV) / "results.csv")
    summary = _csv(conv_report.out / "summary.csv")
    overall = [r for r in summary if r["group"] == "all"]
    assert [r["model"] for r in overall] == [
        "gemma-3-270m-q4_k_m (completion)",
        "gemma-3-270m-q4_k_m (chat)",
    ]
    row = overall[0]
    k = sum(r["correct"] == "True" for r in results)
    assert (int(row["n"]), int(row["correct"])) == (len(results), k)
    low, high = wilson(k, len(results))
    assert float(row["ci_low"]) == pytest.approx(low, rel=1e-5)
    assert float(row["ci_high"]) == pytest.approx(high, rel=1e-5)
    cell_acc = [float(r["cell_acc"]) for r in results if r["cell_acc"]]
    assert float(row["mean_cell_acc"]) == pytest.approx(np.mean(cell_acc), rel=1e-5)
    # Every axis value and every cell partitions the model's cases.
    mine = [r for r in summary if r["model"] == row["model"]]
    for axis in ("dims", "size", "kernel", "values"):
        group = [r for r in mine if r["group"] == "axis" and r["cell"].startswith(f"{axis}=")]
        assert sum(int(r["n"]) for r in group) == len(results)
    assert sum(int(r["n"]) for r in mine if r["group"] == "cell") == len(results)
    assert len([r for r in mine if r["group"] == "cell"]) == 24  # 2 x 2 x 3 x 2 cells


def test_plots_and_a_self_contained_page(conv_report):
    names = sorted(p.name for p in conv_report.plots)
    assert names == ["conv-dims.png", "conv-kernel.png", "conv-size.png", "conv-values.png"]
    for p in conv_report.plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = conv_report.html.read_text()
    # Nothing to fetch: every src and href in the markup is a data URI or a fragment
    # (a small report holds its cases: its script loads no part).
    markup = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)
    links = re.findall(r"""(?:src|href)\s*=\s*["']?([^"' >]+)""", markup)
    assert links and all(u.startswith(("data:", "#")) for u in links), links
    assert page.count("data:image/png;base64,") == len(conv_report.plots)
    for needed in ("59486ad8b27a", "llama-server (embedded)", "openai 3.", "Breaking points"):
        assert needed in page


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium")
def test_the_page_renders_in_headless_chromium_without_a_network(conv_report, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            # Every host name fails to resolve: the page must need none.
            "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars",
            "--window-size=1200,2600", f"--screenshot={shot}", conv_report.html.as_uri(),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    # The first model's line and markers are matplotlib's C0 (#1f77b4): drawn only if
    # the embedded PNGs decoded.
    c0 = np.all(np.abs(pixels - np.array([0x1F, 0x77, 0xB4]) / 255) < 0.03, axis=-1)
    assert c0.sum() > 200, f"only {c0.sum()} pixels of the plot colour on the screenshot"


def test_report_from_the_cli_defaults_to_a_folder_in_the_run(replayed, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(replayed(CHAT), run)
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "report.html" in out
    assert (run / "report" / "summary.csv").exists()
    assert (run / "report" / "report.html").exists()


def _logistic_rows(midpoint=5.5, slope=1.5, n_per=60, seed=1):
    rng = np.random.default_rng(seed)
    rows, i = [], 0
    for d in range(1, 11):
        p = 1 / (1 + np.exp(slope * (d - midpoint)))
        for _ in range(n_per):
            rows.append(journal_row(f"{i:016x}", {"size": d}, bool(rng.random() < p)))
            i += 1
    return rows


def test_a_planted_breaking_point_is_found_and_drawn(tmp_path):
    run = write_journal(tmp_path / "run", _logistic_rows())
    (curve,) = curves(load_runs([run]))
    assert curve.axis == "size" and curve.point.reason is None
    assert curve.point.midpoint == pytest.approx(5.5, abs=0.4)
    assert curve.point.low < 5.5 < curve.point.high
    rep = emulate.report([run], tmp_path / "rep")
    assert "breaking point on size: 5." in rep.describe()
    assert [p.name for p in rep.plots] == ["conv-size.png"]


def test_no_fit_says_why(tmp_path):
    rows = [journal_row(f"{i:016x}", {"size": 1 + i % 4}, True) for i in range(12)]
    (curve,) = curves(load_runs([write_journal(tmp_path / "run", rows)]))
    assert curve.point.reason == "every case is correct: nothing falls"


def test_bad_input_is_a_clear_error_and_writes_nothing(replayed, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "rep"
    assert main(["report", str(replayed(CONV)), str(empty), "--out", str(out)]) == 2
    assert "no journal.jsonl here" in capsys.readouterr().err
    assert not out.exists()
    bad = write_journal(tmp_path / "bad", [{"hello": 1}])
    assert main(["report", str(bad), "--out", str(out)]) == 2
    assert "not an emulate journal row" in capsys.readouterr().err
    assert not out.exists()


def test_a_truncated_last_line_is_skipped_with_a_warning(tmp_path, capsys):
    rows = [journal_row(f"{i:016x}", {"size": 3}, i % 2 == 0) for i in range(5)]
    run = write_journal(tmp_path / "run", rows)
    with open(run / "journal.jsonl", "a") as f:
        f.write('{"run_id": "r", "model": "m", "ser')  # killed mid-write
    rep = emulate.report([run], tmp_path / "rep")
    assert "truncated last line" in capsys.readouterr().err
    assert rep.summary[0].n == 5


_journals = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),  # model
        st.integers(1, 4),  # size
        st.sampled_from([1, 9]),  # values
        st.booleans(),  # correct
        st.none() | st.floats(0, 1),  # a metric, sometimes unset
        st.booleans(),  # the request failed
    ),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_journals)
def test_random_journals_summarise_consistently(tmp_path_factory, spec):
    folders = {}
    for i, (model, size, values, correct, metric, failed) in enumerate(spec):
        folders.setdefault(model, []).append(
            journal_row(
                f"{i:016x}",
                {"size": size, "values": values},
                correct and not failed,
                model=model,
                run_id=model,
                metrics={"cell_acc": metric},
                error="APIError: 500" if failed else None,
            )  # fmt: skip
        )
    base = tmp_path_factory.mktemp("j")
    runs = load_runs([write_journal(base / m, rows) for m, rows in folders.items()])
    summary = summarise(runs)
    for model, rows in folders.items():
        mine = [r for r in summary if r.model == model]
        (overall,) = [r for r in mine if r.group == "all"]
        assert overall.n == len(rows)
        assert overall.correct == sum(r["score"]["correct"] for r in rows)
        assert overall.errors == sum(bool(r["answer"]["error"]) for r in rows)
        assert overall.low <= overall.accuracy <= overall.high
        for axis in ("size", "values"):
            group = [r for r in mine if r.group == "axis" and r.cell.startswith(f"{axis}=")]
            if group:
                assert sum(r.n for r in group) == len(rows)
        cells = [r for r in mine if r.group == "cell"]
        assert not cells or sum(r.n for r in cells) == len(rows)
    for curve in curves(runs):
        p = curve.point
        assert p.reason is not None or (1 <= p.midpoint <= 4 and p.low <= p.high)


def test_what_a_run_holds_is_text_on_the_page(tmp_path):
    """A journal from elsewhere names its model and its kinds of error as it likes:
    the page escapes them (the template autoescapes), so none becomes markup."""
    hostile = '<img src=x onerror="alert(1)">'
    rows = [
        journal_row(f"{i:016x}", {"size": 3 + i % 3, "note": hostile}, i % 2 == 0, model=hostile)
        for i in range(6)
    ]
    run = write_journal(tmp_path / hostile.replace("/", "_"), rows)
    page = emulate.report([run], tmp_path / "report").html.read_text()
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page  # the model, as text


def test_the_case_data_cannot_end_its_script_block():
    """The browser's data sits in a <script type=application/json>: nothing a model
    wrote may close it or open markup, and the JSON must read back exactly."""
    import json

    from emulate.analysis.cases import script_json

    said = ["</script><script>alert(1)</script>", "<!-- x -->", "a & b", "\u2028\u2029", "\ud800"]
    text = script_json({"answers": said})
    assert not set("<>&") & set(text) and "\u2028" not in text
    text.encode("utf-8")  # a lone surrogate is escaped, not written raw
    assert json.loads(text) == {"answers": said}


def test_a_report_leaves_a_folder_of_the_users_alone(tmp_path):
    """--out may hold a cases/ folder of the user's: only the report's own part files
    are ever removed from it."""
    rows = [journal_row(f"{i:016x}", {"size": 3 + i % 3}, i % 2 == 0) for i in range(6)]
    run = write_journal(tmp_path / "run", rows)
    mine = tmp_path / "out" / "cases" / "notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("my own")
    (mine.parent / "part-0007.js").write_text("an old report's part")
    emulate.report([run], tmp_path / "out")
    assert mine.read_text() == "my own"
    assert not (mine.parent / "part-0007.js").exists()


def test_case_data_with_nan_is_still_json_and_a_run_json_cannot_make_a_link(tmp_path):
    import json

    from emulate.analysis.cases import script_json

    text = script_json({"p": float("nan"), "q": [float("inf"), 1.5]})
    assert json.loads(text) == {"p": "nan", "q": ["inf", 1.5]}
    rows = [journal_row(f"{i:016x}", {"size": 3 + i % 3}, True) for i in range(3)]
    run = write_journal(tmp_path / "run", rows)
    meta = {"config": {"seed": {"href": "https://example.com/x", "text": "0"}}}
    (run / "run.json").write_text(json.dumps(meta))
    page = emulate.report([run], tmp_path / "report").html.read_text()
    assert 'href="https://example.com' not in page
