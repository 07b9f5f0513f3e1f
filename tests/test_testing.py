"""The statistical assertions (emulate/testing.py), against figures worked by hand."""

import math

import numpy as np
import pytest

from emulate.testing import (
    assert_accuracy,
    assert_breaking_point,
    assert_no_regression,
    assert_reproduces,
    results_differences,
)

from .conftest import CASSETTES, journal_row, write_journal

MARKOV = CASSETTES / "markov" / "completion" / "results.csv"


def _run(folder, correct, params=None):
    rows = [
        journal_row(f"c{i}", (params or [{"size": 1}] * len(correct))[i], ok)
        for i, ok in enumerate(correct)
    ]
    return write_journal(folder, rows)


def test_accuracy_is_judged_by_the_wilson_lower_bound(tmp_path):
    # 8 of 10, z = 1.96: centre (8 + z²/2) / (10 + z²) = 0.71674; half-width
    # z sqrt(0.8 * 0.2 / 10 + z² / 400) / (1 + z² / 10) = 0.22658: [0.49016, 0.94332].
    run = _run(tmp_path / "r", [True] * 8 + [False] * 2)
    assert_accuracy(run, at_least=0.49)
    with pytest.raises(AssertionError) as err:
        assert_accuracy(run, at_least=0.5)
    message = str(err.value)
    assert "8/10 = 80.0%, 95% Wilson interval [49.0%, 94.3%]" in message
    assert "lower bound 49.0% is below 50.0%" in message and "run more" in message
    with pytest.raises(AssertionError, match="point estimate itself is below"):
        assert_accuracy(run, at_least=0.85)


def test_a_regression_is_a_significant_mcnemar_test(tmp_path):
    # The baseline is right on all 20; now 6 of them go wrong: 6 discordant pairs, all
    # one way, exact two-sided p = 2 * 0.5**6 = 0.03125. Five: p = 0.0625, within chance.
    base = _run(tmp_path / "base", [True] * 20)
    six = _run(tmp_path / "six", [False] * 6 + [True] * 14)
    five = _run(tmp_path / "five", [False] * 5 + [True] * 15)
    with pytest.raises(AssertionError) as err:
        assert_no_regression(base, six)
    message = str(err.value)
    assert "exact McNemar p = 0.03125 < 0.05" in message
    assert "right on 70.0% of 20 shared cases" in message and "100.0%" in message
    assert "6 cases right only in the baseline, 0 only now" in message
    assert_no_regression(base, five)
    assert_no_regression(six, base)  # an improvement is no regression
    with pytest.raises(AssertionError, match="p = 0.0625 < 0.1"):
        assert_no_regression(base, five, alpha=0.1)


def test_runs_that_share_no_case_are_not_compared(tmp_path):
    a = _run(tmp_path / "a", [True] * 3)
    b = write_journal(
        tmp_path / "b", [journal_row(f"other{i}", {"size": 1}, True) for i in range(3)]
    )
    with pytest.raises(AssertionError, match="shares no case"):
        assert_no_regression(a, b)


def test_the_breaking_point_must_fall_inside_the_range(tmp_path):
    # Right below size 10, wrong above, with a few exceptions each side: the fitted
    # midpoint lies between 9 and 11.
    rng = np.random.default_rng(0)
    sizes = [s for s in range(2, 19, 2) for _ in range(12)]
    correct = [bool(rng.random() < (0.95 if s < 10 else 0.05 if s > 10 else 0.5)) for s in sizes]
    run = _run(tmp_path / "r", correct, [{"size": s} for s in sizes])
    assert_breaking_point(run, "size", within=(8, 12))
    with pytest.raises(AssertionError) as err:
        assert_breaking_point(run, "size", within=(14, 18))
    message = str(err.value)
    assert "accuracy along size falls from" in message and "outside [14, 18]" in message
    midpoint = float(message.split(" at ")[1].split(" ")[0])
    assert 8 < midpoint < 12 and not math.isnan(midpoint)
    with pytest.raises(AssertionError, match="no numeric case parameter 'depth'"):
        assert_breaking_point(run, "depth", within=(1, 2))
    flat = _run(tmp_path / "flat", [True] * len(sizes), [{"size": s} for s in sizes])
    with pytest.raises(AssertionError, match="every case is correct"):
        assert_breaking_point(flat, "size", within=(8, 12))


def _filled(path, column):
    import csv

    with open(path, newline="") as f:
        return sum(1 for r in csv.DictReader(f) if r[column])


def _scaled(path, out, column, factor):
    """The recorded results.csv with one column's numbers scaled: another CPU's run."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r[column] = repr(float(r[column]) * factor) if r[column] else ""
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def test_trained_columns_reproduce_within_their_tolerance_and_no_others(tmp_path):
    """The baby GPT's figures differ in the 7th digit from one CPU to another: that is
    the same run. A difference past the declared 1e-4, or any difference in a column
    that does not come from training, is not."""
    assert_reproduces(MARKOV, MARKOV)
    assert_reproduces(_scaled(MARKOV, tmp_path / "a.csv", "tv_gpt_seen", 1 + 3e-7), MARKOV)
    assert_reproduces(_scaled(MARKOV, tmp_path / "b.csv", "gpt_entropy_unseen", 1 - 5e-5), MARKOV)
    far = _scaled(MARKOV, tmp_path / "c.csv", "kl_gpt_unseen", 1.5)
    said = results_differences(far, MARKOV)
    rows = MARKOV.read_text().count("\n") - 1
    assert len(said) == _filled(MARKOV, "kl_gpt_unseen") > 0 and all(
        ": kl_gpt_unseen " in s for s in said
    )
    # (Relative and absolute: 1e-3 relative on a value of 0.05 is within 1e-4 absolute.)
    near = results_differences(
        _scaled(MARKOV, tmp_path / "e.csv", "kl_gpt_unseen", 1 + 1e-3), MARKOV
    )
    assert 0 < len(near) < rows
    with pytest.raises(AssertionError, match=r"results differ: row 1 \(\w+\): kl_gpt_unseen"):
        assert_reproduces(far, MARKOV)
    exact = _scaled(MARKOV, tmp_path / "d.csv", "tv_chain_seen", 1 + 1e-12)
    said = results_differences(exact, MARKOV)  # the chain's row is arithmetic: exact
    assert len(said) == _filled(MARKOV, "tv_chain_seen") > 0
    assert all(": tv_chain_seen " in s for s in said)
    assert results_differences(tmp_path / "a.csv", tmp_path / "a.csv") == []


def test_a_column_one_run_lacks_counts_only_where_it_holds_a_value(tmp_path):
    """A probe may declare a metric after a run was recorded: the new, empty column is
    no difference; the same column with a value in any row is."""
    import csv

    with open(MARKOV, newline="") as f:
        rows = list(csv.DictReader(f))

    def with_column(name, values):
        out = tmp_path / f"{name}-{len(values)}.csv"
        with open(out, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[*rows[0], "new_metric"])
            writer.writeheader()
            writer.writerows({**r, "new_metric": v} for r, v in zip(rows, values, strict=True))
        return out

    assert results_differences(with_column("empty", [""] * len(rows)), MARKOV) == []
    filled = with_column("one", ["0.5"] + [""] * (len(rows) - 1))
    assert results_differences(filled, MARKOV) == ["columns ['new_metric'] in one run only"]
    assert results_differences(MARKOV, filled) == ["columns ['new_metric'] in one run only"]
