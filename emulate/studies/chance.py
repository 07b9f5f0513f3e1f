"""Chance rates the built-in study names (`chance = "emulate.studies.chance:NAME"`):
plain Python over a statistic's rows, as a study file of one's own may name its own."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emulate.case import Row


def conv_lookalike(wrong: Sequence[Row]) -> float:
    """The chance that a wrong conv answer is the flipped-kernel result or a worked
    example's output, were it a uniform guess among the arrays of the truth's shape
    whose cells lie in the range a cell can take: for each case, (lookalikes other than
    the truth) / (R^cells - 1), with R = K*cin*v^2 + 1 values a cell can take (K kernel
    cells, entries 0..v; 2*K*cin*v^2 + 1 when signed), averaged over the wrong rows."""
    rates = []
    for row in wrong:
        p, truth_json = row.case.params, row.case.truth
        truth = np.asarray(truth_json["output"] if isinstance(truth_json, dict) else
                           truth_json.output, dtype=float)  # fmt: skip
        foils = row.case.foils
        looks = [np.asarray(foils.get("flipped_kernel"), dtype=float)]
        looks += [np.asarray(t, dtype=float) for t in foils.get("copied_example", [])]
        distinct = {a.tobytes() for a in looks if a.shape == truth.shape and not
                    np.array_equal(a, truth)}  # fmt: skip
        top = p["kernel"] ** p["dims"] * p.get("cin", 1) * p["values"] ** 2
        values = 2 * top + 1 if p.get("signed") else top + 1
        space = float(values) ** truth.size - 1
        rates.append(len(distinct) / space if space > 0 else 0.0)
    return float(np.mean(rates)) if rates else float("nan")
