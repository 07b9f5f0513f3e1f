"""A study file: claims, each with its runs, statistics and decision rule (TOML).

    name = "mine"
    title = "..."

    [[claim]]
    id = "C1"
    title = "Convolution by hand"
    question = "Does accuracy hold as the input grows?"
    founding = "the case that raised the question"
    unit = "cases"                        # what a power estimate counts
    thresholds = { hold = 0.8 }
    computes = "acc_top.low >= hold"      # checked first
    imitates = "acc_top.high < hold"      # else inconclusive

    [[claim.run]]
    name = "sizes"
    probe = "conv"
    n = { quick = 2, standard = 6, full = 20 }    # a value, or one per budget
    grid = { size = { quick = [2, 4, 6, 8], standard = [2, 3, 4, 5, 6, 7, 8, 9] } }

    [[claim.stat]]
    name = "acc_top"
    kind = "rate"                         # see emulate/studies/statistics.py
    run = "sizes"
    top = "size"

A value given per budget (a table whose keys are budget names) takes the budget's
entry, or else the nearest smaller budget's, or else the nearest larger one's.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from emulate.errors import EmulateError

from .expr import Expression, parse

BUDGETS = ("quick", "standard", "full")
BUILTIN = "seeds"
_CLAIM_KEYS = {"id", "title", "question", "founding", "unit", "thresholds", "computes",
               "imitates", "note", "run", "stat"}  # fmt: skip
_RUN_KEYS = {"name", "probe", "n", "grid", "mode", "seed", "options"}
_OPTIONS = {"temperature", "max_tokens", "stop", "top_logprobs", "extra_body", "skip_impossible"}
# Each statistic's kind and the fields it needs (emulate/studies/statistics.py).
KINDS = {
    "rate": ("run",), "mean": ("run",), "difference": ("a", "b"),
    "breaking_point": ("run", "axis"), "error_share": ("run", "types"),
    "distance": ("run", "to", "metrics"), "python": ("function",),
}  # fmt: skip
# Claim ids and run names make folder names (CLAIM-RUN): letters, digits, _ and .
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.]*")


@dataclass(frozen=True)
class RunSpec:
    """One run a claim needs, its values already taken for the study's budget."""

    name: str
    probe: str
    n: int | None
    grid: Mapping[str, Any]
    mode: str | None = None
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StatSpec:
    """A statistic: its name (what rules call it), kind, and the kind's fields."""

    name: str
    kind: str
    fields: Mapping[str, Any]
    where: str  # "claim C1, stat acc": for messages


@dataclass(frozen=True)
class Claim:
    id: str
    title: str
    question: str
    founding: str
    runs: tuple[RunSpec, ...]
    stats: tuple[StatSpec, ...]
    computes: Expression
    imitates: Expression
    thresholds: Mapping[str, float]
    unit: str = "cases"
    note: str = ""


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    budget: str
    claims: tuple[Claim, ...]
    source: str  # the file, or "built-in seeds"
    text: str = ""  # the file as read: the study's folder keeps a copy (study.toml)


def load_study(path: str | Path | None = None, budget: str = "quick") -> Study:
    """The study in `path` (TOML), or the built-in `seeds` study, at `budget`."""
    if budget not in BUDGETS:
        raise EmulateError(f"--budget {budget}: use one of {', '.join(BUDGETS)}")
    if path is None or str(path) == BUILTIN:
        text = resources.files("emulate.studies").joinpath("seeds.toml").read_text()
        source = f"built-in {BUILTIN}"
    else:
        p = Path(path)
        if not p.is_file():
            raise EmulateError(f"{path}: no such study file; pass a TOML file, or none for seeds")
        text, source = p.read_text(encoding="utf-8"), str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise EmulateError(f"{source}: not valid TOML ({err})") from None
    claims = data.get("claim")
    if not isinstance(claims, list) or not claims:
        raise EmulateError(f"{source}: no [[claim]] tables; a study lists one or more claims")
    parsed = tuple(_claim(c, i, source, budget) for i, c in enumerate(claims))
    ids = [c.id for c in parsed]
    if len(set(ids)) < len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise EmulateError(f"{source}: claim {twice} is defined twice")
    return Study(
        name=str(data.get("name", Path(source).stem)),
        title=str(data.get("title", "")),
        budget=budget,
        claims=parsed,
        source=source,
        text=text,
    )


def _text(table: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise EmulateError(f"{where}: `{key}` must be a non-empty text")
    return value


def _name(table: Mapping[str, Any], key: str, where: str) -> str:
    value = _text(table, key, where)
    if not NAME.fullmatch(value):
        raise EmulateError(f"{where}: {key} {value!r}: use letters, digits, _ and . only")
    return value


def _once(names: list[str], what: str) -> None:
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise EmulateError(f"{what} {twice[0]!r} is defined twice")


def _unknown(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise EmulateError(f"{where}: unknown key {extra[0]!r}; use {', '.join(sorted(allowed))}")


def _claim(table: Any, i: int, source: str, budget: str) -> Claim:
    if not isinstance(table, dict):
        raise EmulateError(f"{source}: claim {i + 1} is not a table")
    where = f"{source}: claim {table.get('id', i + 1)}"
    _unknown(table, _CLAIM_KEYS, where)
    cid = _name(table, "id", where)
    given = table.get("run", [])
    runs = tuple(_run(r, f"{where}, run {j + 1}", budget) for j, r in enumerate(given))
    if not runs:
        raise EmulateError(f"{where}: no [[claim.run]]; a claim needs a run to measure")
    _once([r.name for r in runs], f"{where}: run")
    stats: list[StatSpec] = []
    for table_ in table.get("stat", []):
        stats.append(_stat(table_, where, {r.name for r in runs}, [x.name for x in stats]))
    if not stats:
        raise EmulateError(f"{where}: no [[claim.stat]]; a claim needs a statistic")
    _once([x.name for x in stats], f"{where}: statistic")
    thresholds = table.get("thresholds", {})
    if not isinstance(thresholds, dict) or not all(
        isinstance(v, (int, float)) for v in thresholds.values()
    ):
        raise EmulateError(f"{where}: `thresholds` must be a table of numbers")
    shadowed = sorted({x.name for x in stats} & set(thresholds))
    if shadowed:
        raise EmulateError(f"{where}: {shadowed[0]!r} names a statistic and a threshold")
    names = {x.name for x in stats} | set(thresholds)
    rules = {}
    for rule in ("computes", "imitates"):
        rules[rule] = parse(_text(table, rule, where), f"{where}, {rule}")
        unknown = sorted(rules[rule].names() - names)
        if unknown:
            raise EmulateError(
                f"{where}, {rule}: {unknown[0]!r} is neither a statistic nor a threshold of "
                f"the claim ({', '.join(sorted(names))})"
            )
    return Claim(
        id=cid,
        title=_text(table, "title", where, cid),
        question=_text(table, "question", where),
        founding=str(table.get("founding", "")),
        runs=runs,
        stats=tuple(stats),
        computes=rules["computes"],
        imitates=rules["imitates"],
        thresholds={k: float(v) for k, v in thresholds.items()},
        unit=str(table.get("unit", "cases")),
        note=str(table.get("note", "")),
    )


def at_budget(value: Any, budget: str, where: str) -> Any:
    """`value`, or its entry for `budget` when it is a table of budgets."""
    if not (isinstance(value, dict) and value and set(value) <= set(BUDGETS)):
        return value
    order = BUDGETS.index(budget)
    for b in (*BUDGETS[order::-1], *BUDGETS[order + 1 :]):
        if b in value:
            return value[b]
    raise AssertionError(where)  # a non-empty table of budgets has one of them


def _run(table: Any, where: str, budget: str) -> RunSpec:
    if not isinstance(table, dict):
        raise EmulateError(f"{where}: not a table")
    _unknown(table, _RUN_KEYS, where)
    grid = table.get("grid", {})
    options = table.get("options", {})
    if not isinstance(grid, dict) or not isinstance(options, dict):
        raise EmulateError(f"{where}: `grid` and `options` must be tables")
    _unknown(options, _OPTIONS, f"{where}, options")
    n = at_budget(table.get("n"), budget, where)
    if n is not None and (not isinstance(n, int) or n < 1):
        raise EmulateError(f"{where}: `n` must be a positive integer, or one per budget")
    seed = table.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise EmulateError(f"{where}: `seed` must be an integer")
    return RunSpec(
        name=_name(table, "name", where),
        probe=_text(table, "probe", where),
        n=n,
        grid={k: at_budget(v, budget, f"{where}, grid {k}") for k, v in grid.items()},
        mode=table.get("mode"),
        seed=seed,
        options={k: at_budget(v, budget, where) for k, v in options.items()},
    )


def _stat(table: Any, where: str, runs: set[str], earlier: list[str]) -> StatSpec:
    """A statistic, its kind's fields and expressions checked before anything runs."""
    if not isinstance(table, dict):
        raise EmulateError(f"{where}: a [[claim.stat]] is not a table")
    name = _name(table, "name", f"{where}, stat")
    here = f"{where}, stat {name}"
    kind = _text(table, "kind", here)
    if kind not in KINDS:
        raise EmulateError(f"{here}: kind {kind!r}; use {', '.join(KINDS)}")
    fields = {k: v for k, v in table.items() if k not in ("name", "kind")}
    for need in KINDS[kind]:
        if need not in fields:
            raise EmulateError(f"{here}: a {kind} needs `{need}`")
    run = fields.get("run")
    if run is not None and run not in runs:
        raise EmulateError(f"{here}: run {run!r} is not one of the claim's ({', '.join(runs)})")
    for side in ("a", "b") if kind == "difference" else ():
        if fields[side] not in earlier:
            raise EmulateError(f"{here}: `{side}` must name a statistic listed before it "
                               f"({', '.join(earlier) or 'none yet'})")  # fmt: skip
    for key in ("of", "where"):
        if key in fields:
            parse(str(fields[key]), f"{here}, {key}")
    if fields.get("per", "case") not in ("case", "turn"):
        raise EmulateError(f"{here}: per={fields['per']!r}; use case or turn")
    return StatSpec(name, kind, fields, here)
