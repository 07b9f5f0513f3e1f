"""Program output: does the model run the code in its head, or guess what it prints?

The seed: a chat model "ran" a training script whose forward() printed the input
shape under the comment "# print the shape of the input once", with no guard. It
printed the line once (the comment's intent, not the code's semantics), and its text
differed from the string in the code. This probe measures both, on seeded short
programs in which a function is called in a loop and prints under guards: a flag,
`if i == 0`, a counter, functools.cache, a hasattr attribute, a set of seen keys, a
guard that never fires, no guard at all, and the seed's trap (the comment over an
unguarded print).

The truth comes from running each generated program in the sandbox. Model output is
never run. Published CRUXEval items (`-P items=PATH`) run as output prediction; they
live in probes/cruxeval.py.

Read top to bottom: program generation, the truth, the cases, prompts, the scorer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emulate.case import Answer, Case, Mode, Score, case_id, case_rng
from emulate.extract import BLOCK, region
from emulate.probe import HARNESS_ERRORS, Param, Probe, covariate, metric
from emulate.prompt import Example, PerMode, Rendered, render
from emulate.sandbox import Execution, Limits, Program, run_cached
from emulate.scoring import lines, overlap

from .cruxeval import ItemInputs, ItemTruth, disagreement, item_cases, score_item

# --- program generation -------------------------------------------------------------

GUARDS = ("flag", "first_iter", "counter", "cache", "hasattr", "seen", "never", "none", "trap")
TRAP_COMMENT = "# print the shape of the input once"
LITERALS = (
    "Shape of input ->",
    "[debug] x.shape =",
    "input dims:",
    ">> batch",
    "Processing item",
    "x has shape",
    "DEBUG shape",
    "first call! shape",
    "[fwd] got",
    "in: ",
    "tensor size ::",
    "(once) input",
)
DISTRACTORS = (
    "total = sum(range(i))",
    "# TODO: remove the debug output before release",
    'label = "shape"',
    "_ = len(str(i)) * 0",
    "scale = 1.0 if i % 2 else 0.5",
    "# print every step (disabled)",
    "unused = [j * j for j in range(3)]",
    "tag = f'step-{i}'",
)


@dataclass(frozen=True)
class PrintSpec:
    guard: str
    literal: str
    expr: str


def _emit(p: PrintSpec, k: int, intent: bool) -> tuple[list[str], list[str], list[str]]:
    """(module-level lines, globals to declare, function-body lines) for print k.

    With `intent`, the trap's print gets the guard its comment promises: the program
    the model would be emulating if it followed the comment instead of the code.
    """
    line = f'print(f"{p.literal} {{{p.expr}}}")'
    if p.guard == "none":
        return [], [], [line]
    if p.guard == "trap":
        if intent:
            return [f"_once_{k} = False"], [f"_once_{k}"], [
                TRAP_COMMENT, f"if not _once_{k}:", f"    {line}", f"    _once_{k} = True"
            ]  # fmt: skip
        return [], [], [TRAP_COMMENT, line]
    if p.guard == "flag":
        return [f"printed_{k} = False"], [f"printed_{k}"], [
            f"if not printed_{k}:", f"    {line}", f"    printed_{k} = True"
        ]  # fmt: skip
    if p.guard == "first_iter":
        return [], [], ["if i == 0:", f"    {line}"]
    if p.guard == "counter":
        return [f"calls_{k} = 0"], [f"calls_{k}"], [
            f"calls_{k} += 1", f"if calls_{k} <= 2:", f"    {line}"
        ]  # fmt: skip
    if p.guard == "cache":  # prints once per distinct value of its argument
        return (
            [
                "@functools.cache",
                f"def announce_{k}(value):",
                f'    print(f"{p.literal} {{value}}")',
                "",
            ],
            [],
            [f"announce_{k}({p.expr})"],
        )
    if p.guard == "hasattr":
        return [], [], [
            f'if not hasattr(process, "seen_{k}"):', f"    {line}", f"    process.seen_{k} = True"
        ]  # fmt: skip
    if p.guard == "seen":
        key = "len(x)"
        return [f"seen_{k} = set()"], [], [
            f"if {key} not in seen_{k}:", f"    seen_{k}.add({key})", f"    {line}"
        ]  # fmt: skip
    if p.guard == "never":
        return [], [], ["if i < 0:", f"    {line}"]
    raise ValueError(p.guard)


def source(cell: Mapping[str, Any], prints: list[PrintSpec], rows: list[int],
           distractors: list[str], intent: bool = False) -> str:  # fmt: skip
    """The program's source. `rows` are the inputs' lengths, one per call."""
    top: list[str] = []
    declared: list[str] = []
    blocks: list[list[str]] = []
    for k, p in enumerate(prints):
        t, g, b = _emit(p, k, intent)
        top += t
        declared += g
        blocks.append(b)
    # Distractors go between the print blocks, where a reader has to skip them.
    for j, d in enumerate(distractors):
        blocks.insert((2 * j + 1) % (len(blocks) + 1), [d])
    body = [line for block in blocks for line in block]
    numpy = cell["numpy"]
    head = []
    if any(p.guard == "cache" for p in prints):
        head.append("import functools")
    if numpy:
        head.append("import numpy as np")
    lines = [*head, "", *top]
    lines += ["", "def process(x, i):"]
    if declared:
        lines.append(f"    global {', '.join(declared)}")
    lines += [f"    {b}" if b else "" for b in body]
    lines.append("    return len(x)")
    lines.append("")
    if numpy:
        lines.append(f"batches = [np.zeros((n, 4)) for n in {rows}]")
    else:
        lines.append(f"batches = [list(range(n)) for n in {rows}]")
    loop = ["for i, x in enumerate(batches):", "    process(x, i)"]
    if cell["nesting"] == 2:
        loop = ["for epoch in range(2):"] + [f"    {ln}" for ln in loop]
    return "\n".join([*lines, *loop]).lstrip("\n") + "\n"


def _expr(kind: str, numpy: int, exprs: list[str], rng: np.random.Generator) -> str:
    if kind == "trap":
        return "x.shape" if numpy else "len(x)"
    if kind == "cache":  # its argument must be hashable
        return "x.shape" if numpy else "len(x)"
    return str(rng.choice(exprs))


def _spec(
    cell: Mapping[str, Any], rng: np.random.Generator
) -> tuple[list[PrintSpec], list[int], list[str]]:
    n = cell["loops"]
    literals = rng.permutation(LITERALS)[: cell["prints"]]
    exprs = ["x.shape", "x.shape[0]", "i", "len(x)"] if cell["numpy"] else ["len(x)", "i", "x[:2]"]
    if cell["guard"] == "mixed":
        kinds = [str(rng.choice(GUARDS[:-1])) for _ in range(cell["prints"])]
    elif cell["guard"] == "trap":
        kinds = ["trap"] + [str(rng.choice(GUARDS[:-1])) for _ in range(cell["prints"] - 1)]
    else:
        kinds = [cell["guard"]] * cell["prints"]
    prints = [
        PrintSpec(kind, str(lit), _expr(kind, cell["numpy"], exprs, rng))
        for kind, lit in zip(kinds, literals, strict=True)
    ]
    # A last, smaller batch, as real data loaders give, so shapes change once.
    full = int(rng.choice([8, 16, 32]))
    rows = [full] * (n - 1) + [int(rng.integers(1, full))] if n > 1 else [full]
    distractors = [str(d) for d in rng.choice(DISTRACTORS, size=cell["distractors"], replace=False)]
    return prints, rows, distractors


# --- the truth ----------------------------------------------------------------------

LIMITS = Limits(cpu_s=5, wall_s=20, memory_mb=2048, file_mb=4)


def _salt() -> str:
    return f"numpy {np.__version__}"


# --- cases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """A generated program, as shown, and the constant text of each of its prints."""

    program: str
    literals: list[str]


PARAMS = (
    Param("guard", ("mixed", "trap"), "how prints are guarded", choices=(*GUARDS, "mixed")),
    Param("loops", (3, 6), "calls of the function", lo=1, hi=12),
    Param("prints", (1, 2), "print statements in the function", lo=1, hi=4),
    Param("nesting", (1,), "2 wraps the loop in an outer loop of 2 epochs", lo=1, hi=2),
    Param("distractors", (0, 3), "irrelevant lines in the function", lo=0, hi=6),
    Param("numpy", (1,), "1: inputs are numpy arrays whose .shape is printed", lo=0, hi=1),
    Param("shots", (1,), "worked examples (other programs and their output)", lo=0, hi=3),
    Param("items", (), "CRUXEval JSONL items to run as output prediction instead", path=True),
    Param("entry", (), "the function each item calls (items=; default f)", pattern=r"[A-Za-z_]\w*"),
)


class ProgramProbe(Probe):
    name = "program"
    version = 1
    Inputs, Truth = Listing, Execution  # items: ItemInputs, ItemTruth (see types)
    summary = "what a short program prints: guarded prints, the print-once trap, CRUXEval"
    params = PARAMS
    columns = (
        metric("exact", bool),
        # Items: equal and of the same type at every depth (2 is not 2.0).
        metric("exact_type", bool),
        metric("line_precision"),
        metric("line_recall"),
        covariate("lines_expected"),
        metric("lines_emitted", int),
        metric("literal_fidelity"),
        metric("intent_over_semantics", bool),
        covariate("trap_expected"),
        metric("trap_emitted", int),
        covariate("truth_status", str),
        # Items: does execution agree with the published output (None: none published)?
        covariate("published_agrees", bool),
        # Items: does the value change with Python's hash seed (set order)?
        covariate("hash_dependent", bool),
    )
    error_types = (
        *HARNESS_ERRORS,
        "no_truth",  # the program itself did not finish
        "empty",
        # An item's (score_item).
        "unparseable",
        "wrong_value",
        # A generated program's (score_output).
        "intent_over_semantics",
        "literal_changed",
        "missing_lines",
        "extra_lines",
        "wrong_text",
    )
    summary_means = ("line_recall", "literal_fidelity")
    default_mode = "chat"

    def build(self, cells: list[dict[str, Any]], n: int, seed: int, mode: Mode) -> list[Case]:
        runs = list(
            dict.fromkeys(
                (c["items"], c["shots"], c.get("entry", "f")) for c in cells if c.get("items")
            )
        )
        if runs:
            return [c for run in runs for c in item_cases(self, *run, mode)]
        # Generate every program first, then run them all in parallel for their truth.
        plans = []
        for cell in cells:
            for i in range(n):
                cid = case_id(self.name, self.version, cell, seed + i)
                rng = case_rng(cid)
                # Worked examples never show the trap: they would teach its answer.
                plain = {**cell, "guard": "mixed"} if cell["guard"] == "trap" else cell
                shots = [source(plain, *_spec(plain, rng)) for _ in range(cell["shots"])]
                spec = _spec(cell, rng)
                src, intent = source(cell, *spec), source(cell, *spec, intent=True)
                plans.append((cell, seed + i, cid, shots, src, intent))
        sources = [s for p in plans for s in (*p[3], p[4], p[5])]
        programs = [Program(s, limits=LIMITS) for s in sources]
        results = dict(zip(sources, run_cached(programs, _salt()), strict=True))
        return [
            self._case(
                cell,
                s,
                cid,
                [(x, results[x].stdout) for x in shots],
                src,
                results[src],
                results[intent],
                mode,
            )  # fmt: skip
            for cell, s, cid, shots, src, intent in plans
        ]

    def _case(self, cell, seed, cid, shots, source, result, intent, mode) -> Case:
        truth = result.as_truth()
        trap = _trap_literal(source)
        return self.new_case(
            cid,
            dict(cell),
            seed,
            inputs=Listing(source, _literals(source)),
            truth=truth,
            prompt=_prompt(mode, shots, source, len(truth.stdout)),
            foils={"intent": intent.stdout if trap else None},
            covariates={
                "lines_expected": len(lines(truth.stdout)),
                "trap_expected": _count(truth.stdout, trap) if trap else None,
                "truth_status": truth.status,
            },
        )

    def notes(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        disagree = sum(r.get("published_agrees") is False for r in rows)
        return [disagreement(disagree, len(rows))] if disagree else []

    def types(self, params: Mapping[str, Any]) -> tuple[type, type]:
        return (ItemInputs, ItemTruth) if "item" in params else (Listing, Execution)

    def answer_text(self, case: Case) -> str:
        return case.truth.value or "" if isinstance(case.truth, ItemTruth) else case.truth.stdout

    def score(self, case: Case, answer: Answer) -> Score:
        metrics = self.blank_metrics(case)
        if not case.truth.ok:
            why = f"the program itself did not finish ({case.truth.status}), so there is no truth"
            return Score(False, metrics, "no_truth", why)
        if isinstance(case.inputs, ItemInputs):
            return score_item(case, answer, metrics)
        return score_output(case, answer, metrics)


def _trap_literal(source: str) -> str | None:
    lines = source.splitlines()
    for j, line in enumerate(lines[:-1]):
        if line.strip() == TRAP_COMMENT:
            m = re.search(r'print\(f"(.*?) \{', lines[j + 1])
            return m.group(1) if m else None
    return None


def _literals(source: str) -> list[str]:
    """The constant text of each print in the program, in order."""
    return re.findall(r'print\(f"(.*?) \{', source)


# --- prompts --------------------------------------------------------------------------

SYSTEM = (
    "You are a Python 3 interpreter. Reply with exactly what the program prints to "
    "stdout, in one ```text block, and nothing else."
)


def _prompt(mode: Mode, shots: list[tuple[str, str]], source: str, answer_chars: int) -> Rendered:
    # A base model continues a document: programs, each followed by its output.
    return render(
        mode,
        f"```python\n{source}```",
        examples=[Example(f"```python\n{code}```", out) for code, out in shots],
        intro=PerMode(chat="", completion="Python programs and exactly what each prints when run."),
        system=SYSTEM,
        cue="\nOutput:\n```\n",
        cue_space="",
        completion_answer=lambda out: f"{out}```",
        chat_answer=lambda out: f"```text\n{out}```",
        budget=PerMode(chat=answer_chars + 256, completion=answer_chars + 64),
        completion_stop=("```",),  # the output's fence closes
    )


# --- the scorers --------------------------------------------------------------------------
#
# Answers are found by the shared rules (emulate/extract.py): a program's output is a
# block (a fence's inside, or what follows "The output is:"), an item's answer a value.


def _count(text: str, literal: str) -> int:
    return sum(1 for ln in lines(text) if ln.startswith(literal))


def score_output(case: Case[Listing, Execution], answer: Answer, metrics: dict[str, Any]) -> Score:
    said, truth = lines(region(answer.text, BLOCK)), lines(case.truth.stdout)
    metrics["lines_emitted"] = len(said)
    common = overlap(said, truth)
    metrics["line_precision"] = common / len(said) if said else None
    metrics["line_recall"] = common / len(truth) if truth else None
    shown = [lit for lit in case.inputs.literals if _count(case.truth.stdout, lit)]
    if shown:
        hits = sum(1 for lit in shown if _count("\n".join(said), lit))
        metrics["literal_fidelity"] = hits / len(shown)
    trap = _trap_literal(case.inputs.program)
    expected = case.covariates["trap_expected"]
    if trap:
        metrics["trap_emitted"] = _count("\n".join(said), trap)
        # Following the comment means printing the trap line as often as the intent
        # version does (once), whatever text it prints, where the code prints it more.
        intent = lines(case.foils["intent"] or "")
        once = _count(case.foils["intent"] or "", trap)
        metrics["intent_over_semantics"] = (
            isinstance(expected, int)
            and expected > once
            and (
                said == intent
                or metrics["trap_emitted"] == once
                or (len(said) == len(intent) != len(truth))
            )
        )
    metrics["exact"] = said == truth
    if said == truth:
        return Score(True, metrics, None, None, "\n".join(said))
    if not said:
        return Score(False, metrics, "empty", "no output claimed", "")
    if metrics["intent_over_semantics"]:
        why = (
            f"printed the trap line {metrics['trap_emitted']} time(s), as the comment says, "
            f"not {expected}"
        )
        return Score(False, metrics, "intent_over_semantics", why, "\n".join(said))
    if shown and metrics["literal_fidelity"] < 1:
        kind, why = "literal_changed", "a print's constant text was not reproduced verbatim"
    elif len(said) < len(truth):
        kind, why = "missing_lines", f"{len(said)} lines, {len(truth)} printed"
    elif len(said) > len(truth):
        kind, why = "extra_lines", f"{len(said)} lines, {len(truth)} printed"
    else:
        kind, why = "wrong_text", f"{len(truth) - common} of {len(truth)} lines differ"
    return Score(False, metrics, kind, why, "\n".join(said))
