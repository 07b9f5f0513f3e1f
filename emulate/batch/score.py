"""Scoring a batch's results: the run's cases matched to the answers by custom_id and
journaled as a live run's are; no model is asked."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from emulate.config import RunConfig
from emulate.cost import BATCH_SUFFIX
from emulate.errors import EmulateError
from emulate.pipeline.options import RunOptions, split_options
from emulate.pipeline.runner import RunResult, Source, execute
from emulate.probe import plan_cases
from emulate.registry import get_probe

from .files import BatchResults


def score_batch(
    config: RunConfig,
    results: Sequence[str | Path] | BatchResults,
    out: str | Path | None = None,
    *,
    echo: Callable[[str], None] | None = print,
    options: RunOptions | None = None,
    **given: Any,
) -> RunResult:
    """Score `results` (a batch's output file, and its error file if any) against the
    run `config` describes, into `out`. `options` (or its fields as keywords: resume,
    max_errors, progress, prices) as for a run; a cassette and retry_errors have no
    place here."""
    run_options, unknown = split_options(options, given | ({"out": out} if out else {}))
    if unknown:
        raise TypeError(f"score_batch() got unexpected keywords: {', '.join(unknown)}")
    if run_options.record or run_options.replay or run_options.retry_errors:
        raise EmulateError(
            "a batch's results are scored as they are: drop record, replay and retry_errors"
        )
    probe = get_probe(config.probe)
    if probe.turns_see_answers:
        raise EmulateError(
            f"{config.probe} sends each turn with the answers before it, so no batch holds "
            "its requests: run it live"
        )
    answers = results if isinstance(results, BatchResults) else BatchResults(results)
    plan = plan_cases(
        probe, config.grid, config.n, config.seed, config.model.mode, config.skip_impossible
    )
    answers.check({c.id for c in plan}, config.model.mode)  # before anything is written
    source = Source(
        answers,
        server_suffix=BATCH_SUFFIX if answers.from_batch_api else "",
        args=" ".join(str(p) for p in answers.paths),
        missing=lambda: tuple(answers.missing),
        notes=lambda: tuple(filter(None, [answers.note(config.model.request_model)])),
    )
    return execute(config, run_options, echo=echo, source=source)
