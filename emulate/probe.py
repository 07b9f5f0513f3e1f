"""What a probe is, its parameters, and how a grid of them becomes cases."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .case import Answer, Case, Score
from .errors import EmulateError

MODES = ("chat", "completion")


@dataclass(frozen=True)
class Param:
    """A difficulty (or prompt) parameter: an integer in [lo, hi], or one of `choices`."""

    name: str
    default: tuple[Any, ...]
    help: str
    lo: int | None = None
    hi: int | None = None
    choices: tuple[str, ...] | None = None

    @property
    def valid(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return f"an integer from {self.lo} to {self.hi}"

    def parse(self, raw: str, probe: str) -> Any:
        raw = raw.strip()
        if self.choices:
            if raw not in self.choices:
                raise EmulateError(f"{probe}: {self.name}={raw!r} is not valid; use {self.valid}")
            return raw
        try:
            value = int(raw)
        except ValueError:
            raise EmulateError(
                f"{probe}: {self.name}={raw!r} is not valid; use {self.valid}"
            ) from None
        if not (self.lo <= value <= self.hi):
            raise EmulateError(f"{probe}: {self.name}={value} is out of range; use {self.valid}")
        return value

    def describe(self) -> str:
        rng = "|".join(self.choices) if self.choices else f"{self.lo}..{self.hi}"
        default = ",".join(str(v) for v in self.default)
        return f"{self.name}={rng} (default {default}): {self.help}"


class Probe:
    """One probe family. Subclasses fill in the class attributes and three methods.

    `make_case` builds one case (inputs, truth, prompt) from a grid cell and a seed;
    `check_cell` rejects cells that cannot exist; `score` parses and scores an answer.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]]
    metrics: ClassVar[tuple[str, ...]]  # metric names, in CSV column order
    default_mode: ClassVar[str] = "chat"

    def check_cell(self, cell: Mapping[str, Any]) -> str | None:
        """Why this cell cannot exist, or None."""
        return None

    def make_case(self, cell: Mapping[str, Any], seed: int, mode: str) -> Case:
        raise NotImplementedError

    def score(self, case: Case, answer: Answer) -> Score:
        raise NotImplementedError

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        names = ", ".join(p.name for p in self.params)
        raise EmulateError(f"{self.name} has no parameter {name!r}; its parameters are: {names}")


def parse_grid(probe: Probe, specs: Iterable[str]) -> dict[str, list[Any]]:
    """Turn ["size=3,4", "kernel=2"] into {"size": [3, 4], "kernel": [2]}, validated."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not values.strip():
            raise EmulateError(f"-P {spec!r}: write key=value or key=v1,v2 (e.g. -P size=3,4)")
        param = probe.param(key.strip())
        grid[param.name] = [param.parse(v, probe.name) for v in values.split(",")]
    return grid


def check_grid(probe: Probe, grid: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Validate a grid given as Python values (the API's path); fill defaults."""
    full: dict[str, list[Any]] = {}
    for p in probe.params:
        values = grid.get(p.name, p.default)
        if isinstance(values, str | int):
            values = [values]
        full[p.name] = [p.parse(str(v), probe.name) for v in values]
    for key in grid:
        probe.param(key)
    return full


def expand(probe: Probe, grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cells of the grid, in a stable order, without the ones that cannot exist.

    A grid is a product, so some combinations may be impossible (a kernel wider than
    the input). Those are skipped with a note on stderr; if none is left, it is an error.
    """
    full = check_grid(probe, grid)
    names = list(full)
    cells, skipped = [], []
    for values in itertools.product(*(full[n] for n in names)):
        cell = dict(zip(names, values, strict=True))
        why = probe.check_cell(cell)
        (skipped if why else cells).append((cell, why))
    if not cells:
        cell, why = skipped[0]
        raise EmulateError(f"{probe.name}: no cell of the grid can exist; e.g. {_fmt(cell)}: {why}")
    if skipped:
        print(
            f"note: skipped {len(skipped)} of {len(skipped) + len(cells)} grid cells that cannot "
            f"exist, e.g. {_fmt(skipped[0][0])}: {skipped[0][1]}",
            file=sys.stderr,
        )
    return [c for c, _ in cells]


def build_cases(
    probe: Probe, grid: Mapping[str, Sequence[Any]], n: int, seed: int, mode: str
) -> list[Case]:
    """n cases per grid cell; case i of a cell has seed `seed + i`."""
    if n < 1:
        raise EmulateError(f"--n {n}: need at least one case per grid cell")
    if mode not in MODES:
        raise EmulateError(f"mode {mode!r} is not valid; use one of {', '.join(MODES)}")
    return [probe.make_case(cell, seed + i, mode) for cell in expand(probe, grid) for i in range(n)]


def _fmt(cell: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in cell.items())
