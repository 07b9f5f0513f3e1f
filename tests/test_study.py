"""`emulate study`: the recorded quick study replays to its study.csv; the page, the
command line, resuming and bad input."""

import csv
import json
import shutil

import pytest
from markupsafe import escape

import emulate
from emulate.cli.main import main
from emulate.registry import get_probe
from emulate.studies.spec import load_study

from .conftest import CASSETTES

RECORDED = CASSETTES / "study"


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _missing(claim):
    """Why a claim's probes cannot run on this machine, or None."""
    for run in claim.runs:
        if why := get_probe(run.probe).missing():
            return f"{run.probe}: {why}"
    return None


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "seeds"
    result = emulate.study(replay=RECORDED / "cassette.json", out=out, progress=False,
                           reports=False)  # fmt: skip
    return out, result


def test_replaying_the_recorded_study_reproduces_its_csv(replayed):
    out, result = replayed
    recorded = {(r["claim"], r["model"]): r for r in _rows(RECORDED / "study.csv")}
    now = {(r["claim"], r["model"]): r for r in _rows(out / "study.csv")}
    assert now.keys() == recorded.keys()
    ran = 0
    for claim in load_study(None, "quick").claims:
        row = now[(claim.id, "local")]
        if why := _missing(claim):  # CI runs it all: bubblewrap and torch are there
            assert (row["verdict"], row["rule"]) == ("inconclusive", f"not run: {why}")
            continue
        assert row == recorded[(claim.id, "local")], claim.id
        ran += 1
    assert ran >= 1
    assert [r.verdict for r in result.results] == [now[(r.claim.id, "local")]["verdict"]
                                                  for r in result.results]  # fmt: skip


def test_the_page_answers_in_one_line_and_links_its_evidence(replayed):
    out, result = replayed
    page = (out / "study.html").read_text()
    counts = {v: sum(r.verdict == v for r in result.results) for v in
              ("imitates", "computes", "inconclusive")}  # fmt: skip
    line = result.page.lines[0]
    assert line.startswith(
        f"Gemma 3 270M (local): 8 claims: {counts['imitates']} imitates, "
        f"{counts['computes']} computes, {counts['inconclusive']} inconclusive"
    )
    assert str(escape(line)) in page
    data = json.loads((out / "study.json").read_text())
    assert [r["claim"] for r in data["rows"]] == [f"C{i}" for i in range(1, 9)]
    assert data["summary"] == [line]


def test_report_of_a_study_folder_writes_the_same_page(replayed, tmp_path):
    out, _ = replayed
    again = tmp_path / "again"
    shutil.copytree(out, again)
    (again / "study.csv").unlink()
    assert main(["report", str(again)]) == 0
    assert (again / "study.csv").read_text() == (out / "study.csv").read_text()
    assert (again / "reports" / "C1-sizes" / "report.html").is_file()


def test_resume_keeps_finished_runs(replayed, tmp_path, capsys):
    out, _ = replayed
    again = tmp_path / "again"
    shutil.copytree(out, again)
    journals = {p: p.stat().st_mtime_ns for p in again.glob("runs/*/*/journal.jsonl")}
    code = main(["study", "--replay", str(RECORDED / "cassette.json"), "--out", str(again),
                 "--resume", "--no-reports", "--no-progress"])  # fmt: skip
    assert code == 0
    assert {p: p.stat().st_mtime_ns for p in journals} == journals
    assert capsys.readouterr().out.count("finished, kept") == len(journals)


def test_a_study_refuses_a_folder_that_holds_one_without_resume(replayed, capsys):
    out, _ = replayed
    code = main(["study", "--replay", str(RECORDED / "cassette.json"), "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err


@pytest.mark.parametrize(("args", "message"), [
    (["nowhere.toml"], "nowhere.toml: no such study file"),
    (["--budget", "huge"], "invalid choice: 'huge'"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) if "--budget" in args else _nothing():
        code = main(["study", *args, "--out", str(tmp_path / "s")])
        assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_claim_of_a_probe_unknown_is_named_before_anything_runs(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text('[[claim]]\nid="K"\nquestion="q"\ncomputes="a.low > 0"\nimitates="a.high < 0"\n'
                 '[[claim.run]]\nname="r"\nprobe="nosuch"\n[[claim.stat]]\nname="a"\n'
                 'kind="rate"\nrun="r"\n')  # fmt: skip
    assert main(["study", str(f), "--out", str(tmp_path / "s")]) == 2
    assert "claim K" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_the_page_shows_a_study_files_text_as_text(tmp_path):
    from emulate.studies.page import write_page
    from emulate.studies.verdict import evaluate

    f = tmp_path / "s.toml"
    f.write_text('[[claim]]\nid="K"\nquestion="<script>alert(1)</script>"\n'
                 'computes="a.low > 0"\nimitates="a.high < 0"\n[[claim.run]]\nname="r"\n'
                 'probe="conv"\n[[claim.stat]]\nname="a"\nkind="rate"\nrun="r"\n')  # fmt: skip
    s = load_study(f)
    result = evaluate(s.claims[0], {"r": []}, "<img src=x onerror=alert(1)>")
    page = write_page(tmp_path, s, [], [result], {})
    html = page.html.read_text()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_readmes_study_file_loads(tmp_path):
    from .conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "mine.toml").write_text(block)
    study = load_study(tmp_path / "mine.toml", "standard")
    (claim,) = study.claims
    assert (claim.id, claim.runs[0].n, dict(claim.runs[0].grid)["size"]) == ("K1", 6, [3, 5, 7, 9])


def test_resume_refuses_a_folder_of_another_study(replayed, tmp_path):
    out, _ = replayed
    again = tmp_path / "again"
    shutil.copytree(out, again)
    other = tmp_path / "other.toml"
    other.write_text((again / "study.toml").read_text().replace('title = "the founding cases"',
                                                                'title = "another"'))  # fmt: skip
    with pytest.raises(emulate.EmulateError, match="holds another study"):
        emulate.study(other, replay=RECORDED / "cassette.json", out=again, resume=True)
