"""An OpenAI-compatible endpoint on loopback that answers at once: nginx returning a
fixed completion, so every second a bench measures is spent in the client.

    with fixed_endpoint() as base_url: ...   # http://127.0.0.1:PORT/v1

Needs nginx (Debian: apt-get install nginx-light). The answer is the same for
every request: a JSON array, which the conv probe parses and scores (wrong, mostly).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ANSWER = "[1, 2, 3, 4]"
_USAGE = {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129}
CHAT = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1764633600,
    "model": "bench",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": ANSWER},
            "finish_reason": "stop",
        }
    ],
    "usage": _USAGE,
}
COMPLETION = {
    "id": "cmpl-bench",
    "object": "text_completion",
    "created": 1764633600,
    "model": "bench",
    "choices": [{"index": 0, "text": ANSWER, "finish_reason": "stop"}],
    "usage": _USAGE,
}

_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log crit;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    client_body_buffer_size 64k;
    server {{
        listen 127.0.0.1:{port};
        default_type application/json;
        location = /v1/chat/completions {{ return 200 '{chat}'; }}
        location = /v1/completions {{ return 200 '{completion}'; }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def fixed_endpoint() -> Iterator[str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("this bench needs nginx: apt-get install nginx-light")
    with tempfile.TemporaryDirectory(prefix="emulate-bench-nginx-") as tmp:
        port = _free_port()
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(
            _CONF.format(
                tmp=tmp,
                port=port,
                chat=json.dumps(CHAT).replace("'", "\\'"),
                completion=json.dumps(COMPLETION).replace("'", "\\'"),
            )
        )
        proc = subprocess.Popen([nginx, "-c", str(conf), "-p", tmp])
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"nginx did not start: see {tmp}/error.log")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            proc.terminate()
            proc.wait(10)
