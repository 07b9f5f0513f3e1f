"""Asking a model through the openai SDK, in chat or completion mode.

Works with OpenAI itself and any OpenAI-compatible server (llama-server, vLLM,
Ollama). Retries, backoff and `Retry-After` are the SDK's own. A failed request,
whatever the server sent (an error status after the retries, a reset connection, a
200 whose body is not JSON or has no message), becomes an Answer with an error: that
case's error, and the run goes on. Only failures that would fail every case alike
(a server never reached, a refused key, an unknown model, a replay miss) stop the
run, with an EmulateError that says what to do. No message names a secret.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai

from . import redact
from .case import Answer, Prompt, TokenLogprob
from .errors import EmulateError, ReplayMiss
from .record import ReplayMissSignal, Tape, http_client

LOCAL = "local"  # the embedded default: Gemma 3 270M under llama-server
LOCAL_MODEL_NAME = "gemma-3-270m-q4_k_m"


@dataclass(frozen=True)
class ModelConfig:
    """Who to ask and how; recorded in run.json."""

    model: str = LOCAL
    base_url: str | None = None
    mode: str = "completion"
    temperature: float = 0.0
    max_tokens: int | None = None  # None: each case's own budget
    stop: tuple[str, ...] | None = None  # None: each case's own stop sequences
    top_logprobs: int = 0  # 0: no logprobs requested
    seed: int = 0
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = 300.0
    max_retries: int = 2

    def __post_init__(self) -> None:
        # One check for the API, the CLI and a run.json: each bad value named as its flag.
        _need(isinstance(self.model, str) and self.model.strip() != "", "--model", self.model,
              "a model name")  # fmt: skip
        _need(self.base_url is None or isinstance(self.base_url, str), "--base-url",
              self.base_url, "a URL such as http://127.0.0.1:8000/v1")  # fmt: skip
        _need(self.mode in ("chat", "completion"), "--mode", self.mode, "chat or completion")
        _need(_number(self.temperature) and 0 <= self.temperature <= 2, "--temperature",
              self.temperature, "a number from 0 to 2")  # fmt: skip
        _need(self.max_tokens is None or (_integer(self.max_tokens) and self.max_tokens >= 1),
              "--max-tokens", self.max_tokens, "a whole number of at least 1")  # fmt: skip
        _need(self.stop is None or all(isinstance(x, str) and x for x in self.stop), "--stop",
              self.stop, "non-empty text")  # fmt: skip
        _need(_integer(self.top_logprobs) and 0 <= self.top_logprobs <= 20, "--top-logprobs",
              self.top_logprobs, "a whole number from 0 (none) to 20")  # fmt: skip
        _need(_integer(self.seed), "--seed", self.seed, "a whole number")
        _need(isinstance(self.extra_body, Mapping), "--extra-body", self.extra_body,
              "a JSON object")  # fmt: skip
        _need(_number(self.timeout_s) and self.timeout_s > 0, "timeout_s", self.timeout_s,
              "seconds, a number above 0")  # fmt: skip
        _need(_integer(self.max_retries) and 0 <= self.max_retries <= 100, "max_retries",
              self.max_retries, "a whole number from 0 to 100")  # fmt: skip
        redact.check_extra_body(self.extra_body)

    @property
    def request_model(self) -> str:
        return LOCAL_MODEL_NAME if self.model == LOCAL else self.model


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _need(ok: bool, name: str, value: Any, what: str) -> None:
    if not ok:
        raise EmulateError(f"{name} {value!r}: must be {what}")


def api_key_for(config: ModelConfig, replay: bool) -> str:
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    if config.base_url is None and config.model != LOCAL and not replay:
        raise EmulateError(
            f"model {config.model!r} needs OPENAI_API_KEY: export it, or pass --base-url for "
            "an OpenAI-compatible server, or use --model local"
        )
    # Local servers ignore the key, but the SDK refuses to start without one.
    return "not-needed"


def normalise_logprobs(raw: Mapping[str, Any] | None) -> tuple[TokenLogprob, ...] | None:
    """One type for OpenAI's chat shape, its legacy completions shape, and llama-server's.

    llama-server's /v1/completions answers in the chat shape (`content[i]` with
    `top_logprobs`); OpenAI's legacy completions use parallel `tokens`,
    `token_logprobs` and `top_logprobs` (a dict per position).
    """
    if not raw:
        return None
    if raw.get("content") is not None:
        return tuple(
            TokenLogprob(
                token=t.get("token", ""),
                logprob=float(t.get("logprob", float("-inf"))),
                top=tuple((a["token"], float(a["logprob"])) for a in t.get("top_logprobs") or ()),
            )
            for t in raw["content"]
        )
    if raw.get("tokens") is not None:
        tops = raw.get("top_logprobs") or [None] * len(raw["tokens"])
        return tuple(
            TokenLogprob(
                token=tok,
                logprob=float(lp) if lp is not None else float("-inf"),
                top=tuple((k, float(v)) for k, v in (top or {}).items()),
            )
            for tok, lp, top in zip(
                raw["tokens"], raw.get("token_logprobs") or [], tops, strict=False
            )
        )
    return None


class Model:
    """An async client shared by every case of a run.

    `on_status` is called with the status of every HTTP response, retries included
    (the runner backs off its concurrency on 429s). With a `tape` (emulate/record.py)
    requests are recorded to, or replayed from, a cassette."""

    def __init__(
        self,
        config: ModelConfig,
        base_url: str | None,
        api_key: str,
        on_status: Callable[[int], None] | None = None,
        tape: Tape | None = None,
    ):
        self.config = config
        self.base_url = base_url
        self.shown_url = redact.url(base_url) or "api.openai.com"
        self._secrets = [api_key, *redact.url_secrets(base_url)]
        self._reached = False  # a connection error before any answer: no server there
        hooks = {}
        if on_status is not None:

            async def seen(response: Any) -> None:
                on_status(response.status_code)

            hooks["response"] = [seen]
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=config.timeout_s,
            max_retries=config.max_retries,
            # A cassette can neither decode br/zstd nor scrub a compressed body.
            default_headers={"Accept-Encoding": "gzip"},
            http_client=http_client(tape, event_hooks=hooks),
        )

    def _failed(self, reason: str, start: float) -> Answer:
        return Answer(
            "",
            latency_s=time.perf_counter() - start,
            error=redact.text(reason, self._secrets)[:500],
        )

    def _fatal(self, message: str) -> EmulateError:
        return EmulateError(redact.text(message, self._secrets))

    async def aclose(self) -> None:
        await self._client.close()

    async def ask(
        self, prompt: Prompt, *, max_tokens: int, stop: Sequence[str] = (), top_logprobs: int = 0
    ) -> Answer:
        """One request. `top_logprobs` is the case's own need; the config's wins if larger."""
        c = self.config
        top_logprobs = max(top_logprobs, c.top_logprobs)
        # The body the SDK's create() would send, posted through the SDK's own client
        # (its retries, timeouts, errors) but without create()'s type-driven transform
        # of the request and pydantic parsing of the answer: at research scale those
        # two cost more than the network (bench/scale.py).
        body: dict[str, Any] = {
            "model": c.request_model,
            "temperature": c.temperature,
            "max_tokens": c.max_tokens or max_tokens,
            "seed": c.seed,
        }
        stop = c.stop if c.stop is not None else stop
        if stop:
            body["stop"] = list(stop)
        chat = not isinstance(prompt, str)
        if not chat:
            path, body["prompt"] = "/completions", prompt
            if top_logprobs:
                body["logprobs"] = top_logprobs
        else:
            path, body["messages"] = "/chat/completions", [dict(m) for m in prompt]
            if top_logprobs:
                body.update(logprobs=True, top_logprobs=top_logprobs)
        body.update(c.extra_body)
        start = time.perf_counter()
        try:
            resp = await self._client.post(path, body=body, cast_to=httpx2.Response)
        except ReplayMissSignal:
            raise ReplayMiss("no recorded answer for this request") from None
        except openai.APIConnectionError as err:
            if isinstance(err, openai.APITimeoutError) and _timed_out(err):
                return self._failed("timeout", start)
            if not self._reached:
                raise self._fatal(
                    f"cannot reach the server at {self.shown_url}: {err}; "
                    "start it, or check --base-url"
                ) from None
            # It answered before: a dropped connection is this case's error.
            return self._failed(f"connection error: {_cause(err)}", start)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
            raise self._fatal(
                f"the server refused the API key (HTTP {err.status_code}): check OPENAI_API_KEY"
            ) from None
        except openai.NotFoundError:
            raise self._fatal(
                f"HTTP 404 from {self.shown_url} for model {c.request_model!r}: check --model "
                "and --base-url (which usually ends in /v1)"
            ) from None
        except openai.APIStatusError as err:
            # One bad case (a prompt over the context, a server hiccup after retries)
            # is that case's error, not the run's.
            return self._failed(f"HTTP {err.status_code}: {err.message}", start)
        except Exception as err:  # noqa: BLE001 - whatever else the server sent
            return self._failed(f"malformed response: {type(err).__name__}: {err}", start)
        self._reached = True
        try:
            data = json.loads(resp.content)
        except ValueError as err:  # a 200 whose body is not JSON (or not UTF-8)
            return self._failed(f"malformed response: not JSON: {err}", start)
        try:
            return _answer(data, time.perf_counter() - start, chat=chat)
        except Exception as err:  # noqa: BLE001 - a body of the wrong shape
            return self._failed(f"malformed response: {type(err).__name__}: {err}", start)


def _timed_out(err: BaseException) -> bool:
    """Whether a "timeout" was one. The aiohttp transport reports every connection
    error (refused, reset) as a connect timeout; its own exception, in the chain,
    tells the truth."""
    chain = []
    while err is not None:
        chain.append(err)
        err = err.__cause__
    aio = [e for e in chain if type(e).__module__.startswith("aiohttp")]
    return not aio or any(isinstance(e, TimeoutError) for e in aio)


def _cause(err: BaseException) -> str:
    """The innermost reason of a connection error (the SDK's own says only 'Connection error.')."""
    while err.__cause__ is not None:
        err = err.__cause__
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _answer(data: Any, latency: float, chat: bool) -> Answer:
    """A response body as an Answer; one of the wrong shape is an Answer with an error."""
    if not isinstance(data, Mapping):
        return Answer("", latency_s=latency, error="the response is not a JSON object")
    usage = data.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    tokens = {
        "prompt_tokens": _count(usage.get("prompt_tokens")),
        "completion_tokens": _count(usage.get("completion_tokens")),
    }
    choices = data.get("choices")
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], Mapping):
        return Answer("", latency_s=latency, error="the response had no choices", **tokens)
    choice = choices[0]
    if chat:
        message = choice.get("message")
        if not isinstance(message, Mapping):
            return Answer("", latency_s=latency, error="the response's choice had no message")
        text = message.get("content")
    else:
        text = choice.get("text")
    if text is not None and not isinstance(text, str):
        return Answer("", latency_s=latency, error="the response's text is not a string")
    logprobs = choice.get("logprobs")
    finish = choice.get("finish_reason")
    return Answer(
        text=text or "",
        logprobs=normalise_logprobs(logprobs if isinstance(logprobs, Mapping) else None),
        latency_s=latency,
        finish_reason=finish if isinstance(finish, str) else None,
        **tokens,
    )


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
