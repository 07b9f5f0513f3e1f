"""Two runs of one probe, compared case by case on the case ids they share.

Correctness: exact McNemar (a binomial test on the discordant pairs) with a paired
bootstrap interval for the difference in accuracy, per probe and per cell, and
Benjamini-Hochberg q-values across the cells (many cells, many chances to find one).
Continuous metrics: the paired mean difference with a sign-flip permutation test.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .runs import Run, load_run, one_probe, series_labels
from .stats import compare_correct, compare_metric, natural_order
from .summary import numeric_metrics


@dataclass(frozen=True)
class Comparison:
    """B against A on one group of shared cases, for correctness or one metric."""

    group: str  # "all", "axis" or "cell"
    cell: str
    measure: str  # "correct" or a metric's name
    n: int  # shared cases
    a: float  # A's mean on the shared cases
    b: float
    difference: float  # b - a
    low: float
    high: float
    p_value: float
    q_value: float | None = None  # Benjamini-Hochberg over the cells, for correctness
    a_only_right: int | None = None  # discordant pairs
    b_only_right: int | None = None


@dataclass(frozen=True)
class Compared:
    probe: str
    a: str  # labels: the model, with mode or run id where the two share a model
    b: str
    shared: int
    only_a: int
    only_b: int
    rows: tuple[Comparison, ...]
    note: str | None  # unshared cases, or none shared

    def describe(self) -> str:
        """The table as text for a terminal."""
        lines = [f"{self.probe}: B = {self.b} against A = {self.a}, on {self.shared} shared cases"]
        if self.note:
            lines.append(f"note: {self.note}")
        head = f"{'':<26}{'n':>5}  {'A':>7}  {'B':>7}  {'B - A':>7}  95% interval       p"
        lines.append(head + "         q   A only  B only")
        for c in self.rows:
            if c.measure != "correct":
                continue
            lines.append(
                f"{c.cell:<26}{c.n:>5}  {c.a:>7.1%}  {c.b:>7.1%}  {c.difference:>+7.1%}  "
                f"[{c.low:+6.1%}, {c.high:+6.1%}]  {_p(c.p_value)}  {_p(c.q_value)}  "
                f"{c.a_only_right:>6}  {c.b_only_right:>6}"
            )
        metrics = [c for c in self.rows if c.measure != "correct"]
        if metrics:
            lines.append(f"{'metric (all shared cases)':<26}{'n':>5}  {'A':>7}  {'B':>7}  "
                         f"{'B - A':>7}  95% interval       p")  # fmt: skip
            for c in metrics:
                lines.append(
                    f"{c.measure:<26}{c.n:>5}  {c.a:>7.3f}  {c.b:>7.3f}  {c.difference:>+7.3f}  "
                    f"[{c.low:+6.3f}, {c.high:+6.3f}]  {_p(c.p_value)}"
                )
        return "\n".join(lines)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["probe", "a", "b", "group", "cell", "measure", "n", "mean_a", "mean_b",
                    "difference", "ci_low", "ci_high", "p_value", "q_value", "a_only_right",
                    "b_only_right"])  # fmt: skip
        for c in self.rows:
            w.writerow([self.probe, self.a, self.b, c.group, c.cell, c.measure, c.n]
                       + [_g(v) for v in (c.a, c.b, c.difference, c.low, c.high, c.p_value,
                                          c.q_value)]
                       + ["" if c.a_only_right is None else c.a_only_right,
                          "" if c.b_only_right is None else c.b_only_right])  # fmt: skip
        return buf.getvalue()


def _p(p: float | None) -> str:
    return f"{'':>8}" if p is None else f"{p:>8.3g}"


def _g(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.6g}"


def compare(a: str | Path | Run, b: str | Path | Run, *, seed: int = 0) -> Compared:
    """B against A (two run folders of one probe), paired on shared case ids."""
    ra = a if isinstance(a, Run) else load_run(a)
    rb = b if isinstance(b, Run) else load_run(b)
    probe = one_probe([ra, rb], "compare")
    labels = series_labels([ra, rb])
    la, lb = labels[ra.path], labels[rb.path]
    if la == lb:  # the same model and mode twice: the folders tell them apart
        la, lb = str(ra.path), str(rb.path)
    fa = {r["case_id"]: r for r in ra.flat()}
    fb = {r["case_id"]: r for r in rb.flat()}
    shared = [c for c in fa if c in fb]
    only_a, only_b = len(fa) - len(shared), len(fb) - len(shared)
    note = None
    if not shared:
        note = "the runs share no case id: nothing to compare (same probe, grid and seed?)"
    elif only_a or only_b:
        note = (f"{only_a} cases only in A and {only_b} only in B are left out; "
                "every figure is on the shared cases")  # fmt: skip
    rows: list[Comparison] = []
    if shared:
        params = list(dict.fromkeys(k for r in ra.rows + rb.rows for k in r.case.params))
        axes = [p for p in params if len({repr(fa[c].get(p)) for c in shared}) > 1]
        groups: list[tuple[str, str, list[str]]] = [("all", "all", shared)]
        for axis in axes:
            for v in sorted({fa[c].get(axis) for c in shared}, key=natural_order):
                groups.append(("axis", f"{axis}={v}", [c for c in shared if fa[c].get(axis) == v]))
        cells: dict[str, list[str]] = {}
        for c in shared:
            cells.setdefault(" ".join(f"{x}={fa[c].get(x)}" for x in axes), []).append(c)
        if len(axes) > 1:  # with one axis, its values are the cells
            groups += [("cell", label, ids) for label, ids in cells.items()]
        rows = [_correct(group, cell, ids, fa, fb, seed) for group, cell, ids in groups]
        rows = _with_q(rows)
        for m in numeric_metrics(
            probe, [fa[c] for c in shared] + [fb[c] for c in shared], main=True
        ):
            rows.append(_metric(m, shared, fa, fb, seed))
    return Compared(probe, la, lb, len(shared), only_a, only_b, tuple(rows), note)


def _correct(group, cell, ids, fa, fb, seed) -> Comparison:
    p = compare_correct(
        {c: bool(fa[c]["correct"]) for c in ids},
        {c: bool(fb[c]["correct"]) for c in ids},
        seed=seed,
    )
    acc_a = sum(bool(fa[c]["correct"]) for c in ids) / len(ids)
    return Comparison(
        group, cell, "correct", p.shared, acc_a, acc_a + p.difference, p.difference,
        p.low, p.high, p.p_value, None, p.a_only_right, p.b_only_right,
    )  # fmt: skip


def _with_q(rows: list[Comparison]) -> list[Comparison]:
    """Benjamini-Hochberg q-values over the finest groups: the cells, or with a single
    axis its values."""
    from dataclasses import replace

    from scipy.stats import false_discovery_control

    finest = "cell" if any(r.group == "cell" for r in rows) else "axis"
    cells = [i for i, r in enumerate(rows) if r.group == finest]
    if len(cells) < 2:
        return rows
    qs = false_discovery_control([rows[i].p_value for i in cells])
    out = list(rows)
    for i, q in zip(cells, qs, strict=True):
        out[i] = replace(rows[i], q_value=float(q))
    return out


def _metric(name, shared, fa, fb, seed) -> Comparison:
    va = {c: _float(fa[c].get(name)) for c in shared}
    vb = {c: _float(fb[c].get(name)) for c in shared}
    both = [c for c in shared if va[c] is not None and vb[c] is not None]
    diff, low, high, p = compare_metric(
        {c: va[c] or 0.0 for c in both}, {c: vb[c] or 0.0 for c in both}, seed=seed
    )
    mean = (lambda v: sum(v[c] for c in both) / len(both)) if both else (lambda v: math.nan)
    return Comparison("all", "all", name, len(both), mean(va), mean(vb), diff, low, high, p)


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) else None
