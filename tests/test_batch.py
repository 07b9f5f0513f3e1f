"""Batch files (issue 16, part 1): a run's requests in OpenAI's Batch API input
format, each body exactly what the live path sends. The live path here talks to a
loopback double: the test is about the harness, not a model."""

import json

import pytest

import emulate
from emulate.batch import custom_id, requests_of
from emulate.cli import main
from emulate.config import load_config
from emulate.registry import get_probe

CONV = {"dims": 1, "size": [4, 5], "kernel": 2, "values": 9}


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.enable_socket
@pytest.mark.parametrize("mode", ["chat", "completion"])
def test_exported_bodies_are_what_the_live_path_sends(fake_server, tmp_path, mode):
    fake_server.completion(" [1]")
    common = dict(n=2, model="fake", base_url=fake_server.url, mode=mode)
    # (The double answers in completion form: chat answers are errors, bodies the same.)
    emulate.run("conv", CONV, out=tmp_path / "live", progress=False, concurrency=1,
                max_errors=1.0, **common)  # fmt: skip
    config = emulate.make_config("conv", CONV, **common)
    exported = emulate.export_batch(config, tmp_path / "requests.jsonl", tmp_path / "run")
    lines = _lines(tmp_path / "requests.jsonl")
    assert exported.requests == exported.cases == len(lines) == 4
    assert [line["body"] for line in lines] == [r["body"] for r in fake_server.requests]
    assert (
        {line["url"] for line in lines}
        == {r["path"] for r in fake_server.requests}
        == {"/v1/chat/completions" if mode == "chat" else "/v1/completions"}
    )
    cases = emulate.cases("conv", CONV, n=2, mode=mode, model="fake")
    assert [line["custom_id"] for line in lines] == [c.id for c in cases]
    assert {line["method"] for line in lines} == {"POST"}
    assert load_config(tmp_path / "run" / "run.json") == config


def test_a_case_of_several_requests_numbers_them():
    grid = {"chain": "random", "vocab": 2, "context": 2, "length": 30}
    config = emulate.make_config("markov", grid, n=1)
    case = emulate.cases("markov", grid, n=1)[0]
    sent = requests_of(get_probe("markov"), case, config)
    assert len(sent) == len(case.inputs.states) > 1
    assert [r.custom_id for r in sent] == [case.id] + [
        f"{case.id}/{i}" for i in range(1, len(sent))
    ]
    assert len({r.body["prompt"] for r in sent}) == len(sent)
    assert all(r.body["max_tokens"] == 1 and r.body["logprobs"] == 20 for r in sent)
    assert custom_id("abc", 0) == "abc" and custom_id("abc", 2) == "abc/2"


def test_the_cli_writes_the_file_and_run_json(tmp_path, capsys):
    argv = ["run", "conv", "-P", "dims=1", "-P", "size=4", "-P", "kernel=2", "-P", "values=9",
            "--n", "3", "--model", "gpt-4o-mini",
            "--batch-file", str(tmp_path / "b.jsonl"), "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("wrote 3 requests for 3 cases to ")
    lines = _lines(tmp_path / "b.jsonl")
    assert [x["body"]["model"] for x in lines] == ["gpt-4o-mini"] * 3
    assert not (tmp_path / "run" / "journal.jsonl").exists()


@pytest.mark.parametrize(
    "extra,message",
    [
        (["shell"], "shell sends each turn with the model's answers"),
        (["conv", "--dry-run"], "--batch-file asks nothing"),
    ],
)
def test_what_cannot_be_a_batch_is_one_line_and_exit_2(tmp_path, capsys, extra, message):
    argv = ["run", *extra, "--batch-file", str(tmp_path / "b.jsonl"), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "b.jsonl").exists() and not (tmp_path / "o").exists()
