"""The report's plots: accuracy against each difficulty axis, one line per model,
with its Wilson band, chance and breaking point; and where each point was drawn."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from .stats import BreakingPoint, natural_order, wilson


def _values(rows: Sequence[Mapping[str, Any]], axis: str) -> list[Any]:
    return sorted({r[axis] for r in rows if r.get(axis) is not None}, key=natural_order)


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _chance(rows: Sequence[Mapping[str, Any]]) -> float | None:
    return _mean([float(r["chance"]) for r in rows if r.get("chance") is not None])


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.1%}"


def _bp(p: BreakingPoint) -> str:
    if p.reason:
        return f"no fit: {p.reason}"
    return f"{p.midpoint:.3g} [{p.low:.3g}, {p.high:.3g}]"


def plot(
    probe: str,
    axis: str,
    series: Mapping[str, Sequence[Mapping[str, Any]]],
    fits: Mapping[str, BreakingPoint],
    points: list[dict[str, Any]] | None = None,
) -> bytes:
    """Accuracy against one axis, one line per model with its Wilson band, its chance
    dashed, and each breaking point as a dotted line over its interval. PNG bytes;
    with `points`, each plotted point's model, value and place in the picture
    (fractions of its width and height, from the top left) are added to it."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    every = [r for rows in series.values() for r in rows]
    xs = _values(every, axis)
    numeric = _numeric(xs)
    where = {v: (v if numeric else i) for i, v in enumerate(xs)}
    fig = Figure(figsize=(6.4, 3.9), dpi=100, layout="constrained")
    ax = fig.subplots()
    drawn: list[tuple[str, list[Any], list[Any], list[float]]] = []
    for i, (model, rows) in enumerate(series.items()):
        color = f"C{i % 10}"
        at = [v for v in xs if any(r.get(axis) == v for r in rows)]
        stats = [_xstat(rows, axis, v) for v in at]
        pos = [where[v] for v in at]
        ax.fill_between(pos, [s[1] for s in stats], [s[2] for s in stats], color=color,
                        alpha=0.18, linewidth=0)  # fmt: skip
        ax.plot(pos, [s[0] for s in stats], marker="o", color=color, label=model)
        drawn.append((model, at, pos, [s[0] for s in stats]))
    xlim = ax.get_xlim()  # the data's range: an interval running past it is cut off
    for i, model in enumerate(series):
        fit = fits.get(model)
        if fit is not None and fit.reason is None:
            color = f"C{i % 10}"
            ax.axvspan(fit.low, fit.high, color=color, alpha=0.08, linewidth=0)
            ax.axvline(fit.midpoint, color=color, linestyle=":", linewidth=1.5,
                       label=f"breaking point {_bp(fit)}")  # fmt: skip
    ax.set_xlim(xlim)
    _chance_lines(ax, series, axis, xs, where)
    if not numeric:
        ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    elif all(isinstance(v, int) for v in xs):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(-0.03, 1.03)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(axis)
    ax.set_ylabel("accuracy, 95% Wilson band")
    ax.set_title(f"{probe}: accuracy by {axis} (other parameters pooled)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    if points is not None:  # where the layout put each point, known once it is drawn
        points += _places(fig, ax, drawn)
    return buf.getvalue()


def _chance_lines(
    ax: Any, series: Mapping[str, Sequence[Mapping[str, Any]]], axis: str, xs: list[Any],
    where: Mapping[Any, Any],
) -> None:  # fmt: skip
    """Each model's chance along the axis, dashed, where the probe defines one."""
    with_chance = [m for m, rows in series.items() if _chance(rows) is not None]
    for i, (model, rows) in enumerate(series.items()):
        if model not in with_chance:
            continue
        chance = [(where[v], _chance([r for r in rows if r.get(axis) == v])) for v in xs]
        chance = [(x, c) for x, c in chance if c is not None]
        label = "chance" if len(with_chance) == 1 else f"chance, {model}"
        ax.plot(*zip(*chance, strict=True), linestyle="--", color=f"C{i % 10}", alpha=0.6,
                linewidth=1.2, label=label)  # fmt: skip


def _places(
    fig: Any, ax: Any, drawn: Sequence[tuple[str, list[Any], list[Any], list[float]]]
) -> list[dict[str, Any]]:
    """Each drawn point's model, value and place: fractions of the picture's width and
    height from its top left."""
    width, height = fig.get_size_inches() * fig.dpi
    places = []
    for model, at, pos, ys in drawn:
        for v, x, y in zip(at, pos, ys, strict=True):
            px, py = ax.transData.transform((x, y))
            places.append({"model": model, "value": v, "x": px / width, "y": 1 - py / height})
    return places


def _xstat(rows, axis, v) -> tuple[float, float, float]:
    group = [r for r in rows if r.get(axis) == v]
    k = sum(bool(r["correct"]) for r in group)
    low, high = wilson(k, len(group))
    return k / len(group), low, high
