"""A run's requests as a batch file: OpenAI's Batch API input format, which vLLM's
offline runner (`python -m vllm.entrypoints.openai.run_batch`) reads too.

One JSON line per request: `custom_id` (the case id; a probe that asks several
questions per case adds `/1`, `/2`, ... to the second and later), `method`, `url`
(`/v1/chat/completions` or `/v1/completions`, by mode) and `body`, exactly the body
the live path sends (`model.request_body`). The run folder gets run.json as a live
run's does, so the results file can be scored against it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from .case import Answer, Case, Prompt, TokenLogprob
from .config import RunConfig
from .errors import EmulateError
from .journal import JOURNAL, atomic_writer
from .model import request_body
from .probe import Probe, check_grid, plan_cases
from .registry import get_probe
from .runner import default_out, lock_out, write_run_json


@dataclass(frozen=True)
class BatchRequest:
    custom_id: str
    url: str
    body: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"custom_id": self.custom_id, "method": "POST", "url": self.url, "body": self.body}


def custom_id(case_id: str, i: int) -> str:
    """The id of a case's i-th request: the case id itself for the first."""
    return case_id if i == 0 else f"{case_id}/{i}"


# What a probe's conversation is shown while its requests are written down: an empty
# answer with one empty token, so a probe that reads each answer's logprobs (markov)
# goes on to its next request. Nothing a probe sends may depend on it (Probe.turns_see_answers).
_PLACEHOLDER = Answer("", logprobs=(TokenLogprob("", 0.0, ()),))


def requests_of(probe: Probe, case: Case, config: RunConfig) -> list[BatchRequest]:
    """Every request the live path would send for `case`, in order."""
    return asyncio.run(_requests(probe, case, config))


async def _requests(probe: Probe, case: Case, config: RunConfig) -> list[BatchRequest]:
    sent: list[BatchRequest] = []

    async def ask(
        prompt: Prompt, *, max_tokens: int, stop: Sequence[str] = (), top_logprobs: int = 0
    ) -> Answer:
        path, body = request_body(config.model, prompt, max_tokens=max_tokens, stop=stop,
                                  top_logprobs=top_logprobs)  # fmt: skip
        sent.append(BatchRequest(custom_id(case.id, len(sent)), "/v1" + path, body))
        return _PLACEHOLDER

    await probe.converse(case, ask)
    return sent


@dataclass(frozen=True)
class Exported:
    path: Path
    out: Path
    cases: int
    requests: int


def export_batch(config: RunConfig, path: str | Path, out: str | Path | None = None) -> Exported:
    """Write the run's requests to `path` (JSONL) and its run.json to `out`; ask nothing."""
    probe = get_probe(config.probe)
    if probe.turns_see_answers:
        raise EmulateError(
            f"{config.probe} sends each turn with the model's answers to the turns before it, "
            "so its requests cannot be written in one batch: run it live"
        )
    config = replace(config, grid=check_grid(probe, config.grid))
    path = Path(path)
    if path.is_dir():
        raise EmulateError(f"--batch-file {path} is a folder: name a .jsonl file")
    plan = plan_cases(probe, config.grid, config.n, config.seed, config.model.mode,
                      config.skip_impossible)  # fmt: skip
    out = Path(out) if out is not None else default_out(config.probe)
    if (out / JOURNAL).exists():
        raise EmulateError(f"--out {out} holds a run already: export a batch into a new folder")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = lock_out(out)
    try:
        with atomic_writer(path) as f:
            count = asyncio.run(_write(f, probe, plan, config))
        write_run_json(out, config, concurrency=0, cases=len(plan))
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)  # nothing half-written
        raise
    finally:
        lock.close()
    return Exported(path, out, len(plan), count)


async def _write(f: TextIO, probe: Probe, cases: Iterable[Case], config: RunConfig) -> int:
    count = 0
    for case in cases:  # one event loop for the whole plan, cases streamed
        for request in await _requests(probe, case, config):
            f.write(json.dumps(request.to_json(), ensure_ascii=False) + "\n")
            count += 1
    return count
