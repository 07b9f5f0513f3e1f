"""Running a probe: cases -> model -> scores -> journal, then results.csv and a summary."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from emulate import redact
from emulate.analysis.results import RowTable, write_results
from emulate.analysis.summary import summarise as summarise_rows
from emulate.analysis.summary import table
from emulate.batch.files import BatchResults, NotInResults
from emulate.case import Answer, Case, Row, Score
from emulate.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LOCAL_CONCURRENCY,
    DEFAULT_MAX_ERRORS,
    RunConfig,
    load_config,
)
from emulate.cost import BATCH_SUFFIX, Cost, Usage, cost, load_prices, usage
from emulate.errors import EmulateError, ReplayMiss, TooManyErrors, storage_errors
from emulate.journal import JOURNAL, RUN_JSON, JournalWriter, atomic_writer, iter_journal
from emulate.model import Model
from emulate.model_config import LOCAL, NO_KEY, ModelConfig, api_key_for, server_label
from emulate.probe import CasePlan, Probe, check_grid, plan_cases
from emulate.record import cassette
from emulate.registry import get_probe

from .folder import default_out, lock_out, write_run_json

# Answers up to this long (all turns together) are scored on the event loop: scorers
# take well under a millisecond on them, and a thread hop costs more than the scoring.
INLINE_SCORING_CHARS = 4000


@dataclass(frozen=True)
class RunResult:
    out: Path
    config: RunConfig
    total: int
    done: int
    correct: int
    errors: int
    summary: str
    usage: Usage | None = None
    cost: Cost | None = None
    missing: tuple[str, ...] = ()  # cases a batch's results did not answer: not scored

    @property
    def accuracy(self) -> float:
        return self.correct / self.done if self.done else float("nan")


def run_config(
    config: RunConfig,
    out: str | Path | None = None,
    *,
    record: str | Path | None = None,
    replay: str | Path | None = None,
    resume: bool = False,
    retry_errors: bool = False,
    max_errors: int | float = DEFAULT_MAX_ERRORS,
    concurrency: int | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = print,
    prices: str | Path | None = None,
    batch_results: Sequence[str | Path] | BatchResults | None = None,
) -> RunResult:
    """Run a configured probe; see `emulate.run` for the keyword form. With
    `batch_results` (a batch's output file, and its error file if any) nothing is asked:
    the answers come from those files, matched to the cases by custom_id.

    Raises TooManyErrors (after writing results.csv) when more cases than `max_errors`
    (a count, or a fraction of the run's cases) end in an API error or timeout; the
    run stops asking as soon as that is certain."""
    probe = get_probe(config.probe)
    price_table = load_prices(prices)  # a bad --prices file fails before any request
    config = replace(config, grid=check_grid(probe, config.grid))
    if record and replay:
        raise EmulateError("--record and --replay exclude each other: pick one")
    if replay and not Path(replay).is_file():
        raise EmulateError(f"--replay {replay}: no such cassette; record one with --record")
    if retry_errors and not resume:
        raise EmulateError("--retry-errors asks again for a run's failed cases: add --resume")
    if batch_results and (record or replay or retry_errors):
        raise EmulateError(
            "--batch-results scores the answers a batch gave: "
            "drop --record, --replay and --retry-errors"
        )
    api_key = NO_KEY if batch_results else api_key_for(config.model, replay=bool(replay))
    if concurrency is None:
        local = config.model.model == LOCAL
        concurrency = DEFAULT_LOCAL_CONCURRENCY if local else DEFAULT_CONCURRENCY
    if concurrency < 1:
        raise EmulateError(f"--concurrency {concurrency}: must be at least 1")
    if batch_results and probe.turns_see_answers:  # whatever this machine has
        raise EmulateError(
            f"{config.probe} sends each turn with the answers before it, so no batch holds "
            "its requests: run it live"
        )
    plan = plan_cases(
        probe, config.grid, config.n, config.seed, config.model.mode, config.skip_impossible
    )
    allowed = _allowed_errors(max_errors, len(plan))
    results = None
    if batch_results:
        results = (batch_results if isinstance(batch_results, BatchResults)
                   else BatchResults(batch_results))  # fmt: skip
        results.check({c.id for c in plan}, config.model.mode)  # before anything is written
    # The journal's server label, which reports price by: a batch API's answers say so.
    server = server_label(config.model)
    if results and results.from_batch_api:
        server += BATCH_SUFFIX

    out = Path(out) if out is not None else default_out(config.probe)
    if out.exists() and not out.is_dir():
        raise EmulateError(f"--out {out} is a file: give a folder (it is created if missing)")
    created = not out.exists()
    lock = None
    with storage_errors(
        lambda err: _way_back(err, config, out, record, replay, batch_results), [out, record]
    ):
        try:
            lock = lock_out(out)
            done_ids, kept_errors = prepare_out(out, config, resume, retry_errors)
            write_run_json(out, config, concurrency, len(plan))
            feed = _Feed(plan, done_ids)
            failed = _Failures(kept_errors, allowed)
            bar = Progress(len(plan), len(done_ids), enabled=progress)
            source = (
                contextlib.nullcontext(lambda _: results)
                if results
                else _live(config.model, record, replay, concurrency, api_key)
            )
            _ask_all(config, server, probe, feed, out, source, replay, concurrency, failed, bar)
        except BaseException:
            if created and not _has_rows(out / JOURNAL):
                shutil.rmtree(out, ignore_errors=True)  # nothing was done: leave nothing behind
            raise
        finally:
            if lock is not None:
                lock.close()
        rows = write_results(out, feed.order, iter_journal(out / JOURNAL))
    used = _usage(rows, out / JOURNAL)
    spent = cost(
        config.model.request_model,
        server,
        used.prompt_tokens,
        used.completion_tokens,
        price_table,
    )
    result = RunResult(
        out=out,
        config=config,
        total=len(plan),
        done=len(rows),
        correct=sum(map(bool, rows.column("correct"))),
        errors=sum(map(bool, rows.column("error"))),
        summary=summarise(probe, config, rows),
        usage=used,
        cost=spent,
        missing=tuple(results.missing) if results else (),
    )
    if echo:
        echo(f"{config.probe} on {config.model.model} ({config.model.mode}), run {config.run_id}")
        echo(result.summary)
        for note in probe.notes(rows):
            echo(f"note: {note}")
        echo(f"tokens: {used.describe()}; cost {spent.describe()}")
        if results and (said := results.note(config.model.request_model)):
            echo(f"note: {said}")
        if result.missing:
            echo(
                f"{len(result.missing)} of {result.total} cases have no answer in the results "
                f"(the first: {result.missing[0]}); score them once you have them with "
                f"{again(config, out)} --resume --batch-results "
                "FILE.jsonl, or ask them live: the same without --batch-results"
            )
        echo(f"wrote {out / 'results.csv'} and {out / JOURNAL}")
    if result.errors > allowed:
        limit = f"{max_errors:.0%}" if isinstance(max_errors, float) else str(max_errors)
        unasked = result.total - result.done
        raise TooManyErrors(
            f"{result.errors} of {result.total} cases failed with API errors or timeouts "
            f"(more than --max-errors {limit})"
            + (f"; {unasked} were not asked" if unasked else "")
            + f". Retry them: {again(config, out)} --resume --retry-errors"
            + (" (live; add --batch for a new batch)" if results else ""),
            result,
        )
    return result


def _allowed_errors(max_errors: int | float, cases: int) -> int:
    """How many API errors a run of `cases` accepts: a count as it is, a fraction of
    the cases rounded down."""
    if isinstance(max_errors, bool) or not isinstance(max_errors, int | float):
        raise EmulateError(
            f"--max-errors {max_errors!r}: give a count (5) or a fraction (0.1, 10%)"
        )
    if isinstance(max_errors, float):
        if not 0 <= max_errors <= 1:
            raise EmulateError(f"--max-errors {max_errors}: a fraction is between 0 and 1")
        return int(max_errors * cases)
    if max_errors < 0:
        raise EmulateError(f"--max-errors {max_errors}: a count is 0 or more")
    return max_errors


class _Failures:
    """API errors so far; past `allowed` the run stops asking."""

    def __init__(self, count: int, allowed: int):
        self.count, self.allowed = count, allowed

    def add(self, failed: bool) -> None:
        self.count += failed
        if self.count > self.allowed:
            raise _Stop


class _Stop(Exception):
    pass


@contextlib.contextmanager
def _live(
    config: ModelConfig,
    record: str | Path | None,
    replay: str | Path | None,
    concurrency: int,
    api_key: str,
) -> Iterator[Callable[[Throttle], Model]]:
    """A model on the wire: the server (started if it is the embedded one) and the
    cassette (recording or replaying) for the length of the run."""
    with server_for(config, replay, concurrency) as base_url:
        secrets = [api_key, *redact.url_secrets(base_url)]
        with cassette(record or replay, "record" if record else "replay", secrets) as tape:
            yield lambda throttle: Model(config, base_url, api_key, on_status=throttle.saw,
                                         tape=tape)  # fmt: skip


def _ask_all(
    config: RunConfig,
    server: str,
    probe: Probe,
    feed: _Feed,
    out: Path,
    source: contextlib.AbstractContextManager[Callable[[Throttle], Model | BatchResults]],
    replay: str | Path | None,
    concurrency: int,
    failed: _Failures,
    bar: Progress,
) -> None:
    journal = JournalWriter(out / JOURNAL)
    throttle = Throttle(concurrency)

    def finish(case: Case, answer: Answer, score: Score) -> None:
        journal.append(_row(config, server, case, answer, score))
        bar.update(score.correct, bool(answer.error))
        failed.add(bool(answer.error))

    try:
        with source as connect, _fewer_collections():
            asyncio.run(_drive(feed, probe, connect(throttle), finish, throttle, replay))
    except _Stop:
        pass  # run_config reports it, after writing results.csv
    finally:
        bar.close()
        journal.close()


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Each request allocates hundreds of short-lived objects; at the collector's
    default (a pass every 700 allocations, rescanning the run's cases on every full
    pass) collection took about a tenth of a fast run (bench/scale.py). What exists
    now (the cases, the modules) is frozen out of the scans; passes come less often."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def _has_rows(journal: Path) -> bool:
    """Whether a journal holds a whole row; quietly (a torn last line is no row, and
    resuming says so)."""
    try:
        with open(journal, "rb") as f:
            return f.readline().endswith(b"\n")
    except OSError:
        return False


def again(config: RunConfig, out: Path, into: Path | str | None = None) -> str:
    """The command that repeats the run in `out` (into `into`, by default the same
    folder), naming its key variable: run.json keeps none."""
    key = f" --api-key-env {config.model.api_key_env}" if config.model.api_key_env else ""
    return f"emulate run --config {out / RUN_JSON} --out {into or out}{key}"


def _way_back(
    err: OSError,
    config: RunConfig,
    out: Path,
    record: str | Path | None,
    replay: str | Path | None,
    batch_results: Sequence[str | Path] | BatchResults | None,
) -> str:
    """What a run stopped by its machine (a full disk, a removed folder) can do next."""
    if record and err.filename and Path(err.filename).absolute() == Path(record).absolute():
        return (
            "the journal keeps every finished case, but the cassette holds none of this "
            f"run's exchanges: free space, then record the run again: "
            f"{again(config, out, 'NEW_FOLDER')} --record {record}"
        )
    if not _has_rows(out / JOURNAL):
        return "nothing was kept: free space (or choose another --out) and run again"
    tape = f" --record {record}" if record else f" --replay {replay}" if replay else ""
    if batch_results:  # score the answers already paid for, not ask them live
        files = batch_results.paths if isinstance(batch_results, BatchResults) else batch_results
        tape = " --batch-results " + " ".join(str(p) for p in files)
    return (
        "every finished case is in the journal: free space (or restore the folder), then "
        f"finish the run with: {again(config, out)} --resume{tape}"
    )


def summarise(probe: Probe, config: RunConfig | None, rows: Sequence[dict[str, Any]]) -> str:
    """Accuracy overall, along each grid axis that varies and the probe's own axes."""
    if not rows:
        return "no cases"
    axes = [k for k, v in config.grid.items() if len(v) > 1] if config else []
    return table(summarise_rows(rows, axes + list(probe.summary_axes), probe.summary_means))


def prepare_out(
    out: Path, config: RunConfig, resume: bool, retry_errors: bool
) -> tuple[set[str], int]:
    """The ids already done in `out`, and how many of them ended in an API error, after
    checking that resuming is safe. With `retry_errors` the failed cases' rows leave
    the journal (they are asked again), so every case keeps exactly one row."""
    journal = out / JOURNAL
    if not resume:
        if journal.exists():
            raise EmulateError(
                f"{out} already holds a run's journal: pass --resume to finish it, "
                "or choose another --out"
            )
        return set(), 0
    if not journal.exists():
        return set(), 0
    previous = load_config(out / RUN_JSON) if (out / RUN_JSON).exists() else None
    if previous is not None and previous.to_json() != config.to_json():
        diff = [k for k, v in config.to_json().items() if previous.to_json().get(k) != v]
        raise EmulateError(
            f"--resume: {out} holds a run with another configuration (differs in: "
            f"{', '.join(diff)}); resume it with --config {out / RUN_JSON}, or choose another --out"
        )
    done: set[str] = set()
    errors = 0
    if retry_errors:  # the journal is rewritten without its failed rows, in a stream
        with atomic_writer(journal) as f:
            for r in iter_journal(journal, repair=True):
                if not r["answer"].get("error"):
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
                    done.add(r["case"]["id"])
        return done, 0
    for r in iter_journal(journal, repair=True):
        done.add(r["case"]["id"])
        errors += bool(r["answer"].get("error"))
    return done, errors


def _usage(rows: RowTable, journal: Path) -> Usage:
    """Token usage from results.csv's columns; the journal is read again only when a
    server left counts out (they are then estimated from the prompts and answers)."""
    ok = [not e for e in rows.column("error")]
    prompt, completion = rows.column("prompt_tokens"), rows.column("completion_tokens")
    if any(o and (p is None or c is None) for o, p, c in zip(ok, prompt, completion, strict=True)):
        return usage(iter_journal(journal))
    return Usage(
        sum(p for o, p in zip(ok, prompt, strict=True) if o),
        sum(c for o, c in zip(ok, completion, strict=True) if o),
        len(rows),
        0,
    )


@contextlib.contextmanager
def server_for(config: ModelConfig, replay: str | Path | None, slots: int) -> Iterator[str | None]:
    """The base URL to talk to, starting the embedded server when it is needed."""
    if config.model != LOCAL or config.base_url is not None:
        yield config.base_url
    elif replay:
        # A replay never reaches a server; this address is only matched, never dialled.
        yield "http://127.0.0.1:8080/v1"
    else:
        from emulate.local import local_server

        print("starting the embedded model (Gemma 3 270M on llama-server)…", file=sys.stderr)
        with local_server(slots=slots, seed=config.seed) as url:
            yield url


def score_case(probe: Probe, case: Case, answer: Answer) -> Score:
    """The probe's score; a bug in a scorer becomes a scorer_error row, not a lost run."""
    try:
        return probe.grade(case, answer)
    except Exception as err:  # noqa: BLE001 - a scorer bug must not lose the answer
        return Score(False, {}, "scorer_error", f"{type(err).__name__}: {err}")


def _row(
    config: RunConfig, server: str, case: Case, answer: Answer, score: Score
) -> dict[str, Any]:
    return Row(
        run_id=config.run_id,
        model=config.model.request_model,
        server=server,
        mode=config.model.mode,
        case=case,
        answer=answer,
        score=score,
    ).to_json()


class _Feed:
    """The run's cases for the workers, each taken once, in order, skipping those
    already done. Chunks are built on a thread one ahead of need, so building (a
    sandbox run for programs) never holds up the requests in flight. `order` keeps
    every id passed, done or not: results.csv's row order."""

    def __init__(self, plan: CasePlan, done: set[str]):
        self._chunks, self._done = plan.chunks(), done
        self._ready: deque[Case] = deque()
        self._ahead: asyncio.Future[list[Case] | None] | None = None
        self._lock: asyncio.Lock | None = None
        self._ended = False
        self.order: list[str] = []

    def _build_next(self) -> asyncio.Future[list[Case] | None]:
        return asyncio.ensure_future(asyncio.to_thread(next, self._chunks, None))

    async def take(self) -> Case | None:
        """The next case to ask, or None when there are none left."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        while not self._ready:
            async with self._lock:
                if self._ready:
                    break
                if self._ended:
                    return None
                chunk = await (self._ahead or self._build_next())
                if chunk is None:
                    self._ended, self._ahead = True, None
                    return None
                self._ahead = self._build_next()
                self.order += (c.id for c in chunk)
                self._ready.extend(c for c in chunk if c.id not in self._done)
        return self._ready.popleft()


async def _drive(
    feed: _Feed,
    probe: Probe,
    model: Model | BatchResults,
    finish: Callable[[Case, Answer, Score], None],
    throttle: Throttle,
    replay: str | Path | None,
) -> None:
    async def worker() -> None:
        while (case := await feed.take()) is not None:
            try:
                async with throttle:
                    answer = await probe.converse(case, model.ask_for(case))
            except NotInResults:
                continue  # counted by the results; reported when the run ends
            except ReplayMiss:
                cells = " ".join(f"{k}={v}" for k, v in case.params.items())
                raise ReplayMiss(
                    f"replay: {replay} has no recorded answer for case {case.id} "
                    f"({cells}, seed {case.seed}); record it with --record"
                ) from None
            if case.top_logprobs and answer.error is None and not answer.logprobs:
                # Scoring missing logprobs as zero mass would be a silent lie.
                raise EmulateError(
                    f"{model.source} returned no logprobs, "
                    f"and {case.probe} case {case.id} needs them; use a server that returns "
                    "them (llama-server, vLLM, OpenAI chat models) or another task"
                )
            if sum(map(len, answer.turns or (answer.text,))) <= INLINE_SCORING_CHARS:
                score = score_case(probe, case, answer)
            else:
                # Off the event loop: a long answer must not hold up the requests in flight.
                score = await asyncio.to_thread(score_case, probe, case, answer)
            finish(case, answer, score)

    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(throttle.ceiling):
                tg.create_task(worker())
    except* _Stop:
        raise _Stop from None
    except* Exception as group:
        # The first failure stops the run; show it plainly, not as a group.
        first = next((e for e in group.exceptions if isinstance(e, EmulateError)), None)
        raise (first or group.exceptions[0]) from None
    finally:
        await model.aclose()


class Throttle:
    """At most `limit` cases in flight. While 429s keep coming the limit halves (at
    most once a second); each `limit` answers without one raise it by one, back up to
    the --concurrency ceiling: additive increase, multiplicative decrease, as TCP does.
    The SDK's own retries honour Retry-After; this keeps a run from hammering a
    server that is already refusing it."""

    def __init__(self, ceiling: int):
        self.ceiling = self.limit = ceiling
        self.in_flight = 0
        self._calm_at = 0.0
        self._ok = 0
        self._cond: asyncio.Condition | None = None

    def saw(self, status: int) -> None:
        if status == 429:
            now = time.monotonic()
            if now >= self._calm_at:
                self.limit = max(1, self.limit // 2)
                self._calm_at = now + 1.0
            self._ok = 0
        elif status < 400 and self.limit < self.ceiling:
            self._ok += 1
            if self._ok >= self.limit:
                self.limit += 1
                self._ok = 0

    async def __aenter__(self) -> None:
        if self._cond is None:
            self._cond = asyncio.Condition()
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1

    async def __aexit__(self, *exc: object) -> None:
        assert self._cond is not None
        async with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()


class Progress:
    """done / total, accuracy so far and errors, on stderr.

    A bar on a terminal; a line every 30 s when stderr is a file (a log stays readable).
    """

    def __init__(self, total: int, done: int, enabled: bool = True, scoring: bool = True):
        self.total, self.done, self.correct, self.errors = total, done, 0, 0
        self.scoring = scoring  # False: requests sent, not cases scored (no accuracy)
        self.scored = 0
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last = time.monotonic()
        self.bar = None
        if enabled and self.tty:
            from tqdm import tqdm

            unit = "case" if scoring else "request"
            self.bar = tqdm(total=total, initial=done, file=sys.stderr, unit=unit)

    def update(self, correct: bool, error: bool) -> None:
        self.done += 1
        self.scored += 1
        self.correct += bool(correct)
        self.errors += error
        status = f"errors {self.errors}"
        if self.scoring:
            status = f"acc {self.correct / self.scored:.0%} {status}"
        if self.bar is not None:
            self.bar.set_postfix_str(status, refresh=False)
            self.bar.update(1)
        elif self.enabled and (time.monotonic() - self.last > 30 or self.done == self.total):
            self.last = time.monotonic()
            unit = "cases" if self.scoring else "requests"
            print(f"{self.done}/{self.total} {unit}, {status}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
