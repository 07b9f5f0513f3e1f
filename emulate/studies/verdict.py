"""A claim's verdict: its statistics, the rule that decides, and for an undecided claim
how many more cases would likely decide it.

The rules are read in order: `computes`, then `imitates`; neither (or both) leaves the
claim `inconclusive`. A statistic that has no value (NaN) is unknown in a rule
(emulate/studies/expr.py), so a rule never holds on missing evidence.

The power estimate asks: if the estimates stayed where they are and the runs had m
times their cases, would a rule hold with 80% power? Each interval's half-width
scales as 1/sqrt(m), and 80% power at a two-sided 5% level asks the interval to clear
the threshold by (z_0.975 + z_0.8) / z_0.975 = 1.43 of its half-width (the usual
sample-size formula n = ((z_a + z_b) sigma / delta)^2). The smallest such m, up to
MAX_FACTOR, gives the extra cases; a claim whose estimates sit where no rule reaches
gets none ("more cases alone will not decide it").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

from emulate.case import Row
from emulate.errors import EmulateError

from .expr import Expression, Unknown
from .spec import Claim
from .statistics import Stat, answered, compute

Verdict = Literal["computes", "imitates", "inconclusive"]
POWER = 0.8
MAX_FACTOR = 64.0
_Z = NormalDist().inv_cdf(0.975)
POWER_WIDTH = (_Z + NormalDist().inv_cdf(POWER)) / _Z


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    model: str
    verdict: Verdict
    rule: str  # the rule that held, or why none did
    stats: tuple[Stat, ...]
    cases: int  # answered cases over the claim's runs
    more_cases: int | None = None  # for an inconclusive claim: the power estimate
    excluded: int = 0  # rows that ended in a harness error
    not_run: str | None = None  # why the claim's runs could not run here


def decide(rule_computes: Expression, rule_imitates: Expression,
           env: Mapping[str, object], where: str) -> tuple[Verdict, str]:  # fmt: skip
    held = {}
    for name, rule in (("computes", rule_computes), ("imitates", rule_imitates)):
        try:
            held[name] = rule.holds(env)
        except Unknown as err:
            raise EmulateError(
                f"{where}, {name}: {rule.text!r} reads {err}, which is not there"
            ) from None
        except TypeError:
            held[name] = False  # a statistic without a value in a comparison
    if held["computes"] and held["imitates"]:
        return "inconclusive", "both rules hold: the thresholds overlap"
    if held["computes"]:
        return "computes", rule_computes.text
    if held["imitates"]:
        return "imitates", rule_imitates.text
    return "inconclusive", "neither rule holds"


def evaluate(claim: Claim, runs: Mapping[str, Sequence[Row]], model: str,
             seed: int = 0) -> ClaimResult:  # fmt: skip
    """The claim's statistics over `runs` (run name -> rows), its verdict and, when it
    is inconclusive, the power estimate."""
    done: dict[str, Stat] = {}
    for spec in claim.stats:
        done[spec.name] = compute(spec, runs, done, seed)
    where = f"claim {claim.id}"
    env = {**claim.thresholds, **done}
    verdict, rule = decide(claim.computes, claim.imitates, env, where)
    cases = sum(len(answered(rows)) for rows in runs.values())
    excluded = sum(len(rows) for rows in runs.values()) - cases
    more = None
    if verdict == "inconclusive" and rule == "neither rule holds":
        factor = power_factor(claim, done, where)
        more = None if factor is None else max(1, math.ceil(cases * (factor - 1)))
    return ClaimResult(claim, model, verdict, rule, tuple(done.values()), cases, more, excluded)


def _decided(claim: Claim, done: Mapping[str, Stat], factor: float, where: str) -> bool:
    # m times the cases, each interval POWER_WIDTH times as wide as its 95% one would be.
    grown = {k: s.project(factor, POWER_WIDTH) for k, s in done.items()}
    verdict, _ = decide(claim.computes, claim.imitates, {**claim.thresholds, **grown}, where)
    return verdict != "inconclusive"


def power_factor(claim: Claim, done: Mapping[str, Stat], where: str) -> float | None:
    """The smallest m (in steps of 1/8 of a doubling) at which a rule would hold with
    80% power, or None when none does by MAX_FACTOR."""
    m = 1.0
    while m <= MAX_FACTOR:
        if _decided(claim, done, m, where):
            return m
        m *= 2 ** (1 / 8)
    return None
