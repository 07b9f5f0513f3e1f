"""Accuracy and metrics by group of cases, computed once: the table a run prints, the
rows of a report's summary.csv and its page are all `summarise`'s SummaryRows.

A group is all of a probe's cases, the cases at one value of an axis, or one grid
cell. Rows are read in one pass (a run's may be 100,000), each group keeping counts
and sums only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from emulate.config import RunConfig
from emulate.probe import Probe
from emulate.registry import get_probe, known

from .stats import natural_order, wilson


@dataclass(frozen=True)
class SummaryRow:
    """Accuracy of one model on one group of cases: all of a probe's cases, those at
    one value of an axis, or one grid cell."""

    probe: str
    model: str  # the series label: the model, with its mode or run id where needed
    group: str  # "all", "axis" or "cell"
    cell: str  # "all", "size=3", "dims=1 size=3"
    params: Mapping[str, Any]
    n: int
    correct: int
    low: float
    high: float
    chance: float | None  # mean accuracy of guessing, where the probe defines it
    errors: int  # failed requests
    means: Mapping[str, float | None]  # the mean of each metric
    kinds: Mapping[str, int]  # wrong answers by error type, most common first

    @property
    def accuracy(self) -> float:
        return self.correct / self.n


@dataclass
class _Group:
    params: dict[str, Any]
    n: int = 0
    correct: int = 0
    errors: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, row: Mapping[str, Any], measured: Sequence[str]) -> None:
        self.n += 1
        self.correct += bool(row["correct"])
        self.errors += bool(row.get("error"))
        for name in measured:
            v = row.get(name)
            if isinstance(v, int | float):
                self.sums[name] = self.sums.get(name, 0.0) + float(v)
                self.counts[name] = self.counts.get(name, 0) + 1
        if row.get("error_type"):
            self.kinds[row["error_type"]] += 1

    def mean(self, name: str) -> float | None:
        return self.sums[name] / self.counts[name] if self.counts.get(name) else None


def numeric_metrics(probe: str, rows: Sequence[Mapping[str, Any]], main: bool = False) -> list[str]:
    """The probe's metric columns that hold numbers in `rows`: every one, or with `main`
    only those its summary leads with (`Probe.summary_means`, which compare tests)."""
    if not known(probe):
        return []
    p = get_probe(probe)
    names = p.summary_means if main else p.metrics
    return [
        m for m in names if m != "chance" and any(isinstance(r.get(m), int | float) for r in rows)
    ]


def key(value: Any) -> Any:
    """A parameter's value as a dictionary key (lists and dicts by their text)."""
    return repr(value) if isinstance(value, list | dict) else value


def summarise(
    rows: Iterable[Mapping[str, Any]],
    axes: Sequence[str],
    metrics: Sequence[str] = (),
    *,
    probe: str = "",
    model: str = "",
    cells: bool = False,
) -> list[SummaryRow]:
    """All the rows, then each value of each axis (in natural order), then with
    `cells` and two axes or more each grid cell (in order of first appearance), with
    the mean of `chance` and of each metric in `metrics` that the rows carry."""
    axes = list(dict.fromkeys(axes))
    measured = ["chance", *metrics]
    groups: dict[tuple[Any, ...], _Group] = {("all",): _Group({})}
    for r in rows:
        keys: list[tuple[Any, ...]] = [("all",)]
        keys += [("axis", a, key(r[a])) for a in axes if r.get(a) is not None]
        if cells and len(axes) > 1:
            keys.append(("cell", *(key(r.get(a)) for a in axes)))
        for k in keys:
            group = groups.get(k)
            if group is None:
                params = {k[1]: r[k[1]]} if k[0] == "axis" else {a: r.get(a) for a in axes}
                group = groups[k] = _Group(params)
            group.add(r, measured)
    if not groups[("all",)].n:
        return []
    out = [_row(probe, model, "all", "all", groups[("all",)], metrics)]
    for axis in axes:
        values = sorted((g for k, g in groups.items() if k[:2] == ("axis", axis)),
                        key=lambda g: natural_order(g.params[axis]))  # fmt: skip
        out += [_row(probe, model, "axis", f"{axis}={g.params[axis]}", g, metrics) for g in values]
    for k, g in groups.items():
        if k[0] == "cell":
            label = " ".join(f"{a}={v}" for a, v in g.params.items())
            out.append(_row(probe, model, "cell", label, g, metrics))
    return out


def _row(
    probe: str, model: str, group: str, cell: str, g: _Group, metrics: Sequence[str]
) -> SummaryRow:
    low, high = wilson(g.correct, g.n)
    return SummaryRow(
        probe=probe,
        model=model,
        group=group,
        cell=cell,
        params=dict(g.params),
        n=g.n,
        correct=g.correct,
        low=low,
        high=high,
        chance=g.mean("chance"),
        errors=g.errors,
        means={m: g.mean(m) for m in metrics},
        kinds=dict(g.kinds.most_common()),
    )


def table(rows: Sequence[SummaryRow]) -> str:
    """The terminal table of one model's rows: n, accuracy, its Wilson interval,
    failed requests, then chance and each metric's mean where any row has them; then
    the wrong answers by kind."""
    head = f"{'':<22}{'n':>5}  {'accuracy':>8}  95% interval      errors"
    if not rows:
        return head
    names = list(rows[0].means)
    shown: list[tuple[str, int]] = []
    if any(r.chance is not None for r in rows):
        shown.append(("chance", 7))
    shown += [(m, max(9, len(m))) for m in names if any(r.means[m] is not None for r in rows)]
    lines = [head + "".join(f"  {name:>{width}}" for name, width in shown)]
    for r in rows:
        label = "all" if r.group == "all" else r.cell
        text = (
            f"{label:<22}{r.n:>5}  {r.accuracy:>8.1%}  [{r.low:6.1%}, {r.high:6.1%}]  {r.errors:>6}"
        )
        for name, width in shown:
            value = r.chance if name == "chance" else r.means[name]
            text += f"  {value:>{width}.3f}" if value is not None else " " * (width + 2)
        lines.append(text)
    if kinds := rows[0].kinds:
        lines.append("wrong answers: " + ", ".join(f"{k} {v}" for k, v in kinds.items()))
    return "\n".join(lines)


def run_summary(probe: Probe, config: RunConfig | None, rows: Sequence[Mapping[str, Any]]) -> str:
    """A run's printed summary: accuracy overall, along each grid axis that varies and
    the probe's own axes."""
    if not rows:
        return "no cases"
    axes = [k for k, v in config.grid.items() if len(v) > 1] if config else []
    return table(summarise(rows, axes + list(probe.summary_axes), probe.summary_means))
