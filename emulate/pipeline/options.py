"""How a run is carried out, as against what it asks (that is the RunConfig): its
folder, its cassette, resuming, error limits and concurrency. Checked once, here."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from emulate.config import DEFAULT_CONCURRENCY, DEFAULT_LOCAL_CONCURRENCY, DEFAULT_MAX_ERRORS
from emulate.errors import ArgumentError
from emulate.model_config import LOCAL, ModelConfig


@dataclass(frozen=True)
class RunOptions:
    """`out`: the run's folder (default runs/PROBE-TIME). `record` / `replay`: a cassette
    to write, or to answer from offline. `resume`: finish the run in `out`, and with
    `retry_errors` ask its failed cases again. `max_errors`: the API errors a run
    accepts, a count or a fraction of its cases. `concurrency`: requests in flight
    (default: the server's). `prices`: a price table (JSON) for the cost."""

    out: Path | None = None
    record: Path | None = None
    replay: Path | None = None
    resume: bool = False
    retry_errors: bool = False
    max_errors: int | float = DEFAULT_MAX_ERRORS
    concurrency: int | None = None
    progress: bool = True
    prices: Path | None = None

    def __post_init__(self) -> None:
        for name in ("out", "record", "replay", "prices"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if self.record and self.replay:
            raise ArgumentError("{record} and {replay} exclude each other: pick one",
                                "record", "replay")  # fmt: skip
        if self.replay and not self.replay.is_file():
            raise ArgumentError(
                "{replay} " + f"{self.replay}: no such cassette; record one with " + "{record}",
                "replay",
                "record",
            )
        if self.retry_errors and not self.resume:
            raise ArgumentError(
                "{retry_errors} asks again for a run's failed cases: add {resume}",
                "retry_errors",
                "resume",
            )
        if self.concurrency is not None and self.concurrency < 1:
            raise ArgumentError(
                "{concurrency} " + f"{self.concurrency}: must be at least 1", "concurrency"
            )
        if self.out is not None and self.out.exists() and not self.out.is_dir():
            raise ArgumentError(
                "{out} " + f"{self.out} is a file: give a folder (it is created if missing)",
                "out",
            )
        _check_max_errors(self.max_errors)

    @classmethod
    def of(cls, **given: Any) -> RunOptions:
        """RunOptions from keywords, an unknown one named."""
        known = {f.name for f in fields(cls)}
        for name in given:
            if name not in known:
                names = ", ".join(f.name for f in fields(cls))
                raise TypeError(f"unknown run option {name!r}; the options: {names}")
        return cls(**given)

    def slots(self, model: ModelConfig) -> int:
        """Requests in flight: as given, else what the model's server takes well."""
        if self.concurrency is not None:
            return self.concurrency
        return DEFAULT_LOCAL_CONCURRENCY if model.model == LOCAL else DEFAULT_CONCURRENCY

    def allowed_errors(self, cases: int) -> int:
        """How many API errors a run of `cases` accepts: a count as it is, a fraction of
        the cases rounded down."""
        if isinstance(self.max_errors, float):
            return int(self.max_errors * cases)
        return self.max_errors

    def describe_max_errors(self) -> str:
        m = self.max_errors
        return f"{m:.0%}" if isinstance(m, float) else str(m)


def _check_max_errors(max_errors: object) -> None:
    if isinstance(max_errors, bool) or not isinstance(max_errors, int | float):
        raise ArgumentError(
            "{max_errors} " + f"{max_errors!r}: give a count (5) or a fraction (0.1, 10%)",
            "max_errors",
        )
    if isinstance(max_errors, float) and not 0 <= max_errors <= 1:
        raise ArgumentError(
            "{max_errors} " + f"{max_errors}: a fraction is between 0 and 1", "max_errors"
        )
    if isinstance(max_errors, int) and max_errors < 0:
        raise ArgumentError("{max_errors} " + f"{max_errors}: a count is 0 or more", "max_errors")


def split_options(
    options: RunOptions | None, given: dict[str, Any]
) -> tuple[RunOptions, dict[str, Any]]:
    """RunOptions from `options` and those of the keywords `given` that are its fields;
    the other keywords (a configuration's) as they came."""
    names = {f.name for f in fields(RunOptions)}
    mine = {k: v for k, v in given.items() if k in names}
    base = options or RunOptions()
    return replace(base, **mine) if mine else base, {
        k: v for k, v in given.items() if k not in names
    }
