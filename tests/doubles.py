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


def completion_body(request: Mapping, text: str, model: str | None = None) -> dict:
    """A chat or text completion answering `request` with `text`, as OpenAI writes one."""
    chat = "messages" in request
    choice = (
        {"index": 0, "message": {"role": "assistant", "content": text}}
        if chat
        else {"index": 0, "text": text}
    ) | {"finish_reason": "stop", "logprobs": None}
    return {
        "id": "x",
        "object": "chat.completion" if chat else "text_completion",
        "created": 0,
        "model": model or request.get("model", "fake"),
        "choices": [choice],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


def loopback(
    handler: type[BaseHTTPRequestHandler],
) -> tuple[ThreadingHTTPServer, str, threading.Thread]:
    """A server on a free loopback port, its OpenAI-style base URL, and the thread to
    serve it on (not started)."""
    httpd = QuietServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    return httpd, url, threading.Thread(target=httpd.serve_forever, daemon=True)


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
                reply = completion_body(body, fake.answer(prompt))
                if fate == "no_choices":
                    reply["choices"] = []
                self._send(200, json.dumps(reply).encode())

            def _send(self, status: int, data: bytes, headers: Mapping[str, str] = {}) -> None:
                send_json(self, status, data, headers)

            def log_message(self, *args) -> None:
                pass

        self.httpd, self.url, self.thread = loopback(Handler)

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


class BatchServer:
    """A loopback stand-in for OpenAI's Files and Batches API, as documented
    (platform.openai.com/docs/api-reference/batch): upload a file (multipart, purpose
    "batch"), create a batch from it, retrieve it as it goes validating -> in_progress ->
    completed, download its output and error files. Live completions are answered too,
    with the same function of the prompt (`FaultServer.answer`), so a batch run and a
    live run of the same cases can be compared. A test double for the harness.

    Knobs: `hold` keeps batches in progress; `fail` (custom_ids) answers those requests
    with HTTP 400 in the error file; `expire_after` answers only that many and then
    expires; `invalid` fails validation with that message; `key` demands that key."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.hold = False
        self.polls_to_finish = 2
        self.fail: set[str] = set()
        self.expire_after: int | None = None
        self.invalid: str | None = None
        self.key: str | None = None
        self.headers_seen: list[dict] = []  # every request's headers, in order
        self.batch_api = True  # False: a server with completions only (404 elsewhere)
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _route(self, method: str) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                with fake.lock:
                    fake.calls.append((method, self.path))
                    fake.headers_seen.append(dict(self.headers))
                    if fake.key and self.headers.get("authorization") != f"Bearer {fake.key}":
                        status, body = 401, {"error": {"message": "Incorrect API key"}}
                    else:
                        status, body = fake.handle(method, self.path, self.headers, raw)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                send_json(self, status, data, {})

            def do_POST(self) -> None:
                self._route("POST")

            def do_GET(self) -> None:
                self._route("GET")

            def log_message(self, *args) -> None:
                pass

        self.httpd, self.url, self.thread = loopback(Handler)

    def handle(self, method: str, path: str, headers, raw: bytes) -> tuple[int, object]:
        parts = path.removeprefix("/v1/").split("/")
        if not self.batch_api and parts[0] in ("files", "batches"):
            return 404, {"error": {"message": "Not Found"}}
        if method == "POST" and parts == ["files"]:
            return 200, self._upload(headers, raw)
        if method == "POST" and parts == ["batches"]:
            return 200, self._create(json.loads(raw))
        if method == "GET" and parts[0] == "batches" and parts[1] in self.batches:
            return 200, self._advance(self.batches[parts[1]])
        if method == "GET" and parts[0] == "files" and parts[1] in self.files:
            return 200, self.files[parts[1]]
        if method == "POST" and parts in (["completions"], ["chat", "completions"]):
            body = json.loads(raw)
            prompt = json.dumps(body.get("prompt") or body.get("messages"))
            return 200, completion_body(body, FaultServer.answer(prompt))
        return 404, {"error": {"message": f"no route {method} {path}"}}

    def _upload(self, headers, raw: bytes) -> dict:
        import email.parser
        import email.policy

        head = f"Content-Type: {headers['content-type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        fields = {
            part.get_param("name", header="content-disposition"): part
            for part in message.iter_parts()
        }
        assert fields["purpose"].get_content() == "batch"
        content = fields["file"].get_payload(decode=True)
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = content
        return {"id": file_id, "object": "file", "bytes": len(content), "created_at": 0,
                "filename": fields["file"].get_filename(), "purpose": "batch",
                "status": "processed"}  # fmt: skip

    def _create(self, params: dict) -> dict:
        assert params["completion_window"] == "24h"
        requests = [json.loads(x) for x in self.files[params["input_file_id"]].splitlines()]
        assert {r["url"] for r in requests} == {params["endpoint"]}
        batch_id = f"batch_{len(self.batches) + 1}"
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": params["endpoint"],
            "input_file_id": params["input_file_id"], "completion_window": "24h",
            "status": "validating", "created_at": 0, "metadata": params.get("metadata"),
            "request_counts": {"total": len(requests), "completed": 0, "failed": 0},
            "_requests": requests, "_polls": 0,
        }  # fmt: skip
        return self._public(self.batches[batch_id])

    def _advance(self, batch: dict) -> dict:
        batch["_polls"] += 1
        if batch["status"] in ("completed", "failed", "expired"):
            return self._public(batch)
        if self.invalid:
            batch["status"] = "failed"
            batch["errors"] = {
                "object": "list",
                "data": [
                    {"code": "invalid_request", "line": 1, "message": self.invalid, "param": None}
                ],
            }
            return self._public(batch)  # fmt: skip
        if self.hold or batch["_polls"] < self.polls_to_finish:
            batch["status"] = "in_progress"
            return self._public(batch)
        requests = batch["_requests"]
        answered = requests[: self.expire_after] if self.expire_after is not None else requests
        out, errors = [], []
        for i, r in enumerate(answered):
            line = {"id": f"batch_req_{i}", "custom_id": r["custom_id"], "error": None}
            if r["custom_id"] in self.fail:
                error = {"error": {"message": "This model's maximum context length is 8192",
                                   "type": "invalid_request_error", "code": None}}  # fmt: skip
                errors.append(line | {"response": {"status_code": 400, "request_id": "q",
                                                   "body": error}})  # fmt: skip
                continue
            prompt = json.dumps(r["body"].get("prompt") or r["body"].get("messages"))
            body = completion_body(r["body"], FaultServer.answer(prompt),
                                   model=r["body"]["model"] + "-2024-07-18")  # fmt: skip
            out.append(line | {"response": {"status_code": 200, "request_id": "q", "body": body}})
        for key, lines in (("output_file_id", out), ("error_file_id", errors)):
            if lines:
                file_id = f"file-{len(self.files) + 1}"
                self.files[file_id] = "".join(json.dumps(x) + "\n" for x in lines).encode()
                batch[key] = file_id
        batch["request_counts"] = {"total": len(requests), "completed": len(out),
                                   "failed": len(errors)}  # fmt: skip
        batch["status"] = "expired" if self.expire_after is not None else "completed"
        return self._public(batch)

    @staticmethod
    def _public(batch: dict) -> dict:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def __enter__(self) -> BatchServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
