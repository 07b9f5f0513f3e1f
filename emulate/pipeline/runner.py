"""Running a probe: prepare the folder, drive the cases through the model, finish with
results.csv and a summary. `run_config` is the whole of it."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from emulate import redact
from emulate.analysis.results import write_results
from emulate.config import RunConfig
from emulate.cost import load_prices
from emulate.errors import storage_errors
from emulate.journal import JOURNAL, iter_journal
from emulate.local import server_for
from emulate.model import Model
from emulate.model_config import ModelConfig, api_key_for, server_label
from emulate.probe import check_grid, plan_cases
from emulate.record import cassette
from emulate.registry import get_probe

from .drive import Answers, Drive, Failures, Feed, case_builder, drive
from .finish import Ending, RunResult, finish
from .folder import again, default_out, has_rows, lock_out, prepare_out, write_run_json
from .options import RunOptions
from .progress import Progress
from .throttle import Throttle

__all__ = ["RunOptions", "RunResult", "Source", "execute", "run_config"]


@dataclass(frozen=True)
class Source:
    """Answers already written (a batch's results): the run asks no model."""

    answers: Answers
    server_suffix: str = ""  # on the journal's server label: a batch API's own price
    # The arguments that give these answers again (resuming after a full disk).
    args: str = ""
    missing: Callable[[], tuple[str, ...]] = tuple
    notes: Callable[[], tuple[str, ...]] = tuple


def run_config(
    config: RunConfig,
    out: str | Path | None = None,
    *,
    echo: Callable[[str], None] | None = print,
    source: Source | None = None,
    **options: Any,
) -> RunResult:
    """Run a configured probe into `out`; `options` are RunOptions' fields (record,
    replay, resume, retry_errors, max_errors, concurrency, progress, prices). See
    `emulate.run` for the keyword form that builds the configuration too."""
    return execute(config, RunOptions.of(out=out, **options), echo=echo, source=source)


def execute(
    config: RunConfig,
    options: RunOptions,
    *,
    echo: Callable[[str], None] | None = print,
    source: Source | None = None,
) -> RunResult:
    """Run `config` as `options` say. With `source` the answers come from it (matched
    to the cases by id), else from the model, live or from the replay cassette.

    Raises TooManyErrors (after writing results.csv) when more cases than
    `options.max_errors` end in an API error or timeout; the run stops asking as soon
    as that is certain."""
    probe = get_probe(config.probe)
    prices = load_prices(options.prices)  # a bad price file fails before any request
    config = replace(config, grid=check_grid(probe, config.grid))
    plan = plan_cases(
        probe, config.grid, config.n, config.seed, config.model.mode, config.skip_impossible
    )
    throttle = Throttle(options.slots(config.model))
    # A missing key is found before anything is written.
    api_key = None if source else api_key_for(config.model, replay=bool(options.replay))
    answers: contextlib.AbstractContextManager[Answers, Any] = (
        contextlib.nullcontext(source.answers)
        if source
        else _live(config.model, options, throttle, api_key or "")
    )
    server = server_label(config.model) + (source.server_suffix if source else "")
    out = options.out or default_out(config.probe)
    run = Drive(config, server, probe, throttle, options.replay)
    way_back = lambda err: _way_back(err, config, out, options, source)  # noqa: E731
    with storage_errors(way_back, [out, options.record]):
        order = _in_folder(run, plan, options, out, answers)
        rows = write_results(out, order, iter_journal(out / JOURNAL))
    ending = Ending(
        server, len(plan), prices,
        missing=source.missing() if source else (),
        notes=source.notes() if source else (),
        source_args=source.args if source else "",
    )  # fmt: skip
    return finish(config, probe, options, out, rows, ending, echo)


def _in_folder(
    run: Drive, plan: Any, options: RunOptions, out: Path,
    answers: contextlib.AbstractContextManager[Answers, Any],
) -> list[str]:  # fmt: skip
    """Prepare `out` and drive the plan's cases into its journal; the cases' order. A
    run that stops before its first row leaves no folder behind."""
    created = not out.exists()
    lock = None
    try:
        lock = lock_out(out)
        done_ids, kept_errors = prepare_out(out, run.config, options.resume, options.retry_errors)
        write_run_json(out, run.config, run.throttle.ceiling, len(plan))
        with case_builder(plan) as builder:  # before Progress starts a thread
            feed = Feed(plan, done_ids, builder)
            failed = Failures(kept_errors, options.allowed_errors(len(plan)))
            bar = Progress(len(plan), len(done_ids), enabled=options.progress)
            drive(run, feed, out, answers, failed, bar)
        return feed.order
    except BaseException:
        if created and not has_rows(out / JOURNAL):
            shutil.rmtree(out, ignore_errors=True)  # nothing was done: leave nothing behind
        raise
    finally:
        if lock is not None:
            lock.close()


@contextlib.contextmanager
def _live(
    config: ModelConfig, options: RunOptions, throttle: Throttle, api_key: str
) -> Iterator[Answers]:
    """A model on the wire: the server (started if it is the embedded one) and the
    cassette (recording or replaying) for the length of the run."""
    with server_for(config, options.replay, throttle.ceiling) as base_url:
        secrets = [api_key, *redact.url_secrets(base_url)]
        tape_path = options.record or options.replay
        with cassette(tape_path, "record" if options.record else "replay", secrets) as tape:
            yield Model(config, base_url, api_key, on_status=throttle.saw, tape=tape)


def _way_back(
    err: OSError, config: RunConfig, out: Path, options: RunOptions, source: Source | None
) -> str:
    """What a run stopped by its machine (a full disk, a removed folder) can do next."""
    record, replay = options.record, options.replay
    if record and err.filename and Path(err.filename).absolute() == record.absolute():
        return (
            "the journal keeps every finished case, but the cassette holds none of this "
            f"run's exchanges: free space, then record the run again: "
            f"{again(config, out, 'NEW_FOLDER')} --record {record}"
        )
    if not has_rows(out / JOURNAL):
        return "nothing was kept: free space (or choose another --out) and run again"
    if source:  # score the answers already paid for, not ask them live
        return (
            "every finished case is in the journal: free space (or restore the folder), then "
            f"finish the run with: emulate batch score {source.args} --config "
            f"{out / 'run.json'} --resume"
        )
    tape = f" --record {record}" if record else f" --replay {replay}" if replay else ""
    return (
        "every finished case is in the journal: free space (or restore the folder), then "
        f"finish the run with: {again(config, out)} --resume{tape}"
    )
