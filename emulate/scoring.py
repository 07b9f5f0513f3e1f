"""Scoring helpers that several probes share: output compared line by line."""

from __future__ import annotations

import math
from collections import Counter


def lines(text: str) -> list[str]:
    """Output as a terminal shows it: CRLF as LF, trailing spaces and blank lines gone."""
    out = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
    while out and not out[-1]:
        out.pop()
    return out


def overlap(said: list[str], truth: list[str]) -> int:
    """Lines in common, each counted as often as both have it (order aside)."""
    return sum((Counter(said) & Counter(truth)).values())


def line_f1(said: list[str], truth: list[str]) -> float:
    """F1 of line overlap: 1 for two empty outputs, 0 with nothing in common."""
    if not said and not truth:
        return 1.0
    common = overlap(said, truth)
    if not common:
        return 0.0
    p, r = common / len(said), common / len(truth)
    return 2 * p * r / (p + r)


def is_logprob(value: float) -> bool:
    """A log probability: at most 0 (servers round, so a hair above passes), -inf for
    an impossible token; NaN or a positive figure is a broken server's, not a model's."""
    return isinstance(value, int | float) and not math.isnan(value) and value <= 1e-6
