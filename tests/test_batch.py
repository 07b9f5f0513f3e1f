"""Batch files (issue 16, part 1): a run's requests in OpenAI's Batch API input
format, each body exactly what the live path sends. The live path here talks to a
loopback double: the test is about the harness, not a model."""

import contextlib
import json
import random

import pytest

import emulate
from emulate.batch.files import custom_id, requests_of
from emulate.batch.score import score_batch
from emulate.cli.main import main
from emulate.config import load_config
from emulate.registry import get_probe

from .conftest import CASSETTES, cassette_dirs, skip_unless_runnable

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


@pytest.mark.skipif(bool(get_probe("markov").missing()), reason=get_probe("markov").missing() or "")
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
    argv = ["batch", "export", "conv", "-P", "dims=1", "-P", "size=4", "-P", "kernel=2",
            "-P", "values=9", "--n", "3", "--model", "gpt-4o-mini",
            "--file", str(tmp_path / "b.jsonl"), "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("wrote 3 requests for 3 cases to ")
    lines = _lines(tmp_path / "b.jsonl")
    assert [x["body"]["model"] for x in lines] == ["gpt-4o-mini"] * 3
    assert not (tmp_path / "run" / "journal.jsonl").exists()


@pytest.mark.parametrize(
    "extra,message",
    [
        (["shell"], "shell sends each turn with the model's answers"),
        (["conv", "--resume"], "unrecognized arguments: --resume"),
    ],
)
def test_what_cannot_be_a_batch_is_one_line_and_exit_2(tmp_path, capsys, extra, message):
    argv = ["batch", "export", *extra, "--file", str(tmp_path / "b.jsonl"),
            "--out", str(tmp_path / "o")]  # fmt: skip
    with pytest.raises(SystemExit) if "unrecognized" in message else contextlib.nullcontext():
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err.strip().splitlines()[-1]
    assert not (tmp_path / "b.jsonl").exists() and not (tmp_path / "o").exists()


# --- Scoring a batch's results (part 1): the answers recorded from real servers in
# cassettes/, written as a batch's output file, score as the replayed live run scores.


def _results_from_cassette(folder, requests_path, out_path, seed=0):
    """The output file a batch of `requests_path` would get from the server the
    cassette was recorded from: each request's recorded response, lines shuffled (a
    batch's output is in no particular order)."""
    from collections import defaultdict, deque

    from emulate.record import load_interactions

    recorded = defaultdict(deque)
    for x in load_interactions(folder / "cassette.json"):
        key = json.dumps(json.loads(x["request"]["body"]), sort_keys=True)
        recorded[key].append(x["response"])
    lines = []
    for i, request in enumerate(_lines(requests_path)):
        response = recorded[json.dumps(request["body"], sort_keys=True)].popleft()
        lines.append({
            "id": f"batch_req_{i}",
            "custom_id": request["custom_id"],
            "response": {"status_code": response["status"]["code"], "request_id": f"r{i}",
                         "body": json.loads(response["body"]["string"])},
            "error": None,
        })  # fmt: skip
    random.Random(seed).shuffle(lines)
    out_path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return lines


def _by_case(journal):
    """Rows by case id, less what a batch cannot share with a live run: the latency
    (a batch has none per request) and the server's label (marked as a batch's)."""
    rows = {}
    for r in map(json.loads, journal.read_text().splitlines()):
        r["answer"].pop("latency_s")
        r["server"] = r["server"].removesuffix(" (batch)")
        rows[r["case"]["id"]] = r
    return rows


BATCHABLE = [f for f in cassette_dirs() if f.parent.name != "shell"]


@pytest.mark.parametrize("folder", BATCHABLE, ids=lambda f: f"{f.parent.name}/{f.name}")
def test_a_batch_of_recorded_answers_scores_as_the_live_run(folder, replayed, tmp_path):
    skip_unless_runnable(folder)
    config = load_config(folder / "run.json")
    run = tmp_path / "run"
    emulate.export_batch(config, tmp_path / "requests.jsonl", run)
    _results_from_cassette(folder, tmp_path / "requests.jsonl", tmp_path / "output.jsonl")
    result = score_batch(config, [tmp_path / "output.jsonl"], run, progress=False,
                        echo=None)  # fmt: skip
    live = _by_case(replayed(f"{folder.parent.name}/{folder.name}") / "journal.jsonl")
    batch = _by_case(run / "journal.jsonl")
    assert batch.keys() == live.keys() and result.done == result.total == len(live)
    for cid, row in live.items():
        assert batch[cid] == row, cid
    assert result.missing == ()
    assert json.loads((run / "journal.jsonl").read_text().splitlines()[0])["server"].endswith(
        " (batch)"
    )


def test_rescore_compare_and_export_work_on_a_batch_run(replayed, tmp_path):
    folder = CASSETTES / "conv" / "completion"
    config = load_config(folder / "run.json")
    run = tmp_path / "run"
    emulate.export_batch(config, tmp_path / "requests.jsonl", run)
    _results_from_cassette(folder, tmp_path / "requests.jsonl", tmp_path / "output.jsonl")
    score_batch(config, [tmp_path / "output.jsonl"], run, progress=False, echo=None)
    paired = emulate.compare(replayed("conv/completion"), run)
    (overall,) = [c for c in paired.rows if c.group == "all" and c.measure == "correct"]
    assert (paired.shared, overall.difference, overall.a_only_right, overall.b_only_right) == (
        72, 0.0, 0, 0)  # fmt: skip
    (rescored,) = emulate.rescore([run], check=True)
    assert rescored.changed_rows == 0
    assert len(emulate.load_results(run)) == 72


CONV_CONFIG = emulate.make_config("conv", CONV, n=2, model="gpt-4o-mini", mode="chat")


def _chat_body(text):
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57}}  # fmt: skip


def _write(path, lines):
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def _exported(tmp_path, config=CONV_CONFIG):
    emulate.export_batch(config, tmp_path / "requests.jsonl", tmp_path / "run")
    made = emulate.cases(config.probe, config.grid, n=config.n, mode=config.model.mode,
                         model=config.model.model)  # fmt: skip
    cases = {c.id: c for c in made}
    return [line["custom_id"] for line in _lines(tmp_path / "requests.jsonl")], cases


def test_errors_and_missing_cases_are_reported_not_lost(tmp_path):
    """OpenAI's output and error files, and vLLM's error shape: an answer is scored, a
    failed request is that case's API error with the server's message, a case with no
    line is left unscored and named, and a second file later scores it with --resume."""
    ids, cases = _exported(tmp_path)
    right = json.dumps(cases[ids[0]].truth.output)
    output = _write(tmp_path / "output.jsonl", [
        {"id": "a", "custom_id": ids[0], "error": None,
         "response": {"status_code": 200, "body": _chat_body(f"```json\n{right}\n```")}},
        {"id": "b", "custom_id": ids[1], "error": None,
         "response": {"status_code": 200, "body": _chat_body("no idea")}},
    ])  # fmt: skip
    errors = _write(tmp_path / "errors.jsonl", [
        {"id": "c", "custom_id": ids[2], "response": {"status_code": 400, "body": {"error": {
            "message": "This model's maximum context length is 128000 tokens",
            "type": "invalid_request_error", "code": "context_length_exceeded"}}},
         "error": None},
    ])  # fmt: skip
    result = emulate.score_batch(CONV_CONFIG, [output, errors], tmp_path / "run",
                                progress=False, echo=None, max_errors=1.0)  # fmt: skip
    assert (result.total, result.done, result.correct, result.errors) == (4, 3, 1, 1)
    assert result.missing == (ids[3],)
    rows = _by_case(tmp_path / "run" / "journal.jsonl")
    assert rows[ids[0]]["answer"]["prompt_tokens"] == 50
    assert rows[ids[1]]["score"]["error_type"] == "unparseable"
    assert rows[ids[2]]["answer"]["error"] == (
        "HTTP 400: context_length_exceeded: This model's maximum context length is 128000 tokens"
    )
    assert rows[ids[2]]["score"]["error_type"] == "api_error"
    # vLLM's run_batch writes a failed request's error as text
    late = _write(tmp_path / "late.jsonl", [
        {"id": "d", "custom_id": ids[3], "error": "prompt too long",
         "response": {"status_code": 400, "request_id": "x", "body": None}},
    ])  # fmt: skip
    again = emulate.score_batch(CONV_CONFIG, [late], tmp_path / "run", resume=True,
                               progress=False, echo=None, max_errors=1.0)  # fmt: skip
    assert (again.done, again.errors, again.missing) == (4, 2, ())
    assert _by_case(tmp_path / "run" / "journal.jsonl")[ids[3]]["answer"]["error"] == (
        "HTTP 400: prompt too long"
    )


def test_the_cli_scores_into_the_exported_folder(tmp_path, capsys):
    ids, cases = _exported(tmp_path)
    output = _write(tmp_path / "output.jsonl", [
        {"custom_id": cid, "response": {"status_code": 200, "body": _chat_body(
            json.dumps(cases[cid].truth.output))}, "error": None} for cid in ids[:3]
    ])  # fmt: skip
    run_json = str(tmp_path / "run" / "run.json")
    assert main(["batch", "score", str(output), "--config", run_json, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 of 4 cases have no answer in the results" in out and ids[3] in out
    assert len((tmp_path / "run" / "journal.jsonl").read_text().splitlines()) == 3
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "report")]) == 0


@pytest.mark.parametrize(
    "content,message",
    [
        ("not json\n", "line 1 is not JSON"),
        ('{"id": "x"}\n', "line 1 is not a batch result (no custom_id)"),
        (None, "is a request, not a result: this is a batch's input file"),
        ('{"custom_id": "0123456789abcdef", "response": null, "error": "x"}\n',
         "none of its 1 custom_ids is a case of this run"),
        ("DUP", "is answered already (line 1 of"),
        ("SOME", "1 custom_ids are not cases of this run (the first: feedfacefeedface)"),
        ("COMPLETION", "the file holds completion answers and this run asks in chat mode"),
    ],
)  # fmt: skip
def test_bad_results_files_are_one_line_and_exit_2(tmp_path, capsys, content, message):
    ids, _ = _exported(tmp_path)
    path = tmp_path / "output.jsonl"
    line = {"custom_id": ids[0], "response": {"status_code": 200, "body": _chat_body("1")}}
    if content is None:
        path.write_text((tmp_path / "requests.jsonl").read_text())
    elif content == "DUP":
        _write(path, [line, line])
    elif content == "SOME":
        _write(path, [line, {**line, "custom_id": "feedfacefeedface"}])
    elif content == "COMPLETION":  # the same cases asked in completion mode
        text = {"choices": [{"index": 0, "text": "[1]", "finish_reason": "stop"}]}
        _write(path, [{**line, "response": {"status_code": 200, "body": text}}])
    else:
        path.write_text(content)
    argv = ["batch", "score", str(path), "--config", str(tmp_path / "run" / "run.json")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run" / "journal.jsonl").exists()


def test_a_probe_whose_turns_see_answers_has_no_batch_results(tmp_path, capsys):
    (tmp_path / "o.jsonl").write_text('{"custom_id": "x", "response": null, "error": "e"}\n')
    with pytest.raises(emulate.EmulateError, match="shell sends each turn with the answers"):
        emulate.score_batch(emulate.make_config("shell"), [tmp_path / "o.jsonl"], tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_result_lines_as_other_batch_services_write_them():
    from emulate.batch.files import result_answer

    body = {"choices": [{"message": {"content": "[1]"}, "finish_reason": "stop"}]}
    as_text = {"custom_id": "a", "response": {"status_code": 200, "body": json.dumps(body)}}
    assert result_answer(as_text, chat=True).text == "[1]"
    broken = {"custom_id": "a", "response": {"status_code": 200, "body": "<html>"}}
    assert result_answer(broken, chat=True).error == "the response is not a JSON object"
    expired = {
        "custom_id": "a",
        "response": None,
        "error": {"code": "batch_expired", "message": "This request could not be executed"},
    }
    assert result_answer(expired, chat=True).error == (
        "batch: batch_expired: This request could not be executed")  # fmt: skip
    nothing = {"custom_id": "a"}
    assert result_answer(nothing, chat=False).error == (
        "batch: the result has neither a response nor an error")  # fmt: skip
