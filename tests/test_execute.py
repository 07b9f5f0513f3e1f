"""Executing a batch file against an OpenAI-compatible server (issue 16, part 3). The
server here is a loopback double whose answers differ from prompt to prompt: the
tests are about the harness (the format, concurrency, resume, errors), not a model.
tests/test_live.py runs the same path on the embedded model."""

import hashlib
import json

import pytest

import emulate
from emulate.batch.execute import execute_batch
from emulate.cli.main import main

GRID = {"dims": 1, "size": [4, 5], "kernel": 2, "values": 9}
pytestmark = pytest.mark.enable_socket


def _reply(body):
    """An answer that is a function of the prompt: some right-shaped, some not."""
    h = int(hashlib.sha256(body["prompt"].encode()).hexdigest(), 16)
    return f" [{h % 5}, {h % 3}, 1]" if h % 4 else " no idea"


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture
def exported(fake_server, tmp_path):
    fake_server.completion("")
    fake_server.reply = _reply
    config = emulate.make_config("conv", GRID, n=3, model="fake", base_url=fake_server.url,
                                 mode="completion")  # fmt: skip
    emulate.export_batch(config, tmp_path / "requests.jsonl", tmp_path / "run")
    return config


def _by_case(run):
    rows = {}
    for r in _lines(run / "journal.jsonl"):
        r["answer"].pop("latency_s")
        rows[r["case"]["id"]] = r
    return rows


def test_export_execute_score_is_the_live_run(fake_server, tmp_path, exported):
    done = execute_batch(tmp_path / "requests.jsonl", tmp_path / "output.jsonl",
                         base_url=fake_server.url, concurrency=3, progress=False)  # fmt: skip
    assert (done.requests, done.asked, done.errors) == (6, 6, 0)
    lines = _lines(tmp_path / "output.jsonl")
    requests = _lines(tmp_path / "requests.jsonl")
    assert sorted(x["custom_id"] for x in lines) == sorted(r["custom_id"] for r in requests)
    assert all(x["response"]["status_code"] == 200 and x["error"] is None for x in lines)
    assert len({x["id"] for x in lines}) == 6 and all(
        x["id"].startswith("emulate_req_") for x in lines
    )
    # each request was sent as the file wrote it, to its path under the base URL
    assert sorted(map(json.dumps, (r["body"] for r in fake_server.requests))) == sorted(
        map(json.dumps, (r["body"] for r in requests))
    )
    assert {r["path"] for r in fake_server.requests} == {"/v1/completions"}
    output = [tmp_path / "output.jsonl"]
    batch = emulate.score_batch(exported, output, tmp_path / "run", progress=False,
                               echo=None)  # fmt: skip
    live = emulate.run_config(exported, tmp_path / "live", progress=False, echo=None)
    assert (batch.done, batch.correct) == (live.done, live.correct) == (6, live.correct)
    # the same rows, the server's label too: executed requests went live, at live prices
    assert _by_case(tmp_path / "run") == _by_case(tmp_path / "live")
    assert len({r["answer"]["text"] for r in _by_case(tmp_path / "live").values()}) > 2


def test_resume_sends_only_what_has_no_answer(fake_server, tmp_path, exported):
    out = tmp_path / "output.jsonl"
    execute_batch(tmp_path / "requests.jsonl", out, base_url=fake_server.url, progress=False)
    lines = out.read_text().splitlines(keepends=True)
    failed = json.loads(lines[1])
    failed["response"] = {"status_code": 500, "request_id": "", "body": {"error": {"message": "x"}}}
    # a kill mid-write leaves half a line; a failed request is asked again
    out.write_text(lines[0] + json.dumps(failed) + "\n" + "".join(lines[2:4]) + lines[4][:30])
    sent_before = len(fake_server.requests)
    again = execute_batch(tmp_path / "requests.jsonl", out, base_url=fake_server.url,
                          resume=True, progress=False)  # fmt: skip
    assert again.asked == len(fake_server.requests) - sent_before == 3  # lines 1, 4 and 5
    final = _lines(out)
    assert len(final) == 6 and len({x["custom_id"] for x in final}) == 6
    assert all(x["response"]["status_code"] == 200 for x in final)
    assert [x["custom_id"] for x in final[:3]] == [
        json.loads(lines[i])["custom_id"] for i in (0, 2, 3)
    ]


def test_an_error_status_is_written_as_the_batch_api_writes_it(fake_server, tmp_path):
    fake_server.error(400, "prompt too long")
    config = emulate.make_config("conv", GRID, n=1, model="fake", base_url=fake_server.url,
                                 mode="completion")  # fmt: skip
    emulate.export_batch(config, tmp_path / "requests.jsonl", tmp_path / "run")
    done = execute_batch(tmp_path / "requests.jsonl", tmp_path / "output.jsonl",
                         base_url=fake_server.url, progress=False)  # fmt: skip
    assert (done.asked, done.errors) == (2, 2)
    line = _lines(tmp_path / "output.jsonl")[0]
    assert line["response"]["status_code"] == 400 and line["error"] is None
    assert line["response"]["body"] == {"error": {"message": "prompt too long", "type": "x"}}
    output = [tmp_path / "output.jsonl"]
    result = emulate.score_batch(config, output, tmp_path / "run", progress=False,
                                echo=None, max_errors=1.0)  # fmt: skip
    assert result.errors == 2
    row = _lines(tmp_path / "run" / "journal.jsonl")[0]
    assert row["answer"]["error"] == "HTTP 400: prompt too long"


def test_a_refused_key_stops_it_with_one_line(fake_server, tmp_path, capsys):
    fake_server.error(401, "bad key")
    config = emulate.make_config("conv", GRID, n=1, model="fake", base_url=fake_server.url,
                                 mode="completion")  # fmt: skip
    emulate.export_batch(config, tmp_path / "requests.jsonl", tmp_path / "run")
    argv = ["batch", "execute", str(tmp_path / "requests.jsonl"), "--out",
            str(tmp_path / "o.jsonl"), "--base-url", fake_server.url, "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "refused the request (HTTP 401): emulate sent it no key" in err and err.count("\n") == 1
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize(
    "line,message",
    [
        ("nope", "line 2 is not JSON"),
        ('{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m"}}',
         "line 2: url '/v1/embeddings' is not one of /v1/chat/completions, /v1/completions"),
        ('{"custom_id": "FIRST", "method": "POST", "url": "/v1/completions", "body": {}}',
         "line 2: custom_id FIRST is used twice"),
        ('{"method": "POST", "url": "/v1/completions", "body": {}}', "line 2: no custom_id"),
        ('{"custom_id": "b", "method": "GET", "url": "/v1/completions", "body": {"model": "m"}}',
         "its method is not POST"),
    ],
)  # fmt: skip
def test_bad_requests_files_are_one_line_and_exit_2(fake_server, tmp_path, capsys, line, message):
    first = {"custom_id": "FIRST", "method": "POST", "url": "/v1/completions",
             "body": {"model": "m", "prompt": "x"}}  # fmt: skip
    (tmp_path / "r.jsonl").write_text(json.dumps(first) + "\n" + line + "\n")
    argv = ["batch", "execute", str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "o.jsonl"),
            "--base-url", fake_server.url]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o.jsonl").exists() and fake_server.requests == []


def test_an_existing_output_needs_resume(fake_server, tmp_path, capsys, exported):
    (tmp_path / "o.jsonl").write_text("")
    argv = ["batch", "execute", str(tmp_path / "requests.jsonl"), "--out",
            str(tmp_path / "o.jsonl"), "--base-url", fake_server.url]  # fmt: skip
    assert main(argv) == 2
    assert "exists: pass --resume" in capsys.readouterr().err


def test_resume_after_a_kill_mid_line(fake_server, tmp_path, exported):
    out = tmp_path / "output.jsonl"
    execute_batch(tmp_path / "requests.jsonl", out, base_url=fake_server.url, progress=False)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][:40])
    again = execute_batch(tmp_path / "requests.jsonl", out, base_url=fake_server.url,
                          resume=True, progress=False)  # fmt: skip
    assert again.asked == 4
    assert sorted(x["custom_id"] for x in _lines(out)) == sorted(
        json.loads(x)["custom_id"] for x in lines
    )
