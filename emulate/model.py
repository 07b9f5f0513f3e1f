"""Asking a model through the openai SDK, in chat or completion mode.

Works with OpenAI itself and any OpenAI-compatible server (llama-server, vLLM,
Ollama). Retries and backoff are the SDK's own. A failed request becomes an Answer
with an error (scored as wrong), except failures that would fail every case alike
(unreachable server, refused key, unknown model, replay miss): those stop the run
with an EmulateError that says what to do.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai
from vcr.errors import CannotOverwriteExistingCassetteException

from .case import Answer, Prompt, TokenLogprob
from .errors import EmulateError, ReplayMiss

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

    @property
    def request_model(self) -> str:
        return LOCAL_MODEL_NAME if self.model == LOCAL else self.model


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


def _is_replay_miss(err: BaseException) -> bool:
    seen = err
    while seen is not None:
        if isinstance(seen, CannotOverwriteExistingCassetteException):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Model:
    """An async client shared by every case of a run."""

    def __init__(self, config: ModelConfig, base_url: str | None, api_key: str):
        self.config = config
        self.base_url = base_url
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=config.timeout_s,
            max_retries=config.max_retries,
            # vcrpy can neither decode br/zstd nor scrub a compressed body.
            default_headers={"Accept-Encoding": "gzip"},
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def ask(
        self, prompt: Prompt, *, max_tokens: int, stop: Sequence[str] = (), top_logprobs: int = 0
    ) -> Answer:
        """One request. `top_logprobs` is the case's own need; the config's wins if larger."""
        c = self.config
        top_logprobs = max(top_logprobs, c.top_logprobs)
        common: dict[str, Any] = {
            "model": c.request_model,
            "temperature": c.temperature,
            "max_tokens": c.max_tokens or max_tokens,
            "seed": c.seed,
        }
        stop = c.stop if c.stop is not None else stop
        if stop:
            common["stop"] = list(stop)
        if c.extra_body:
            common["extra_body"] = dict(c.extra_body)
        start = time.perf_counter()
        try:
            if isinstance(prompt, str):
                if top_logprobs:
                    common["logprobs"] = top_logprobs
                resp = await self._client.completions.create(prompt=prompt, **common)
            else:
                if top_logprobs:
                    common.update(logprobs=True, top_logprobs=top_logprobs)
                resp = await self._client.chat.completions.create(
                    messages=[dict(m) for m in prompt], **common
                )
        except CannotOverwriteExistingCassetteException:
            raise ReplayMiss("no recorded answer for this request") from None
        except openai.APITimeoutError:
            return Answer("", latency_s=time.perf_counter() - start, error="timeout")
        except openai.APIConnectionError as err:
            if _is_replay_miss(err):
                raise ReplayMiss("no recorded answer for this request") from None
            raise EmulateError(
                f"cannot reach the server at {self.base_url or 'api.openai.com'}: {err}; "
                "start it, or check --base-url"
            ) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
            raise EmulateError(
                f"the server refused the API key (HTTP {err.status_code}): check OPENAI_API_KEY"
            ) from None
        except openai.NotFoundError as err:
            raise EmulateError(
                f"HTTP 404 from {self.base_url or 'api.openai.com'} for model "
                f"{c.request_model!r}: check --model and --base-url (which usually ends in /v1)"
            ) from err
        except openai.APIStatusError as err:
            # One bad case (a prompt over the context, a server hiccup after retries)
            # is that case's error, not the run's.
            return Answer(
                "",
                latency_s=time.perf_counter() - start,
                error=f"HTTP {err.status_code}: {err.message}"[:500],
            )
        latency = time.perf_counter() - start
        return _answer(resp, latency)


def _answer(resp: Any, latency: float) -> Answer:
    usage = getattr(resp, "usage", None)
    tokens = {
        "prompt_tokens": getattr(usage, "prompt_tokens", None),
        "completion_tokens": getattr(usage, "completion_tokens", None),
    }
    if not resp.choices:
        return Answer("", latency_s=latency, error="the response had no choices", **tokens)
    choice = resp.choices[0]
    text = choice.message.content if hasattr(choice, "message") else choice.text
    raw_lp = choice.logprobs.model_dump() if choice.logprobs is not None else None
    return Answer(
        text=text or "",
        logprobs=normalise_logprobs(raw_lp),
        latency_s=latency,
        finish_reason=choice.finish_reason,
        **tokens,
    )
