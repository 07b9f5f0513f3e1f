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
never run. Published CRUXEval items (`-P items=PATH`) run as output prediction:
their truth is also executed, and answers are compared as values, parsed with
ast.literal_eval (which parses literals and runs nothing).

Read top to bottom: program generation, the truth, published items, prompts, the
parser and the scorer.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emulate.case import Answer, Case, Score, case_id, case_rng
from emulate.errors import EmulateError
from emulate.extract import BLOCK, find, region
from emulate.probe import Param, Probe, covariate, metric
from emulate.prompt import Example, render
from emulate.sandbox import Execution, Limits, Program, Result, run_cached
from emulate.scoring import lines, overlap
from emulate.values import equal, literal, normalised, read_literal, same_type

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


def _spec(cell: Mapping[str, Any], rng: np.random.Generator) -> tuple:
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


# --- published items (CRUXEval) ---------------------------------------------------------


@dataclass(frozen=True)
class Item:
    id: str
    code: str
    input: str  # the call's arguments, as Python source
    output: str | None  # the published output, if any
    entry: str = "f"  # the function the item calls

    @property
    def digest(self) -> str:
        """The item's content, so a case id never depends on the file's name or place."""
        blob = json.dumps([self.entry, self.code, self.input])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _defined(code: str) -> set[str]:
    """Names the module's top level binds (functions, classes, assignments, imports)."""
    names = set()
    for node in ast.parse(code).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def load_items(path: str | Path, entry: str = "f") -> list[Item]:
    """CRUXEval JSONL: one {"code", "input", "output", "id"} object a line. An item's
    own "entry_point" field names its function over `entry`."""
    path = Path(path)
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}: line {n}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise EmulateError(f"{where}: not JSON ({err})") from None
        if not isinstance(rec, dict) or not all(
            isinstance(rec.get(k), str) for k in ("code", "input")
        ):
            raise EmulateError(f"{where}: expected an object with 'code' and 'input' as text")
        item_id = str(rec.get("id", f"line{n}"))
        name = str(rec.get("entry_point") or entry)
        # The input is an argument list (possibly empty): check it as a call.
        call = f"{name}({rec['input']})"
        for what, text, mode in (("code", rec["code"], "exec"), ("input", call, "eval")):
            try:
                ast.parse(text, mode=mode)
            except (SyntaxError, ValueError) as err:
                why = getattr(err, "msg", str(err))
                raise EmulateError(
                    f"{where} ({item_id}): {what} has a syntax error: {why}"
                ) from None
        if name not in _defined(rec["code"]):
            raise EmulateError(
                f"{where} ({item_id}): the code defines no {name!r} to call; name the "
                'function with -P entry=NAME or an "entry_point" field'
            )
        output = rec.get("output")
        items.append(
            Item(item_id, rec["code"], rec["input"], None if output is None else str(output), name)
        )
    if not items:
        raise EmulateError(f"{path}: no items")
    return items


# The call's value goes after this line, apart from whatever the function prints.
RETURN_MARK = "\x1e--emulate-return-value--\x1e"
_HARNESS = """{code}

import sys as _emulate_sys
_emulate_value = {entry}({input})
_emulate_sys.stdout.flush()
_emulate_sys.__stdout__.write("\\n" + {mark!r} + repr(_emulate_value) + "\\n")
"""


def item_program(item: Item, hash_seed: int = 0) -> Program:
    # repr() of the value: the literal form CRUXEval's outputs are written in.
    source = _HARNESS.format(code=item.code, entry=item.entry, input=item.input, mark=RETURN_MARK)
    return Program(source, limits=LIMITS, hash_seed=hash_seed)


@dataclass(frozen=True)
class ItemInputs:
    code: str
    input: str  # the call's arguments, as Python source
    entry: str = "f"
    published: str | None = None  # the item's published output, if any


@dataclass(frozen=True)
class ItemTruth(Execution):
    """The call's run: its return value's repr, and apart, what it printed (stdout)."""

    value: str | None = None


def item_truth(result: Result) -> ItemTruth:
    """What the call returned (`value`, its repr) and, apart, what it printed."""
    run = result.as_truth()
    printed, mark, value = result.stdout.rpartition("\n" + RETURN_MARK)
    status = run.status
    if run.ok and not mark:
        status = "no return value"  # it exited before the call returned
    if status != "ok":
        return ItemTruth(result.stdout, status, run.stderr_tail)
    return ItemTruth(printed, status, run.stderr_tail, value.removesuffix("\n"))


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
    summary_means = ("line_recall", "literal_fidelity")
    default_mode = "chat"

    def build(self, cells: list[dict[str, Any]], n: int, seed: int, mode: str) -> list[Case]:
        runs = list(
            dict.fromkeys(
                (c["items"], c["shots"], c.get("entry", "f")) for c in cells if c.get("items")
            )
        )
        if runs:
            return [c for run in runs for c in self._item_cases(*run, mode)]
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
            prompt=_prompt(mode, shots, source),
            foils={"intent": intent.stdout if trap else None},
            covariates={
                "lines_expected": len(lines(truth.stdout)),
                "trap_expected": _count(truth.stdout, trap) if trap else None,
                "truth_status": truth.status,
            },
            max_tokens=len(truth.stdout) + (64 if mode == "completion" else 256),
            stop=("```",) if mode == "completion" else (),
        )

    def _item_cases(self, path: str, shots: int, entry: str, mode: str) -> list[Case]:
        items = load_items(path, entry)
        # Each item runs under two hash seeds: a value that differs depends on set order.
        programs = [item_program(it, seed) for seed in (0, 1) for it in items]
        results = run_cached(programs, _salt())
        cases = []
        for item, first, second in zip(items, results[: len(items)], results[len(items) :],
                                       strict=True):  # fmt: skip
            truth, other = item_truth(first), item_truth(second)
            ok = truth.ok
            cid = case_id(self.name, self.version, {"shots": shots, "digest": item.digest}, 0)
            published = None
            if ok and item.output is not None:
                published = _same_value(item.output, truth.value)[0]
            cases.append(
                self.new_case(
                    cid,
                    {"item": item.id, "shots": shots},
                    0,
                    inputs=ItemInputs(item.code, item.input, item.entry, item.output),
                    truth=truth,
                    prompt=_crux_prompt(mode, item, shots),
                    covariates={
                        "truth_status": truth.status,
                        "published_agrees": published,
                        "hash_dependent": ok
                        and (truth.value, truth.stdout) != (other.value, other.stdout),
                    },
                    max_tokens=len(truth.value or "") + (64 if mode == "completion" else 256),
                    stop=("\n",) if mode == "completion" else (),
                )
            )
        disagree = sum(c.covariates["published_agrees"] is False for c in cases)
        if disagree:
            print(f"note: {path}: {self.notes_disagree(disagree, len(cases))}", file=sys.stderr)
        return cases

    @staticmethod
    def notes_disagree(k: int, n: int) -> str:
        return (
            f"{k} of {n} items' published outputs disagree with execution "
            "(published_agrees=False); emulate scores against execution"
        )

    def notes(self, rows: list[dict[str, Any]]) -> list[str]:
        disagree = sum(r.get("published_agrees") is False for r in rows)
        return [self.notes_disagree(disagree, len(rows))] if disagree else []

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


def _prompt(mode: str, shots: list[tuple[str, str]], source: str) -> Any:
    # A base model continues a document: programs, each followed by its output.
    return render(
        mode,
        f"```python\n{source}```",
        examples=[Example(f"```python\n{code}```", out) for code, out in shots],
        intro="Python programs and exactly what each prints when run." * (mode == "completion"),
        system=SYSTEM,
        cue="\nOutput:\n```\n",
        cue_space="",
        completion_answer=lambda out: f"{out}```",
        chat_answer=lambda out: f"```text\n{out}```",
    )


CRUX_INSTRUCTION = (
    "Based on the given Python code, which may contain errors, complete the assert "
    "statement with the output when executing the code on the given test case. Do NOT "
    "output any extra information, even if the function is incorrect or incomplete."
)
CRUX_EXAMPLES = (
    ("def f(n):\n    return n + 1", "17", "18"),
    ("def f(s):\n    return s[::-1].upper()", "'abc'", "'CBA'"),
    ("def f(xs):\n    return sorted(set(xs))", "[3, 1, 3]", "[1, 3]"),
)


def _crux_prompt(mode: str, item: Item, shots: int) -> Any:
    examples = [
        Example(f"{code}\nassert f({arg}) ==", out) for code, arg, out in CRUX_EXAMPLES[:shots]
    ]
    chat = " Reply with the literal that completes the assert, nothing else."
    return render(
        mode,
        f"{item.code}\nassert {item.entry}({item.input}) ==",
        examples=examples,
        intro=CRUX_INSTRUCTION if mode == "completion" else "",
        system=CRUX_INSTRUCTION + chat,
    )


# --- the scorers --------------------------------------------------------------------------
#
# Answers are found by the shared rules (emulate/extract.py): a program's output is a
# block (a fence's inside, or what follows "The output is:"), an item's answer a value.


def _count(text: str, literal: str) -> int:
    return sum(1 for ln in lines(text) if ln.startswith(literal))


def score_output(case: Case, answer: Answer, metrics: dict[str, Any]) -> Score:
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
        metrics["intent_over_semantics"] = expected > once and (
            said == intent
            or metrics["trap_emitted"] == once
            or (len(said) == len(intent) != len(truth))
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


def _same_value(said: str, truth: str) -> tuple[bool, bool]:
    """(equal by CRUXEval's rule, equal with the same types), from two texts. A truth
    that is no literal (an object's repr) is compared as text."""
    ok_truth, want = literal(truth)
    ok_said, got = literal(said)
    if ok_truth and ok_said:
        return equal(want, got), same_type(want, got)
    same = normalised(said) == normalised(truth)
    return same, same


def score_item(case: Case, answer: Answer, metrics: dict[str, Any]) -> Score:
    truth = case.truth.value
    is_literal = literal(truth)[0]

    def parse(text: str) -> str:
        if is_literal:
            read_literal(text)
        elif normalised(text) != normalised(truth):
            read_literal(text)  # a wrong answer still has to be one value
        return text.strip()

    found = find(answer.text, parse)
    if found is None:
        kind = "empty" if not answer.text.strip() else "unparseable"
        return Score(False, metrics, kind, "no Python literal found in the answer")
    said = found.value
    metrics["exact"], metrics["exact_type"] = _same_value(said, truth)
    if metrics["exact"]:
        return Score(True, metrics, None, None, said)
    return Score(
        False, metrics, "wrong_value", f"said {said[:80]}, the code gives {truth[:80]}", said
    )
