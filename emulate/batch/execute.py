"""Executing a batch file against any OpenAI-compatible server (llama-server, a vLLM
endpoint without a batch API, OpenAI itself at full price): each request posted as
the live path posts one, concurrently, and its result written as a line of OpenAI's
Batch API output format, so the file scores with `emulate batch score`.

Resumable: the output file is appended to as answers arrive; run again with
`resume=True` and only the requests without a successful result are sent (a failed
one's line is dropped and it is asked again).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from emulate.case import Answer
from emulate.errors import ArgumentError, EmulateError, open_file, storage_errors
from emulate.journal import JournalWriter, atomic_writer
from emulate.local import server_for
from emulate.model import Model
from emulate.model_config import (
    CHAT_PATH,
    COMPLETION_PATH,
    LOCAL,
    LOCAL_MODEL_NAME,
    ModelConfig,
    api_key_for,
    default_base_url,
)
from emulate.pipeline.options import RunOptions
from emulate.pipeline.progress import Progress
from emulate.pipeline.throttle import Throttle

from .files import EXECUTED, batch_url

# The endpoints a batch file of emulate's may name, and the path under the base URL.
URLS = {batch_url(p): p for p in (CHAT_PATH, COMPLETION_PATH)}


@dataclass(frozen=True)
class Request:
    custom_id: str
    path: str  # under the base URL
    body: dict[str, Any]


@dataclass(frozen=True)
class Executed:
    path: Path
    requests: int
    asked: int  # sent by this call
    errors: int  # of those, how many have no answer (an error status, a timeout)

    def describe(self) -> str:
        failed = f", {self.errors} failed (sent again by --resume)" if self.errors else ""
        return f"{self.path}: sent {self.asked} of {self.requests} requests{failed}"


def execute_batch(
    requests: str | Path,
    out: str | Path,
    *,
    base_url: str | None = None,
    api_key_env: str | None = None,
    resume: bool = False,
    concurrency: int | None = None,
    timeout_s: float = 300.0,
    max_retries: int = 2,
    progress: bool = True,
) -> Executed:
    """Send every request in `requests` (Batch API input JSONL) to the server at
    `base_url` and write the results to `out` (Batch API output JSONL). With no
    `base_url`, requests for the embedded model start it; others go to OpenAI. The
    server at `base_url` gets the key in the variable `api_key_env` names, or none."""
    requests, out = Path(requests), Path(out)
    ids, model = _check_requests(requests)
    if out.is_dir():
        raise ArgumentError("{out} " + f"{out} is a folder: name the output .jsonl file", "out")
    if out.exists() and not resume:
        raise ArgumentError(
            "{out} " + f"{out} exists: pass " + "{resume} to finish it, or choose another",
            "out",
            "resume",
        )
    config = _model(model, base_url, api_key_env, timeout_s, max_retries)
    api_key = api_key_for(config, replay=False)
    slots = RunOptions(concurrency=concurrency).slots(config)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        created = not out.exists()
        done = set() if created else _answered(out, ids)
        todo = (r for r in _iter_requests(requests) if r.custom_id not in done)
        bar = Progress(len(ids), len(done), enabled=progress, scoring=False)
        writer = JournalWriter(out)
        throttle = Throttle(slots)
        way_back = (
            "every result written is kept: free space, then finish with: emulate batch "
            f"execute {requests} --out {out} --resume"
        )
        with storage_errors(lambda _: way_back, [out]):
            try:
                with server_for(config, None, slots) as url:
                    client = Model(config, url, api_key, on_status=throttle.saw)
                    asked, errors = asyncio.run(_send_all(todo, client, writer, bar, throttle))
            except BaseException:
                with contextlib.suppress(OSError):  # the error on its way says it
                    writer.close()  # flushed first: what was answered stays
                with contextlib.suppress(OSError):
                    if created and out.stat().st_size == 0:
                        out.unlink()  # nothing was answered: leave nothing behind
                raise
            finally:
                bar.close()
            writer.close()
    return Executed(out, len(ids), asked, errors)


def _model(
    model: str, base_url: str | None, api_key_env: str | None, timeout_s: float, retries: int
) -> ModelConfig:
    """Who answers: the embedded model for its requests with no URL given; else the
    server at `base_url` (by default OPENAI_BASE_URL's or OpenAI's, as `run` reads it)."""
    local = model == LOCAL_MODEL_NAME and base_url is None
    if base_url is None and not local:
        base_url = default_base_url(model)
    return ModelConfig(model=LOCAL if local else model, base_url=base_url, timeout_s=timeout_s,
                       max_retries=retries, api_key_env=api_key_env)  # fmt: skip


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """`out` held for this process. The lock is a file of its own: a resume replaces
    the output file, and a lock on the replaced one would hold nothing."""
    with open(out.with_name(f".{out.name}.lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArgumentError(
                "{out} " + f"{out} is being written by another emulate", "out"
            ) from None
        yield


def _iter_requests(path: Path) -> Iterator[Request]:
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                data = json.loads(line)
                yield Request(data["custom_id"], URLS[data["url"]], data["body"])


def _check_requests(path: Path) -> tuple[set[str], str]:
    """Every custom_id, and the model of the first request; any line that is not a
    request emulate can send is an error naming it, before anything is asked."""
    what = f"requests file {path}"
    ids: set[str] = set()
    model = None
    with open_file(path, what) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError:
                raise EmulateError(f"{what}: line {number} is not JSON") from None
            if not isinstance(data, dict):
                raise EmulateError(f"{what}: line {number} is not a JSON object")
            cid, url, body = data.get("custom_id"), data.get("url"), data.get("body")
            problem = (
                "no custom_id" if not isinstance(cid, str) or not cid
                else f"custom_id {cid} is used twice" if cid in ids
                else "its method is not POST" if data.get("method", "POST") != "POST"
                else f"url {url!r} is not one of {', '.join(URLS)}" if url not in URLS
                else "its body has no model" if not isinstance(body, dict)
                or not isinstance(body.get("model"), str)
                else None
            )  # fmt: skip
            if problem:
                raise EmulateError(
                    f"{what}: line {number}: {problem}; write requests with emulate batch export"
                )
            assert isinstance(cid, str) and isinstance(body, dict)  # `problem` said so
            ids.add(cid)
            model = model or body["model"]
    if model is None:
        raise EmulateError(f"{what}: holds no requests")
    return ids, model


def _answered(out: Path, ids: set[str]) -> set[str]:
    """The custom_ids `out` answers already. Lines of failed requests are dropped (they
    are asked again), and so is a last line a killed run left half-written."""
    kept, done, dropped = [], set(), False
    with open(out, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                data = json.loads(line)
                cid = data["custom_id"]
            except (ValueError, TypeError, KeyError):
                if line.endswith(b"\n"):
                    raise EmulateError(
                        f"--out {out}: line {number} is not a batch result; choose another --out"
                    ) from None
                dropped = True  # an unfinished last line
                continue
            if cid not in ids:
                raise EmulateError(
                    f"--out {out} holds results of another batch (custom_id {cid} is not in "
                    "the requests): choose another --out"
                )
            status = (data.get("response") or {}).get("status_code")
            if isinstance(status, int) and 200 <= status < 300:
                kept.append(line.decode())
                done.add(cid)
            else:
                dropped = True
    if dropped:
        with atomic_writer(out) as f:
            f.writelines(kept)
    return done


async def _send_all(
    todo: Iterator[Request], model: Model, writer: JournalWriter, bar: Progress, throttle: Throttle
) -> tuple[int, int]:
    asked = errors = 0

    async def worker() -> None:
        nonlocal asked, errors
        for request in todo:  # one iterator shared by the workers: each request taken once
            async with throttle:
                response = await model.post(request.path, request.body)
            line = result_line(request.custom_id, response)
            writer.append(line)
            failed = line["error"] is not None or line["response"]["status_code"] >= 300
            asked, errors = asked + 1, errors + failed
            bar.update(False, failed)

    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(throttle.ceiling):
                tg.create_task(worker())
    except* Exception as group:
        first = next((e for e in group.exceptions if isinstance(e, EmulateError)), None)
        raise (first or group.exceptions[0]) from None
    finally:
        await model.aclose()
    return asked, errors


def result_line(custom_id: str, response: httpx2.Response | Answer) -> dict[str, Any]:
    """One line of OpenAI's Batch API output format."""
    line: dict[str, Any] = {"id": f"{EXECUTED}{uuid.uuid4().hex}", "custom_id": custom_id}
    if isinstance(response, Answer):  # no response at all: a timeout, a dropped connection
        code = "timeout" if response.error == "timeout" else "connection_error"
        return line | {"response": None, "error": {"code": code, "message": response.error}}
    try:
        body: Any = json.loads(response.content)
    except ValueError:
        body = response.content.decode("utf-8", "replace")  # scored as a malformed answer
    request_id = response.headers.get("x-request-id", "")
    return line | {
        "response": {"status_code": response.status_code, "request_id": request_id,
                     "body": body},
        "error": None,
    }  # fmt: skip
