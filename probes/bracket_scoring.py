"""What a brackets case holds and how an answer to it scores: the tasks' inputs and
truths, the strict readers of an answer (closers, a verdict, a depth) and the four
scorers. probes/brackets.py makes the cases; probes/dyck.py is the truth.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from emulate.case import Answer, Case, Score
from emulate.extract import Policy, find
from emulate.scoring import is_logprob

from .dyck import BRACKETS, OPENERS, TOKEN_KINDS, classify_token, scan, spaced

# --- the cases' inputs and truths -----------------------------------------------------
#
# Each task shows one of two inputs and has its own truth; sequences are written
# spaced, as BBH writes them ("< [ [").


@dataclass(frozen=True)
class Prefix:
    """complete, next_token: an unfinished sequence (and the openers still open)."""

    prefix: str
    open: str = ""


@dataclass(frozen=True)
class Whole:
    """classify, depth: a whole sequence (and the edit that unbalanced it, if any)."""

    sequence: str
    edit: str = "none"


@dataclass(frozen=True)
class Closers:
    closers: str  # the shortest completion, spaced: "] ] >"


@dataclass(frozen=True)
class Verdict:
    answer: str  # "Yes" (balanced) or "No"


@dataclass(frozen=True)
class Depth:
    depth: int


@dataclass(frozen=True)
class NextSymbol:
    due: str  # the closer that is due next
    open: int  # how many brackets are open


# --- parsers and scorers ---------------------------------------------------------------
#
# Answers are found by the shared rules (emulate/extract.py); the parsers below are
# strict: a candidate is the whole answer or nothing.

_CLOSERS = re.compile(r"[\s,]*[()\[\]{}<>](?:[\s,]*[()\[\]{}<>])*[\s,]*")


def read_closers(text: str, prefix: str = "") -> str:
    """Bracket symbols alone ("] ) >", "])>"), or the whole sequence restated from the
    prefix on ("< [ [ ] ] >"), as closers without spaces."""
    if not _CLOSERS.fullmatch(text):
        raise ValueError("not a bracket sequence")
    said = "".join(c for c in text if c in BRACKETS)
    if prefix and said[0] in OPENERS and said.startswith(prefix) and len(said) > len(prefix):
        said = said[len(prefix) :]  # a prefix always opens; closers never do
    return said


def extract_closers(text: str, prefix: str = "") -> tuple[str, str]:
    """(strict, lenient) readings of a completion answer.

    Strict: the first line exactly as written, trimmed (BBH's exact match). Lenient:
    the answer the shared extraction rules find, bracket symbols only.
    """
    strict = text.strip().split("\n", 1)[0].strip() if text.strip() else ""
    found = find(text, lambda c: read_closers(c, prefix))
    return strict, str(found.value) if found else ""


def score_complete(case: Case[Prefix, Closers], answer: Answer, metrics: dict[str, Any]) -> Score:
    truth = "".join(case.truth.closers.split())
    prefix = "".join(case.inputs.prefix.split())
    strict, lenient = extract_closers(answer.text, prefix)
    metrics["exact_strict"] = strict == case.truth.closers
    metrics["exact_lenient"] = lenient == truth
    state = scan(prefix + lenient) if lenient else None
    metrics["valid_completion"] = state is not None and state.balanced
    right = next((i for i, (a, b) in enumerate(zip(lenient, truth, strict=False)) if a != b), None)
    metrics["closers_right"] = (min(len(lenient), len(truth)) if right is None else right) / len(
        truth
    )
    if metrics["exact_lenient"]:
        return Score(True, metrics, None, None, spaced(lenient))
    if not answer.text.strip():
        return Score(False, metrics, "empty", "empty answer")
    if not lenient:
        return Score(False, metrics, "unparseable", "no bracket sequence found in the answer")
    if metrics["valid_completion"]:
        kind, why = "not_shortest", "closes the sequence, but not by the shortest completion"
    elif lenient == truth[::-1] and len(truth) > 1:
        kind, why = "reversed", "the right closers in opening order, not closing order"
    elif truth.startswith(lenient):
        kind, why = "too_few", f"{len(lenient)} of {len(truth)} closers"
    elif lenient.startswith(truth):
        kind, why = "too_many", f"{len(lenient)} closers where {len(truth)} close it"
    else:
        kind, why = "wrong_closer", (state.error if state else None) or "wrong closers"
    return Score(False, metrics, kind, why, spaced(lenient))


_YES = re.compile(
    r"(yes|no|true|false)\b|(?:(?:the\s+sequence|it)\s+is\s+)?"
    r"(not\s+balanced|unbalanced|balanced)\b",
    re.I,
)


def read_verdict(text: str) -> str:
    """ "Yes" or "No" from an answer that starts with its verdict."""
    m = _YES.match(text.strip())
    if not m:
        raise ValueError("no verdict")
    word = (m.group(1) or m.group(2)).lower()
    return "Yes" if word in ("yes", "true", "balanced") else "No"


def score_classify(case: Case[Whole, Verdict], answer: Answer, metrics: dict[str, Any]) -> Score:
    found = find(answer.text, read_verdict)
    if not found:
        return Score(False, metrics, "unparseable", "no yes or no in the answer")
    said = found.value
    if said == case.truth.answer:
        return Score(True, metrics, None, None, said)
    if said == "Yes":
        why = f"called balanced despite {case.covariates['edit']}"
        return Score(False, metrics, "missed_edit", why, said)
    return Score(False, metrics, "false_alarm", "called a balanced sequence unbalanced", said)


DEPTH_POLICY = Policy(
    labels=("depth", "max depth", "maximum depth", "nesting depth", "maximum nesting depth")
)


def read_int(text: str) -> int:
    if not re.fullmatch(r"[-+]?\d{1,9}", text.strip()):
        raise ValueError("not a number")
    return int(text)


def score_depth(case: Case[Whole, Depth], answer: Answer, metrics: dict[str, Any]) -> Score:
    found = find(answer.text, read_int, DEPTH_POLICY)
    if not found:
        return Score(False, metrics, "unparseable", "no number in the answer")
    said = found.value
    depth = case.truth.depth
    metrics["abs_error"] = abs(said - depth)
    if said == depth:
        return Score(True, metrics, None, None, said)
    kind = "too_deep" if said > depth else "too_shallow"
    return Score(False, metrics, kind, f"said {said}, depth is {depth}", said)


def score_next_token(
    case: Case[Prefix, NextSymbol], answer: Answer, metrics: dict[str, Any]
) -> Score:
    if not answer.logprobs:
        return Score(False, metrics, "no_logprobs", "the answer carried no logprobs")
    first = answer.logprobs[0]
    top = first.top or ((first.token, first.logprob),)
    if bad := next((lp for _, lp in top if not is_logprob(lp)), None):
        return Score(False, metrics, "bad_logprobs", f"{bad!r} is not a log probability")
    mass = dict.fromkeys(TOKEN_KINDS, 0.0)
    open_ = case.inputs.open
    for token, logprob in top:
        mass[classify_token(token, open_)] += math.exp(min(logprob, 0.0))
    for k, v in mass.items():
        metrics[f"p_{k}"] = v
    metrics["p_illegal"] = mass["wrong_closer"] + mass["closer_at_zero"] + mass["end_open"]
    metrics["top_mass"] = sum(mass.values())
    best = max(top, key=lambda t: t[1])
    metrics["top_token"] = best[0]
    kind = classify_token(best[0], open_)
    if kind == "legal":
        return Score(True, metrics, None, None, best[0])
    why = f"most likely next token {best[0]!r} is {kind.replace('_', ' ')}"
    return Score(False, metrics, kind, why, best[0])
