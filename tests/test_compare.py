"""emulate compare: paired tests on shared case ids, checked against tables worked by hand."""

import csv
import io

import pytest
from scipy.stats import binomtest

import emulate
from emulate.cli.main import main

from .conftest import journal_row, write_journal


def _pair(tmp_path, a_right, b_right, both, neither, extra_a=0):
    """Two runs over the same cases with a planted 2x2 table (plus cases only A ran)."""
    outcomes = (
        [(True, False)] * a_right + [(False, True)] * b_right
        + [(True, True)] * both + [(False, False)] * neither
    )  # fmt: skip
    rows_a, rows_b = [], []
    for i, (ra, rb) in enumerate(outcomes):
        params = {"size": 3 + i % 2}
        rows_a.append(journal_row(f"{i:016x}", params, ra, model="A", run_id="a"))
        rows_b.append(journal_row(f"{i:016x}", params, rb, model="B", run_id="b"))
    for j in range(extra_a):
        rows_a.append(journal_row(f"{1000 + j:016x}", {"size": 3}, True, model="A", run_id="a"))
    return write_journal(tmp_path / "a", rows_a), write_journal(tmp_path / "b", rows_b)


def test_mcnemar_on_a_table_worked_by_hand(tmp_path):
    a, b = _pair(tmp_path, a_right=2, b_right=9, both=5, neither=4, extra_a=3)
    result = emulate.compare(a, b)
    (overall,) = [r for r in result.rows if r.group == "all" and r.measure == "correct"]
    # Exact McNemar: 2 of 11 discordant pairs, two-sided: 2 (1 + 11 + 55) / 2^11.
    assert overall.p_value == pytest.approx(134 / 2048)
    assert overall.p_value == pytest.approx(binomtest(2, 11, 0.5).pvalue)
    assert (overall.n, overall.a_only_right, overall.b_only_right) == (20, 2, 9)
    assert overall.a == pytest.approx(7 / 20) and overall.b == pytest.approx(14 / 20)
    assert overall.difference == pytest.approx(7 / 20)
    assert overall.low < overall.difference < overall.high
    assert (result.shared, result.only_a, result.only_b) == (20, 3, 0)
    assert "3 cases only in A" in result.note
    cells = [r for r in result.rows if r.group == "axis"]
    assert [c.cell for c in cells] == ["size=3", "size=4"]
    assert sum(c.n for c in cells) == 20


def test_compare_is_seeded(tmp_path):
    a, b = _pair(tmp_path, 3, 6, 4, 5)
    assert emulate.compare(a, b, seed=1) == emulate.compare(a, b, seed=1)


def test_two_real_runs_from_the_cli(replayed, tmp_path, capsys):
    completion, chat = replayed("conv/completion"), replayed("conv/chat-logprobs")
    out = tmp_path / "diff.csv"
    assert main(["compare", str(completion), str(chat), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "on 12 shared cases" in text and "60 cases only in A" in text
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    overall = next(r for r in rows if r["group"] == "all" and r["measure"] == "correct")
    assert overall["n"] == "12"
    cells = [r for r in rows if r["group"] == "cell"]
    assert cells and all(r["q_value"] for r in cells)  # BH over the cells


def test_runs_of_different_probes_are_refused(replayed, capsys):
    assert main(["compare", str(replayed("conv/completion")),
                 str(replayed("brackets/complete"))]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "needs runs of one probe" in err and "(brackets)" in err


def test_no_shared_case_is_a_note_not_a_crash(tmp_path):
    a = write_journal(tmp_path / "a", [journal_row("0" * 16, {"size": 3}, True)])
    b = write_journal(tmp_path / "b", [journal_row("1" * 16, {"size": 3}, True, model="B")])
    result = emulate.compare(a, b)
    assert result.shared == 0 and result.rows == () and "share no case" in result.note
