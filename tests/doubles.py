"""A loopback OpenAI-compatible server that misbehaves on purpose: a test double for
the harness (retries, errors, resume, locking), never for a model.

Each request draws its fate from a seeded generator: a 429 with Retry-After, a 500,
a reset connection, a stall past the client's timeout, a 200 whose body is not JSON,
a 200 with no choices, or a good answer. A good answer is a fixed function of the
prompt, so two runs of the same cases get the same answers whatever the faults did.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("429", "500", "reset", "stall", "malformed", "no_choices")


def send_json(
    handler: BaseHTTPRequestHandler, status: int, data: bytes, headers: Mapping[str, str]
) -> None:
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data)))
    for k, v in headers.items():
        handler.send_header(k, v)
    handler.end_headers()
    handler.wfile.write(data)


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a client that hung up (a killed run) is part of the test


class FaultServer:
    def __init__(
        self,
        rates: Mapping[str, float] | None = None,
        *,
        stall_s: float = 2.0,
        seed: int = 0,
        delay_s: float = 0.0,
    ) -> None:
        self.rates = dict(rates or {})
        self.stall_s = stall_s
        self.delay_s = delay_s
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.seen: Counter[str] = Counter()
        self.prompts: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fate = fake._fate()
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                if fate == "reset":
                    # SO_LINGER 0: close() sends RST, as a crashed proxy does.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    return
                if fate == "stall":
                    time.sleep(fake.stall_s)
                if fate == "429":
                    slow = b'{"error": {"message": "slow down"}}'
                    return self._send(429, slow, {"retry-after": "0.1"})
                if fate == "500":
                    # Echoes the path, as some proxies do: a key in the URL must not leak
                    # through the error message.
                    boom = {"error": {"message": f"boom at {self.path}"}}
                    return self._send(500, json.dumps(boom).encode())
                if fate == "malformed":
                    return self._send(200, b'{"id": "x", "choices": [{"text": "[1, ')
                prompt = json.dumps(body.get("prompt") or body.get("messages"))
                with fake.lock:
                    fake.prompts.append(prompt)
                text = fake.answer(prompt)
                chat = "messages" in body
                choice = (
                    {"index": 0, "message": {"role": "assistant", "content": text}}
                    if chat
                    else {"index": 0, "text": text}
                ) | {"finish_reason": "stop", "logprobs": None}
                reply = {
                    "id": "x",
                    "object": "chat.completion" if chat else "text_completion",
                    "created": 0,
                    "model": body.get("model", "fake"),
                    "choices": [] if fate == "no_choices" else [choice],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
                }
                self._send(200, json.dumps(reply).encode())

            def _send(self, status: int, data: bytes, headers: Mapping[str, str] = {}) -> None:
                send_json(self, status, data, headers)

            def log_message(self, *args) -> None:
                pass

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _fate(self) -> str:
        with self.lock:
            roll = self.rng.random()
            for fault in FAULTS:
                roll -= self.rates.get(fault, 0.0)
                if roll < 0:
                    self.seen[fault] += 1
                    return fault
            self.seen["ok"] += 1
            return "ok"

    @staticmethod
    def answer(prompt: str) -> str:
        """A fixed function of the prompt: one of a few list answers."""
        k = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
        return ["[1, 2, 3]", "[0]", "[5, 5]", "nonsense"][k % 4]

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
