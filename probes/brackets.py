"""Brackets: can the model close, check and measure Dyck sequences?

A network that writes fluent prose cannot reliably close brackets; Wolfram showed a
trained transformer putting about 15% probability on a wrong closing parenthesis.
Four tasks (the `task` parameter) measure that for any model, by depth and length:

- complete:   BIG-Bench Hard's format, "Complete the rest of the sequence, making
              sure that the parentheses are closed properly. Input: < [ [" -> "] ] >";
              exact match, with strict and lenient answer extraction side by side.
- classify:   balanced or not (half the cases are, half carry one edit).
- depth:      the maximum nesting depth, a number.
- next_token: from logprobs, the probability mass on illegal continuations at a
              point inside a sequence: a closer of the wrong type, a closer at depth
              0, or ending while brackets are open.

The truth (a stack machine) and the generator (HELM's PCFG, conditioned exactly on
length and depth) live in probes/dyck.py. Read this module top to bottom: published
items, the cases, the prompts, parsers and scorers per task.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from emulate import tokens
from emulate.case import Answer, Case, Score, case_id, case_rng
from emulate.errors import EmulateError, read_text
from emulate.extract import Policy, find
from emulate.probe import Param, Probe, covariate, metric
from emulate.prompt import Example, render
from emulate.scoring import is_logprob

from .dyck import (
    BRACKETS,
    CLOSE_OF,
    EDITS,
    OPENERS,
    closers,
    generate,
    scan,
    spaced,
    unbalance,
)

# --- published items (BBH format) -----------------------------------------------------


@dataclass(frozen=True)
class Item:
    index: int
    prefix: str  # brackets only, no spaces
    target: str


def load_items(path: str | Path) -> list[Item]:
    """BBH `{"examples": [{"input", "target"}]}` JSON, or JSONL of such objects."""
    path = Path(path)
    text = read_text(path, f"items={path}")
    try:
        data = json.loads(text)
        # BBH's file, a JSON list, or JSONL of a single object.
        records = data.get("examples", [data]) if isinstance(data, dict) else data
    except json.JSONDecodeError:
        try:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise EmulateError(f"{path}: neither JSON nor JSONL ({err})") from None
    if not isinstance(records, list):
        raise EmulateError(
            f'{path}: expected a list of items, as BBH\'s {{"examples": [...]}}, not '
            f"{type(records).__name__}"
        )
    items = []
    for i, rec in enumerate(records):
        where = f"{path}: item {i}"
        if not isinstance(rec, dict) or not isinstance(rec.get("input"), str):
            raise EmulateError(f"{where}: expected an object with an 'input' text (and 'target')")
        if not isinstance(rec.get("target", ""), str):
            raise EmulateError(f"{where}: 'target' must be text, such as \") ]\"")
        shown = rec["input"].rsplit("Input:", 1)[-1]
        bad = sorted({c for c in shown if not c.isspace() and c not in BRACKETS})
        if bad:
            raise EmulateError(f"{where}: {''.join(bad)!r} in the input is not a bracket")
        prefix = "".join(shown.split())
        state = scan(prefix)
        if state.error and state.error != "left open":
            raise EmulateError(
                f"{where}: the input is not a prefix of a balanced sequence: {state.error}"
            )
        if not state.open:
            raise EmulateError(f"{where}: the input is already balanced; nothing to complete")
        truth = closers(prefix)
        target = "".join(str(rec.get("target", spaced(truth))).split())
        if not scan(prefix + target).balanced:
            raise EmulateError(f"{where}: target {spaced(target)!r} does not close the input")
        if target != truth:
            raise EmulateError(
                f"{where}: target {spaced(target)!r} closes the input but is not the shortest "
                f"completion {spaced(truth)!r}, which emulate scores against"
            )
        items.append(Item(i, prefix, target))
    if not items:
        raise EmulateError(f"{path}: no items")
    return items


# --- cases ----------------------------------------------------------------------------
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


TYPES = {
    "complete": (Prefix, Closers),
    "classify": (Whole, Verdict),
    "depth": (Whole, Depth),
    "next_token": (Prefix, NextSymbol),
}

TASKS = ("complete", "classify", "depth", "next_token")
TOP_LOGPROBS = 20  # OpenAI's maximum; llama-server and vLLM allow more

PARAMS = (
    Param("task", ("complete",), "what the model is asked", choices=TASKS),
    Param("types", (4,), "bracket types used: (), [], {}, <> in that order", lo=1, hi=4),
    Param("depth", (2, 4), "maximum nesting depth of the full sequence", lo=1, hi=30),
    Param("length", (8, 16, 24), "brackets in the full balanced sequence (even)", lo=2, hi=120),
    Param("shots", (3,), "worked examples before the question (BBH uses 3)", lo=0, hi=8),
    Param("items", (), "BBH-format JSON/JSONL items to run instead of generated ones", path=True),
)


class BracketsProbe(Probe):
    name = "brackets"
    version = 1
    Inputs, Truth = TYPES["complete"]
    summary = "Dyck languages: complete, classify, measure depth, next-token legality"
    params = PARAMS
    columns = (
        metric("exact_strict", bool),
        metric("exact_lenient", bool),
        metric("valid_completion", bool),
        metric("closers_right"),
        metric("abs_error", int),
        covariate("edit", str),
        metric("p_legal"),
        metric("p_illegal"),
        metric("p_wrong_closer"),
        metric("p_closer_at_zero"),
        metric("p_end_open"),
        metric("p_other"),
        metric("top_mass"),
        metric("top_token", str),
        covariate("closers"),
        covariate("symbols"),
        covariate("tokens_spaced"),
        covariate("tokens_compact"),
        covariate("merged_compact"),
    )
    summary_axes = ("closers",)
    summary_means = ("closers_right", "p_illegal", "p_wrong_closer", "top_mass")
    default_mode = "chat"

    def check_cell(self, cell: Mapping[str, Any]) -> str | None:
        if cell.get("items"):
            return None
        if cell["length"] % 2:
            return "a balanced sequence has an even length"
        if cell["depth"] > cell["length"] // 2:
            return f"depth {cell['depth']} needs at least {2 * cell['depth']} brackets"
        if cell["task"] == "classify" and cell["length"] < 4:
            return "an unbalancing edit needs at least 4 brackets"
        return None

    def build(self, cells: list[dict[str, Any]], n: int, seed: int, mode: str) -> list[Case]:
        if not any(c.get("items") for c in cells):
            return super().build(cells, n, seed, mode)
        # Items replace the generator: depth, length and types come from each item.
        runs = list(dict.fromkeys((c["items"], c["task"], c["shots"]) for c in cells))
        out = []
        for path, task, shots in runs:
            if task != "complete":
                raise EmulateError(f"brackets: items= runs task=complete (BBH's task), not {task}")
            out += [self.item_case(path, item, shots, mode) for item in load_items(path)]
        return out

    def make_case(self, cell: Mapping[str, Any], seed: int, mode: str) -> Case:
        cid = case_id(self.name, self.version, cell, seed)
        rng = case_rng(cid)
        n, d, k = cell["length"] // 2, cell["depth"], cell["types"]
        full = generate(n, d, k, rng)
        shots = [generate(n, d, k, rng) for _ in range(cell["shots"])]
        task = cell["task"]
        if task == "complete":
            prefix = full[: _cut(full, rng)]
            return self._complete_case(cid, dict(cell), seed, prefix, shots, k, mode, rng)
        if task == "classify":
            return self._classify_case(cid, dict(cell), seed, full, shots, k, mode, rng)
        if task == "depth":
            # Worked examples of other depths, so copying their answer does not score.
            depths = rng.integers(1, min(n, 2 * d) + 1, size=len(shots))
            shots = [generate(n, int(e), k, rng) for e in depths]
            return self._depth_case(cid, dict(cell), seed, full, shots, mode)
        prefix = full[: _cut(full, rng)]
        return self._next_token_case(cid, dict(cell), seed, prefix, shots, k, mode)

    def item_case(self, path: str, item: Item, shots: int, mode: str) -> Case:
        # The id hangs on the item's content, not on the file's name, place or order.
        digest = hashlib.sha256(item.prefix.encode()).hexdigest()[:12]
        cid = case_id(self.name, self.version, {"task": "complete", "shots": shots,
                                                "digest": digest}, 0)  # fmt: skip
        rng = case_rng(cid)
        full = item.prefix + item.target
        n, d = len(full) // 2, scan(full).depth
        # Its own depth and length, where a generated case has them from its grid cell.
        params = {"task": "complete", "shots": shots, "item": item.index, "depth": d,
                  "length": len(full)}  # fmt: skip
        shot_seqs = [generate(n, d, 4, rng) for _ in range(shots)]
        return self._complete_case(cid, params, 0, item.prefix, shot_seqs, 4, mode, rng)

    # One builder per task: inputs, truth, prompt and covariates together.

    def _complete_case(self, cid, params, seed, prefix, shots, k, mode, rng) -> Case:
        truth = closers(prefix)
        examples = [(p, closers(p)) for p in (s[: _cut(s, rng)] for s in shots)]
        question = f"{COMPLETE} Input: {spaced(prefix)}"
        prompt = _prompt(
            mode,
            "Reply with the closing brackets only, separated by spaces.",
            [(f"{COMPLETE} Input: {spaced(p)}", spaced(t)) for p, t in examples],
            question,
            answer_label="Answer:",
        )
        return self.new_case(
            cid,
            params,
            seed,
            inputs=Prefix(spaced(prefix)),
            truth=Closers(spaced(truth)),
            prompt=prompt,
            covariates={"closers": len(truth), **_token_covariates(prefix)},
            # Guessing the right number of closers, each type uniformly.
            chance=k ** -len(truth),
            max_tokens=2 * len(truth) + 16 if mode == "completion" else 4 * len(truth) + 64,
            stop=("\n",) if mode == "completion" else (),
        )

    def _classify_case(self, cid, params, seed, full, shots, k, mode, rng) -> Case:
        # Balanced on even seeds, so n cases per cell split evenly; the edit kinds take turns.
        edit = "none" if seed % 2 == 0 else _edit_for(seed, k)
        shown = full if edit == "none" else unbalance(full, edit, k, rng)
        if shown is None:  # this edit could not unbalance it; a dropped closer always does
            edit, shown = "missing_closer", unbalance(full, "missing_closer", k, rng)
            assert shown is not None
        examples = []
        for i, s in enumerate(shots):
            e = "none" if i % 2 == 0 else EDITS[i // 2 % len(EDITS)]
            t = s if e == "none" else unbalance(s, e, k, rng)
            examples.append((t or s, "Yes" if t is None or e == "none" else "No"))
        prompt = _prompt(
            mode,
            "Reply Yes or No.",
            [(f"{CLASSIFY}\nSequence: {spaced(s)}", a) for s, a in examples],
            f"{CLASSIFY}\nSequence: {spaced(shown)}",
            answer_label="Answer:",
        )
        return self.new_case(
            cid,
            params,
            seed,
            inputs=Whole(spaced(shown), edit),
            truth=Verdict("Yes" if edit == "none" else "No"),
            prompt=prompt,
            covariates={"edit": edit, **_token_covariates(shown)},
            chance=0.5,
            max_tokens=4 if mode == "completion" else 32,
            stop=("\n",) if mode == "completion" else (),
        )

    def _depth_case(self, cid, params, seed, full, shots, mode) -> Case:
        prompt = _prompt(
            mode,
            "Reply with the number only.",
            [(f"{DEPTH}\nSequence: {spaced(s)}", str(scan(s).depth)) for s in shots],
            f"{DEPTH}\nSequence: {spaced(full)}",
            answer_label="Depth:",
        )
        return self.new_case(
            cid,
            params,
            seed,
            inputs=Whole(spaced(full)),
            truth=Depth(scan(full).depth),
            prompt=prompt,
            covariates=_token_covariates(full),
            # Guessing a depth uniformly from 1 to half the length.
            chance=2 / len(full),
            max_tokens=4 if mode == "completion" else 32,
            stop=("\n",) if mode == "completion" else (),
        )

    def _next_token_case(self, cid, params, seed, prefix, shots, k, mode) -> Case:
        if mode == "completion":
            # A document of balanced sequences, one per line; the model continues the last.
            text = "\n".join([NEXT_TOKEN_HEADER, *(spaced(s) for s in shots), spaced(prefix)])
        else:
            examples = "\n".join(spaced(s) for s in shots)
            shown = f"Examples:\n{examples}\n\n" if shots else ""
            text = f"{NEXT_TOKEN_CHAT}\n\n{shown}Sequence: {spaced(prefix)}"
        prompt = render(mode, text)
        state = scan(prefix)
        return self.new_case(
            cid,
            params,
            seed,
            inputs=Prefix(spaced(prefix), state.open),
            truth=NextSymbol(CLOSE_OF[state.open[-1]], len(state.open)),
            prompt=prompt,
            covariates={"closers": len(state.open), **_token_covariates(prefix)},
            # The legal symbols: k openers and the one due closer, of 2k + 1 (with end).
            chance=(k + 1) / (2 * k + 1),
            max_tokens=1,
            top_logprobs=TOP_LOGPROBS,
        )

    def types(self, params: Mapping[str, Any]) -> tuple[type, type]:
        return TYPES[params["task"]]

    def migrate(self, case: Case) -> Case:
        # Journals before typed truths held the bare answer.
        if isinstance(case.truth, Mapping):
            return case
        field = {"complete": "closers", "classify": "answer", "depth": "depth"}
        return replace(case, truth={field[case.params["task"]]: case.truth})

    def answer_text(self, case: Case) -> str:
        t = case.truth
        return {Closers: lambda: t.closers, Verdict: lambda: t.answer,
                Depth: lambda: str(t.depth), NextSymbol: lambda: t.due}[type(t)]()  # fmt: skip

    def score(self, case: Case, answer: Answer) -> Score:
        metrics = self.blank_metrics(case)
        task = case.params["task"]
        return {
            "complete": score_complete,
            "classify": score_classify,
            "depth": score_depth,
            "next_token": score_next_token,
        }[task](case, answer, metrics)


def _cut(seq: str, rng: np.random.Generator) -> int:
    """A cut point inside `seq` where at least one bracket is open."""
    depth, points = 0, []
    for i, c in enumerate(seq[:-1]):
        depth += 1 if c in OPENERS else -1
        if depth > 0:
            points.append(i + 1)
    return int(rng.choice(points))


def _edit_for(seed: int, types: int) -> str:
    kinds = [e for e in EDITS if not (e == "wrong_type" and types == 1)]
    return kinds[(seed // 2) % len(kinds)]


def _token_covariates(seq: str) -> dict[str, int]:
    """How the bracket string tokenizes (tiktoken o200k_base, not the model's own).

    BBH's spaced form rarely merges; written compactly, adjacent brackets often share
    a token, so the model cannot see them one by one."""
    enc = tokens.encoding()
    compact = "".join(seq.split())
    pieces = [enc.decode([t]) for t in enc.encode(compact)]
    return {
        "symbols": len(compact),
        "tokens_spaced": len(enc.encode(spaced(compact))),
        "tokens_compact": len(pieces),
        "merged_compact": sum(1 for p in pieces if sum(c in BRACKETS for c in p) > 1),
    }


# --- prompts ----------------------------------------------------------------------------

COMPLETE = (
    "Complete the rest of the sequence, making sure that the parentheses are closed properly."
)
CLASSIFY = (
    "Is this sequence of brackets balanced, with every opening bracket closed by the "
    "matching closing bracket in the right order?"
)
DEPTH = (
    "What is the maximum nesting depth of this sequence of brackets? "
    '("( )" has depth 1, "( [ ] )" has depth 2.)'
)
NEXT_TOKEN_HEADER = "Balanced bracket sequences, one per line:"
NEXT_TOKEN_CHAT = (
    "Continue this balanced bracket sequence by one symbol. Reply with that one bracket only."
)


def _prompt(
    mode: str, reply_rule: str, examples: list[tuple[str, str]], question: str, answer_label: str
) -> Any:
    """A completion document (each example ends with its labelled answer) or a chat."""
    return render(
        mode,
        question,
        examples=[Example(q, a) for q, a in examples],
        system=reply_rule,
        cue=f"\n{answer_label}",
    )


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


def score_complete(case: Case, answer: Answer, metrics: dict[str, Any]) -> Score:
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


def score_classify(case: Case, answer: Answer, metrics: dict[str, Any]) -> Score:
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


def score_depth(case: Case, answer: Answer, metrics: dict[str, Any]) -> Score:
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


_END_MARK = re.compile(r"<[a-z_|/]+>", re.I)  # "<eos>", "<end_of_turn>": not brackets


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


def score_next_token(case: Case, answer: Answer, metrics: dict[str, Any]) -> Score:
    if not answer.logprobs:
        return Score(False, metrics, "no_logprobs", "the answer carried no logprobs")
    first = answer.logprobs[0]
    top = first.top or ((first.token, first.logprob),)
    if bad := next((lp for _, lp in top if not is_logprob(lp)), None):
        return Score(False, metrics, "bad_logprobs", f"{bad!r} is not a log probability")
    mass = {k: 0.0 for k in ("legal", "wrong_closer", "closer_at_zero", "end_open", "other")}
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
