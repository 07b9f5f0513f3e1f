"""Who to ask and how: a model's configuration (run.json's "model"), the request body
it makes, and which key goes to which server. No SDK here: the CLI and the API build
and check configurations without importing openai (emulate/model.py asks)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import redact
from .case import Mode, Prompt
from .errors import EmulateError, read_text

if TYPE_CHECKING:
    import httpx2

LOCAL = "local"  # the embedded default: Gemma 3 270M under llama-server
LOCAL_MODEL_NAME = "gemma-3-270m-q4_k_m"
OPENAI_URL = "https://api.openai.com/v1"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
# The SDK will not start without a key; a server that gets no key gets this one, which
# never leaves the process: the request hook below takes its header off.
NO_KEY = "emulate-sends-no-key"
LOCAL_SERVER_LABEL = "llama-server (embedded)"


@dataclass(frozen=True)
class ModelConfig:
    """Who to ask and how; recorded in run.json."""

    model: str = LOCAL
    base_url: str | None = None
    mode: Mode = "completion"
    temperature: float = 0.0
    max_tokens: int | None = None  # None: each case's own budget
    stop: tuple[str, ...] | None = None  # None: each case's own stop sequences
    top_logprobs: int = 0  # 0: no logprobs requested
    seed: int = 0
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = 300.0
    max_retries: int = 2
    # The variable that holds the key for the server at base_url (its name, never the key).
    api_key_env: str | None = None

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
        env = self.api_key_env
        _need(env is None or (isinstance(env, str) and _ENV_NAME.fullmatch(env) is not None),
              "--api-key-env", env, "a variable name, e.g. VLLM_API_KEY")  # fmt: skip
        _need(env is None or self.base_url is not None, "--api-key-env", env,
              f"given with --base-url (OpenAI's API takes {OPENAI_KEY_ENV})")  # fmt: skip
        redact.check_extra_body(self.extra_body)

    @property
    def request_model(self) -> str:
        return LOCAL_MODEL_NAME if self.model == LOCAL else self.model


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _need(ok: bool, name: str, value: Any, what: str) -> None:
    if not ok:
        raise EmulateError(f"{name} {value!r}: must be {what}")


CHAT_PATH, COMPLETION_PATH = "/chat/completions", "/completions"


def request_body(
    config: ModelConfig,
    prompt: Prompt,
    *,
    max_tokens: int,
    stop: Sequence[str] = (),
    top_logprobs: int = 0,
) -> tuple[str, dict[str, Any]]:
    """The path (under the base URL) and JSON body of one request, as the SDK's
    create() would send them. `top_logprobs` is the case's own need; the config's wins
    if larger; the config's max_tokens and stop, where set, win over the case's."""
    c = config
    top_logprobs = max(top_logprobs, c.top_logprobs)
    body: dict[str, Any] = {
        "model": c.request_model,
        "temperature": c.temperature,
        "max_tokens": c.max_tokens or max_tokens,
        "seed": c.seed,
    }
    stop = c.stop if c.stop is not None else stop
    if stop:
        body["stop"] = list(stop)
    if isinstance(prompt, str):
        path, body["prompt"] = COMPLETION_PATH, prompt
        if top_logprobs:
            body["logprobs"] = top_logprobs
    else:
        path, body["messages"] = CHAT_PATH, [dict(m) for m in prompt]
        if top_logprobs:
            body.update(logprobs=True, top_logprobs=top_logprobs)
    body.update(c.extra_body)
    return path, body


def default_base_url(model: str) -> str | None:
    """OPENAI_BASE_URL where it is set, as --base-url, for any model but the embedded
    one: read here, once, so run.json records where a run went (the SDK would read it
    silently, and send OPENAI_API_KEY there)."""
    return None if model == LOCAL else os.environ.get("OPENAI_BASE_URL") or None


def is_openai(base_url: str | None) -> bool:
    """Whether a base URL is OpenAI's own API (None is: the SDK's default)."""
    if base_url is None:
        return True
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
    except ValueError:
        return False
    ours = host == "api.openai.com" or host.endswith(".api.openai.com")
    return parts.scheme == "https" and ours


def api_key_for(config: ModelConfig, replay: bool) -> str:
    """The key a run sends: OPENAI_API_KEY to OpenAI's API and nowhere else; to any
    other server, the variable `api_key_env` names, or no key (NO_KEY, never sent)."""
    env = config.api_key_env
    if env is None and config.model != LOCAL and is_openai(config.base_url):
        env = OPENAI_KEY_ENV
    if env is None:
        return NO_KEY
    if key := os.environ.get(env):
        return key
    if replay:  # a replay reaches no server
        return NO_KEY
    if config.api_key_env:
        raise EmulateError(
            f"--api-key-env {env}: no such variable is set; export it with the key for "
            f"the server at {redact.url(config.base_url)}"
        )
    raise EmulateError(
        f"model {config.model!r} needs {OPENAI_KEY_ENV}: export it, or pass --base-url for "
        "an OpenAI-compatible server, or use --model local"
    )


def drop_placeholder_key(request: httpx2.Request) -> None:
    """An httpx request hook: a server that is to get no key gets no Authorization."""
    if request.headers.get("authorization") == f"Bearer {NO_KEY}":
        del request.headers["authorization"]


def key_advice(config: ModelConfig, api_key: str) -> str:
    """What to check when a server refuses a request for its key."""
    if api_key == NO_KEY:
        return (
            f"emulate sent it no key ({OPENAI_KEY_ENV} goes only to OpenAI's API); name "
            "the variable that holds this server's key with --api-key-env VAR"
        )
    return f"check {config.api_key_env or OPENAI_KEY_ENV}"


def server_label(config: ModelConfig) -> str:
    """The server's host (and port), never its credentials."""
    if config.model == LOCAL and config.base_url is None:
        return LOCAL_SERVER_LABEL
    try:
        parts = urlsplit(config.base_url or OPENAI_URL)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "unknown"
    if host in ("127.0.0.1", "localhost", "::1"):
        return "localhost"
    return f"{host}:{port}" if port else host


@dataclass(frozen=True)
class ModelSpec:
    model: str
    base_url: str | None = None
    api_key_env: str | None = None  # the variable holding the key for base_url's server

    @property
    def folder(self) -> str:
        """The run folder's name: the model's, safe as a path."""
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.model).strip("-.") or "model"


def parse_model(spec: str, api_key_env: str | None = None) -> ModelSpec:
    """NAME, or NAME@URL (the URL of the OpenAI-compatible server that serves it, whose
    key is in the variable `api_key_env`, if it takes one)."""
    name, at, url = spec.rpartition("@")
    if at and url.startswith(("http://", "https://")) and name:
        return ModelSpec(name.strip(), url.strip(), api_key_env)
    if not spec.strip():
        raise EmulateError("--model '': name a model, or NAME@URL")
    if api_key_env:
        raise EmulateError(
            f"--model {spec.strip()} api_key_env={api_key_env}: a key variable is for a "
            "server of its own (NAME@URL); OpenAI's API takes OPENAI_API_KEY"
        )
    return ModelSpec(spec.strip())


def load_models(path: str | Path) -> list[ModelSpec]:
    """A models file: one NAME or NAME@URL a line, a server's key variable after it
    (`qwen@http://host:8000/v1 api_key_env=VLLM_KEY`); blank lines and # comments skipped."""
    specs = []
    for number, line in enumerate(read_text(path, f"--models {path}").splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        fields = dict(w.partition("=")[::2] for w in words[1:])
        if any(k != "api_key_env" or not v for k, v in fields.items()) or len(fields) > 1:
            raise EmulateError(
                f"--models {path}, line {number}: after the model, only api_key_env=VAR "
                "(the variable that holds its server's key) may follow"
            )
        specs.append(parse_model(words[0], fields.get("api_key_env")))
    if not specs:
        raise EmulateError(f"--models {path}: names no model (one NAME or NAME@URL a line)")
    return specs
