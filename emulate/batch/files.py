"""Batch files: a run's requests in OpenAI's Batch API input format, which vLLM's
offline runner (`python -m vllm.entrypoints.openai.run_batch`) reads too, and the
results files those write, read back as the run's answers.

One JSON line per request: `custom_id` (the case id; a probe that asks several
questions per case adds `/1`, `/2`, ... to the second and later), `method`, `url`
(`/v1/chat/completions` or `/v1/completions`, by mode) and `body`, exactly the body
the live path sends (`model_config.request_body`). The run folder gets run.json as a live
run's does, so the results file can be scored against it.

A results line holds `custom_id`, `response: {status_code, body}` and `error` (an
object from OpenAI, text from vLLM). The runner scores it as the live path scores
a response: `BatchResults.ask_for(case)` answers a case's requests in order from
its custom_ids, so the probe's own `converse` runs exactly as it does live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from emulate.case import Answer, Case, Prompt, TokenLogprob
from emulate.config import RunConfig
from emulate.errors import EmulateError, open_file
from emulate.journal import JOURNAL, atomic_writer
from emulate.model import answer_from
from emulate.model_config import request_body
from emulate.pipeline.drive import Unanswered
from emulate.pipeline.folder import default_out, lock_out, write_run_json
from emulate.probe import Ask, Probe, check_grid, plan_cases
from emulate.registry import get_probe

# The id prefix of the results `emulate batch execute` writes: requests sent live, one
# by one, and priced as a live run's rather than at a batch API's discount.
EXECUTED = "emulate_req_"


@dataclass(frozen=True)
class BatchRequest:
    custom_id: str
    url: str
    body: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"custom_id": self.custom_id, "method": "POST", "url": self.url, "body": self.body}


def batch_url(path: str) -> str:
    """A request's `url` in a batch file: its path under a base URL that ends in /v1."""
    return "/v1" + path


def custom_id(case_id: str, i: int) -> str:
    """The id of a case's i-th request: the case id itself for the first."""
    return case_id if i == 0 else f"{case_id}/{i}"


def case_of(custom_id: str) -> str:
    """The case id a request's custom_id belongs to."""
    base, slash, i = custom_id.rpartition("/")
    return base if slash and i.isdigit() else custom_id


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
        sent.append(BatchRequest(custom_id(case.id, len(sent)), batch_url(path), body))
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
        raise EmulateError(f"{path} is a folder: name the requests file (.jsonl)")
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
            count = asyncio.run(write_requests(f, probe, plan, config))
        write_run_json(out, config, concurrency=0, cases=len(plan))
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)  # nothing half-written
        raise
    finally:
        lock.close()
    return Exported(path, out, len(plan), count)


async def write_requests(f: TextIO, probe: Probe, cases: Iterable[Case], config: RunConfig) -> int:
    """Write the requests of `cases` to `f`, one JSON line each; return how many."""
    count = 0
    for case in cases:  # one event loop for the whole plan, cases streamed
        for request in await _requests(probe, case, config):
            f.write(json.dumps(request.to_json(), ensure_ascii=False) + "\n")
            count += 1
    return count


class NotInResults(Unanswered):
    """A request of the case has no line in the results files: the case is left unscored."""


class BatchResults:
    """The answers in Batch API results files (an output file, and an error file if
    there is one), by custom_id. Each file is indexed once (custom_id -> where its line
    starts) and a line is read again only when its case is scored: a results file of
    100,000 answers with logprobs is never held whole."""

    def __init__(self, paths: Sequence[str | Path], later_wins: bool = False):
        """`later_wins`: a custom_id answered again in a later file takes that answer
        (a batch sent again for the cases an earlier one failed); else it is an error."""
        self.later_wins = later_wins
        if not paths:
            raise EmulateError("name the output file of a batch to score")
        self.paths = [Path(p) for p in paths]
        self.source = "the batch results in " + ", ".join(map(str, self.paths))
        self._where: dict[str, tuple[int, int, int]] = {}  # custom_id -> file, offset, line
        self.served_by: str | None = None  # the model the first answer names
        # Whether any answer came from a batch API (priced at its discount) rather than
        # from `emulate batch execute`, which sends each request live.
        self.from_batch_api = False
        self.modes: set[str] = set()  # "chat", "completion": the shapes of the answers
        self.missing: list[str] = []
        for i, path in enumerate(self.paths):
            self._index(i, path)
        self._files = [open(p, "rb") for p in self.paths]  # noqa: SIM115 - closed in aclose

    def _index(self, i: int, path: Path) -> None:
        what = f"batch results {path}"
        with open_file(path, what) as f:
            offset = 0
            for number, line in enumerate(f, 1):
                start, offset = offset, offset + len(line)
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except ValueError:
                    raise EmulateError(
                        f"{what}: line {number} is not JSON; pass the JSONL file a batch wrote "
                        "(one result per line)"
                    ) from None
                cid = data.get("custom_id") if isinstance(data, dict) else None
                if not isinstance(cid, str):
                    raise EmulateError(
                        f"{what}: line {number} is not a batch result (no custom_id); pass the "
                        "output file of a batch, as OpenAI or vLLM's run_batch write it"
                    )
                if "response" not in data and "error" not in data:
                    raise EmulateError(
                        f"{what}: line {number} is a request, not a result: this is a batch's "
                        "input file; run it first (emulate batch execute, or a batch API)"
                    )
                if cid in self._where and not (self.later_wins and self._where[cid][0] < i):
                    j, _, first = self._where[cid]
                    raise EmulateError(
                        f"{what}: custom_id {cid} at line {number} is answered already "
                        f"(line {first} of {self.paths[j]}); pass each result once"
                    )
                self._where[cid] = (i, start, number)
                rid = data.get("id")
                self.from_batch_api |= not (isinstance(rid, str) and rid.startswith(EXECUTED))
                if self.served_by is None:
                    self.served_by = _served_by(data)
                if mode := _mode(data):
                    self.modes.add(mode)

    def check(self, case_ids: Collection[str], mode: str) -> None:
        """Refuse results that are not this run's: a custom_id of a case it does not have,
        or answers in another mode's shape (case ids do not depend on the mode, so a
        chat run's results would otherwise score as empty completions)."""
        other = sorted(self.modes - {mode})
        if other:
            raise EmulateError(
                f"batch results: the file holds {other[0]} answers and this run asks in "
                f"{mode} mode; it is another run's results (score them with that run's "
                "--config run.json)"
            )
        unknown = [cid for cid in self._where if case_of(cid) not in case_ids]
        if not unknown:
            return
        if len(unknown) == len(self._where):
            raise EmulateError(
                f"batch results {self.paths[0]}: none of its {len(unknown)} custom_ids is a "
                "case of this run; it holds another run's results (score it with that run's "
                "--config run.json)"
            )
        raise EmulateError(
            f"batch results: {len(unknown)} custom_ids are not cases of this run (the first: "
            f"{unknown[0]}); the file is another run's, or the run.json was changed"
        )

    def answer(self, cid: str, chat: bool) -> Answer:
        """The answer on `cid`'s line, read as the live path reads a response."""
        where = self._where.get(cid)
        if where is None:
            raise NotInResults(cid)
        f = self._files[where[0]]
        f.seek(where[1])
        return result_answer(json.loads(f.readline()), chat=chat)

    def note(self, model: str) -> str | None:
        """A warning when the answers name another model than the run asked for. Only a
        warning: servers name models their own way (a snapshot date, a file path)."""
        if self.served_by is None or model.lower() in self.served_by.lower():
            return None
        return (
            f"the results were answered by {self.served_by!r}, and this run asks "
            f"{model!r}: are they this run's?"
        )

    def ask_for(self, case: Case) -> Ask:
        """An ask that answers the case's requests in order, from their custom_ids."""
        asked = 0

        async def ask(prompt: Prompt, **_: Any) -> Answer:
            nonlocal asked
            cid, asked = custom_id(case.id, asked), asked + 1
            try:
                return self.answer(cid, chat=not isinstance(prompt, str))
            except NotInResults:
                self.missing.append(case.id)
                raise

        return ask

    async def aclose(self) -> None:
        for f in self._files:
            f.close()


def result_answer(line: Mapping[str, Any], chat: bool) -> Answer:
    """A results line as an Answer: a response with status 2xx is read as the live path
    reads one; an error status, or an `error` and no response, is the case's API error."""
    response = line.get("response")
    if isinstance(response, Mapping):
        status = response.get("status_code")
        body = response.get("body")
        if isinstance(body, str):  # some batch services write the body as JSON text
            with contextlib.suppress(ValueError):  # else read as a body that is not JSON
                body = json.loads(body)
        if isinstance(status, int) and 200 <= status < 300:
            return answer_from(body, None, chat=chat)
        detail = _message(body) or _message(line.get("error")) or "no message"
        return Answer("", error=f"HTTP {status}: {detail}"[:500])
    detail = _message(line.get("error")) or "the result has neither a response nor an error"
    return Answer("", error=f"batch: {detail}"[:500])


def _message(error: Any) -> str | None:
    """An error's message: OpenAI's {"error": {"code", "message"}}, vLLM's
    {"object": "error", "message"}, or plain text."""
    if isinstance(error, str):
        return error or None
    if not isinstance(error, Mapping):
        return None
    inner = error.get("error")
    if inner is not None and inner is not error:
        found = _message(inner)
        if found:
            return found
    message = error.get("message")
    code = error.get("code")
    if isinstance(message, str) and message:
        return f"{code}: {message}" if isinstance(code, str) and code else message
    return None


def _mode(line: Mapping[str, Any]) -> str | None:
    """Whether a results line answers a chat request or a completion, by its shape."""
    response = line.get("response")
    body = response.get("body") if isinstance(response, Mapping) else None
    choices = body.get("choices") if isinstance(body, Mapping) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(choice, Mapping):
        return None
    return "chat" if "message" in choice else "completion" if "text" in choice else None


def _served_by(line: Mapping[str, Any]) -> str | None:
    response = line.get("response")
    body = response.get("body") if isinstance(response, Mapping) else None
    model = body.get("model") if isinstance(body, Mapping) else None
    return model if isinstance(model, str) else None
