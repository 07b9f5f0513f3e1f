"""A run through OpenAI's Batch API, end to end, with the SDK: the run's requests
(`export_batch`) uploaded as batch input files, one batch each, polled until they
end, their output and error files downloaded into the run folder and scored as
`emulate batch score` scores any results file.

Every step is written to RUN/batch.json as soon as it is taken (the file ids, the
batch ids, their states, the downloads), so a stopped run (Ctrl-C, a --batch-wait
that ran out, a machine turned off) goes on with `resume=True` from where it was:
nothing is uploaded or submitted twice. A batch takes up to a day and costs half
a live run (the price table's `batch` fraction).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import openai

from emulate import redact
from emulate.config import DEFAULT_POLL_S, RunConfig, load_config
from emulate.errors import ArgumentError, BatchPending, EmulateError
from emulate.journal import JOURNAL, RUN_JSON, atomic_writer, write_atomic
from emulate.model_config import (
    CHAT_PATH,
    COMPLETION_PATH,
    LOCAL,
    OPENAI_URL,
    api_key_for,
    drop_placeholder_key,
    key_advice,
)
from emulate.pipeline.folder import default_out, lock_out, prepare_out
from emulate.pipeline.options import RunOptions, split_options
from emulate.pipeline.runner import RunResult
from emulate.probe import plan_cases
from emulate.registry import get_probe

from .files import BatchResults, batch_url, export_batch, write_requests
from .score import score_batch

BATCH_JSON = "batch.json"
REQUESTS = "requests.jsonl"
# OpenAI's limits on one batch's input file (platform.openai.com/docs/guides/batch),
# less a margin for the bytes: a bigger run becomes several batches.
MAX_REQUESTS = 50_000
MAX_BYTES = 190_000_000
ENDED = ("completed", "failed", "expired", "cancelled")


@dataclass(frozen=True)
class Part:
    """One batch: its input file in the run folder and what became of it."""

    requests_file: str
    requests: int
    round: int = 1  # 2, 3, ...: sent again for the cases earlier rounds left unanswered
    file_id: str | None = None
    batch_id: str | None = None
    status: str | None = None
    done: int = 0  # requests completed or failed, as the API counts them
    output_file_id: str | None = None
    error_file_id: str | None = None
    output: str | None = None  # the downloaded output file, in the run folder
    errors: str | None = None  # the downloaded error file
    problems: tuple[str, ...] = ()  # why a batch failed, in the API's words


@dataclass(frozen=True)
class State:
    endpoint: str
    server: str  # the base URL, credentials masked; "" for OpenAI's own
    parts: tuple[Part, ...] = ()

    @property
    def ended(self) -> bool:
        return all(p.status in ENDED for p in self.parts)

    def describe(self) -> str:
        total = sum(p.requests for p in self.parts)
        done = sum(p.done for p in self.parts)
        states = ", ".join(sorted({p.status or "not submitted" for p in self.parts}))
        ids = ", ".join(p.batch_id or "-" for p in self.parts)
        return f"batch {ids}: {states}, {done:,} of {total:,} requests done"


def submit_batch(
    config: RunConfig,
    out: str | Path | None = None,
    *,
    wait_s: float | None = None,
    poll_s: float = DEFAULT_POLL_S,
    echo: Callable[[str], None] | None = print,
    options: RunOptions | None = None,
    **given: Any,
) -> RunResult:
    """Run `config` through the Batch API at its base URL (OpenAI's by default): submit,
    wait (at most `wait_s` seconds, then raise BatchPending; None waits until the
    batches end), download, score. `options` (or its fields as keywords: resume,
    retry_errors, max_errors, progress, prices) as for a run: `resume=True` goes on with
    the batches saved in `out`; with `retry_errors` too, the cases they left failed or
    unanswered (an expired batch) go as a new round of batches, scored from it."""
    options, unknown = split_options(options, given | ({"out": out} if out is not None else {}))
    if unknown:
        raise TypeError(f"submit_batch() got unexpected keywords: {', '.join(unknown)}")
    _check(config, options, wait_s, poll_s)
    out = options.out or default_out(config.probe)
    state = _start(config, out, options.resume)
    service = _Service(config)

    def one_round(state: State, max_errors: int | float) -> RunResult:
        state = service.through(out, state, wait_s, poll_s, options.progress)
        failed = [p for p in state.parts if p.status == "failed"]
        if len(failed) == len(state.parts):
            raise EmulateError(f"the batch failed: {_problems(failed)}")
        files = [out / name for p in state.parts for name in (p.output, p.errors) if name]
        if not files:
            raise EmulateError(f"{state.describe()}: it wrote no results to score")
        scoring = replace(options, out=out, resume=True, retry_errors=False, max_errors=max_errors)
        result = score_batch(config, BatchResults(files, later_wins=True), echo=echo,
                             options=scoring)  # fmt: skip
        if echo:
            _notes(state, out, echo)
        return result

    # Before a retry the failures are expected: only the retried run is held to max_errors.
    result = one_round(state, 1.0 if options.retry_errors else options.max_errors)
    if options.retry_errors:
        again = _again(config, out, _load(out / BATCH_JSON))
        if again is not None:
            result = one_round(again, options.max_errors)
    return result


def _check(config: RunConfig, options: RunOptions, wait_s: float | None, poll_s: float) -> None:
    if config.model.model == LOCAL and config.model.base_url is None:
        raise EmulateError(
            "the embedded model has no batch API: write the requests with `emulate batch "
            "export` and run them with `emulate batch execute`"
        )
    if poll_s <= 0 or (wait_s is not None and wait_s < 0):
        raise EmulateError("--batch-wait and the poll interval are seconds, above 0")
    if options.record or options.replay:
        raise ArgumentError(
            "a batch is not recorded: drop {record} and {replay}", "record", "replay"
        )


class _Service:
    """The Batch API at the run's base URL, through the SDK, with the run's key only."""

    def __init__(self, config: RunConfig):
        api_key = api_key_for(config.model, replay=False)
        self.client = openai.OpenAI(
            api_key=api_key,
            # Never None: the SDK would take OPENAI_BASE_URL, and OPENAI_API_KEY with it.
            base_url=config.model.base_url or OPENAI_URL,
            timeout=config.model.timeout_s,
            max_retries=config.model.max_retries,
            http_client=openai.DefaultHttpxClient(event_hooks={"request": [drop_placeholder_key]}),
        )
        self.secrets = [api_key, *redact.url_secrets(config.model.base_url)]
        self.advice = key_advice(config.model, api_key)

    def through(
        self, out: Path, state: State, wait_s: float | None, poll_s: float, progress: bool
    ) -> State:
        """Submit what is not yet, wait, download what has ended: the state after."""
        lock = lock_out(out)
        try:
            with _api_errors(self.secrets, state.server or "api.openai.com", self.advice):
                state = _submit(self.client, out, state)
                state = _wait(self.client, out, state, wait_s, poll_s, progress)
                return _download(self.client, out, state)
        finally:
            lock.close()


def _notes(state: State, out: Path, echo: Callable[[str], None]) -> None:
    """What the last round's batches that did not complete left behind."""
    for p in state.parts:
        if p.status != "completed" and p.round == state.parts[-1].round:
            echo(f"note: batch {p.batch_id} {p.status}" + (f": {_problems([p])}"
                 if p.problems else "; its unanswered cases are not scored (send "
                 f"them again: emulate batch submit --config {out / RUN_JSON} "
                 "--resume --retry-errors)"))  # fmt: skip


def _again(config: RunConfig, out: Path, state: State) -> State | None:
    """A new round of batches for the cases without a good answer yet (their failed
    rows leave the journal), or None when every case has one."""
    lock = lock_out(out)
    try:
        done, _ = prepare_out(out, config, resume=True, retry_errors=True)
        probe = get_probe(config.probe)
        plan = plan_cases(probe, config.grid, config.n, config.seed, config.model.mode,
                          config.skip_impossible)  # fmt: skip
        again = max(p.round for p in state.parts) + 1
        name = f"requests-r{again}.jsonl"
        with atomic_writer(out / name) as f:
            todo = (c for c in plan if c.id not in done)
            count = asyncio.run(write_requests(f, probe, todo, config))
        if not count:
            (out / name).unlink()
            return None
        parts = tuple(replace(p, round=again) for p in _split(out, name))
        state = replace(state, parts=state.parts + parts)
        _save(out, state)
        return state
    finally:
        lock.close()


def _start(config: RunConfig, out: Path, resume: bool) -> State:
    """The saved state to go on from, or a new one: the run's requests exported into
    `out` and split into batches of what the API accepts."""
    saved = out / BATCH_JSON
    if saved.exists():
        if not resume:
            raise EmulateError(
                f"--out {out} holds submitted batches: pass --resume to wait for them and score "
                "them, or choose another --out"
            )
        previous = load_config(out / RUN_JSON)
        if previous.to_json() != config.to_json():
            raise EmulateError(
                f"--resume: {out} holds batches of another configuration; resume them with "
                f"--config {out / RUN_JSON}"
            )
        return _load(saved)
    if (out / JOURNAL).exists():
        raise EmulateError(f"--out {out} holds a run already: submit a batch into a new folder")
    export_batch(config, out / REQUESTS, out)
    endpoint = batch_url(CHAT_PATH if config.model.mode == "chat" else COMPLETION_PATH)
    state = State(endpoint, redact.url(config.model.base_url) or "", tuple(_split(out)))
    _save(out, state)
    return state


def _split(out: Path, name: str = REQUESTS) -> list[Part]:
    """The requests in out/name as one input file per batch, in order (several only
    when they pass the API's limits on requests or bytes per file)."""
    source = out / name
    with open(source, "rb") as src:
        count = sum(1 for line in src if line.strip())
    if count <= MAX_REQUESTS and source.stat().st_size <= MAX_BYTES:
        return [Part(name, count)]
    parts: list[Part] = []
    with contextlib.ExitStack() as stack, open(source, "rb") as src:
        size = 0
        for line in src:
            if not line.strip():
                continue
            if not parts or parts[-1].requests == MAX_REQUESTS or size + len(line) > MAX_BYTES:
                stack.close()  # the part before ends
                parts.append(Part(f"{source.stem}-{len(parts) + 1:03d}.jsonl", 0))
                f = stack.enter_context(open(out / parts[-1].requests_file, "wb"))
                size = 0
            f.write(line)
            size += len(line)
            parts[-1] = replace(parts[-1], requests=parts[-1].requests + 1)
    return parts


def _submit(client: openai.OpenAI, out: Path, state: State) -> State:
    """Upload and create what is not yet: each step saved before the next."""
    for i, part in enumerate(state.parts):
        if part.file_id is None:
            with open(out / part.requests_file, "rb") as f:
                uploaded = client.files.create(file=f, purpose="batch")
            part = replace(part, file_id=uploaded.id)
            state = _with(out, state, i, part)
        if part.batch_id is None:
            assert part.file_id is not None  # uploaded just above
            batch = client.batches.create(
                input_file_id=part.file_id,
                endpoint=state.endpoint,  # type: ignore[arg-type]
                completion_window="24h",
                metadata={"emulate_run": out.name[:512], "part": part.requests_file},
            )
            state = _with(out, state, i, replace(part, batch_id=batch.id, status=batch.status))
    return state


def _wait(
    client: openai.OpenAI,
    out: Path,
    state: State,
    wait_s: float | None,
    poll_s: float,
    progress: bool,
) -> State:
    """Poll until every batch has ended, or `wait_s` has passed (BatchPending)."""
    deadline = None if wait_s is None else time.monotonic() + wait_s
    bar = _Bar(sum(p.requests for p in state.parts), progress)
    try:
        while True:
            for i, part in enumerate(state.parts):
                if part.status not in ENDED:
                    state = _with(out, state, i, _polled(client, part))
            bar.show(state)
            if state.ended:
                return state
            if deadline is not None and time.monotonic() >= deadline:
                raise BatchPending(
                    f"{state.describe()}; it goes on at the server: come back with "
                    f"emulate batch submit --config {out / RUN_JSON} --out {out} --resume"
                )
            left = poll_s if deadline is None else deadline - time.monotonic()
            time.sleep(max(0.0, min(poll_s, left)))
    finally:
        bar.close()


def _polled(client: openai.OpenAI, part: Part) -> Part:
    try:
        batch = client.batches.retrieve(part.batch_id or "")
    except (openai.APIConnectionError, openai.InternalServerError) as err:
        # A day-long wait outlives a network blip: say so, and ask again next poll.
        print(f"warning: polling batch {part.batch_id}: {type(err).__name__}", file=sys.stderr)
        return part
    counts = batch.request_counts
    errors = (batch.errors.data if batch.errors else None) or []
    return replace(
        part,
        status=batch.status,
        done=counts.completed + counts.failed if counts else part.done,
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        problems=tuple(
            (e.code or "error") + (f" at line {e.line}" if e.line else "") + f": {e.message}"
            for e in errors
        ),
    )


def _download(client: openai.OpenAI, out: Path, state: State) -> State:
    """Each ended batch's output and error files, into the run folder, once."""
    for i, part in enumerate(state.parts):
        stem = Path(part.requests_file).stem.replace("requests", "")
        for remote, local, name in (
            (part.output_file_id, part.output, f"output{stem}.jsonl"),
            (part.error_file_id, part.errors, f"errors{stem}.jsonl"),
        ):
            if remote and not local:
                with (
                    client.files.with_streaming_response.content(remote) as response,
                    atomic_writer(out / name) as f,
                ):
                    for chunk in response.iter_text():
                        f.write(chunk)
                if name.startswith("output"):
                    part = replace(part, output=name)
                else:
                    part = replace(part, errors=name)
                state = _with(out, state, i, part)
    return state


def _problems(parts: list[Part]) -> str:
    said = [x for p in parts for x in p.problems]
    return "; ".join(said[:3]) + (f" (and {len(said) - 3} more)" if len(said) > 3 else "") or (
        "the server gave no reason"
    )


@contextlib.contextmanager
def _api_errors(secrets: list[str], where: str, key_advice: str) -> Iterator[None]:
    """The Batch API's refusals as one line each, naming what to do."""
    try:
        yield
    except openai.AuthenticationError:
        raise EmulateError(
            f"the server at {where} refused the request (HTTP 401): {key_advice}"
        ) from None
    except openai.NotFoundError as err:
        raise EmulateError(
            redact.text(
                f"HTTP 404 from {where}: {err.message}; a server without a batch API can run the "
                "requests: `emulate batch export`, then `emulate batch execute`",
                secrets,
            )
        ) from None
    except openai.APIStatusError as err:
        raise EmulateError(redact.text(f"the batch API at {where}: HTTP {err.status_code}: "
                                       f"{err.message}", secrets)) from None  # fmt: skip
    except openai.APIConnectionError as err:
        raise EmulateError(redact.text(f"cannot reach the batch API at {where}: {err}; check "
                                       "--base-url, then --resume", secrets)) from None  # fmt: skip


def _with(out: Path, state: State, i: int, part: Part) -> State:
    """`state` with part i replaced, saved at once."""
    state = replace(state, parts=state.parts[:i] + (part,) + state.parts[i + 1 :])
    _save(out, state)
    return state


def _save(out: Path, state: State) -> None:
    write_atomic(out / BATCH_JSON, json.dumps(asdict(state), indent=2) + "\n")


def _load(path: Path) -> State:
    try:
        data = json.loads(path.read_text())
        parts = tuple(Part(**{**p, "problems": tuple(p.get("problems", ()))})
                      for p in data["parts"])  # fmt: skip
        return State(data["endpoint"], data["server"], parts)
    except (ValueError, KeyError, TypeError) as err:
        raise EmulateError(f"{path}: not a batch state emulate wrote ({err!r})") from None


class _Bar:
    """Requests done across the batches: a bar on a terminal, else a line when the
    count or a state changes (and every ten minutes, to show it is alive)."""

    QUIET_S = 600.0  # a line at least this often while nothing changes

    def __init__(self, total: int, enabled: bool):
        self.enabled, self.bar = enabled, None
        self.said, self.said_at = "", 0.0
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=sys.stderr, unit="request")

    def show(self, state: State) -> None:
        if self.bar is not None:
            self.bar.n = sum(p.done for p in state.parts)
            self.bar.set_postfix_str(state.describe().split(": ")[1].split(",")[0])
        elif self.enabled:  # a log: a line when something changed (a day's wait is long)
            line = state.describe()
            if line != self.said or time.monotonic() - self.said_at >= self.QUIET_S:
                print(line, file=sys.stderr, flush=True)
                self.said, self.said_at = line, time.monotonic()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
