"""Statistics on results: intervals, breaking points, paired comparisons, summaries.

Everything random takes a seed, so the same data give the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials.

    The closed form (Wilson 1927), as scipy's binomtest(k, n).proportion_ci(method=
    "wilson") computes it (tests/test_stats.py checks the two agree): a run's summary
    needs it, and importing scipy.stats would cost a run half a second."""
    if n == 0:
        return (float("nan"), float("nan"))
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # At k = 0 (k = n) the bound is 0 (1) exactly; float rounding would miss it.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return (low, high)


BCA_MAX = 5000
PERMUTATION_MAX = 5000


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """BCa bootstrap interval for a mean; percentile where BCa cannot work, or for more
    than BCA_MAX values.

    BCa returns NaN on degenerate data (every value equal, as when all are correct):
    there the interval is the single value, and a NaN from BCa falls back to the
    percentile method."""
    from scipy.stats import bootstrap

    data = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(data) == 0:
        return (math.nan, math.nan)
    if len(data) == 1 or np.all(data == data[0]):
        return (float(data[0]), float(data[0]))
    # BCa's jackknife costs n^2; past a few thousand values the percentile interval,
    # which BCa corrects for small-sample skew, agrees with it closely.
    methods = ("BCa", "percentile") if len(data) <= BCA_MAX else ("percentile",)
    for method in methods:
        ci = bootstrap(
            (data,),
            np.mean,
            confidence_level=confidence,
            n_resamples=n_resamples,
            method=method,
            rng=np.random.default_rng(seed),
        ).confidence_interval
        if not (math.isnan(ci.low) or math.isnan(ci.high)):
            return (float(ci.low), float(ci.high))
    return (math.nan, math.nan)


@dataclass(frozen=True)
class BreakingPoint:
    """Where accuracy falls halfway from its ceiling to chance, along one difficulty axis."""

    midpoint: float  # NaN when the data allow no fit
    low: float
    high: float
    ceiling: float
    slope: float
    chance: float
    n: int
    reason: str | None = None  # why there is no fit, when there is none


def _fit_logistic(
    x: np.ndarray, y: np.ndarray, chance: float, start: Sequence[float] | None = None
) -> tuple[float, float, float]:
    """Maximum likelihood fit of p(x) = c + (u - c) / (1 + exp(k (x - m))), c fixed.

    Fitted on the Bernoulli likelihood of each 0/1 outcome, not by least squares;
    cases at one difficulty are pooled into a binomial, which is the same likelihood,
    evaluated in a few terms. Returns (m, k, u). `start` (in the same units) warm-starts
    a bootstrap refit with a quick quasi-Newton search."""
    from scipy.optimize import minimize
    from scipy.special import expit, logit

    xs, where = np.unique(x, return_inverse=True)
    n = np.bincount(where).astype(float)
    k1 = np.bincount(where, weights=y)
    span = float(xs[-1] - xs[0]) or 1.0

    def unpack(theta):
        m, log_k, u_logit = theta
        return m, math.exp(log_k) / span, chance + (1 - chance) * float(expit(u_logit))

    def nll(theta):
        m, k, u = unpack(theta)
        p = chance + (u - chance) * expit(-k * (xs - m))
        p = np.clip(p, 1e-9, 1 - 1e-9)
        return -float(k1 @ np.log(p) + (n - k1) @ np.log1p(-p))

    # A midpoint further than one span outside the data is not identified by them; the
    # slope is bounded because on separable data it runs off to infinity (a step).
    bounds = [(float(xs[0]) - span, float(xs[-1]) + span), (-20.0, 20.0), (-20.0, 20.0)]
    if start is None:
        theta0 = np.array([float(np.median(x)), math.log(4.0), 2.0])
        res = minimize(nll, theta0, method="Nelder-Mead", bounds=bounds,
                       options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000})  # fmt: skip
    else:
        m, k, u = start
        theta0 = np.array(
            [
                min(max(m, bounds[0][0]), bounds[0][1]),
                min(max(math.log(max(k * span, 1e-8)), -20.0), 20.0),
                float(logit(min(max((u - chance) / (1 - chance), 1e-6), 1 - 1e-6))),
            ]
        )
        res = minimize(nll, theta0, method="L-BFGS-B", bounds=bounds)
    return unpack(res.x)


def breaking_point(
    difficulty: Sequence[float],
    correct: Sequence[bool],
    chance: float = 0.0,
    n_boot: int = 300,
    confidence: float = 0.95,
    seed: int = 0,
) -> BreakingPoint:
    """The difficulty at which accuracy falls halfway from ceiling to chance, with a
    bootstrap interval (cases resampled); says so when the data allow no fit."""
    x = np.asarray(difficulty, dtype=float)
    y = np.asarray(correct, dtype=float)
    nan = math.nan

    def none(reason: str) -> BreakingPoint:
        return BreakingPoint(nan, nan, nan, nan, nan, chance, len(x), reason)

    if len(x) < 4 or len(np.unique(x)) < 3:
        # Three parameters (midpoint, slope, ceiling): two difficulties fit any of a
        # whole family of curves equally well.
        return none("needs at least 4 cases over 3 or more difficulty values")
    if y.all() or not y.any():
        return none("every case is " + ("correct" if y.all() else "wrong") + ": nothing falls")
    m, k, u = _fit_logistic(x, y, chance)
    # A fitted curve that barely moves over the range measured is no breaking point.
    from scipy.special import expit

    share = float(expit(-k * (x.min() - m)) - expit(-k * (x.max() - m)))
    if not (x.min() <= m <= x.max()) or u <= chance + 0.05 or share < 0.5:
        return none("accuracy does not fall from a ceiling to chance inside the range measured")
    rng = np.random.default_rng(seed)
    mids = []
    for _ in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        if len(np.unique(x[i])) > 1 and 0 < y[i].sum() < len(i):
            mids.append(_fit_logistic(x[i], y[i], chance, start=(m, k, u))[0])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(mids, [alpha, 1 - alpha]) if mids else (nan, nan)
    return BreakingPoint(float(m), float(low), float(high), float(u), float(k), chance, len(x))


@dataclass(frozen=True)
class Paired:
    """Two runs compared on the cases they share."""

    shared: int
    only_a: int  # cases run by A alone (not compared)
    only_b: int
    a_only_right: int  # discordant pairs: A right, B wrong
    b_only_right: int
    difference: float  # accuracy of B minus A, on the shared cases
    low: float
    high: float
    p_value: float  # exact McNemar
    note: str | None = None


def compare_correct(
    a: Mapping[str, bool], b: Mapping[str, bool], confidence: float = 0.95, seed: int = 0
) -> Paired:
    """Paired comparison of correctness by case id: exact McNemar (a binomial test on
    the discordant pairs) and a paired bootstrap interval for the difference."""
    from scipy.stats import binomtest

    shared = sorted(set(a) & set(b))
    only_a, only_b = len(set(a) - set(b)), len(set(b) - set(a))
    note = None
    if only_a or only_b:
        note = f"{only_a} cases only in A and {only_b} only in B are left out"
    if not shared:
        return Paired(0, only_a, only_b, 0, 0, math.nan, math.nan, math.nan, math.nan,
                      "the runs share no case: nothing to compare")  # fmt: skip
    xa = np.array([bool(a[c]) for c in shared], dtype=float)
    xb = np.array([bool(b[c]) for c in shared], dtype=float)
    a_right = int(np.sum((xa == 1) & (xb == 0)))
    b_right = int(np.sum((xa == 0) & (xb == 1)))
    p = binomtest(a_right, a_right + b_right, 0.5).pvalue if a_right + b_right else 1.0
    low, high = bootstrap_ci(xb - xa, confidence=confidence, seed=seed)
    return Paired(len(shared), only_a, only_b, a_right, b_right, float(np.mean(xb - xa)),
                  low, high, float(p), note)  # fmt: skip


def compare_metric(
    a: Mapping[str, float], b: Mapping[str, float], n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float, float]:
    """Paired difference of a continuous metric (B minus A): mean, interval, and the
    p-value of a sign-flip permutation test; past PERMUTATION_MAX pairs, where scipy's
    paired permutations grow slow and the central limit theorem has long set in, of a
    paired t-test."""
    from scipy.stats import permutation_test, ttest_1samp

    shared = sorted(c for c in set(a) & set(b) if a[c] is not None and b[c] is not None)
    d = np.array([b[c] - a[c] for c in shared], dtype=float)
    if len(d) < 2:  # one pair has a difference, but no interval and no test
        return (float(d[0]) if len(d) else math.nan, math.nan, math.nan, math.nan)
    low, high = bootstrap_ci(d, seed=seed)
    if np.all(d == 0):
        return (0.0, 0.0, 0.0, 1.0)
    if len(d) > PERMUTATION_MAX:
        return (float(d.mean()), low, high, float(ttest_1samp(d, 0.0).pvalue))
    test = permutation_test(
        (d,), np.mean, permutation_type="samples", n_resamples=n_resamples,
        rng=np.random.default_rng(seed),
    )  # fmt: skip
    return (float(d.mean()), low, high, float(test.pvalue))


def natural_order(value: Any) -> tuple[str, Any]:
    """Numbers in numeric order (3 before 10), strings after them."""
    return (type(value).__name__ if isinstance(value, str) else "", value)
