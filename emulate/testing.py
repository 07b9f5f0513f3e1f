"""Assertions that speak statistics, for a researcher's own tests (pytest or not).

    from emulate.testing import assert_accuracy, assert_no_regression, assert_breaking_point

    result = emulate.run("brackets", {"task": "next_token"}, n=10, replay="cassette.json")
    assert_accuracy(result, at_least=0.6)           # the Wilson lower bound, not the point
    assert_no_regression("runs/last-month", result)  # exact McNemar on the shared cases
    assert_breaking_point(result, "length", within=(8, 24))
    assert_reproduces(result, "cassettes/markov/completion")  # a replay, row for row

Each takes a RunResult, a run folder, or a loaded Run, and raises AssertionError with
the figures (counts, interval, p-value) in its message, so a failing test says why.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from .analysis.results import TIMING_COLUMNS
from .analysis.runs import Run, load_run
from .analysis.stats import breaking_point, compare_correct, wilson
from .pipeline.runner import RunResult
from .registry import get_probe, known

RunLike = RunResult | Run | str | Path


def _run(run: RunLike) -> Run:
    if isinstance(run, Run):
        return run
    return load_run(run.out if isinstance(run, RunResult) else run)


def _label(run: Run) -> str:
    return f"{run.model} ({run.path})"


def _correct(run: Run) -> dict[str, bool]:
    return {r.case.id: bool(r.score.correct) for r in run.rows}


def assert_accuracy(run: RunLike, at_least: float, confidence: float = 0.95) -> None:
    """Fails unless the run's accuracy is at least `at_least` at `confidence`: the
    lower end of the Wilson interval on its cases (errors count as wrong), not the
    point estimate, so ten lucky cases do not pass a bar that a hundred would not."""
    if not 0 <= at_least <= 1:
        raise ValueError(f"at_least {at_least!r}: a fraction from 0 to 1")
    r = _run(run)
    right = _correct(r)
    k, n = sum(right.values()), len(right)
    low, high = wilson(k, n, confidence)
    if low >= at_least:
        return
    why = (
        "the point estimate clears the bar, but not with this many cases: run more"
        if k / n >= at_least
        else "the point estimate itself is below the bar"
    )
    raise AssertionError(
        f"accuracy of {_label(r)}: {k}/{n} = {k / n:.1%}, {confidence:.0%} Wilson interval "
        f"[{low:.1%}, {high:.1%}]; its lower bound {low:.1%} is below {at_least:.1%} ({why})"
    )


def assert_no_regression(baseline: RunLike, current: RunLike, alpha: float = 0.05) -> None:
    """Fails when `current` gets significantly fewer of the shared cases right than
    `baseline`: the exact McNemar test (a binomial test on the cases one run got right
    and the other wrong) at level `alpha`. An improvement, or a difference within
    chance, passes. Runs that share no case fail: nothing was compared."""
    a, b = _run(baseline), _run(current)
    ra, rb = _correct(a), _correct(b)
    p = compare_correct(ra, rb)
    if p.shared == 0:
        raise AssertionError(
            f"{_label(b)} shares no case with the baseline {_label(a)}: same probe, grid, "
            "n and seed?"
        )
    if p.difference < 0 and p.p_value < alpha:
        shared = sorted(set(ra) & set(rb))
        acc_a = sum(ra[c] for c in shared) / len(shared)
        acc_b = sum(rb[c] for c in shared) / len(shared)
        raise AssertionError(
            f"regression: {_label(b)} is right on {acc_b:.1%} of {p.shared} shared cases, "
            f"the baseline {_label(a)} on {acc_a:.1%} ({p.difference * 100:+.1f} points, "
            f"95% CI [{p.low * 100:+.1f}, {p.high * 100:+.1f}]); {p.a_only_right} cases "
            f"right only in the baseline, {p.b_only_right} only now; exact McNemar "
            f"p = {p.p_value:.4g} < {alpha}"
        )


def assert_breaking_point(
    run: RunLike, axis: str, within: tuple[float, float], confidence: float = 0.95
) -> None:
    """Fails unless accuracy along the numeric case parameter `axis` falls (halfway
    from its ceiling to chance) at a point inside `within`, as `emulate report` fits
    it: a logistic curve on every case, with a bootstrap interval."""
    r = _run(run)
    lo, hi = within
    rows = [x for x in r.rows if _number(x.case.params.get(axis))]
    if not rows:
        names = sorted({k for x in r.rows for k in x.case.params})
        raise AssertionError(f"{_label(r)}: no numeric case parameter {axis!r} (it has {names})")
    chances = [x.case.chance for x in rows if x.case.chance is not None]
    point = breaking_point(
        [float(x.case.params[axis]) for x in rows],
        [bool(x.score.correct) for x in rows],
        chance=sum(chances) / len(chances) if chances else 0.0,
        confidence=confidence,
    )
    if point.reason is not None:
        raise AssertionError(
            f"{_label(r)}: no breaking point along {axis} ({point.n} cases): {point.reason}; "
            f"expected one within [{lo:g}, {hi:g}]"
        )
    if not lo <= point.midpoint <= hi:
        raise AssertionError(
            f"{_label(r)}: accuracy along {axis} falls from {point.ceiling:.0%} toward chance "
            f"{point.chance:.0%} at {point.midpoint:.3g} ({confidence:.0%} interval "
            f"[{point.low:.3g}, {point.high:.3g}], {point.n} cases), outside [{lo:g}, {hi:g}]"
        )


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _results_csv(run: RunResult | str | Path) -> Path:
    path = Path(run.out if isinstance(run, RunResult) else run)
    return path / "results.csv" if path.is_dir() else path


def _tolerances(probe: str) -> dict[str, float]:
    if not known(probe):
        return {}
    return {c.name: c.tolerance for c in get_probe(probe).columns if c.tolerance is not None}


def _agree(a: str, b: str, tolerance: float | None) -> bool:
    if a == b:
        return True
    if tolerance is None or not a or not b:
        return False
    try:
        return math.isclose(float(a), float(b), rel_tol=tolerance, abs_tol=tolerance)
    except ValueError:
        return False


def results_differences(
    current: RunResult | str | Path, recorded: RunResult | str | Path
) -> list[str]:
    """Where two runs' results.csv differ, as a replay is held to reproduce the run that
    recorded it: the same rows, the same columns (in any order), every value equal as
    text, timing
    (`latency_s`) aside, except columns whose probe declares a tolerance (values from
    training a network, whose floats differ in the last digits from one CPU to another:
    markov's baby GPT, the training probe's loss errors), which agree within it,
    relatively or absolutely. A column that one run has and the other lacks counts only
    where it holds a value: a probe may declare a metric after a run was recorded, and
    that run's cases have no value for it. Each arg is a run folder, a results.csv or a
    RunResult."""
    tables = []
    for run in (current, recorded):
        with open(_results_csv(run), newline="", encoding="utf-8") as f:
            tables.append(list(csv.DictReader(f)))
    now, then = tables
    if len(now) != len(then):
        return [f"{len(now)} rows, recorded {len(then)}"]
    said = []
    for i, (a, b) in enumerate(zip(now, then, strict=True)):
        # (their order is presentation; older runs had another)
        only = sorted(c for c in a.keys() ^ b.keys() if (a.get(c) or b.get(c)))
        if only:
            return [f"columns {only} in one run only"]
        tolerance = _tolerances(b.get("probe", ""))
        for col in (c for c in a if c not in TIMING_COLUMNS and c in b):
            if not _agree(a[col], b[col], tolerance.get(col)):
                said.append(f"row {i + 1} ({b.get('case_id')}): {col} {a[col]!r}, "
                            f"recorded {b[col]!r}")  # fmt: skip
    return said


def assert_reproduces(current: RunResult | str | Path, recorded: RunResult | str | Path) -> None:
    """`current` reproduces `recorded` as `results_differences` defines it."""
    said = results_differences(current, recorded)
    if said:
        more = f" (and {len(said) - 5} more)" if len(said) > 5 else ""
        raise AssertionError("results differ: " + "; ".join(said[:5]) + more)
