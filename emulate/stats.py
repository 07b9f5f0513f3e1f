"""Statistics on results: intervals for accuracies, summaries by difficulty."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials."""
    from scipy.stats import binomtest  # scipy takes half a second to import

    if n == 0:
        return (float("nan"), float("nan"))
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (ci.low, ci.high)


def summary_table(
    rows: Sequence[Mapping[str, Any]], axes: Sequence[str], means: Sequence[str] = ()
) -> str:
    """Accuracy with a Wilson 95% interval, overall and along each axis.

    Where rows carry a `chance` column (the accuracy of guessing), its mean is shown
    beside each accuracy as the reference line; so is the mean of each metric in
    `means` that the rows carry.
    """
    chance = any(r.get("chance") is not None for r in rows)
    means = [m for m in means if any(r.get(m) is not None for r in rows)]
    head = f"{'':<22}{'n':>5}  {'accuracy':>8}  95% interval      errors"
    widths = [("chance", 7)] * chance + [(m, max(9, len(m))) for m in means]
    lines = [head + "".join(f"  {m:>{w}}" for m, w in widths)]

    def line(label: str, group: Sequence[Mapping[str, Any]]) -> str:
        k, n = sum(bool(r["correct"]) for r in group), len(group)
        lo, hi = wilson(k, n)
        errs = sum(1 for r in group if r.get("error"))
        text = f"{label:<22}{n:>5}  {k / n:>8.1%}  [{lo:6.1%}, {hi:6.1%}]  {errs:>6}"
        for name, width in widths:
            values = [float(r[name]) for r in group if r.get(name) is not None]
            text += f"  {sum(values) / len(values):>{width}.3f}" if values else " " * (width + 2)
        return text

    lines.append(line("all", rows))
    for axis in axes:
        values = sorted({r[axis] for r in rows if r.get(axis) is not None}, key=_natural)
        for v in values:
            lines.append(line(f"{axis}={v}", [r for r in rows if r.get(axis) == v]))
    kinds = Counter(r["error_type"] for r in rows if r.get("error_type")).most_common()
    if kinds:
        lines.append("wrong answers: " + ", ".join(f"{k} {v}" for k, v in kinds))
    return "\n".join(lines)


def _natural(value: Any) -> tuple[str, Any]:
    """Numbers in numeric order (3 before 10), strings after them."""
    return (type(value).__name__ if isinstance(value, str) else "", value)
