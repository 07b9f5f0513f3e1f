import json
import os
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from .doubles import QuietServer, send_json

# A project of its own, run by tests/test_pytest_plugin.py in a copy.
collect_ignore = ["sample_project"]

# Hypothesis keeps no example database, and its other files go to the temp folder:
# the suite writes nothing into the checkout (it runs from a read-only one in CI).
settings.register_profile("emulate", database=None)
settings.load_profile("emulate")
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "emulate-tests-hypothesis"))

ROOT = Path(__file__).resolve().parents[1]
CASSETTES = ROOT / "cassettes"
# Published benchmark items (BBH dyck, CRUXEval), with their source and licence.
PUBLISHED = ROOT / "tests" / "data" / "published"


@pytest.fixture(scope="session", autouse=True)
def _sandbox_cache(request, tmp_path_factory):
    """Truths cached in pytest's own cache folder (in the project), never the user's
    ~/.cache/emulate: repeated local runs stay fast, a fresh clone starts empty. Under
    `-p no:cacheprovider`, or from a checkout it cannot write, a folder of this session's."""
    import os

    folder = None
    if cache := getattr(request.config, "cache", None):
        try:
            folder = cache.mkdir("emulate-sandbox")
            probe = folder / ".writable"
            probe.touch()
            probe.unlink()
        except OSError:
            folder = None
    if folder is None:
        folder = tmp_path_factory.mktemp("emulate-sandbox")
    # The tests' items files (CRUXEval's published programs, and the tests' own) are
    # known code: on a machine without bubblewrap they run in unshare's namespaces, as
    # generated programs do, rather than being refused.
    env = {"EMULATE_CACHE": str(folder), "EMULATE_ALLOW_UNISOLATED": "1"}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class FakeServer:
    """A loopback stand-in for an OpenAI-compatible server, for tests of the harness
    (retries, errors, scrubbing), never of a model. Each request pops the next scripted
    (status, headers, body); the last one repeats. With `reply` set, a completion's text
    is `reply(request body)` instead: answers that differ from case to case."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict, dict]] = []
        self.requests: list[dict] = []
        self.reply = None
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
                if fake.reply is not None and status == 200:
                    text = fake.reply(fake.requests[-1]["body"])
                    body = {**body, "choices": [{**body["choices"][0], "text": text}]}
                send_json(self, status, json.dumps(body).encode(), headers)

            def log_message(self, *args) -> None:
                pass

        # Quiet: a client that hangs up (a run stopped mid-request) is no error here.
        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
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


def results_rows(path: Path) -> list[dict]:
    """A results.csv as rows, timing columns aside (they differ from run to run)."""
    import csv

    from emulate.analysis.results import TIMING_COLUMNS

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for col in TIMING_COLUMNS:
            r.pop(col)
    return rows


def cassette_dirs() -> list[Path]:
    return sorted(p.parent for p in CASSETTES.glob("*/*/cassette.json"))


def skip_unless_runnable(folder: Path) -> None:
    """Skip a cassette folder whose probe this environment cannot build: a plugin not
    installed here (tests/test_plugin.py replays those in its own install), or a truth
    that needs more than the test extra (PyTorch, bubblewrap)."""
    from emulate.registry import get_probe, known

    name = folder.parent.name
    if not known(name):
        pytest.skip(f"probe {name} is a plugin: pip install plugins/emulate-{name}")
    if why := get_probe(name).missing():
        pytest.skip(why)


@pytest.fixture(scope="session")
def replayed(tmp_path_factory):
    """A run folder made by replaying a recorded cassette folder, once per session:
    real journals for the analysis tests, with no server."""
    from emulate.config import load_config
    from emulate.pipeline.runner import run_config

    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            folder = CASSETTES / name
            out = tmp_path_factory.mktemp(name.replace("/", "-")) / "run"
            config = load_config(folder / "run.json")
            run_config(config, out, replay=folder / "cassette.json", progress=False, echo=None)
            made[name] = out
        return made[name]

    return make


def journal_row(
    case_id: str,
    params: dict,
    correct: bool,
    *,
    probe: str = "conv",
    model: str = "m",
    run_id: str = "r",
    metrics: dict | None = None,
    error: str | None = None,
    prompt_tokens: int | None = 10,
    completion_tokens: int | None = 2,
    text: str = "[1, 2]",
) -> dict:
    """One journal line, built from the real dataclasses, for synthetic journals."""
    from emulate.case import Answer, Case, Row, Score

    case = Case(case_id, probe, 1, params, 0, {}, [1, 2], "prompt text", max_tokens=8)
    answer = Answer(text, None, prompt_tokens, completion_tokens, 0.1, "stop", error)
    score = Score(correct, metrics or {}, None if correct else "wrong_values", None)
    return Row(run_id, model, "api.example.com", "chat", case, answer, score).to_json()


def write_journal(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "journal.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return folder
