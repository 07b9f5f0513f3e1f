"""Keeping secrets out of every file and message emulate writes.

A key can arrive three ways besides OPENAI_API_KEY (which only ever travels in a
request header, and headers are dropped from cassettes): in a base URL's userinfo
(`https://user:KEY@host/v1`), in its query string (`?api-key=KEY`), or in a
request body field. URLs are redacted wherever they are stored or printed; body
fields that look like credentials are refused up front (`check_extra_body`),
because a cassette matches requests on their body, so a body cannot be both
scrubbed and replayed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from .errors import EmulateError

MASK = "***"

# Whole names, or their last word: `api_key`, `x-api-key`, `access_token`, `sig`, but
# not `max_tokens` or `min_keep`.
_CREDENTIAL_NAME = re.compile(
    r"(?:^|[_\-.])(?:api[_\-]?key|key|token|access[_\-]?token|secret|client[_\-]?secret|"
    r"password|passwd|pwd|auth|authorization|credentials?|bearer|session|sig|signature|"
    r"code)$",
    re.IGNORECASE,
)
# Values shaped like the keys of the common providers.
_CREDENTIAL_VALUE = re.compile(r"^(?:sk|rk|pk|hf|gsk|xai|key)[-_][A-Za-z0-9_\-]{12,}$")


def is_credential_name(name: str) -> bool:
    return bool(_CREDENTIAL_NAME.search(name))


def url(value: str | None) -> str | None:
    """`value` with its userinfo and credential-like query values masked."""
    if not value:
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        return MASK  # not a URL we can take apart: show none of it
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        masked = [(k, MASK if _secret_pair(k, v) else v) for k, v in pairs]
        query = urlencode(masked, safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _secret_pair(name: str, value: str) -> bool:
    return is_credential_name(name) or bool(_CREDENTIAL_VALUE.match(value))


def url_secrets(value: str | None) -> list[str]:
    """The secret parts of a URL (userinfo, credential query values), to mask in text."""
    if not value:
        return []
    try:
        parts = urlsplit(value)
    except ValueError:
        return [value]
    found = []
    if "@" in parts.netloc:
        info = parts.netloc.rsplit("@", 1)[0]
        # `user:KEY` holds its secret after the colon; a lone `KEY@host` is the secret.
        found += [info, unquote(info), unquote(info.split(":", 1)[-1])]
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if v and _secret_pair(k, v):
            found += [v, quote(v, safe="")]
    return found


def text(message: str, secrets: Iterable[str | None]) -> str:
    """`message` with every known secret in it masked (longest first)."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        message = message.replace(secret, MASK)
    return message


def check_extra_body(body: Mapping[str, Any], where: str = "--extra-body") -> None:
    """Refuse credential-like fields, at any depth: they would be stored in run.json
    and in every recorded request."""
    for path, key, value in _walk(body, ""):
        if is_credential_name(str(key)) or (
            isinstance(value, str) and _CREDENTIAL_VALUE.match(value)
        ):
            raise EmulateError(
                f"{where}: field {path!r} looks like a credential, and emulate keeps secrets "
                "out of run.json and cassettes: pass the key as OPENAI_API_KEY (sent as a "
                "header, never stored), and leave it out of the body"
            )


def _walk(value: Any, prefix: str) -> Iterable[tuple[str, Any, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            yield path, k, v
            yield from _walk(v, path)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{prefix}[{i}]")
