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

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx2
import openai

from . import redact
from .case import Answer, Prompt, TokenLogprob
from .errors import EmulateError, ReplayMiss
from .model_config import (
    CHAT_PATH,
    COMPLETION_PATH,
    NO_KEY,
    OPENAI_URL,
    ModelConfig,
    drop_placeholder_key,
    key_advice,
    request_body,
)
from .record import ReplayMissSignal, Tape, http_client


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
        # Never None: the SDK would take OPENAI_BASE_URL, and OPENAI_API_KEY with it.
        self.base_url = base_url or OPENAI_URL
        self.shown_url = redact.url(base_url) or "api.openai.com"
        self._api_key = api_key
        self._secrets = [api_key, *redact.url_secrets(base_url)]
        self._reached = False  # a connection error before any answer: no server there
        hooks: dict[str, list[Callable[..., Any]]] = {}
        if on_status is not None:

            async def seen(response: Any) -> None:
                on_status(response.status_code)

            hooks["response"] = [seen]
        if api_key == NO_KEY:

            async def no_key(request: httpx2.Request) -> None:
                drop_placeholder_key(request)

            hooks["request"] = [no_key]
        self._http = http_client(tape, event_hooks=hooks)
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=self.base_url,
            timeout=config.timeout_s,
            max_retries=config.max_retries,
            # A cassette can neither decode br/zstd nor scrub a compressed body.
            default_headers={"Accept-Encoding": "gzip"},
            http_client=self._http,
        )
        # What the SDK's request() would send on a first attempt, built once (below).
        self._base = str(self._client.base_url).rstrip("/")
        self._urls = {p: httpx2.URL(self._base + p) for p in (CHAT_PATH, COMPLETION_PATH)}
        self._headers: httpx2.Headers | None = None
        self._timeout = {"timeout": httpx2.Timeout(config.timeout_s).as_dict()}

    @property
    def source(self) -> str:
        return f"the server at {self.shown_url}"

    def ask_for(self, case: object) -> Callable[..., Any]:
        """The ask for one case's conversation: the same for every case."""
        return self.ask

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
        """One request (its body: `request_body`). The body is posted through the SDK's
        own client (its transports; on failure its retries, timeouts, errors) but
        without create()'s type-driven transform of the request and pydantic parsing of
        the answer: at research scale those cost more than the network (bench/scale.py)."""
        path, body = request_body(self.config, prompt, max_tokens=max_tokens, stop=stop,
                                  top_logprobs=top_logprobs)  # fmt: skip
        chat = path == CHAT_PATH
        start = time.perf_counter()
        resp = await self.post(path, body)
        if isinstance(resp, Answer):
            return resp
        if resp.status_code >= 400:
            return self._failed(f"HTTP {resp.status_code}: {_error_message(resp)}", start)
        try:
            data = json.loads(resp.content)
        except ValueError as err:  # a 200 whose body is not JSON (or not UTF-8)
            return self._failed(f"malformed response: not JSON: {err}", start)
        try:
            return answer_from(data, time.perf_counter() - start, chat=chat)
        except Exception as err:  # noqa: BLE001 - a body of the wrong shape
            return self._failed(f"malformed response: {type(err).__name__}: {err}", start)

    async def post(self, path: str, body: dict[str, Any]) -> httpx2.Response | Answer:
        """The server's last response to one request (`path` under the base URL), after
        the SDK's retries; or, where there is none (a timeout, a dropped connection), an
        Answer with the error. A status that would fail every request alike (a refused
        key, an unknown model or path) raises an EmulateError."""
        c = self.config
        start = time.perf_counter()
        first = await self._first_try(path, body) if c.max_retries > 0 else None
        resp: httpx2.Response | Answer
        if first is not None:
            resp = first
        else:
            resp = await self._through_sdk(path, body, retried=c.max_retries > 0, start=start)
        if isinstance(resp, httpx2.Response):
            self._reached = True
            self._check_status(resp.status_code)
        return resp

    async def _first_try(self, path: str, body: dict[str, Any]) -> httpx2.Response | None:
        """The first attempt, sent through the SDK's own HTTP client (its transports,
        hooks and the tape) with the headers its request() would send, but without
        request()'s per-call option models, header merging and URL parsing, which cost
        more than the network at research scale (bench/scale.py). None where the SDK's
        retries should take over: no answer, or a status it retries."""
        if self._headers is None:
            self._headers = self._first_try_headers()
        content = json.dumps(body).encode()
        request = httpx2.Request(
            "POST", self._urls[path], headers=self._headers, content=content,
            extensions=self._timeout,
        )  # fmt: skip
        if self._http.cookies:  # a cookie a server set earlier goes back, as httpx sends it
            self._http.cookies.set_cookie_header(request)
        try:
            response = await self._send(request)
        except ReplayMissSignal:
            raise ReplayMiss("no recorded answer for this request") from None
        except Exception:  # noqa: BLE001 - the SDK's retries tell what it was
            await asyncio.sleep(_FIRST_RETRY_DELAY_S)
            return None
        if response.status_code < 400 or not _retried(response):
            return response
        await asyncio.sleep(_retry_after(response))
        return None

    async def _send(self, request: httpx2.Request) -> httpx2.Response:
        """What the HTTP client's send() does for a first try, through the transport it
        would choose (the tape's, a proxy's): its hooks, the body read, cookies kept.
        Without send()'s auth flow (the key is in the headers already), redirect loop
        (a POST is not redirected) and per-request logging, which cost a tenth of a
        fast run (bench/scale.py)."""
        http = self._http
        for hook in http.event_hooks["request"]:
            await hook(request)
        response = await http._transport_for_url(request.url).handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        for hook in http.event_hooks["response"]:
            await hook(response)
        http.cookies.extract_cookies(response)
        return response

    def _first_try_headers(self) -> httpx2.Headers:
        """The SDK's headers over the HTTP client's own, as httpx merges them. Built in
        the event loop: the SDK names the async library it runs under."""
        headers = httpx2.Headers(self._http.headers)
        sdk = {k: v for k, v in self._client.default_headers.items() if isinstance(v, str)}
        headers.update(sdk | self._client.auth_headers)  # (no_key's hook takes a placeholder off)
        headers["X-Stainless-Retry-Count"] = "0"
        headers["X-Stainless-Read-Timeout"] = str(float(self.config.timeout_s))
        return headers

    async def _through_sdk(
        self, path: str, body: dict[str, Any], *, retried: bool, start: float
    ) -> httpx2.Response | Answer:
        """The SDK's request(), with its retries (one fewer after a failed first try),
        backoff, Retry-After and errors."""
        c = self.config
        # (The SDK's RequestOptions, a TypedDict of its private _types module.)
        options: Any = {"max_retries": c.max_retries - 1} if retried else {}
        try:
            return await self._client.post(path, body=body, cast_to=httpx2.Response,
                                           options=options)  # fmt: skip
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
        except openai.APIStatusError as err:
            return err.response
        except Exception as err:  # noqa: BLE001 - whatever else the server sent
            return self._failed(f"malformed response: {type(err).__name__}: {err}", start)

    def _check_status(self, status: int) -> None:
        """Raise for what fails every request alike; one bad case (a prompt over the
        context, a server hiccup after retries) is that case's error, not the run's."""
        if status in (401, 403):
            raise self._fatal(
                f"the server at {self.shown_url} refused the request (HTTP {status}): "
                + key_advice(self.config, self._api_key)
            )
        if status == 404:
            raise self._fatal(
                f"HTTP 404 from {self.shown_url} for model {self.config.request_model!r}: "
                "check --model and --base-url (which usually ends in /v1)"
            )


# The SDK's own first backoff, and its ceiling on a server's Retry-After.
_FIRST_RETRY_DELAY_S = 0.5
_MAX_RETRY_AFTER_S = 60.0


def _retried(response: httpx2.Response) -> bool:
    """Whether the SDK would retry this error status (openai's `_should_retry`)."""
    should = response.headers.get("x-should-retry")
    if should in ("true", "false"):
        return should == "true"
    return response.status_code in (408, 409, 429) or response.status_code >= 500


def _retry_after(response: httpx2.Response) -> float:
    """The pause before a retry: the server's Retry-After (seconds or milliseconds)
    where it gives one within the SDK's ceiling, else the SDK's first backoff."""
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            seconds = float(response.headers.get(name, "")) * scale
        except ValueError:
            continue
        if 0 < seconds <= _MAX_RETRY_AFTER_S:
            return seconds
    return _FIRST_RETRY_DELAY_S


def _error_message(response: httpx2.Response) -> str:
    """The message the SDK's status error would carry ("Error code: 400 - ...")."""
    message = f"Error code: {response.status_code}"
    try:
        body = json.loads(response.content)
    except ValueError:
        return message
    error = body.get("error", body) if isinstance(body, Mapping) else None
    detail = error.get("message") if isinstance(error, Mapping) else None
    return f"{message} - {detail}" if isinstance(detail, str) and detail else message


def _timed_out(err: BaseException) -> bool:
    """Whether a "timeout" was one. The aiohttp transport reports every connection
    error (refused, reset) as a connect timeout; its own exception, in the chain,
    tells the truth."""
    chain = []
    cause: BaseException | None = err
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__
    aio = [e for e in chain if type(e).__module__.startswith("aiohttp")]
    return not aio or any(isinstance(e, TimeoutError) for e in aio)


def _cause(err: BaseException) -> str:
    """The innermost reason of a connection error (the SDK's own says only 'Connection error.')."""
    while err.__cause__ is not None:
        err = err.__cause__
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def answer_from(data: Any, latency: float | None, chat: bool) -> Answer:
    """A response body as an Answer; one of the wrong shape is an Answer with an error."""
    if not isinstance(data, Mapping):
        return Answer("", latency_s=latency, error="the response is not a JSON object")
    usage = data.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    prompt_tokens = _count(usage.get("prompt_tokens"))
    completion_tokens = _count(usage.get("completion_tokens"))
    choices = data.get("choices")
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], Mapping):
        return Answer("", None, prompt_tokens, completion_tokens, latency,
                      error="the response had no choices")  # fmt: skip
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
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
