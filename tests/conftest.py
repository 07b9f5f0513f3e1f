import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CASSETTES = ROOT / "cassettes"
SHARED_DATA = ROOT.parent / "shared" / "data"


class FakeServer:
    """A loopback stand-in for an OpenAI-compatible server, for tests of the harness
    (retries, errors, scrubbing), never of a model. Each request pops the next scripted
    (status, headers, body); the last one repeats."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict, dict]] = []
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                fake.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": json.loads(self.rfile.read(length) or b"{}"),
                    }
                )
                status, headers, body = (
                    fake.script.pop(0) if len(fake.script) > 1 else fake.script[0]
                )
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def completion(self, text: str, status: int = 200, headers: dict | None = None) -> None:
        self.script.append(
            (
                status,
                headers or {},
                {
                    "id": "x",
                    "object": "text_completion",
                    "created": 0,
                    "model": "fake",
                    "choices": [
                        {"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
                },
            )
        )

    def error(self, status: int, message: str = "nope", headers: dict | None = None) -> None:
        self.script.append((status, headers or {}, {"error": {"message": message, "type": "x"}}))


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    server = FakeServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def cassette_dirs() -> list[Path]:
    return sorted(p.parent for p in CASSETTES.glob("*/*/cassette.json"))
