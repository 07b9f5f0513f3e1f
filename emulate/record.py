"""Recording and replaying HTTP exchanges with vcrpy.

Configured so that a replay can only ever hand a request its own answer:
requests match on their JSON body (vcrpy compares JSON bodies as JSON), and a
miss in replay raises instead of reaching the network. Secrets are scrubbed from
requests and responses; loopback hosts and ports are normalised so a cassette
recorded against a server on one port replays against any other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import vcr

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
    parts = urlsplit(request.uri)
    if parts.hostname in _LOOPBACK:
        request.uri = urlunsplit(parts._replace(netloc=LOOPBACK_NETLOC))
    request.headers = {
        k: v for k, v in request.headers.items() if k.lower() in _KEEP_REQUEST_HEADERS
    }
    return request


def _scrub_response(response):
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in _DROP_RESPONSE_HEADERS:
            del headers[name]
    return response


def recorder() -> vcr.VCR:
    return vcr.VCR(
        serializer="json",
        match_on=("method", "scheme", "host", "port", "path", "query", "body"),
        before_record_request=_normalise_request,
        before_record_response=_scrub_response,
        decode_compressed_response=True,
        record_on_exception=False,
    )


@contextlib.contextmanager
def cassette(path: str | Path | None, mode: str) -> Iterator[None]:
    """mode "record": answer from the cassette where it can, else ask and add.
    mode "replay": answer only from the cassette; a miss raises."""
    if path is None:
        yield
        return
    record_mode = {"record": "new_episodes", "replay": "none"}[mode]
    # Identical requests (the same prompt at temperature 0) may legitimately repeat.
    with recorder().use_cassette(str(path), record_mode=record_mode, allow_playback_repeats=True):
        yield
