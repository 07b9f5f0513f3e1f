"""The report's case browser in a real browser: Playwright drives Debian's chromium
(no browser download). Run with -m browser; CI does."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

import emulate

from .conftest import journal_row, write_journal

pytestmark = pytest.mark.browser
playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("needs Debian's chromium (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def probe_reports(replayed, tmp_path_factory):
    """Reports of the recorded runs whose answers the browser shows in their probe's
    terms: next-token alternatives, a session's turns, a chain's rows."""
    from emulate.registry import get_probe

    made = {}
    for name in ("brackets/next_token", "shell/completion", "markov/completion"):
        if get_probe(name.split("/")[0]).missing():
            continue
        run = replayed(name)
        made[name] = (run, emulate.report([run], tmp_path_factory.mktemp("r") / "report"))
    return made


@pytest.fixture(scope="module")
def browser(conv_report, probe_reports):
    # Playwright's sync API holds an event loop for its whole life: the replayed run
    # (asyncio.run) is made before it starts.
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Watched:
    """A page, and everything it did that a report must never do."""

    def __init__(self, browser, url: str):
        self.page = browser.new_page()
        self.dialogs: list[str] = []
        self.console: list[str] = []
        self.requests: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = url
        self.page.goto(url)

    def count(self) -> int:
        return int(self.page.locator("#case-count").inner_text().split(" of ")[0])

    def went_nowhere(self) -> bool:
        return all(u.split("#")[0] == self.url.split("#")[0] for u in self.requests)


@pytest.fixture(scope="module")
def conv_report(replayed, tmp_path_factory):
    run = replayed("conv/chat-logprobs")
    out = tmp_path_factory.mktemp("browser") / "report"
    return run, emulate.report([run], out)


def _results(run: Path) -> list[dict]:
    with open(run / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_filter_to_wrong_answers_of_a_kind_open_one_and_see_its_diff(browser, conv_report):
    run, rep = conv_report
    rows = _results(run)
    w = Watched(browser, rep.html.as_uri())
    assert w.count() == len(rows)
    w.page.select_option("#filter-correct", "wrong")
    assert w.count() == sum(r["correct"] == "False" for r in rows)
    kinds = {r["error_type"] for r in rows if r["correct"] == "False"}
    kind = sorted(kinds)[0]
    w.page.select_option("#filter-error", kind)
    assert w.count() == sum(r["error_type"] == kind for r in rows)
    assert f"error={kind}" in w.page.url  # the view is in the address
    w.page.locator("tr.case-row").first.click()
    view = w.page.locator("#case-view")
    assert "answer against truth" in view.inner_text()
    first = next(r for r in rows if r["error_type"] == kind)
    assert first["case_id"] in view.inner_text()
    assert not w.dialogs and not w.console and w.went_nowhere()


def test_a_grid_diff_marks_exactly_the_wrong_cells(browser, conv_report):
    run, rep = conv_report
    journal = [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]
    pick = next(r for r in journal if r["score"]["error_type"] == "wrong_values")
    truth, parsed = pick["case"]["truth"]["output"], pick["score"]["parsed"]
    flat = lambda a: [x for row in a for x in flat(row)] if isinstance(a, list) else [a]  # noqa: E731
    wrong = sum(a != b for a, b in zip(flat(parsed), flat(truth), strict=True))
    w = Watched(browser, rep.html.as_uri() + f"#cases?case={journal.index(pick)}")
    w.page.reload()
    assert w.page.locator("table.grid td.bad").count() == wrong
    assert f"{wrong} cell(s) differ" in w.page.locator("#case-view").inner_text()


def test_a_summary_link_opens_its_cases(browser, conv_report):
    run, rep = conv_report
    w = Watched(browser, rep.html.as_uri())
    link = w.page.locator("a[href^='#cases?']").first
    link.click()
    assert w.page.url.split("#")[1].startswith("cases?")
    assert 0 < w.count() <= len(_results(run))


HOSTILE = [
    "</script><script>alert('script')</script>",
    "<img src=x onerror=\"alert('img')\">",
    "[click](javascript:alert('url')) javascript:alert(1)",
    "\u202eRTL override\u202c then text",
    "a lone surrogate: \ud800 here",
    "A" * 1_000_000,
]


def test_hostile_answers_are_text_and_run_nothing(browser, tmp_path):
    rows = []
    for i, text in enumerate(HOSTILE):
        row = journal_row(f"{i:016x}", {"size": 3}, False, text=text, model=HOSTILE[1])
        row["case"]["prompt"] = HOSTILE[0]
        rows.append(row)
    rep = emulate.report([write_journal(tmp_path / "run", rows)], tmp_path / "report")
    w = Watched(browser, rep.html.as_uri())
    assert w.count() == len(HOSTILE)
    for i in range(len(HOSTILE)):
        w.page.goto(rep.html.as_uri() + f"#cases?case={i}")
        w.page.reload()
        shown = w.page.locator("#case-view").inner_text()
        assert HOSTILE[i][:40] in shown
    w.page.fill("#filter-q", "javascript:")
    assert w.count() == 1  # the page still works
    assert w.dialogs == [] and w.console == [] and w.went_nowhere()
    assert w.page.locator("img[src=x]").count() == 0


def test_a_large_report_keeps_its_cases_beside_it_and_loads_them(
    browser, conv_report, tmp_path, monkeypatch
):
    """Past INLINE cases the parts go to cases/part-NNNN.js: report.html holds the index
    alone, and the page loads a part when a case is opened or searched."""
    import emulate.analysis.cases as cases

    run, _ = conv_report
    monkeypatch.setattr(cases, "INLINE", 5)
    monkeypatch.setattr(cases, "PART", 4)
    rep = emulate.report([run], tmp_path / "report")
    rows = _results(run)
    side = sorted((tmp_path / "report" / "cases").iterdir())
    assert [p.name for p in side][:2] == ["part-0000.js", "part-0001.js"]
    assert len(side) == -(-len(rows) // 4)
    assert 'id="part-0"' not in rep.html.read_text()
    last = len(rows) - 1
    w = Watched(browser, rep.html.as_uri() + f"#cases?case={last}")
    w.page.reload()
    w.page.wait_for_selector("text=answer against truth")
    assert rows[last]["case_id"] in w.page.locator("#case-view").inner_text()
    w.page.fill("#filter-q", "kernel")  # every prompt names the kernel: all parts read
    w.page.wait_for_selector("#case-count")
    assert w.count() == len(rows)
    assert not w.dialogs and not w.console
    assert {u.split("/")[-1] for u in w.requests} >= {p.name for p in side}


def test_model_beside_model_counts_discordant_pairs_as_scipy_does(browser, tmp_path):
    """Two runs of the same cases: the page pairs them by case id, counts the cases
    right only in A and only in B, and gives McNemar's exact p-value (scipy's
    binomial test on the discordant pairs); each filter shows its cases, side by side."""
    from scipy.stats import binomtest

    rng = __import__("random").Random(3)
    a_right = [rng.random() < 0.7 for _ in range(60)]
    b_right = [rng.random() < 0.4 for _ in range(60)]
    runs = []
    for name, rights in (("model-a", a_right), ("model-b", b_right)):
        rows = [journal_row(f"{i:016x}", {"size": 3 + i % 4}, ok, model=name, run_id=name,
                            text=f"[{i}]" if name == "model-a" or i % 3 else "[0]")
                for i, ok in enumerate(rights)]  # fmt: skip
        runs.append(write_journal(tmp_path / name, rows))
    rep = emulate.report(runs, tmp_path / "report")
    only_a = sum(a and not b for a, b in zip(a_right, b_right, strict=True))
    only_b = sum(b and not a for a, b in zip(a_right, b_right, strict=True))
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue
    w = Watched(browser, rep.html.as_uri() + "#cases?a=model-a&b=model-b")
    w.page.reload()
    said = w.page.locator("#pair-summary").inner_text()
    assert f"right only in A {only_a}, right only in B {only_b}" in said
    assert f"p = {p:.3g}" in said or f"p = {p:.3}" in said
    w.page.select_option("#filter-correct", "wrong")  # A's verdict: not McNemar's counts
    assert (
        f"right only in A {only_a}, right only in B {only_b}"
        in w.page.locator("#pair-summary").inner_text()
    )
    w.page.select_option("#filter-correct", "")
    w.page.select_option("#filter-pair", "onlyA")
    assert w.count() == only_a
    w.page.select_option("#filter-pair", "onlyB")
    assert w.count() == only_b
    w.page.select_option("#filter-pair", "differ")
    assert w.count() == sum(1 for i in range(60) if i % 3 == 0 and i != 0)
    w.page.locator("tr.case-row").first.click()
    assert w.page.locator("#case-view-a h2").inner_text().endswith("model-a")
    assert w.page.locator("#case-view-b h2").inner_text().endswith("model-b")
    assert not w.dialogs and not w.console and w.went_nowhere()


@pytest.mark.parametrize(
    "name,shown",
    [("brackets/next_token", "table.tokens"), ("shell/completion", "text=turn 1"),
     ("markov/completion", "table.rows")],
)  # fmt: skip
def test_a_case_is_shown_in_its_probes_terms(browser, probe_reports, name, shown):
    if name not in probe_reports:
        pytest.skip(f"{name} needs what this machine lacks (emulate probes says what)")
    run, rep = probe_reports[name]
    journal = [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]
    w = Watched(browser, rep.html.as_uri() + "#cases?case=0")
    w.page.reload()
    w.page.wait_for_selector(shown)
    if name == "brackets/next_token":  # each alternative the server gave, legal or not
        top = journal[0]["answer"]["logprobs"][0]["top"]
        assert w.page.locator("table.tokens tr.legal, table.tokens tr.illegal").count() == len(top)
        kind = journal[0]["score"]["error_type"]
        legal = w.page.locator("table.tokens tr").nth(1).get_attribute("class")
        assert legal == ("legal" if kind is None else "illegal")
    if name == "markov/completion":  # a row per state
        states = journal[0]["case"]["inputs"]["states"]
        assert w.page.locator("table.rows tr").count() == len(states) + 1
    assert not w.dialogs and not w.console and w.went_nowhere()


def test_a_plotted_point_opens_its_cases(browser, conv_report):
    """Each point of an accuracy plot is a link, placed over the point, to the cases
    it stands for."""
    from urllib.parse import parse_qsl

    run, rep = conv_report
    rows = _results(run)
    w = Watched(browser, rep.html.as_uri())
    point = w.page.locator("div.plot a.pt").first
    box, plot = point.bounding_box(), w.page.locator("div.plot img").first.bounding_box()
    assert box and plot
    # Centred on the point's place in the picture itself (not in a box taller than it).
    x, y = float(point.get_attribute("data-x")), float(point.get_attribute("data-y"))
    assert abs(box["x"] + box["width"] / 2 - (plot["x"] + x * plot["width"])) < 1
    assert abs(box["y"] + box["height"] / 2 - (plot["y"] + y * plot["height"])) < 1
    query = dict(parse_qsl(point.get_attribute("href").split("?", 1)[1]))
    (axis,) = [k[2:] for k in query if k.startswith("p.")]
    point.click()
    assert w.count() == sum(r[axis] == query[f"p.{axis}"] for r in rows)
    assert not w.dialogs and not w.console and w.went_nowhere()


def test_the_region_read_is_marked_in_the_raw_answer(browser, tmp_path):
    """The page marks where the extraction found the value: after a non-BMP character
    (two code units in JavaScript), inside prose, after a fence."""
    from emulate.case import Answer, Row
    from emulate.probe import score_case
    from emulate.registry import get_probe

    said = "Let me think 🤔 step by step.\n\nThe output is:\n```\n[3, 5]\n```\nDone."
    case = emulate.cases("conv", {"size": 3, "kernel": 2}, n=1, mode="chat", model="m")[0]
    answer = Answer(said, finish_reason="stop")
    row = Row("r", "m", "s", "chat", case, answer, score_case(get_probe("conv"), case, answer))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "journal.jsonl").write_text(row.to_line() + "\n")
    rep = emulate.report([tmp_path / "run"], tmp_path / "report")
    w = Watched(browser, rep.html.as_uri() + "#cases?case=0")
    w.page.reload()
    assert w.page.locator("#case-view mark").inner_text() == "[3, 5]"
