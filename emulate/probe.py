"""What a probe is, its parameters, and how a grid of them becomes cases."""

from __future__ import annotations

import itertools
import json
import re
import sys
from collections.abc import Awaitable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

from .case import Answer, Case, Mode, Prompt, Row, Score
from .errors import EmulateError
from .prompt import MODES as MODES  # the CLI's choices
from .prompt import Rendered, check_mode, mode_of

Value = bool | int | float | str | None


@dataclass(frozen=True)
class Column:
    """A result column a probe declares: a metric (measured on the answer, in
    Score.metrics) or a covariate (known before asking, in Case.covariates)."""

    name: str
    type: type  # bool, int, float or str; every value is of it, or None
    kind: str = "metric"  # or "covariate"
    # A value computed from a network's training (or from numbers it printed): floats
    # from training differ in their last digits from one CPU to another, so a replay on
    # another machine reproduces it within this tolerance (relative and absolute), not
    # digit for digit. None: reproduced exactly.
    tolerance: float | None = None

    def check(self, value: Value) -> None:
        ok = (
            value is None
            or isinstance(value, self.type)
            or (self.type is float and isinstance(value, int) and not isinstance(value, bool))
        )
        if not ok:
            raise TypeError(f"column {self.name} is {self.type.__name__}, got {value!r}")


# Error types any probe's rows can carry, whatever its scorer says: the request failed
# (`Probe.grade`), or the scorer raised (`score_case`, below).
HARNESS_ERRORS = ("api_error", "scorer_error")


def metric(name: str, type: type = float, *, tolerance: float | None = None) -> Column:
    return Column(name, type, "metric", tolerance)


def covariate(name: str, type: type = int, *, tolerance: float | None = None) -> Column:
    return Column(name, type, "covariate", tolerance)


class Ask(Protocol):
    """Model.ask: one request to the model."""

    def __call__(
        self, prompt: Prompt, *, max_tokens: int, stop: Sequence[str] = (), top_logprobs: int = 0
    ) -> Awaitable[Answer]: ...


@dataclass(frozen=True)
class Param:
    """A difficulty (or prompt) parameter: an integer in [lo, hi], one of `choices`,
    a text matching `pattern`, or (`path=True`) a file that must exist."""

    name: str
    default: tuple[Any, ...]
    help: str
    lo: int | None = None
    hi: int | None = None
    choices: tuple[str, ...] | None = None
    path: bool = False
    pattern: str | None = None

    @property
    def valid(self) -> str:
        if self.path:
            return "the path of an existing file"
        if self.pattern:
            return f"text matching {self.pattern}"
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return f"an integer from {self.lo} to {self.hi}"

    def parse(self, raw: str, probe: str) -> Any:
        raw = raw.strip()
        if self.path:
            if not Path(raw).is_file():
                raise EmulateError(f"{probe}: {self.name}={raw}: no such file")
            return raw
        if self.pattern:
            if not re.fullmatch(self.pattern, raw):
                raise EmulateError(f"{probe}: {self.name}={raw!r} is not valid; use {self.valid}")
            return raw
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
        if self.lo is not None and self.hi is not None and not (self.lo <= value <= self.hi):
            raise EmulateError(f"{probe}: {self.name}={value} is out of range; use {self.valid}")
        return value

    def describe(self) -> str:
        if self.path:
            return f"{self.name}=PATH: {self.help}"
        if self.pattern:
            return f"{self.name}=TEXT: {self.help}"
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
    # The dataclasses a case's inputs (what the prompt shows) and truth are; a probe
    # with several tasks picks per case in `types`.
    Inputs: ClassVar[type]
    Truth: ClassVar[type]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]]
    # Every result column, in CSV order: metrics and covariates, each with its type.
    columns: ClassVar[tuple[Column, ...]]
    # Every error_type its rows can carry, HARNESS_ERRORS among them; `grade` refuses
    # any other. None: undeclared (a probe written before the declaration), unchecked.
    error_types: ClassVar[tuple[str, ...] | None] = None
    default_mode: ClassVar[Mode] = "chat"
    # Cases per grid cell when a run does not say (--n).
    default_n: ClassVar[int] = 3
    # Covariate columns the printed summary also breaks accuracy down by.
    summary_axes: ClassVar[tuple[str, ...]] = ()
    # Metrics whose mean the printed summary shows beside accuracy.
    summary_means: ClassVar[tuple[str, ...]] = ()

    def missing(self) -> str | None:
        """What this machine lacks to build this probe's truth (and how to get it), or None."""
        return None

    def explain(self, case: Case, answer: Answer, score: Score) -> dict[str, Any] | None:
        """What the report's case browser shows beside an answer, in the probe's own
        terms, as JSON (None: the browser's generic view, a grid or a line diff). The
        browser draws `{"tokens": [{"token", "p", "kind"}, ...]}` as the alternatives
        for the next token, each kind "legal" or what makes it illegal."""
        return None

    def notes(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        """Lines a run's summary adds about its finished rows (results.csv rows)."""
        return []

    def figures(self, rows: Sequence[Row], per_case: bool = False) -> dict[str, bytes]:
        """Pictures a report shows for a run of this probe (its journal rows), PNG bytes
        by file name: one for the run, or with `per_case` one per case too."""
        return {}

    def check_cell(self, cell: Mapping[str, Any]) -> str | None:
        """Why this cell cannot exist, or None."""
        return None

    def make_case(self, cell: Mapping[str, Any], seed: int, mode: Mode) -> Case:
        raise NotImplementedError

    def build(self, cells: list[dict[str, Any]], n: int, seed: int, mode: Mode) -> list[Case]:
        """All cases of a run: n per cell, case i of a cell with seed `seed + i`.

        A probe that also reads published items from a file overrides this."""
        return [self.make_case(cell, seed + i, mode) for cell in cells for i in range(n)]

    def score(self, case: Case, answer: Answer) -> Score:
        raise NotImplementedError

    # Whether a case's later requests show the model's earlier answers (a shell
    # session's history): such a case cannot be written as one batch of requests.
    turns_see_answers = False
    # Whether `build` is arithmetic alone (no sandbox, no network trained, no file
    # read): such cases may be built in a forked worker process, on another core,
    # while the run asks.
    pure_build: ClassVar[bool] = False

    async def converse(self, case: Case, ask: Ask) -> Answer:
        """Ask the model about a case. One request; a multi-turn probe (a shell
        session) overrides this to drive its turns, each sending the whole history."""
        return await ask(
            case.prompt, max_tokens=case.max_tokens, stop=case.stop, top_logprobs=case.top_logprobs
        )

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.kind == "metric")

    @property
    def covariates(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.kind == "covariate")

    def grade(self, case: Case, answer: Answer) -> Score:
        """Score an answer, the score checked against what the probe declares. A failed
        request scores the same way for every probe."""
        if answer.error:
            return Score(False, self.blank_metrics(case), "api_error", answer.error)
        return self.checked(self.score(case, answer))

    def checked(self, score: Score) -> Score:
        """`score`, if its metrics are declared metric columns with values of their types
        and its error type is declared; else TypeError: a bug in the probe (the runner
        turns it into a scorer_error row), not a figure to report."""
        declared = {c.name: c for c in self.columns if c.kind == "metric"}
        for name, value in score.metrics.items():
            if name not in declared:
                raise TypeError(f"{self.name}: metric {name!r} is not a declared column")
            declared[name].check(value)
        kinds = self.error_types
        if kinds is not None and score.error_type is not None and score.error_type not in kinds:
            raise TypeError(
                f"{self.name}: error type {score.error_type!r} is not declared in error_types"
            )
        return score

    def blank_metrics(self, case: Case) -> dict[str, Any]:
        """Every metric column unset: where scoring starts."""
        return {name: None for name in self.metrics}

    def requests(self, case: Case) -> list[tuple[Prompt, str]]:
        """For dry-run estimates: each request's prompt and the answer it expects.
        A multi-turn probe sends one request per turn, each with the history so far."""
        return [(case.prompt, self.answer_text(case))]

    def answer_text(self, case: Case) -> str:
        """The right answer as a model would write it (for token estimates)."""
        return json.dumps(asdict(case.truth))

    def types(self, params: Mapping[str, Any]) -> tuple[type, type]:
        """The (Inputs, Truth) dataclasses of a case with these parameters."""
        return self.Inputs, self.Truth

    def typed(self, case: Case) -> Case:
        """A case read from JSON (a journal, `emulate cases`), its inputs and truth made
        the probe's dataclasses again. Probes whose JSON changed shape read old journals
        here (`migrate`)."""
        if is_dataclass(case.inputs) and is_dataclass(case.truth):
            return case
        case = self.migrate(case)
        Inputs, Truth = self.types(case.params)  # noqa: N806
        # Every declared covariate is a column, unset where an older journal lacks it.
        covariates = {name: None for name in self.covariates} | dict(case.covariates)
        try:
            return replace(
                case,
                inputs=_build(Inputs, case.inputs),
                truth=_build(Truth, case.truth),
                covariates=covariates,
            )
        except TypeError as err:
            raise EmulateError(
                f"{self.name} case {case.id}: inputs or truth do not fit ({err})"
            ) from None

    def migrate(self, case: Case) -> Case:
        """A case read from an older journal, its JSON inputs, truth and covariates in
        the shapes today's dataclasses and columns read."""
        return case

    def new_case(self, cid: str, params: Mapping[str, Any], seed: int, **fields: Any) -> Case:
        """A Case of this probe (name, version and mode filled in), its covariates checked
        against the declared columns. `prompt` is what `render` returns, its stop and
        budget taken with it; `stop` or `max_tokens` given too override them (probes
        written before render carried them pass a bare prompt and both)."""
        if isinstance(fields["prompt"], Rendered):
            rendered = fields.pop("prompt")
            fields = {"stop": rendered.stop, "max_tokens": rendered.max_tokens} | fields
            fields["prompt"] = rendered.prompt
        declared = {c.name: c for c in self.columns if c.kind == "covariate"}
        given = fields.pop("covariates", {})
        for name, value in given.items():
            if name not in declared:
                raise TypeError(f"{self.name}: covariate {name!r} is not a declared column")
            declared[name].check(value)
        return Case(
            covariates={name: given.get(name) for name in declared},
            id=cid,
            probe=self.name,
            version=self.version,
            params=params,
            seed=seed,
            mode=mode_of(fields["prompt"]),
            **fields,
        )

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        names = ", ".join(p.name for p in self.params)
        raise EmulateError(f"{self.name} has no parameter {name!r}; its parameters are: {names}")


def score_case(probe: Probe, case: Case, answer: Answer) -> Score:
    """The probe's checked score; a bug in a scorer becomes a scorer_error row, not a
    lost run."""
    try:
        return probe.grade(case, answer)
    except Exception as err:  # noqa: BLE001 - a scorer bug must not lose the answer
        return Score(False, {}, "scorer_error", f"{type(err).__name__}: {err}")


def _build(cls: type, data: Any) -> Any:
    if is_dataclass(data):
        return data
    if not isinstance(data, Mapping):
        raise TypeError(f"{cls.__name__} expects an object, not {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


def parse_grid(probe: Probe, specs: Iterable[str]) -> dict[str, list[Any]]:
    """Turn ["size=3,4", "kernel=2"] into {"size": [3, 4], "kernel": [2]}, validated."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not values.strip():
            raise EmulateError(f"-P {spec!r}: write key=value or key=v1,v2 (e.g. -P size=3,4)")
        param = probe.param(key.strip())
        if param.name in grid:
            raise EmulateError(
                f"-P {param.name} is given twice: list its values in one, "
                f"e.g. -P {param.name}=V1,V2"
            )
        grid[param.name] = [param.parse(v, probe.name) for v in values.split(",")]
    return grid


def check_grid(probe: Probe, grid: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Validate a grid given as Python values (the API's path); fill defaults."""
    full: dict[str, list[Any]] = {}
    for p in probe.params:
        values = grid.get(p.name, p.default)
        if isinstance(values, str | int):
            values = [values]
        if values:  # a parameter with no default (a path) is simply absent unless set
            full[p.name] = [p.parse(str(v), probe.name) for v in values]
    for key in grid:
        probe.param(key)
    return full


def expand(
    probe: Probe, grid: Mapping[str, Sequence[Any]], skip_impossible: bool = False
) -> list[dict[str, Any]]:
    """The cells of the grid, in a stable order.

    A grid is a product, so some combinations may be impossible (a kernel wider than
    the input). They are an error naming them, unless `skip_impossible`, which runs
    the others with a note on stderr.
    """
    full = check_grid(probe, grid)
    names = list(full)
    cells, impossible = [], []
    for values in itertools.product(*(full[n] for n in names)):
        cell = dict(zip(names, values, strict=True))
        why = probe.check_cell(cell)
        if why:
            impossible.append(f"{_fmt(probe, cell, full)} ({why})")
        else:
            cells.append(cell)
    total = len(cells) + len(impossible)
    if impossible and (not skip_impossible or not cells):
        shown = "; ".join(impossible[:3]) + ("; …" if len(impossible) > 3 else "")
        hint = " (add --skip-impossible to run the others)" if cells else ""
        raise EmulateError(
            f"{probe.name}: {len(impossible)} of {total} grid cells cannot exist: {shown}{hint}"
        )
    if impossible:
        print(
            f"note: skipped {len(impossible)} of {total} grid cells that cannot exist: "
            f"{impossible[0]}{' …' if len(impossible) > 1 else ''}",
            file=sys.stderr,
        )
    return cells


def build_cases(
    probe: Probe,
    grid: Mapping[str, Sequence[Any]],
    n: int,
    seed: int,
    mode: str,
    skip_impossible: bool = False,
) -> list[Case]:
    """n cases per grid cell; case i of a cell has seed `seed + i`."""
    return list(plan_cases(probe, grid, n, seed, mode, skip_impossible))


def plan_cases(
    probe: Probe,
    grid: Mapping[str, Sequence[Any]],
    n: int,
    seed: int,
    mode: str,
    skip_impossible: bool = False,
) -> CasePlan:
    """The cases of a run, counted now and built as they are iterated."""
    if n < 1:
        raise EmulateError(f"--n {n}: need at least one case per grid cell")
    checked = check_mode(mode)  # a text from the CLI or a script, checked once here
    cells = expand(probe, grid, skip_impossible)
    if why := probe.missing():
        raise EmulateError(f"{probe.name}: {why}")
    # Published items replace the generator (their count is the file's): built at once.
    items = probe.build(cells, n, seed, checked) if any(c.get("items") for c in cells) else None
    return CasePlan(probe, tuple(cells), n, seed, checked, items)


@dataclass(frozen=True)
class CasePlan:
    """A run's cases in order, built a chunk at a time: a run of 100,000 cases holds
    one chunk, not all of them. Case i of a cell depends only on (cell, seed + i), so
    chunks are the same cases `Probe.build` makes at once."""

    probe: Probe
    cells: tuple[dict[str, Any], ...]
    n: int
    seed: int
    mode: Mode
    items: list[Case] | None = None
    chunk: int = 256  # programs build a chunk's truths in parallel: not too small

    def __len__(self) -> int:
        return len(self.items) if self.items is not None else len(self.cells) * self.n

    def __iter__(self) -> Iterator[Case]:
        for chunk in self.chunks():
            yield from chunk

    def chunks(self) -> Iterator[list[Case]]:
        if self.items is not None:
            yield self.items
            return
        for job in self.jobs():
            yield job.build(self.probe)

    def jobs(self) -> Iterator[ChunkJob]:
        """What each chunk is built from (generated cases only): small enough to send
        to a worker process, which builds the same cases."""
        if self.n <= self.chunk:  # whole cells, several to a chunk
            per = self.chunk // self.n
            for j in range(0, len(self.cells), per):
                yield ChunkJob(self.cells[j : j + per], self.n, self.seed, self.mode)
            return
        for cell in self.cells:  # a cell in pieces: seeds seed+start .. seed+start+size-1
            for start in range(0, self.n, self.chunk):
                size = min(self.chunk, self.n - start)
                yield ChunkJob((cell,), size, self.seed + start, self.mode)


@dataclass(frozen=True)
class ChunkJob:
    """A chunk of a plan: n cases of each cell, case i with seed `seed + i`."""

    cells: tuple[dict[str, Any], ...]
    n: int
    seed: int
    mode: Mode

    def build(self, probe: Probe) -> list[Case]:
        return probe.build(list(self.cells), self.n, self.seed, self.mode)


def _fmt(probe: Probe, cell: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> str:
    """The cell by the parameters that vary or were set (defaults say nothing)."""
    keys = [k for k in cell if len(grid[k]) > 1 or tuple(grid[k]) != probe.param(k).default]
    return " ".join(f"{k}={cell[k]}" for k in keys or cell)
