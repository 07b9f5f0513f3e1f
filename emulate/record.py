"""Recording and replaying HTTP exchanges with vcrpy.

Configured so that a replay can only ever hand a request its own answer:
requests match on their JSON body (vcrpy compares JSON bodies as JSON), and a
miss in replay raises instead of reaching the network. Secrets are scrubbed from
requests and responses: headers but a few harmless ones are dropped, URL
credentials masked for every host (bodies hold none: emulate/redact.py refuses
credential-like body fields). Loopback hosts and ports are normalised so a
cassette recorded against a server on one port replays against any other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import vcr

from . import redact

# Request headers kept in a cassette; everything else (the key, organisation,
# project, the SDK's platform fingerprint) is dropped. content-type must stay:
# vcrpy's body matcher reads it to compare JSON as JSON.
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
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
LOOPBACK_NETLOC = "localhost"


def _normalise_request(request):
    # Credentials in the URL (userinfo, `?api-key=`) are masked for every host; vcrpy
    # runs this hook on live requests too before matching, so a replay still matches.
    parts = urlsplit(redact.url(request.uri))
    if parts.hostname in _LOOPBACK:
        parts = parts._replace(netloc=LOOPBACK_NETLOC)
    request.uri = urlunsplit(parts)
    request.headers = {
        k: v for k, v in request.headers.items() if k.lower() in _KEEP_REQUEST_HEADERS
    }
    return request


def _scrubber(secrets: Sequence[str]):
    """Drop identifying headers; mask the run's secrets wherever a server echoed them
    (an error message quoting the request URL, say)."""
    known = [s.encode() for s in secrets if s and len(s) >= 4]

    def scrub(response):
        headers = response.get("headers", {})
        for name in list(headers):
            if name.lower() in _DROP_RESPONSE_HEADERS:
                del headers[name]
            elif known:
                headers[name] = [redact.text(v, secrets) for v in headers[name]]
        body = response.get("body", {}).get("string")
        if known and isinstance(body, bytes) and any(k in body for k in known):
            for k in sorted(known, key=len, reverse=True):
                body = body.replace(k, redact.MASK.encode())
            response["body"]["string"] = body
        return response

    return scrub


def recorder(secrets: Sequence[str] = ()) -> vcr.VCR:
    return vcr.VCR(
        serializer="json",
        match_on=("method", "scheme", "host", "port", "path", "query", "body"),
        before_record_request=_normalise_request,
        before_record_response=_scrubber(secrets),
        decode_compressed_response=True,
        record_on_exception=False,
    )


@contextlib.contextmanager
def cassette(path: str | Path | None, mode: str, secrets: Sequence[str] = ()) -> Iterator[None]:
    """mode "record": answer from the cassette where it can, else ask and add.
    mode "replay": answer only from the cassette; a miss raises. `secrets` (the key,
    URL credentials) are masked wherever a response echoes them."""
    if path is None:
        yield
        return
    record_mode = {"record": "new_episodes", "replay": "none"}[mode]
    # Identical requests (the same prompt at temperature 0) may legitimately repeat.
    tape = recorder(secrets).use_cassette(
        str(path), record_mode=record_mode, allow_playback_repeats=True
    )
    with tape:
        yield
