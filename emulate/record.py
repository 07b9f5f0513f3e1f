"""Recording and replaying HTTP exchanges as vcrpy cassettes, with an index.

A cassette is vcrpy's own JSON format (version 1: `interactions`, each a `request`
and a `response`), so plain vcrpy opens and replays it. What is ours is the way in:
a `Tape` is an httpx transport wrapped around the real one. It looks a request up
in a dict keyed by its normalised form (method, URI, and the JSON body with its
keys sorted), so a study of 100,000 requests records and replays in linear time.
vcrpy itself scans every recorded interaction for each request (quadratic), and
works by patching HTTP libraries process-wide; a transport sees exactly this
run's requests, whichever HTTP library carries them (aiohttp, httpx).

The guarantees are vcrpy's as we configured it before:
- a request is answered only by an exchange recorded for the same method, URI
  and JSON body (key order free, as vcrpy's body matcher compares JSON);
- in replay a miss raises, and never reaches the network;
- secrets are stored nowhere: request headers but a few harmless ones are
  dropped, URL credentials masked for every host (bodies hold none:
  emulate/redact.py refuses credential-like body fields), identifying response
  headers dropped and echoed secrets masked;
- loopback hosts and ports are normalised, so a cassette recorded against a server
  on one port replays against any other.

Exchanges recorded for the same request are played in their recorded order and
the last one repeats (identical requests at temperature 0 may legitimately repeat;
a 500 that the SDK retried replays as a 500 and then its retry's answer).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx2
import openai

from . import redact
from .errors import EmulateError, read_text
from .journal import write_atomic

# Request headers kept in a cassette; everything else (the key, organisation,
# project, the SDK's platform fingerprint) is dropped. content-type stays: vcrpy's
# body matcher reads it to compare JSON as JSON when plain vcrpy replays the file.
_KEEP_REQUEST_HEADERS = {"content-type", "accept", "accept-encoding", "user-agent"}
_DROP_RESPONSE_HEADERS = {
    "set-cookie",
    "openai-organization",
    "openai-project",
    "x-request-id",
    "cf-ray",
    "authorization",
    "api-key",
}
# The body is stored decoded (a compressed body could not be scrubbed or read):
# these headers would describe the bytes on the wire, not the stored ones.
_WIRE_HEADERS = {"content-encoding", "content-length", "transfer-encoding"}
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
LOOPBACK_NETLOC = "localhost"
CASSETTE_FORMAT_VERSION = 1  # vcrpy's


@functools.lru_cache(maxsize=64)
def normal_uri(uri: str) -> str:
    """The URI as a cassette stores it: credentials masked, loopback host unported."""
    parts = urlsplit(redact.url(uri))
    if parts.hostname in _LOOPBACK:
        parts = parts._replace(netloc=LOOPBACK_NETLOC)
    return str(urlunsplit(parts))


def _normalise_request(request):
    """The same normalisation as a vcrpy `before_record_request` hook (for users who
    record with plain vcrpy and want emulate's cassette hygiene)."""
    request.uri = normal_uri(request.uri)
    request.headers = _kept_headers(request.headers.items())
    return request


def _kept_headers(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    return {k: v for k, v in items if k.lower() in _KEEP_REQUEST_HEADERS}


class ReplayMissSignal(BaseException):
    """Raised through the SDK by a replay miss. A BaseException, so the SDK's retry
    loop (which retries any Exception a transport raises, with backoff) lets it pass."""


def _key(method: str, uri: str, body: str | bytes | None) -> tuple[str, str, str]:
    uri = _sorted_query(uri)
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    body = body or ""
    try:
        body = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        body = body or ""
    return method.upper(), uri, body


@functools.lru_cache(maxsize=64)  # a run sends to one or two URIs, many times
def _sorted_query(uri: str) -> str:
    parts = urlsplit(uri)
    query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return urlunsplit(parts._replace(query=query))


class Tape:
    """One cassette in memory: its interactions in order and an index over them.

    mode "record": answer from the cassette where it can, else ask and add.
    mode "replay": answer only from the cassette; a miss raises ReplayMissSignal.
    """

    def __init__(self, path: str | Path, mode: str, secrets: Sequence[str] = ()):
        if mode not in ("record", "replay"):
            raise ValueError(f"mode {mode!r}: record or replay")
        self.path, self.mode = Path(path), mode
        self._secrets = [s for s in secrets if s and len(s) >= 4]
        self._interactions: list[dict[str, Any]] = []
        self._index: dict[tuple[str, str, str], list[int]] = {}
        self._played: dict[tuple[str, str, str], int] = {}
        self.recorded = 0
        if self.path.exists():
            self._load()

    def __len__(self) -> int:
        return len(self._interactions)

    def _load(self) -> None:
        try:
            data = json.loads(read_text(self.path, f"cassette {self.path}"))
            interactions = data["interactions"]
            for i, it in enumerate(interactions):
                req = it["request"]
                self._index.setdefault(_key(req["method"], req["uri"], req["body"]), []).append(i)
                it["response"]["status"]["code"]  # noqa: B018 - the shape is checked here
        except (ValueError, KeyError, TypeError) as err:
            raise EmulateError(
                f"{self.path}: not a vcrpy cassette ({type(err).__name__}: {err}); "
                "record it again with --record"
            ) from None
        self._interactions = interactions

    def find(self, key: tuple[str, str, str]) -> dict[str, Any] | None:
        """The next recorded response for this request, in recorded order. Once all are
        played, a replay repeats the last; a recording asks the server again."""
        found = self._index.get(key)
        if not found:
            return None
        played = self._played.get(key, 0)
        if played >= len(found) and self.mode == "record":
            return None
        self._played[key] = played + 1
        return self._interactions[found[min(played, len(found) - 1)]]["response"]

    def add(
        self,
        request: dict[str, Any],
        response: dict[str, Any],
        key: tuple[str, str, str] | None = None,
    ) -> None:
        """Append an exchange; `key` is the request's, when the caller has it already."""
        key = key or _key(request["method"], request["uri"], request["body"])
        self._index.setdefault(key, []).append(len(self._interactions))
        # Counted as played: a later identical request gets the next one recorded.
        self._played[key] = len(self._index[key])
        self._interactions.append({"request": request, "response": response})
        self.recorded += 1

    def scrub(self, response: dict[str, Any]) -> dict[str, Any]:
        """Drop identifying headers; mask the run's secrets wherever a server echoed
        them (an error message quoting the request URL, say)."""
        headers = {}
        for name, values in response["headers"].items():
            low = name.lower()
            if low in _DROP_RESPONSE_HEADERS or low in _WIRE_HEADERS:
                continue
            headers[name] = [redact.text(v, self._secrets) for v in values]
        body = response["body"]["string"]
        if self._secrets and any(s in body for s in self._secrets):
            body = redact.text(body, self._secrets)
        return {**response, "headers": headers, "body": {"string": body}}

    def save(self) -> None:
        save_cassette(self.path, self._interactions)


def save_cassette(path: str | Path, interactions: Sequence[Mapping[str, Any]]) -> None:
    """A whole cassette, atomically, one interaction per line: vcrpy's JSON serializer
    reads it; a diff shows which exchanges changed."""
    lines = ",\n".join(json.dumps(it, ensure_ascii=False) for it in interactions)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, f'{{"version": {CASSETTE_FORMAT_VERSION}, "interactions": [\n{lines}\n]}}\n')


def load_interactions(path: str | Path) -> list[dict[str, Any]]:
    """A cassette's exchanges in recorded order (`Tape` checks their shape)."""
    return Tape(path, "replay")._interactions


def http_client(tape: Tape | None, **kwargs: Any) -> httpx2.AsyncClient:
    """The SDK's async HTTP client, on aiohttp where it is installed (openai[aiohttp]:
    about twice the requests per second of httpx's own pool, bench/scale.py), with
    every transport it would use (proxies from the environment included) behind the
    tape when there is one."""
    base = openai.DefaultAioHttpClient if _has_aiohttp() else openai.DefaultAsyncHttpxClient

    class Client(base):  # type: ignore[misc, valid-type]
        # httpx's own extension points: each transport the client builds passes here.
        def _init_transport(self, *args: Any, **kw: Any) -> httpx2.AsyncBaseTransport:
            return TapeTransport(tape, super()._init_transport(*args, **kw))

        def _init_proxy_transport(self, *args: Any, **kw: Any) -> httpx2.AsyncBaseTransport:
            return TapeTransport(tape, super()._init_proxy_transport(*args, **kw))

    return Client(**kwargs)


def _has_aiohttp() -> bool:
    return importlib.util.find_spec("aiohttp") is not None


class TapeTransport(httpx2.AsyncBaseTransport):
    """Answers from a Tape where there is one; in record mode (or with no tape) asks
    `inner` for what the tape lacks."""

    def __init__(self, tape: Tape | None, inner: httpx2.AsyncBaseTransport):
        self.tape, self.inner = tape, inner

    async def _send(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.userinfo:
            # httpx has already turned URL credentials into an Authorization header;
            # aiohttp refuses a request that carries both.
            request.url = request.url.copy_with(userinfo=b"")
        return await self.inner.handle_async_request(request)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.tape is None:
            return await self._send(request)
        body = await request.aread()
        uri = normal_uri(str(request.url))
        key = _key(request.method, uri, body)
        stored = self.tape.find(key)
        if stored is not None:
            return _response(stored, request)
        if self.tape.mode == "replay":
            raise ReplayMissSignal(f"{self.tape.path} has no recorded answer for this request")
        real = await self._send(request)
        try:
            content = await real.aread()  # decoded: the cassette stores what was meant
        finally:
            await real.aclose()
        headers: dict[str, list[str]] = {}
        for name, value in real.headers.multi_items():
            headers.setdefault(name, []).append(value)
        response = {
            "status": {"code": real.status_code, "message": real.reason_phrase},
            "headers": headers,
            "body": {"string": content.decode("utf-8", errors="replace")},
        }
        self.tape.add(
            {
                "method": request.method,
                "uri": uri,
                "body": body.decode("utf-8", errors="replace"),
                "headers": {
                    k: [v] for k, v in _kept_headers(request.headers.multi_items()).items()
                },
            },
            self.tape.scrub(response),
            key,
        )
        # The answer as read (its body decoded, the connection released): what the
        # client would have had without the tape.
        return real

    async def aclose(self) -> None:
        await self.inner.aclose()


def _response(stored: dict[str, Any], request: httpx2.Request) -> httpx2.Response:
    body = stored["body"]["string"]
    headers = [
        (name, value)
        for name, values in stored["headers"].items()
        if name.lower() not in _WIRE_HEADERS
        for value in values
    ]
    message = stored["status"].get("message")
    return httpx2.Response(
        stored["status"]["code"],
        headers=headers,
        content=body.encode("utf-8") if isinstance(body, str) else body,
        request=request,
        extensions={"reason_phrase": message.encode("ascii", "replace")} if message else {},
    )


@contextlib.contextmanager
def cassette(
    path: str | Path | None, mode: str, secrets: Sequence[str] = ()
) -> Iterator[Tape | None]:
    """The tape for a run; saved on the way out when anything was recorded, even when
    the run stops early, so every row in the journal has its exchange on tape.
    `secrets` (the key, URL credentials) are masked wherever a response echoes them."""
    if path is None:
        yield None
        return
    tape = Tape(path, mode, secrets)
    try:
        yield tape
    finally:
        if tape.recorded:
            tape.save()
