"""Statistics against known answers, and on random data with hypothesis."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from emulate.analysis.stats import (
    bootstrap_ci,
    breaking_point,
    compare_correct,
    compare_metric,
    wilson,
)
from emulate.analysis.summary import summarise, table


def test_wilson_matches_the_formula():
    k, n, z = 7, 20, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson(k, n) == pytest.approx((centre - half, centre + half), abs=1e-9)
    assert all(math.isnan(v) for v in wilson(0, 0))


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 10), (10, 10), (3, 7), (1, 1000), (999, 1000)])
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_agrees_with_scipy(k, n, confidence):
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert wilson(k, n, confidence) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_bootstrap_is_seeded_and_falls_back_on_degenerate_data():
    data = [0.1, 0.5, 0.2, 0.9, 0.4, 0.3, 0.8]
    assert bootstrap_ci(data, seed=3) == bootstrap_ci(data, seed=3)
    lo, hi = bootstrap_ci(data)
    assert lo < np.mean(data) < hi
    # All correct: BCa would give NaN; the interval is the value itself.
    assert bootstrap_ci([1.0] * 12) == (1.0, 1.0)
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_logistic_fit_recovers_a_planted_midpoint():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 11, size=3000)
    p = 0.25 + 0.7 / (1 + np.exp(1.5 * (x - 5.5)))
    y = rng.random(3000) < p
    bp = breaking_point(x, y, chance=0.25, n_boot=60)
    assert abs(bp.midpoint - 5.5) < 0.3 and bp.low < 5.5 < bp.high
    assert bp.ceiling == pytest.approx(0.95, abs=0.03)


@pytest.mark.parametrize(
    "x,y,reason",
    [
        ([1, 2, 3, 4, 5], [1, 1, 1, 1, 1], "every case is correct"),
        ([1, 2, 3, 4, 5], [0, 0, 0, 0, 0], "every case is wrong"),
        ([3, 3, 3, 3, 3], [1, 0, 1, 0, 1], "3 or more difficulty values"),
        ([2, 2, 2, 4, 4, 4], [1, 1, 0, 0, 0, 1], "3 or more difficulty values"),
        (sorted([1, 2, 3, 4, 5, 6] * 10), [1, 0] * 30, "does not fall"),
    ],
)
def test_breaking_point_says_when_the_data_allow_no_fit(x, y, reason):
    bp = breaking_point(x, y)
    assert math.isnan(bp.midpoint) and reason in bp.reason


def test_mcnemar_worked_by_hand():
    # 10 discordant pairs: A alone right on 2, B alone right on 8.
    # Exact two-sided p = 2 * P(X <= 2 | n=10, 1/2) = 2 * (1 + 10 + 45) / 1024.
    a = {f"c{i}": i < 12 for i in range(30)}
    b = dict(a)
    for i in range(2):
        b[f"c{i}"] = False  # A right, B wrong
    for i in range(12, 20):
        b[f"c{i}"] = True  # B right, A wrong
    paired = compare_correct(a, b)
    assert (paired.a_only_right, paired.b_only_right) == (2, 8)
    assert paired.p_value == pytest.approx(2 * 56 / 1024)
    assert paired.p_value == pytest.approx(binomtest(2, 10, 0.5).pvalue)
    assert paired.difference == pytest.approx(6 / 30)


def test_unshared_cases_are_noted_not_compared():
    paired = compare_correct({"x": True, "y": False}, {"y": True, "z": True})
    assert paired.shared == 1 and paired.only_a == 1 and paired.only_b == 1 and paired.note
    none = compare_correct({"x": True}, {"z": True})
    assert none.shared == 0 and "share no case" in none.note


def test_paired_metric_difference():
    a = {str(i): float(i) for i in range(20)}
    b = {str(i): float(i) + 0.5 for i in range(20)}
    mean, lo, hi, p = compare_metric(a, b)
    assert mean == pytest.approx(0.5) and lo == hi == pytest.approx(0.5)
    assert compare_metric(a, a)[3] == 1.0


def test_a_metric_on_one_shared_case_has_a_difference_and_no_test():
    # scipy's bootstrap refuses one observation; a sweep met it (a metric only one
    # answer of each model parsed for).
    diff, low, high, p = compare_metric({"x": 1.0, "y": None}, {"x": 3.5, "y": 2.0})
    assert diff == 2.5 and all(math.isnan(v) for v in (low, high, p))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 6), st.booleans(), st.floats(0, 1)), min_size=1, max_size=60)
)
def test_random_journals_never_break_the_statistics(rows):
    x = [r[0] for r in rows]
    y = [r[1] for r in rows]
    lo, hi = wilson(sum(y), len(y))
    assert 0 <= lo <= sum(y) / len(y) <= hi <= 1
    blo, bhi = bootstrap_ci([r[2] for r in rows])
    assert blo <= bhi
    bp = breaking_point(x, y, n_boot=10)
    assert (bp.reason is None) == (not math.isnan(bp.midpoint))
    if bp.reason is None:
        assert min(x) <= bp.midpoint <= max(x)
    text = table(
        summarise([{"correct": c, "size": s} for s, c in zip(x, y, strict=True)], ["size"])
    )
    assert text.count("\n") >= 1


def test_large_samples_switch_to_methods_that_scale_and_agree():
    from scipy.stats import ttest_1samp

    from emulate.analysis.stats import BCA_MAX, PERMUTATION_MAX

    rng = np.random.default_rng(4)
    d = rng.normal(0.02, 1.0, PERMUTATION_MAX + 1)
    a = {str(i): 0.0 for i in range(len(d))}
    b = {str(i): float(v) for i, v in enumerate(d)}
    diff, low, high, p = compare_metric(a, b)
    assert p == pytest.approx(ttest_1samp(d, 0).pvalue)
    # The permutation test on the same data, just under the limit, agrees closely.
    small = {k: a[k] for k in list(a)[:PERMUTATION_MAX]}
    _, _, _, p_perm = compare_metric(small, {k: b[k] for k in small})
    assert p_perm == pytest.approx(ttest_1samp(d[:PERMUTATION_MAX], 0).pvalue, abs=0.03)
    # Percentile past BCA_MAX: close to the normal interval for a mean.
    x = rng.random(BCA_MAX + 1)
    lo, hi = bootstrap_ci(x)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert (lo, hi) == pytest.approx((x.mean() - half, x.mean() + half), abs=0.002)


def test_summary_table_worked_by_hand_in_one_pass():
    rows = [
        {"correct": True, "size": 3, "chance": 0.5, "mae": 0.0},
        {"correct": False, "size": 3, "chance": 0.5, "mae": 2.0, "error_type": "wrong"},
        {
            "correct": False,
            "size": 4,
            "chance": 0.25,
            "error": "timeout",
            "error_type": "api_error",
        },
        {"correct": True, "size": 4, "chance": 0.25, "mae": 1.0},
        {"correct": True, "size": None, "chance": 0.25, "mae": 3.0},
    ]
    # A generator: the table must not need a second pass (a run's rows may be a stream).
    text = table(summarise((r for r in rows), ["size", "size"], ["mae", "absent"]))
    shown = [line.replace("[ ", "[").replace("[ ", "[") for line in text.splitlines()]  # padding
    assert shown[0].split() == ["n", "accuracy", "95%", "interval", "errors", "chance", "mae"]
    lo, hi = wilson(3, 5)
    assert shown[1].split() == [
        "all", "5", "60.0%", f"[{lo:.1%},", f"{hi:.1%}]", "1", "0.350", "1.500"
    ]  # fmt: skip
    lo, hi = wilson(1, 2)
    # size=3: chance (0.5 + 0.5) / 2; mae (0 + 2) / 2. size=4: mae from the one row with it.
    ci = [f"[{lo:.1%},", f"{hi:.1%}]"]
    assert shown[2].split() == ["size=3", "2", "50.0%", *ci, "0", "0.500", "1.000"]
    assert shown[3].split() == ["size=4", "2", "50.0%", *ci, "1", "0.250", "1.000"]
    assert shown[4] == "wrong answers: wrong 1, api_error 1"
    assert len(shown) == 5  # the repeated axis is shown once
