"""CRUXEval items for the program probe: published output prediction, run for real.

An item is `{"code", "input", "output", "id"}`: a function `f` (or the entry point an
item or `-P entry=NAME` names), the call's arguments, and the published output. The
truth is the call's return value, executed in the sandbox, kept apart from what the
function prints; items whose code could hang on the hash seed run under a second seed
too, to flag values that depend on set order.
Answers are literals read with ast.literal_eval (never run) and compared as
CRUXEval's own evaluation does (emulate/values.py).

Read top to bottom: items, their truth, their cases and prompt, the scorer.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulate.case import Answer, Case, Mode, Score, case_id
from emulate.errors import EmulateError, read_text
from emulate.extract import find
from emulate.probe import Probe
from emulate.prompt import Example, PerMode, Rendered, render
from emulate.sandbox import Execution, Limits, Program, Result, run_cached
from emulate.values import equal, literal, normalised, read_literal, same_type

LIMITS = Limits(cpu_s=5, wall_s=20, memory_mb=2048, file_mb=4)


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
    for n, line in enumerate(read_text(path, f"items={path}").splitlines(), 1):
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
    return Program(source, limits=LIMITS, hash_seed=hash_seed, origin="items")


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


# --- cases and the prompt ------------------------------------------------------------


ItemCase = Case[ItemInputs, ItemTruth]


def item_cases(probe: Probe, path: str, shots: int, entry: str, mode: Mode) -> list[Case]:
    """The cases of an items file, each item's truth executed (twice where its output
    could hang on the hash seed: `may_vary`)."""
    items = load_items(path, entry)
    truths = [item_truth(r) for r in run_cached([item_program(it) for it in items])]
    again = [i for i, (it, t) in enumerate(zip(items, truths, strict=True)) if may_vary(it, t)]
    others = run_cached([item_program(items[i], hash_seed=1) for i in again])
    other_of = {i: item_truth(r) for i, r in zip(again, others, strict=True)}
    cases = []
    for i, (item, truth) in enumerate(zip(items, truths, strict=True)):
        cid = case_id(probe.name, probe.version, {"shots": shots, "digest": item.digest}, 0)
        published = None
        if truth.ok and item.output is not None and truth.value is not None:
            published = _same_value(item.output, truth.value)[0]
        other = other_of.get(i, truth)
        cases.append(
            probe.new_case(
                cid,
                {"item": item.id, "shots": shots},
                0,
                inputs=ItemInputs(item.code, item.input, item.entry, item.output),
                truth=truth,
                prompt=_crux_prompt(mode, item, shots, len(truth.value or "")),
                covariates={
                    "truth_status": truth.status,
                    "published_agrees": published,
                    "hash_dependent": truth.ok
                    and (truth.value, truth.stdout) != (other.value, other.stdout),
                },
            )
        )
    disagree = sum(c.covariates["published_agrees"] is False for c in cases)
    if disagree:
        print(f"note: {path}: {disagreement(disagree, len(cases))}", file=sys.stderr)
    return cases


# --- which items run twice -------------------------------------------------------------
#
# `hash_dependent` says whether an item's output changes with Python's hash seed (set
# order, hash()): the item runs again under a second seed and the outputs are compared.
# A second run doubles the cost of a cold cache, and most items cannot depend on the
# seed, so it runs only where a conservative reading of the code finds a way they
# could: a set, hash() or id(), any import, any builtin outside a plain list, any
# dunder or frame attribute, or set operators where dict views are about. An output
# that shows an address (a default repr: "<function f at 0x...>") differs from run to
# run whatever the seed, and runs again too, as every item once did.

# Builtins that neither make a set, nor hash, nor reach anything that does.
PLAIN_BUILTINS = frozenset((
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr",
    "classmethod", "complex", "dict", "divmod", "enumerate", "filter", "float", "format",
    "hasattr", "hex", "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max",
    "min", "next", "object", "oct", "ord", "pow", "print", "property", "range", "repr",
    "reversed", "round", "slice", "sorted", "staticmethod", "str", "sum", "super", "tuple",
    "type", "zip",
))  # fmt: skip
# The rest, but for exceptions and constants (capitalised), which are plain too.
_OTHER_BUILTINS = frozenset(n for n in dir(builtins) if not n[0].isupper()) - PLAIN_BUILTINS
_FRAMES = ("gi_", "cr_", "ag_", "f_", "tb_")  # generators', frames' and tracebacks' insides
_SET_OPS = (ast.BitAnd, ast.BitOr, ast.BitXor, ast.Sub)  # on dict views, they make sets


def may_vary(item: Item, truth: ItemTruth) -> bool:
    """Whether the item must run under a second hash seed to tell if its output hangs
    on it: a finished run whose code could reach hashing, or whose output shows an
    address."""
    if not truth.ok:
        return False  # hash_dependent is False for a run that did not finish
    if "0x" in f"{truth.value}{truth.stdout}":
        return True
    # One tree: an operator in the code may meet dict views in the call, or the reverse.
    return _may_hash(f"{item.code}\n{item.entry}({item.input})")


def _may_hash(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return True
    views = operators = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom | ast.Set | ast.SetComp):
            return True
        if isinstance(node, ast.Name) and (node.id in _OTHER_BUILTINS or node.id.startswith("__")):
            return True
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("__") or node.attr.startswith(_FRAMES):
                return True
            views = views or node.attr in ("keys", "items")
        if isinstance(node, ast.BinOp | ast.AugAssign):
            operators = operators or isinstance(node.op, _SET_OPS)
    return views and operators


def disagreement(k: int, n: int) -> str:
    return (
        f"{k} of {n} items' published outputs disagree with execution "
        "(published_agrees=False); emulate scores against execution"
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


def _crux_prompt(mode: Mode, item: Item, shots: int, answer_chars: int) -> Rendered:
    examples = [
        Example(f"{code}\nassert f({arg}) ==", out) for code, arg, out in CRUX_EXAMPLES[:shots]
    ]
    chat = " Reply with the literal that completes the assert, nothing else."
    return render(
        mode,
        f"{item.code}\nassert {item.entry}({item.input}) ==",
        examples=examples,
        # A base model has no system message: the instruction opens its document.
        intro=PerMode(chat="", completion=CRUX_INSTRUCTION),
        system=CRUX_INSTRUCTION + chat,
        budget=PerMode(chat=answer_chars + 256, completion=answer_chars + 64),
        completion_stop=("\n",),  # the assert's line ends the value
    )


# --- the scorer ---------------------------------------------------------------------------


def _same_value(said: str, truth: str) -> tuple[bool, bool]:
    """(equal by CRUXEval's rule, equal with the same types), from two texts. A truth
    that is no literal (an object's repr) is compared as text."""
    ok_truth, want = literal(truth)
    ok_said, got = literal(said)
    if ok_truth and ok_said:
        return equal(want, got), same_type(want, got)
    same = normalised(said) == normalised(truth)
    return same, same


def score_item(case: ItemCase, answer: Answer, metrics: dict[str, Any]) -> Score:
    truth = case.truth.value
    assert truth is not None  # ProgramProbe.score scores finished runs only, which have one
    is_literal, want = literal(truth)

    def parse(text: str) -> tuple[str, bool, bool]:
        """(the answer, equal by CRUXEval's rule, equal with the same types)."""
        text = text.strip()
        if len(text) > 10 * len(truth) + 1000:
            # Far longer than the value it could equal; parsing it costs seconds a MB.
            raise ValueError("too long to be the value")
        if not is_literal and normalised(text) == normalised(truth):
            return text, True, True  # a repr that is no literal, matched as text
        got = read_literal(text)  # a wrong answer still has to be one value
        return (
            (text, equal(want, got), same_type(want, got)) if is_literal else (text, False, False)
        )

    found = find(answer.text, parse)
    if found is None:
        kind = "empty" if not answer.text.strip() else "unparseable"
        return Score(False, metrics, kind, "no Python literal found in the answer")
    said, metrics["exact"], metrics["exact_type"] = found.value
    if metrics["exact"]:
        return Score(True, metrics, None, None, said)
    return Score(
        False, metrics, "wrong_value", f"said {said[:80]}, the code gives {truth[:80]}", said
    )
