"""The OpenAI Batch API end to end (issue 16, part 2), against a loopback double that
speaks /v1/files and /v1/batches as OpenAI documents them (tests/doubles.py): the
tests are about the harness (upload, submit, poll, stop, resume, download, score),
not a model. The double answers live requests with the same function of the prompt,
so a batch run and a live run of the same cases must agree case by case."""

import json

import pytest

import emulate
import emulate.batch.service
from emulate.batch.service import BatchPending, submit_batch
from emulate.cli.main import main
from emulate.errors import EmulateError

from .doubles import BatchServer

pytestmark = pytest.mark.enable_socket
GRID = {"dims": 1, "size": [4, 5], "kernel": 2, "values": 9}


@pytest.fixture
def api():
    with BatchServer() as server:
        yield server


def _config(api, mode="chat"):
    return emulate.make_config("conv", GRID, n=3, model="gpt-4o-mini", base_url=api.url,
                               mode=mode)  # fmt: skip


def _rows(run):
    rows = {}
    for r in map(json.loads, (run / "journal.jsonl").read_text().splitlines()):
        r["answer"].pop("latency_s")
        r["server"] = r["server"].removesuffix(" (batch)")
        rows[r["case"]["id"]] = r
    return rows


def _calls(api, method, prefix):
    return sum(1 for m, p in api.calls if m == method and p.startswith(prefix))


@pytest.mark.parametrize("mode", ["chat", "completion"])
def test_a_batch_run_scores_as_the_live_run(api, tmp_path, mode):
    config = _config(api, mode)
    live = emulate.run_config(config, tmp_path / "live", progress=False, echo=None)
    said = []
    result = submit_batch(config, tmp_path / "b", poll_s=0.01, progress=False, echo=said.append)
    assert (result.done, result.correct, result.errors) == (6, live.correct, 0)
    assert _rows(tmp_path / "b") == _rows(tmp_path / "live")
    assert _calls(api, "POST", "/v1/files") == _calls(api, "POST", "/v1/batches") == 1
    assert _calls(api, "GET", "/v1/batches/") == api.polls_to_finish
    state = json.loads((tmp_path / "b" / "batch.json").read_text())
    (part,) = state["parts"]
    assert (part["status"], part["output"], part["requests"]) == ("completed", "output.jsonl", 6)
    assert state["endpoint"] == ("/v1/chat/completions" if mode == "chat" else "/v1/completions")
    # the uploaded file is the exported one, byte for byte
    assert api.files["file-1"] == (tmp_path / "b" / "requests.jsonl").read_bytes()
    assert not any("note:" in line for line in said)  # gpt-4o-mini-2024-07-18 is gpt-4o-mini


def test_stopped_while_in_progress_it_resumes_by_the_saved_id(api, tmp_path, capsys):
    config = _config(api)
    out = tmp_path / "b"
    api.hold = True
    with pytest.raises(BatchPending, match=r"batch_1: in_progress, 0 of 6 requests done"):
        submit_batch(config, out, wait_s=0.05, poll_s=0.01, progress=False, echo=None)
    state = json.loads((out / "batch.json").read_text())
    assert state["parts"][0]["batch_id"] == "batch_1" and not (out / "journal.jsonl").exists()
    run_json = str(out / "run.json")
    # the CLI: come back later, still running: exit 75, one line naming the way back
    argv = ["batch", "submit", "--config", run_json, "--resume", "--no-progress"]
    assert main([*argv, "--batch-wait", "0"]) == 75
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and f"batch submit --config {out / 'run.json'} --out {out} --resume" in err
    )
    with pytest.raises(EmulateError, match="holds submitted batches: pass --resume"):
        submit_batch(config, out, progress=False, echo=None)
    api.hold = False
    assert main([*argv, "--batch-poll", "0.01"]) == 0
    assert "conv on gpt-4o-mini" in capsys.readouterr().out
    assert _calls(api, "POST", "/v1/files") == _calls(api, "POST", "/v1/batches") == 1
    assert len(_rows(out)) == 6
    # done is done: resuming again downloads and scores nothing new
    again = submit_batch(config, out, resume=True, progress=False, echo=None)
    assert again.done == 6 and _calls(api, "GET", "/v1/files/") == 1


def test_a_run_past_the_api_limits_goes_as_several_batches(api, tmp_path, monkeypatch):
    monkeypatch.setattr(emulate.batch.service, "MAX_REQUESTS", 4)
    result = submit_batch(_config(api), tmp_path / "b", poll_s=0.01, progress=False, echo=None)
    state = json.loads((tmp_path / "b" / "batch.json").read_text())
    assert [(p["requests_file"], p["requests"], p["output"]) for p in state["parts"]] == [
        ("requests-001.jsonl", 4, "output-001.jsonl"),
        ("requests-002.jsonl", 2, "output-002.jsonl"),
    ]
    assert result.done == 6 and _calls(api, "POST", "/v1/batches") == 2


def test_failed_requests_and_an_expired_batch(api, tmp_path):
    config = _config(api)
    ids = [c.id for c in emulate.cases("conv", GRID, n=3, mode="chat", model="gpt-4o-mini")]
    api.fail, api.expire_after = {ids[1]}, 4
    said = []
    result = submit_batch(config, tmp_path / "b", poll_s=0.01, progress=False, echo=said.append,
                       max_errors=1.0)  # fmt: skip
    assert (result.done, result.errors, result.missing) == (4, 1, (ids[4], ids[5]))
    rows = _rows(tmp_path / "b")
    assert (
        rows[ids[1]]["answer"]["error"] == "HTTP 400: This model's maximum context length is 8192"
    )
    state = json.loads((tmp_path / "b" / "batch.json").read_text())
    assert state["parts"][0]["errors"] == "errors.jsonl"
    expired = (
        "note: batch batch_1 expired; its unanswered cases are not scored (send them "
        f"again: emulate batch submit --config {tmp_path / 'b' / 'run.json'} --resume "
        "--retry-errors)"
    )
    assert expired in said
    # sent again: one new batch of exactly the failed and the unanswered cases
    api.fail, api.expire_after = set(), None
    again = submit_batch(config, tmp_path / "b", resume=True, retry_errors=True, poll_s=0.01,
                      progress=False, echo=None)  # fmt: skip
    assert (again.done, again.errors, again.missing) == (6, 0, ())
    resent = [json.loads(x)["custom_id"] for x in api.files["file-4"].splitlines()]
    assert resent == [ids[1], ids[4], ids[5]]
    rows = [json.loads(x) for x in (tmp_path / "b" / "journal.jsonl").read_text().splitlines()]
    assert sorted(r["case"]["id"] for r in rows) == sorted(ids)  # one row per case
    state = json.loads((tmp_path / "b" / "batch.json").read_text())
    assert [(p["round"], p["requests_file"], p["output"]) for p in state["parts"]] == [
        (1, "requests.jsonl", "output.jsonl"),
        (2, "requests-r2.jsonl", "output-r2.jsonl"),
    ]
    # resumed once more: the later round's answers win, nothing is sent or scored twice
    last = submit_batch(config, tmp_path / "b", resume=True, retry_errors=True, poll_s=0.01,
                     progress=False, echo=None)  # fmt: skip
    assert (last.done, last.errors) == (6, 0) and _calls(api, "POST", "/v1/batches") == 2


@pytest.mark.parametrize(
    "knob,message",
    [
        ({"invalid": "Invalid JSON on line 1"},
         "the batch failed: invalid_request at line 1: Invalid JSON on line 1"),
        ({"key": "the-right-key"}, "refused the request (HTTP 401): emulate sent it no key"),
        ({"batch_api": False}, "a server without a batch API can run the requests: "
                               "`emulate batch export`, then `emulate batch execute`"),
    ],
)  # fmt: skip
def test_what_the_api_refuses_is_one_line_and_exit_2(api, tmp_path, capsys, monkeypatch, knob,
                                                     message):  # fmt: skip
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-key")
    for k, v in knob.items():
        setattr(api, k, v)
    argv = ["batch", "submit", "conv", "-P", "size=4", "-P", "dims=1", "--model", "gpt-4o-mini",
            "--base-url", api.url, "--batch-poll", "0.01", "--out",
            str(tmp_path / "b"), "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "sk-test-secret-key" not in err
    assert "sk-test-secret-key" not in (tmp_path / "b" / "batch.json").read_text() + "".join(
        p.read_text() for p in (tmp_path / "b").glob("*.json*")
    )


def test_the_embedded_model_has_no_batch_api(tmp_path, capsys):
    assert main(["batch", "submit", "conv", "--out", str(tmp_path / "b")]) == 2
    assert "the embedded model has no batch API" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_ctrl_c_while_waiting_leaves_a_batch_that_resumes(api, tmp_path):
    """A real stop: the CLI in its own process, interrupted while it polls."""
    import signal
    import subprocess
    import sys
    import time

    api.hold = True
    out = tmp_path / "b"
    argv = [sys.executable, "-m", "emulate", "batch", "submit", "conv", "-P", "size=4,5",
            "-P", "dims=1", "-P", "kernel=2", "-P", "values=9", "--model", "gpt-4o-mini",
            "--base-url", api.url,
            "--n", "3", "--batch-poll", "0.05", "--out", str(out), "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _calls(api, "GET", "/v1/batches/") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "run again with --resume" in err
    assert json.loads((out / "batch.json").read_text())["parts"][0]["status"] == "in_progress"
    api.hold = False
    result = submit_batch(emulate.load_config(out / "run.json"), out, resume=True, poll_s=0.01,
                       progress=False, echo=None)  # fmt: skip
    assert result.done == 6 and _calls(api, "POST", "/v1/batches") == 1


def test_a_log_gets_a_line_when_the_batch_moves_not_every_poll(capsys, monkeypatch):
    from emulate.batch.service import Part, State, _Bar

    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    bar = _Bar(6, enabled=True)
    at = [1000.0]
    monkeypatch.setattr(emulate.batch.service.time, "monotonic", lambda: at[0])

    def state(done):
        return State("/v1/completions", "", (Part("requests.jsonl", 6, batch_id="b1",
                                                   status="in_progress", done=done),))  # fmt: skip

    for done, t in ((0, 0), (0, 30), (0, 60), (3, 90), (3, 120), (3, 720)):
        at[0] = 1000.0 + t
        bar.show(state(done))
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["batch b1: in_progress, 0 of 6 requests done",
                     "batch b1: in_progress, 3 of 6 requests done",
                     "batch b1: in_progress, 3 of 6 requests done"]  # fmt: skip


STUDY = """
name = "b"
[[claim]]
id = "K1"
question = "Does accuracy hold at the largest input?"
computes = "acc.low >= 0.8"
imitates = "acc.high < 0.8"
[[claim.run]]
name = "sizes"
probe = "conv"
n = 3
grid = { dims = 1, kernel = 2, values = 9, size = [4, 5] }
[[claim.stat]]
name = "acc"
kind = "rate"
run = "sizes"
"""


def test_a_study_through_the_batch_api_gives_the_live_studys_verdicts(api, tmp_path, capsys):
    from emulate.studies.api import Batch, study

    f = tmp_path / "s.toml"
    f.write_text(STUDY)
    model = f"gpt-4o-mini@{api.url}"
    live = study(f, models=[model], out=tmp_path / "live", progress=False, reports=False)
    # Submitted, not waited for: exit 75 naming --resume; nothing scored yet.
    api.hold = True
    argv = ["study", str(f), "--model", model, "--out", str(tmp_path / "b"), "--batch",
            "--batch-poll", "0.01", "--no-progress", "--no-reports"]  # fmt: skip
    assert main([*argv, "--batch-wait", "0"]) == 75
    assert "--resume" in capsys.readouterr().err
    assert _calls(api, "POST", "/v1/batches") == 1
    api.hold = False
    assert main([*argv, "--resume"]) == 0
    batched = study(f, models=[model], out=tmp_path / "b", progress=False, reports=False,
                    resume=True, batch=Batch(poll_s=0.01))  # fmt: skip
    assert _calls(api, "POST", "/v1/batches") == 1  # done is done: nothing sent again
    assert [(r.verdict, r.stats[0].value, r.stats[0].n) for r in batched.results] == [
        (r.verdict, r.stats[0].value, r.stats[0].n) for r in live.results
    ]
    assert live.results[0].stats[0].n == 6
