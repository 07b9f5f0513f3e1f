"""Driving a run's cases through an answer source: each case taken once, asked within
the throttle, scored, and its row appended to the journal."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from emulate.case import Answer, Case, Row, Score
from emulate.config import RunConfig
from emulate.errors import EmulateError, ReplayMiss
from emulate.journal import JOURNAL, JournalWriter
from emulate.probe import Ask, CasePlan, ChunkJob, Probe, score_case
from emulate.registry import get_probe

from .progress import Progress
from .throttle import Throttle

# Answers up to this long (all turns together) are scored on the event loop: scorers
# take well under a millisecond on them, and a thread hop costs more than the scoring.
INLINE_SCORING_CHARS = 4000


class Answers(Protocol):
    """Where a run's answers come from: a model on the wire (emulate.model.Model), or
    files that already hold them (a batch's results)."""

    @property
    def source(self) -> str:
        """Named in messages: "http://…", "the batch results in …"."""
        ...

    def ask_for(self, case: Case) -> Ask: ...

    async def aclose(self) -> None: ...


class Unanswered(Exception):
    """The answer source holds no answer for this case: it is left unscored (counted
    and reported by the source)."""


class Stop(Exception):
    """More API errors than the run accepts: stop asking (results.csv is still written)."""


class Failures:
    """API errors so far; past `allowed` the run stops asking."""

    def __init__(self, count: int, allowed: int):
        self.count, self.allowed = count, allowed

    def add(self, failed: bool) -> None:
        self.count += failed
        if self.count > self.allowed:
            raise Stop


@dataclass(frozen=True)
class Drive:
    """What the workers share for one run."""

    config: RunConfig
    server: str  # the journal's server label, which reports price by
    probe: Probe
    throttle: Throttle
    replay: Path | None  # named when a replay misses


def drive(
    run: Drive, feed: Feed, out: Path, source: contextlib.AbstractContextManager[Answers, Any],
    failed: Failures, bar: Progress,
) -> None:  # fmt: skip
    """Ask every case the feed gives, journaling each row as it is scored; stops early
    (quietly) when `failed` says so."""
    journal = JournalWriter(out / JOURNAL)

    def finish(case: Case, answer: Answer, score: Score) -> None:
        journal.append(_row(run, case, answer, score))
        bar.update(score.correct, bool(answer.error))
        failed.add(bool(answer.error))

    try:
        with source as answers, _fewer_collections():
            asyncio.run(_work(run, feed, answers, finish))
    except Stop:
        pass  # the run's finish reports it, after writing results.csv
    finally:
        bar.close()
        journal.close()


def _row(run: Drive, case: Case, answer: Answer, score: Score) -> Row:
    model = run.config.model
    return Row(
        run_id=run.config.run_id,
        model=model.request_model,
        server=run.server,
        mode=model.mode,
        case=case,
        answer=answer,
        score=score,
    )


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


class Feed:
    """The run's cases for the workers, each taken once, in order, skipping those
    already done. Chunks are built one ahead of need, so building (a sandbox run for
    programs) never holds up the requests in flight: on a thread, or with `builder`
    (a one-process pool, for probes whose cases are arithmetic alone) on another
    core. `order` keeps every id passed, done or not: results.csv's row order."""

    def __init__(self, plan: CasePlan, done: set[str], builder: Executor | None = None):
        self._plan, self._done, self._builder = plan, done, builder
        self._chunks = plan.chunks()
        self._jobs = plan.jobs() if builder is not None else None
        self._ready: deque[Case] = deque()
        self._ahead: asyncio.Future[list[Case] | None] | None = None
        self._lock: asyncio.Lock | None = None
        self._ended = False
        self.order: list[str] = []

    def _build_next(self) -> asyncio.Future[list[Case] | None]:
        if self._jobs is None:
            return asyncio.ensure_future(asyncio.to_thread(next, self._chunks, None))
        job = next(self._jobs, None)
        if job is None:
            done: asyncio.Future[list[Case] | None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._builder, _build_chunk, self._plan.probe.name, job)

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


def _build_chunk(probe: str, job: ChunkJob) -> list[Case]:
    """In the builder process: the chunk's cases, as the run's own process builds them."""
    return job.build(get_probe(probe))


@contextlib.contextmanager
def case_builder(plan: CasePlan) -> Iterator[Executor | None]:
    """A forked process that builds the plan's cases on another core, where that pays:
    a probe whose cases are arithmetic alone, a plan of several chunks, a machine with
    more than one core and fork. Made before the run starts any thread (fork copies
    only the thread that calls it), and stopped when the run ends."""
    usable = (
        plan.probe.pure_build
        and plan.items is None
        and len(plan) > 2 * plan.chunk
        and (os.cpu_count() or 1) > 1
        and "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
    )
    if not usable:
        yield None
        return
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    pool.submit(int).result()  # fork now, while this is the only thread
    try:
        yield pool
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


async def _work(
    run: Drive, feed: Feed, answers: Answers, finish: Callable[[Case, Answer, Score], None]
) -> None:
    async def worker() -> None:
        while (case := await feed.take()) is not None:
            answer = await _ask(run, case, answers)
            if answer is None:
                continue  # counted by the source; reported when the run ends
            if sum(map(len, answer.turns or (answer.text,))) <= INLINE_SCORING_CHARS:
                score = score_case(run.probe, case, answer)
            else:
                # Off the event loop: a long answer must not hold up the requests in flight.
                score = await asyncio.to_thread(score_case, run.probe, case, answer)
            finish(case, answer, score)

    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(run.throttle.ceiling):
                tg.create_task(worker())
    except* Stop:
        raise Stop from None
    except* Exception as group:
        # The first failure stops the run; show it plainly, not as a group.
        first = next((e for e in group.exceptions if isinstance(e, EmulateError)), None)
        raise (first or group.exceptions[0]) from None
    finally:
        await answers.aclose()


async def _ask(run: Drive, case: Case, answers: Answers) -> Answer | None:
    try:
        async with run.throttle:
            answer = await run.probe.converse(case, answers.ask_for(case))
    except Unanswered:
        return None
    except ReplayMiss:
        cells = " ".join(f"{k}={v}" for k, v in case.params.items())
        raise ReplayMiss(
            f"replay: {run.replay} has no recorded answer for case {case.id} "
            f"({cells}, seed {case.seed}); record it with --record"
        ) from None
    if case.top_logprobs and answer.error is None and not answer.logprobs:
        # Scoring missing logprobs as zero mass would be a silent lie.
        raise EmulateError(
            f"{answers.source} returned no logprobs, "
            f"and {case.probe} case {case.id} needs them; use a server that returns "
            "them (llama-server, vLLM, OpenAI chat models) or another task"
        )
    return answer
