"""Dyck languages: the truth (a stack machine) and the generator (HELM's PCFG,
conditioned exactly on length and depth) behind the brackets probe.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

PAIRS = ("()", "[]", "{}", "<>")
OPENERS, CLOSERS = "([{<", ")]}>"
CLOSE_OF = dict(zip(OPENERS, CLOSERS, strict=True))  # "(" -> ")"
BRACKETS = set(OPENERS + CLOSERS)

# --- the truth: a stack machine -------------------------------------------------------


@dataclass(frozen=True)
class Scan:
    balanced: bool
    open: str  # openers still open at the end, outermost first
    depth: int  # maximum nesting depth reached
    error: str | None  # the first violation, if any


def scan(seq: str) -> Scan:
    """Run a bracket string (spaces ignored) through a stack."""
    stack: list[str] = []
    depth, i = 0, -1
    for ch in seq:
        if ch.isspace():
            continue
        i += 1
        if ch in OPENERS:
            stack.append(ch)
            if len(stack) > depth:
                depth = len(stack)
        elif ch in CLOSERS:
            if not stack:
                return Scan(False, "", depth, f"closer {ch} at depth 0 (symbol {i + 1})")
            if CLOSE_OF[stack[-1]] != ch:
                why = f"{ch} where {CLOSE_OF[stack[-1]]} closes (symbol {i + 1})"
                return Scan(False, "".join(stack), depth, why)
            stack.pop()
        else:
            return Scan(False, "".join(stack), depth, f"{ch!r} is not a bracket")
    return Scan(not stack, "".join(stack), depth, None if not stack else "left open")


def closers(prefix: str) -> str:
    """The shortest completion that closes a prefix: its open brackets in reverse."""
    return "".join(CLOSE_OF[c] for c in reversed(scan(prefix).open))


def spaced(seq: str) -> str:
    """BBH writes sequences with a space between symbols: "< [ [ ] ] >"."""
    return " ".join(c for c in seq if not c.isspace())


# --- the generator: HELM's PCFG, conditioned on length and depth -----------------------
#
# S -> (i S )i with probability p/k for each of k types, S -> S S with probability q,
# else S -> empty (p = 0.5, q = 0.25). Rejection sampling for an exact (length, depth)
# is hopeless for long or deep cells, so we sample the same distribution conditioned
# exactly: W(n, d) is the probability that S derives a string of n pairs and depth at
# most d, X(n, d) of depth exactly d; a derivation is then drawn top-down in proportion
# to them. Concatenations with an empty side derive the same string as the other
# side, so they fold into the denominator; every term is positive, so no cancellation.

P_WRAP, P_SPLIT = 0.5, 0.25
_EMPTY = 1 - P_WRAP - P_SPLIT
W0 = (1 - math.sqrt(1 - 4 * P_SPLIT * _EMPTY)) / (2 * P_SPLIT)  # S =>* empty
_NORM = 1 - 2 * P_SPLIT * W0


@functools.cache
def exactly(n: int, d: int) -> float:
    """Probability mass of strings with n pairs and maximum depth exactly d."""
    if n == 0:
        return W0 if d == 0 else 0.0
    if d <= 0 or d > n:
        return 0.0
    split = sum(exactly(a, d) * at_most(n - a, d) + at_most(a, d - 1) * exactly(n - a, d)
                for a in range(1, n))  # fmt: skip
    return (P_WRAP * exactly(n - 1, d - 1) + P_SPLIT * split) / _NORM


@functools.cache
def at_most(n: int, d: int) -> float:
    return sum(exactly(n, e) for e in range(0, min(d, n) + 1))


def _pick(rng: np.random.Generator, options: list[tuple[float, Any]]) -> Any:
    weights = np.array([w for w, _ in options])
    return options[rng.choice(len(options), p=weights / weights.sum())][1]


def generate(n: int, d: int, types: int, rng: np.random.Generator, exact: bool = True) -> str:
    """A balanced string of n pairs and depth exactly d (or at most d)."""
    if n == 0:
        return ""
    mass = exactly if exact else at_most
    options: list[tuple[float, tuple]] = [(P_WRAP * mass(n - 1, d - 1), ("wrap",))]
    for a in range(1, n):
        if exact:
            options.append((P_SPLIT * exactly(a, d) * at_most(n - a, d), ("split", a, True, False)))
            options.append(
                (P_SPLIT * at_most(a, d - 1) * exactly(n - a, d), ("split", a, False, True))
            )
        else:
            options.append(
                (P_SPLIT * at_most(a, d) * at_most(n - a, d), ("split", a, False, False))
            )
    choice = _pick(rng, options)
    if choice[0] == "wrap":
        pair = PAIRS[int(rng.integers(types))]
        return pair[0] + generate(n - 1, d - 1, types, rng, exact) + pair[1]
    _, a, left_exact, right_exact = choice
    if exact and not left_exact:
        left = generate(a, d - 1, types, rng, exact=False)
    else:
        left = generate(a, d, types, rng, exact=left_exact)
    return left + generate(n - a, d, types, rng, exact=right_exact)


# Unbalanced variants for `classify`: one edit each, checked to really unbalance.
EDITS = ("wrong_type", "missing_closer", "extra_closer", "swapped")


def unbalance(seq: str, kind: str, types: int, rng: np.random.Generator) -> str | None:
    """`seq` with one edit of `kind`, unbalanced; None if this kind cannot apply."""
    closer_at = [i for i, c in enumerate(seq) if c in CLOSERS]
    for _ in range(50):
        i = int(rng.choice(closer_at))
        if kind == "wrong_type":
            others = [p[1] for p in PAIRS[: max(types, 2)] if p[1] != seq[i]]
            out = seq[:i] + str(rng.choice(others)) + seq[i + 1 :]
        elif kind == "missing_closer":
            out = seq[:i] + seq[i + 1 :]
        elif kind == "extra_closer":
            j = int(rng.integers(len(seq) + 1))
            out = seq[:j] + PAIRS[int(rng.integers(types))][1] + seq[j:]
        else:  # swapped: two neighbours trade places
            j = int(rng.integers(len(seq) - 1))
            out = seq[:j] + seq[j + 1] + seq[j] + seq[j + 2 :]
        if not scan(out).balanced:
            return out
    return None


# --- the next symbol: what a token would do after a prefix --------------------------

_END_MARK = re.compile(r"<[a-z_|/]+>", re.I)  # "<eos>", "<end_of_turn>": not brackets
# What a token can do next (classify_token): the first is legal, the others are not.
TOKEN_KINDS = ("legal", "wrong_closer", "closer_at_zero", "end_open", "other")


def classify_token(token: str, open_: str) -> str:
    """What a token would do if it came next after a prefix with `open_` still open:
    legal, wrong_closer, closer_at_zero, end_open (the sequence ends while brackets
    are open), or other (not a bracket)."""
    line, newline, _ = token.partition("\n")
    body = line.strip()
    if not body or _END_MARK.fullmatch(body):
        if newline or body or token == "":  # a line break, an end marker, end of text
            return "end_open" if open_ else "legal"
        return "other"  # whitespace alone says nothing yet
    if body[0] not in BRACKETS:
        return "other"
    stack = list(open_)
    for ch in body:
        if ch not in BRACKETS:
            break
        if ch in OPENERS:
            stack.append(ch)
        elif not stack:
            return "closer_at_zero"
        elif CLOSE_OF[stack.pop()] != ch:
            return "wrong_closer"
    return "end_open" if newline and stack else "legal"
