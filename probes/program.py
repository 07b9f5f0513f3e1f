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
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emulate.case import Answer, Case, Score, case_id, case_rng
from emulate.errors import EmulateError
from emulate.probe import Param, Probe
from emulate.sandbox import Limits, Program, run_cached

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


def render(cell: Mapping[str, Any], prints: list[PrintSpec], rows: list[int],
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
    input: str
    output: str | None


def load_items(path: str | Path) -> list[Item]:
    """CRUXEval JSONL: one {"code", "input", "output", "id"} object a line."""
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
        if not isinstance(rec, dict) or "code" not in rec or "input" not in rec:
            raise EmulateError(f"{where}: expected an object with 'code' and 'input'")
        item_id = str(rec.get("id", f"line{n}"))
        # The input is an argument list (possibly empty): check it as a call.
        call = f"f({rec['input']})"
        for what, text, mode in (("code", rec["code"], "exec"), ("input", call, "eval")):
            try:
                ast.parse(text, mode=mode)
            except SyntaxError as err:
                raise EmulateError(
                    f"{where} ({item_id}): {what} has a syntax error: {err.msg}"
                ) from None
        items.append(Item(item_id, rec["code"], rec["input"], rec.get("output")))
    if not items:
        raise EmulateError(f"{path}: no items")
    return items


def item_program(item: Item) -> Program:
    # repr() of the value: the same literal form CRUXEval's outputs are written in.
    return Program(f"{item.code}\nprint(repr(f({item.input})))\n", limits=LIMITS)


# --- cases ----------------------------------------------------------------------------

PARAMS = (
    Param("guard", ("mixed", "trap"), "how prints are guarded", choices=(*GUARDS, "mixed")),
    Param("loops", (3, 6), "calls of the function", lo=1, hi=12),
    Param("prints", (1, 2), "print statements in the function", lo=1, hi=4),
    Param("nesting", (1,), "2 wraps the loop in an outer loop of 2 epochs", lo=1, hi=2),
    Param("distractors", (0, 3), "irrelevant lines in the function", lo=0, hi=6),
    Param("numpy", (1,), "1: inputs are numpy arrays whose .shape is printed", lo=0, hi=1),
    Param("shots", (1,), "worked examples (other programs and their output)", lo=0, hi=3),
    Param("items", (), "CRUXEval JSONL items to run as output prediction instead", path=True),
)


class ProgramProbe(Probe):
    name = "program"
    version = 1
    summary = "what a short program prints: guarded prints, the print-once trap, CRUXEval"
    params = PARAMS
    metrics = (
        "exact",
        "line_precision",
        "line_recall",
        "lines_expected",
        "lines_emitted",
        "literal_fidelity",
        "intent_over_semantics",
        "trap_expected",
        "trap_emitted",
        "truth_status",
    )
    summary_means = ("line_recall", "literal_fidelity")
    default_mode = "chat"

    def build(self, cells: list[dict[str, Any]], n: int, seed: int, mode: str) -> list[Case]:
        items = list(dict.fromkeys((c["items"], c["shots"]) for c in cells if c.get("items")))
        if items:
            return [c for path, shots in items for c in self._item_cases(path, shots, mode)]
        # Generate every program first, then run them all in parallel for their truth.
        plans = []
        for cell in cells:
            for i in range(n):
                cid = case_id(self.name, self.version, cell, seed + i)
                rng = case_rng(cid)
                # Worked examples never show the trap: they would teach its answer.
                plain = {**cell, "guard": "mixed"} if cell["guard"] == "trap" else cell
                shots = [render(plain, *_spec(plain, rng)) for _ in range(cell["shots"])]
                spec = _spec(cell, rng)
                plans.append(
                    (
                        cell,
                        seed + i,
                        cid,
                        shots,
                        render(cell, *spec),
                        render(cell, *spec, intent=True),
                    )
                )
        sources = [s for p in plans for s in (*p[3], p[4], p[5])]
        results = dict(
            zip(
                sources,
                run_cached([Program(s, limits=LIMITS) for s in sources], _salt()),
                strict=True,
            )
        )
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
            )
            for cell, s, cid, shots, src, intent in plans
        ]

    def _case(self, cell, seed, cid, shots, source, result, intent, mode) -> Case:
        truth = result.as_truth()
        trap = _trap_literal(source)
        covariates = {
            "lines_expected": len(_lines(truth["stdout"])),
            "trap_expected": _count(truth["stdout"], trap) if trap else None,
            "truth_status": truth["status"],
        }
        return self.new_case(
            cid,
            dict(cell),
            seed,
            inputs={"program": source, "literals": _literals(source)},
            truth=truth,
            prompt=_prompt(mode, shots, source),
            foils={"intent": intent.stdout if trap else None},
            covariates=covariates,
            max_tokens=len(truth["stdout"]) + 64
            if mode == "completion"
            else len(truth["stdout"]) + 256,
            stop=("```",) if mode == "completion" else (),
        )

    def _item_cases(self, path: str, shots: int, mode: str) -> list[Case]:
        items = load_items(path)
        results = run_cached([item_program(it) for it in items], _salt())
        cases = []
        for item, result in zip(items, results, strict=True):
            params = {"item": f"{Path(path).name}:{item.id}", "shots": shots}
            digest = hashlib.sha256((item.code + item.input).encode()).hexdigest()[:12]
            cid = case_id(self.name, self.version, params | {"digest": digest}, 0)
            truth = result.as_truth()
            truth["value"] = truth["stdout"].strip() if truth["status"] == "ok" else None
            cases.append(
                self.new_case(
                    cid,
                    params,
                    0,
                    inputs={"code": item.code, "input": item.input},
                    truth=truth,
                    prompt=_crux_prompt(mode, item, shots),
                    covariates={"truth_status": truth["status"]},
                    max_tokens=len(truth["stdout"]) + 64,
                    stop=("\n",) if mode == "completion" else (),
                )
            )
        return cases

    def requests(self, case: Case) -> list[tuple[Any, str]]:
        return [(case.prompt, case.truth["stdout"])]

    def score(self, case: Case, answer: Answer) -> Score:
        metrics = self.blank_metrics(case)
        if case.truth["status"] != "ok":
            why = (
                f"the program itself did not finish ({case.truth['status']}), so there is no truth"
            )
            return Score(False, metrics, "no_truth", why)
        if "code" in case.inputs:
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
    if mode == "completion":
        # A base model continues a document: programs, each followed by its output.
        blocks = ["Python programs and exactly what each prints when run."]
        for code, out in shots:
            blocks.append(f"```python\n{code}```\nOutput:\n```\n{out}```")
        blocks.append(f"```python\n{source}```\nOutput:\n```\n")
        return "\n\n".join(blocks)
    messages: list[dict[str, str]] = [{"role": "system", "content": SYSTEM}]
    for code, out in shots:
        messages.append({"role": "user", "content": f"```python\n{code}```"})
        messages.append({"role": "assistant", "content": f"```text\n{out}```"})
    messages.append({"role": "user", "content": f"```python\n{source}```"})
    return tuple(messages)


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
    examples = [f"{code}\nassert f({arg}) == {out}" for code, arg, out in CRUX_EXAMPLES[:shots]]
    question = f"{item.code}\nassert f({item.input}) =="
    if mode == "completion":
        return "\n\n".join([CRUX_INSTRUCTION, *examples, question])
    rule = CRUX_INSTRUCTION + " Reply with the literal that completes the assert, nothing else."
    shown = "\n\n".join([*examples, question])
    return ({"role": "system", "content": rule}, {"role": "user", "content": shown})


# --- the parser and the scorers ----------------------------------------------------------

_FENCE = re.compile(r"```[^\n]*\n(.*?)(?:```|$)", re.S)


def extract_output(text: str) -> str:
    """The printed output a model claims: the first fenced block, else the text."""
    m = _FENCE.search(text)
    return m.group(1) if m else text


def _lines(text: str) -> list[str]:
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _count(text: str, literal: str) -> int:
    return sum(1 for ln in _lines(text) if ln.startswith(literal))


def score_output(case: Case, answer: Answer, metrics: dict[str, Any]) -> Score:
    said, truth = _lines(extract_output(answer.text)), _lines(case.truth["stdout"])
    metrics["lines_emitted"] = len(said)
    overlap = sum((Counter(said) & Counter(truth)).values())
    metrics["line_precision"] = overlap / len(said) if said else None
    metrics["line_recall"] = overlap / len(truth) if truth else None
    shown = [lit for lit in case.inputs["literals"] if _count(case.truth["stdout"], lit)]
    if shown:
        metrics["literal_fidelity"] = sum(1 for lit in shown if _count("\n".join(said), lit)) / len(
            shown
        )
    trap = _trap_literal(case.inputs["program"])
    if trap:
        metrics["trap_emitted"] = _count("\n".join(said), trap)
        # Following the comment means printing the trap line as often as the intent
        # version does (once), whatever text it prints, where the code prints it more.
        intent = _lines(case.foils["intent"] or "")
        once = _count(case.foils["intent"] or "", trap)
        metrics["intent_over_semantics"] = metrics["trap_expected"] > once and (
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
            f"not {metrics['trap_expected']}"
        )
        return Score(False, metrics, "intent_over_semantics", why, "\n".join(said))
    if shown and metrics["literal_fidelity"] < 1:
        kind, why = "literal_changed", "a print's constant text was not reproduced verbatim"
    elif len(said) < len(truth):
        kind, why = "missing_lines", f"{len(said)} lines, {len(truth)} printed"
    elif len(said) > len(truth):
        kind, why = "extra_lines", f"{len(said)} lines, {len(truth)} printed"
    else:
        kind, why = "wrong_text", f"{len(truth) - overlap} of {len(truth)} lines differ"
    return Score(False, metrics, kind, why, "\n".join(said))


def parse_literal(text: str) -> tuple[Any, str | None]:
    """A Python literal from an answer, parsed (never run) with ast.literal_eval."""
    line = text.strip().split("\n", 1)[0].strip() if text.strip() else ""
    line = line.strip("`").strip()
    line = re.sub(r"^(?:\[ANSWER\]|answer:)\s*", "", line, flags=re.I)
    line = re.sub(r"\s*\[/ANSWER\]$", "", line)
    if "==" in line and line.startswith("assert"):
        line = line.split("==", 1)[1].strip()
    if not line:
        return None, "empty answer"
    try:
        return ast.literal_eval(line), None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None, f"not a Python literal: {line[:80]!r}"


def same_value(a_text: str, b_text: str) -> bool:
    """Equal as values when both parse as literals (so 'a' == \"a\"), else as text."""
    a, why_a = parse_literal(a_text)
    b, why_b = parse_literal(b_text)
    if why_a is None and why_b is None:
        try:
            return bool(a == b) and type(a) is type(b)
        except Exception:  # noqa: BLE001 - exotic comparisons fail as unequal
            return False
    return a_text.strip() == b_text.strip()


def score_item(case: Case, answer: Answer, metrics: dict[str, Any]) -> Score:
    truth = case.truth["value"]
    value, why = parse_literal(answer.text)
    said = answer.text.strip().split("\n", 1)[0].strip() if answer.text.strip() else ""
    if why and not same_value(said, truth):
        kind = "empty" if why == "empty answer" else "unparseable"
        return Score(False, metrics, kind, why, said)
    if same_value(repr(value) if why is None else said, truth):
        metrics["exact"] = True
        return Score(True, metrics, None, None, said)
    metrics["exact"] = False
    return Score(
        False, metrics, "wrong_value", f"said {said[:80]}, the code gives {truth[:80]}", said
    )
