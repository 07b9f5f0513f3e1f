"""Statistics on results: intervals for accuracies, summaries by difficulty."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials."""
    from scipy.stats import binomtest  # scipy takes half a second to import

    if n == 0:
        return (float("nan"), float("nan"))
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (ci.low, ci.high)


def accuracy_by(rows: Iterable[Mapping[str, Any]], key: str) -> dict[Any, tuple[int, int]]:
    """{value of `key`: (correct, n)}."""
    tally: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        t = tally[r[key]]
        t[0] += bool(r["correct"])
        t[1] += 1
    return {k: (c, n) for k, (c, n) in sorted(tally.items(), key=lambda kv: str(kv[0]))}


def summary_table(rows: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> str:
    """Accuracy with a Wilson 95% interval, overall and along each varied axis."""
    lines = [f"{'':<22}{'n':>5}  {'accuracy':>8}  95% interval   errors"]

    def line(label: str, group: Sequence[Mapping[str, Any]]) -> str:
        k, n = sum(bool(r["correct"]) for r in group), len(group)
        lo, hi = wilson(k, n)
        errs = sum(1 for r in group if r.get("error"))
        return f"{label:<22}{n:>5}  {k / n:>8.1%}  [{lo:5.1%}, {hi:5.1%}]  {errs:>6}"

    lines.append(line("all", rows))
    kinds: dict[str, int] = defaultdict(int)
    for r in rows:
        if r.get("error_type"):
            kinds[r["error_type"]] += 1
    if kinds:
        lines.append(
            "wrong answers: "
            + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
        )
    for axis in axes:
        values = sorted({r[axis] for r in rows}, key=str)
        for v in values:
            lines.append(line(f"{axis}={v}", [r for r in rows if r[axis] == v]))
    return "\n".join(lines)
