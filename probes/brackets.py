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

Each task is an object (`TASKS`): its inputs and truth types, how its case is drawn
and prompted, its scorer and its error types. The truth (a stack machine) and the
generator (HELM's PCFG, conditioned exactly on length and depth) live in
probes/dyck.py, BBH's published items in probes/bbh.py, the cases' types and the
answers' readers and scorers in probes/bracket_scoring.py. Read this module top to
bottom: the tasks and their cases, the probe, the prompts.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from emulate import tokens
from emulate.case import Answer, Case, Mode, Score, case_id, case_rng
from emulate.errors import EmulateError
from emulate.probe import HARNESS_ERRORS, Param, Probe, covariate, metric
from emulate.prompt import Example, PerMode, Rendered, render

from .bbh import Item, load_items
from .bracket_scoring import (
    Closers,
    Depth,
    NextSymbol,
    Prefix,
    Verdict,
    Whole,
    score_classify,
    score_complete,
    score_depth,
    score_next_token,
)
from .dyck import (
    BRACKETS,
    CLOSE_OF,
    EDITS,
    OPENERS,
    TOKEN_KINDS,
    classify_token,
    closers,
    generate,
    scan,
    spaced,
    unbalance,
)

# --- cases ----------------------------------------------------------------------------
#
# Each task shows one of two inputs and has its own truth (probes/bracket_scoring.py);
# sequences are written spaced, as BBH writes them ("< [ [").


TOP_LOGPROBS = 20  # OpenAI's maximum; llama-server and vLLM allow more


@dataclass(frozen=True)
class Draw:
    """What a generated case starts from: its id, cell and seed, its random stream, and
    the full sequence and the worked examples' sequences drawn from it, in that order."""

    cid: str
    params: dict[str, Any]
    seed: int
    rng: np.random.Generator
    full: str
    shots: list[str]
    k: int  # bracket types


class Task:
    """One of the probe's tasks: its case types, its case (inputs, truth, prompt,
    covariates), its scorer and the error types that scorer gives."""

    Inputs: ClassVar[type]
    Truth: ClassVar[type]
    error_types: ClassVar[tuple[str, ...]]
    # The truth's field where journals before typed truths held the bare answer.
    old_field: ClassVar[str | None] = None

    def case(self, probe: Probe, draw: Draw, mode: Mode) -> Case:
        raise NotImplementedError

    def score(self, case: Case, answer: Answer, metrics: dict[str, Any]) -> Score:
        raise NotImplementedError

    def answer(self, truth: Any) -> str:
        """The right answer as a model would write it (for token estimates)."""
        raise NotImplementedError

    def explain(self, case: Case, answer: Answer) -> dict[str, Any] | None:
        return None


class Complete(Task):
    Inputs, Truth = Prefix, Closers
    error_types = ("empty", "unparseable", "not_shortest", "reversed", "too_few", "too_many",
                   "wrong_closer")  # fmt: skip
    old_field = "closers"

    def case(self, probe: Probe, draw: Draw, mode: Mode) -> Case:
        prefix = draw.full[: _cut(draw.full, draw.rng)]
        return self.closing(probe, draw, prefix, mode)

    def closing(self, probe: Probe, draw: Draw, prefix: str, mode: Mode) -> Case[Prefix, Closers]:
        """The case of closing `prefix` (a generated one's, or a published item's)."""
        truth = closers(prefix)
        examples = [(p, closers(p)) for p in (s[: _cut(s, draw.rng)] for s in draw.shots)]
        prompt = _prompt(
            mode,
            "Reply with the closing brackets only, separated by spaces.",
            [(f"{COMPLETE} Input: {spaced(p)}", spaced(t)) for p, t in examples],
            f"{COMPLETE} Input: {spaced(prefix)}",
            answer_label="Answer:",
            # A closer and a space each; a chat model may restate the sequence.
            budget=PerMode(chat=4 * len(truth) + 64, completion=2 * len(truth) + 16),
        )
        return probe.new_case(
            draw.cid,
            draw.params,
            draw.seed,
            inputs=Prefix(spaced(prefix)),
            truth=Closers(spaced(truth)),
            prompt=prompt,
            covariates={"closers": len(truth), **_token_covariates(prefix)},
            # Guessing the right number of closers, each type uniformly.
            chance=draw.k ** -len(truth),
        )

    def score(self, case: Case, answer: Answer, metrics: dict[str, Any]) -> Score:
        return score_complete(case, answer, metrics)

    def answer(self, truth: Closers) -> str:
        return truth.closers


class Classify(Task):
    Inputs, Truth = Whole, Verdict
    error_types = ("unparseable", "missed_edit", "false_alarm")
    old_field = "answer"

    def case(self, probe: Probe, draw: Draw, mode: Mode) -> Case[Whole, Verdict]:
        seed, k, rng = draw.seed, draw.k, draw.rng
        # Balanced on even seeds, so n cases per cell split evenly; the edit kinds take turns.
        edit = "none" if seed % 2 == 0 else _edit_for(seed, k)
        shown = draw.full if edit == "none" else unbalance(draw.full, edit, k, rng)
        if shown is None:  # this edit could not unbalance it; a dropped closer always does
            edit, shown = "missing_closer", unbalance(draw.full, "missing_closer", k, rng)
            assert shown is not None
        examples = []
        for i, s in enumerate(draw.shots):
            e = "none" if i % 2 == 0 else EDITS[i // 2 % len(EDITS)]
            t = s if e == "none" else unbalance(s, e, k, rng)
            examples.append((t or s, "Yes" if t is None or e == "none" else "No"))
        prompt = _prompt(
            mode,
            "Reply Yes or No.",
            [(f"{CLASSIFY}\nSequence: {spaced(s)}", a) for s, a in examples],
            f"{CLASSIFY}\nSequence: {spaced(shown)}",
            answer_label="Answer:",
            budget=PerMode(chat=32, completion=4),
        )
        return probe.new_case(
            draw.cid,
            draw.params,
            seed,
            inputs=Whole(spaced(shown), edit),
            truth=Verdict("Yes" if edit == "none" else "No"),
            prompt=prompt,
            covariates={"edit": edit, **_token_covariates(shown)},
            chance=0.5,
        )

    def score(self, case: Case, answer: Answer, metrics: dict[str, Any]) -> Score:
        return score_classify(case, answer, metrics)

    def answer(self, truth: Verdict) -> str:
        return truth.answer


class MeasureDepth(Task):
    Inputs, Truth = Whole, Depth
    error_types = ("unparseable", "too_deep", "too_shallow")
    old_field = "depth"

    def case(self, probe: Probe, draw: Draw, mode: Mode) -> Case[Whole, Depth]:
        n, d, full = len(draw.full) // 2, draw.params["depth"], draw.full
        # Worked examples of other depths, so copying their answer does not score.
        depths = draw.rng.integers(1, min(n, 2 * d) + 1, size=len(draw.shots))
        shots = [generate(n, int(e), draw.k, draw.rng) for e in depths]
        prompt = _prompt(
            mode,
            "Reply with the number only.",
            [(f"{DEPTH}\nSequence: {spaced(s)}", str(scan(s).depth)) for s in shots],
            f"{DEPTH}\nSequence: {spaced(full)}",
            answer_label="Depth:",
            budget=PerMode(chat=32, completion=4),
        )
        return probe.new_case(
            draw.cid,
            draw.params,
            draw.seed,
            inputs=Whole(spaced(full)),
            truth=Depth(scan(full).depth),
            prompt=prompt,
            covariates=_token_covariates(full),
            # Guessing a depth uniformly from 1 to half the length.
            chance=2 / len(full),
        )

    def score(self, case: Case, answer: Answer, metrics: dict[str, Any]) -> Score:
        return score_depth(case, answer, metrics)

    def answer(self, truth: Depth) -> str:
        return str(truth.depth)


class NextToken(Task):
    Inputs, Truth = Prefix, NextSymbol
    # The most likely token's kind when it is not legal (TOKEN_KINDS), or no logprobs.
    error_types = ("no_logprobs", "bad_logprobs", *TOKEN_KINDS[1:])

    def case(self, probe: Probe, draw: Draw, mode: Mode) -> Case[Prefix, NextSymbol]:
        prefix = draw.full[: _cut(draw.full, draw.rng)]
        examples = "\n".join(spaced(s) for s in draw.shots)
        shown = f"Examples:\n{examples}\n\n" if draw.shots else ""
        question = PerMode(
            chat=f"{NEXT_TOKEN_CHAT}\n\n{shown}Sequence: {spaced(prefix)}",
            # A document of balanced sequences, one per line; the model continues the last.
            completion="\n".join(
                [NEXT_TOKEN_HEADER, *(spaced(s) for s in draw.shots), spaced(prefix)]
            ),
        )
        state = scan(prefix)
        k = draw.k
        return probe.new_case(
            draw.cid,
            draw.params,
            draw.seed,
            inputs=Prefix(spaced(prefix), state.open),
            truth=NextSymbol(CLOSE_OF[state.open[-1]], len(state.open)),
            prompt=render(mode, question, budget=1),
            covariates={"closers": len(state.open), **_token_covariates(prefix)},
            # The legal symbols: k openers and the one due closer, of 2k + 1 (with end).
            chance=(k + 1) / (2 * k + 1),
            top_logprobs=TOP_LOGPROBS,
        )

    def score(self, case: Case, answer: Answer, metrics: dict[str, Any]) -> Score:
        return score_next_token(case, answer, metrics)

    def explain(self, case: Case, answer: Answer) -> dict[str, Any] | None:
        """The first token's alternatives, each with what it would do next."""
        if not answer.logprobs:
            return None
        first = answer.logprobs[0]
        top = first.top or ((first.token, first.logprob),)
        open_ = case.inputs.open
        return {"tokens": [
            {"token": tok, "p": math.exp(min(lp, 0.0)), "kind": classify_token(tok, open_)}
            for tok, lp in sorted(top, key=lambda t: -t[1])
        ]}  # fmt: skip

    def answer(self, truth: NextSymbol) -> str:
        return truth.due


TASKS: dict[str, Task] = {
    "complete": Complete(),
    "classify": Classify(),
    "depth": MeasureDepth(),
    "next_token": NextToken(),
}

PARAMS = (
    Param("task", ("complete",), "what the model is asked", choices=tuple(TASKS)),
    Param("types", (4,), "bracket types used: (), [], {}, <> in that order", lo=1, hi=4),
    Param("depth", (2, 4), "maximum nesting depth of the full sequence", lo=1, hi=30),
    Param("length", (8, 16, 24), "brackets in the full balanced sequence (even)", lo=2, hi=120),
    Param("shots", (3,), "worked examples before the question (BBH uses 3)", lo=0, hi=8),
    Param("items", (), "BBH-format JSON/JSONL items to run instead of generated ones", path=True),
)


class BracketsProbe(Probe):
    name = "brackets"
    version = 1
    Inputs, Truth = Complete.Inputs, Complete.Truth  # the default task's; see types
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
    error_types = tuple(
        dict.fromkeys([*HARNESS_ERRORS, *(e for t in TASKS.values() for e in t.error_types)])
    )
    summary_axes = ("closers",)
    summary_means = ("closers_right", "p_illegal", "p_wrong_closer", "top_mass")
    default_mode = "chat"
    pure_build = True  # generated Dyck words (BBH items are read at once, not here)

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

    def build(self, cells: list[dict[str, Any]], n: int, seed: int, mode: Mode) -> list[Case]:
        if not any(c.get("items") for c in cells):
            return super().build(cells, n, seed, mode)
        # Items replace the generator: depth, length and types come from each item.
        runs = list(dict.fromkeys((c["items"], c["task"], c["shots"]) for c in cells))
        out = []
        for path, task, shots in runs:
            if task != "complete":
                raise EmulateError(f"brackets: items= runs task=complete (BBH's task), not {task}")
            out += [self.item_case(item, shots, mode) for item in load_items(path)]
        return out

    def make_case(self, cell: Mapping[str, Any], seed: int, mode: Mode) -> Case:
        cid = case_id(self.name, self.version, cell, seed)
        rng = case_rng(cid)
        n, d, k = cell["length"] // 2, cell["depth"], cell["types"]
        full = generate(n, d, k, rng)
        shots = [generate(n, d, k, rng) for _ in range(cell["shots"])]
        return TASKS[cell["task"]].case(
            self, Draw(cid, dict(cell), seed, rng, full, shots, k), mode
        )

    def item_case(self, item: Item, shots: int, mode: Mode) -> Case:
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
        draw = Draw(cid, params, 0, rng, full, shot_seqs, 4)
        return Complete().closing(self, draw, item.prefix, mode)

    def types(self, params: Mapping[str, Any]) -> tuple[type, type]:
        task = TASKS[params["task"]]
        return task.Inputs, task.Truth

    def migrate(self, case: Case) -> Case:
        # Journals before typed truths held the bare answer.
        if isinstance(case.truth, Mapping):
            return case
        return replace(case, truth={TASKS[case.params["task"]].old_field: case.truth})

    def answer_text(self, case: Case) -> str:
        return TASKS[case.params["task"]].answer(case.truth)

    def score(self, case: Case, answer: Answer) -> Score:
        return TASKS[case.params["task"]].score(case, answer, self.blank_metrics(case))

    def explain(self, case: Case, answer: Answer, score: Score) -> dict[str, Any] | None:
        return TASKS[case.params["task"]].explain(case, answer)


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
    mode: Mode,
    reply_rule: str,
    examples: list[tuple[str, str]],
    question: str,
    answer_label: str,
    budget: PerMode[int],
) -> Rendered:
    """A completion document (each example ends with its labelled answer, and so does a
    base model's, at the line's end) or a chat."""
    return render(
        mode,
        question,
        examples=[Example(q, a) for q, a in examples],
        system=reply_rule,
        cue=f"\n{answer_label}",
        budget=budget,
        completion_stop=("\n",),
    )
