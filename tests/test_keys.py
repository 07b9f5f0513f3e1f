"""Keys stay home: OPENAI_API_KEY goes to OpenAI's API and to no other server. Another
server gets the key in the variable the user names for it (--api-key-env, a models
file's api_key_env=), or no Authorization header at all. Checked on loopback servers
that record every request's headers: the test is about the harness, not a model."""

from __future__ import annotations

import json

import pytest

import emulate
from emulate.cli.main import main
from emulate.errors import EmulateError
from emulate.model_config import NO_KEY, ModelConfig, api_key_for, is_openai

from .doubles import BatchServer

pytestmark = pytest.mark.enable_socket
OPENAI_KEY = "sk-openai-MARK5c1e9"
OTHER_KEY = "vllm-MARK88d0a"
CONV = ["-P", "dims=1", "-P", "size=4", "-P", "kernel=2", "-P", "values=9", "--mode", "completion"]


@pytest.fixture(autouse=True)
def _openai_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OTHER_KEY", raising=False)


def _auth(server) -> list[str | None]:
    """Each recorded request's Authorization header (None where there was none)."""
    return [
        next((v for k, v in r["headers"].items() if k.lower() == "authorization"), None)
        for r in server.requests
    ]


def _run(url: str, out, *more: str) -> int:
    return main(["run", "conv", *CONV, "--n", "3", "--model", "fake", "--base-url", url,
                 "--out", str(out), "--no-progress", *more])  # fmt: skip


def test_another_server_gets_no_key_at_all(fake_server, tmp_path):
    fake_server.completion(" [1, 2, 3]")
    assert _run(fake_server.url, tmp_path / "run") == 0
    assert _auth(fake_server) == [None, None, None]
    assert OPENAI_KEY not in json.dumps(fake_server.requests)


def test_retries_through_the_sdk_send_no_key_either(fake_server, tmp_path):
    """A first attempt goes out on emulate's own headers, a retry through the SDK's
    request(): neither carries a key."""
    fake_server.error(500, "busy")
    fake_server.completion(" [1, 2, 3]")
    assert _run(fake_server.url, tmp_path / "run") == 0
    assert len(fake_server.requests) == 4 and _auth(fake_server) == [None] * 4


def test_another_server_gets_the_key_its_variable_holds(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OTHER_KEY", OTHER_KEY)
    fake_server.completion(" [1, 2, 3]")
    assert _run(fake_server.url, tmp_path / "run", "--api-key-env", "OTHER_KEY") == 0
    assert _auth(fake_server) == [f"Bearer {OTHER_KEY}"] * 3
    # run.json names no variable (one from elsewhere could name any secret): repeating
    # the run without --api-key-env sends no key, with it the key.
    stored = (tmp_path / "run" / "run.json").read_text()
    assert "api_key_env" not in stored and OTHER_KEY not in stored
    config = str(tmp_path / "run" / "run.json")
    assert main(["run", "--config", config, "--out", str(tmp_path / "again"),
                 "--no-progress"]) == 0  # fmt: skip
    assert _auth(fake_server)[3:] == [None] * 3


def test_a_run_json_that_names_a_variable_sends_nothing_of_it(fake_server, tmp_path, monkeypatch):
    """A run.json from someone else naming GITHUB_TOKEN must not send it to their URL."""
    monkeypatch.setenv("OTHER_KEY", OTHER_KEY)
    fake_server.completion(" [1, 2, 3]")
    config = emulate.make_config("conv", {"dims": 1, "size": 4}, n=1, model="fake",
                                 base_url=fake_server.url, mode="completion")  # fmt: skip
    data = {"config": config.to_json()}
    data["config"]["model"]["api_key_env"] = "OTHER_KEY"
    (tmp_path / "run.json").write_text(json.dumps(data))
    assert main(["run", "--config", str(tmp_path / "run.json"), "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0  # fmt: skip
    assert set(_auth(fake_server)) == {None} and OTHER_KEY not in json.dumps(fake_server.requests)


def test_a_sweep_names_its_key_for_a_server_from_openai_base_url(fake_server, tmp_path,
                                                                   monkeypatch):  # fmt: skip
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.url)
    monkeypatch.setenv("OTHER_KEY", OTHER_KEY)
    fake_server.completion(" [1, 2, 3]")
    argv = ["run", "conv", *CONV, "--n", "1", "--model", "a", "--model", "b", "--api-key-env",
            "OTHER_KEY", "--out", str(tmp_path / "s"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert set(_auth(fake_server)) == {f"Bearer {OTHER_KEY}"}


def test_the_key_variable_does_not_change_the_run_id(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OTHER_KEY", OTHER_KEY)
    plain = emulate.make_config("conv", n=1, model="m", base_url=fake_server.url)
    keyed = emulate.make_config("conv", n=1, model="m", base_url=fake_server.url,
                                api_key_env="OTHER_KEY")  # fmt: skip
    assert plain.run_id == keyed.run_id


def test_openai_base_url_is_another_server(fake_server, tmp_path, monkeypatch):
    """The SDK would send OPENAI_API_KEY wherever OPENAI_BASE_URL points: emulate reads
    the variable as --base-url (and records it), and sends that server no key."""
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.url)
    fake_server.completion(" [1, 2, 3]")
    assert main(["run", "conv", *CONV, "--n", "2", "--model", "fake", "--out",
                 str(tmp_path / "run"), "--no-progress"]) == 0  # fmt: skip
    assert _auth(fake_server) == [None, None]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"]["model"]["base_url"] == fake_server.url


def test_a_sweep_gives_each_server_its_own_key_or_none(fake_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OTHER_KEY", OTHER_KEY)
    fake_server.completion(" [1, 2, 3]")
    models = tmp_path / "models.txt"
    models.write_text(f"keyed@{fake_server.url} api_key_env=OTHER_KEY  # its own key\n"
                      f"bare@{fake_server.url}\n")  # fmt: skip
    argv = ["run", "conv", *CONV, "--n", "2", "--models", str(models), "--out",
            str(tmp_path / "sweep"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    by_model: dict[str, set] = {}
    for request, auth in zip(fake_server.requests, _auth(fake_server), strict=True):
        by_model.setdefault(request["body"]["model"], set()).add(auth)
    assert by_model == {"keyed": {f"Bearer {OTHER_KEY}"}, "bare": {None}}


def test_a_models_file_field_other_than_the_key_variable_is_refused(tmp_path, capsys):
    models = tmp_path / "models.txt"
    models.write_text("a@http://127.0.0.1:9/v1 key=X\nb@http://127.0.0.1:9/v1\n")
    assert main(["run", "conv", "--models", str(models), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "line 1: after the model, only api_key_env=VAR" in err and err.count("\n") == 1


def test_batch_execute_sends_no_key_to_another_server(fake_server, tmp_path):
    fake_server.completion(" [1, 2, 3]")
    config = emulate.make_config("conv", {"dims": 1, "size": 4}, n=2, model="fake",
                                 base_url=fake_server.url, mode="completion")  # fmt: skip
    emulate.export_batch(config, tmp_path / "requests.jsonl", tmp_path / "run")
    argv = ["batch", "execute", str(tmp_path / "requests.jsonl"), "--base-url",
            fake_server.url, "--out", str(tmp_path / "out.jsonl"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    sent = _auth(fake_server)
    assert len(sent) == len((tmp_path / "requests.jsonl").read_text().splitlines()) > 1
    assert set(sent) == {None}


def test_a_batch_api_elsewhere_gets_only_its_own_key(tmp_path, monkeypatch, capsys):
    with BatchServer() as api:
        api.key = OTHER_KEY
        argv = ["batch", "submit", "conv", *CONV, "--model", "gpt-4o-mini", "--base-url", api.url,
                "--batch-poll", "0.01", "--no-progress"]  # fmt: skip
        # No key named: the server gets none, refuses, and the line says what to do.
        assert main([*argv, "--out", str(tmp_path / "a")]) == 2
        err = capsys.readouterr().err
        assert "refused the request (HTTP 401)" in err and "--api-key-env" in err
        assert err.count("\n") == 1
        assert api.headers_seen and not any(
            k.lower() == "authorization" for h in api.headers_seen for k in h
        )
        monkeypatch.setenv("OTHER_KEY", OTHER_KEY)
        assert main([*argv, "--api-key-env", "OTHER_KEY", "--out", str(tmp_path / "b")]) == 0
        assert OPENAI_KEY not in json.dumps([str(h) for h in api.headers_seen])


def test_a_refusal_for_want_of_a_key_says_how_to_give_one(fake_server, tmp_path, capsys):
    fake_server.error(401, "missing key")
    assert _run(fake_server.url, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "refused the request (HTTP 401): emulate sent it no key" in err
    assert "--api-key-env VAR" in err and err.count("\n") == 1


def test_a_named_variable_that_is_not_set_is_one_line(tmp_path, capsys):
    assert _run("http://127.0.0.1:9/v1", tmp_path / "run", "--api-key-env", "OTHER_KEY") == 2
    err = capsys.readouterr().err
    assert "--api-key-env OTHER_KEY: no such variable is set" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "url,openai",
    [
        (None, True),
        ("https://api.openai.com/v1", True),
        ("https://eu.api.openai.com/v1", True),
        ("http://api.openai.com/v1", False),  # not over TLS
        ("https://api.openai.com.example.net/v1", False),
        ("https://user:pw@evil.example/api.openai.com/v1", False),
        ("http://127.0.0.1:8000/v1", False),
    ],
)
def test_only_openais_own_api_gets_openais_key(url, openai):
    assert is_openai(url) is openai
    key = api_key_for(ModelConfig(model="gpt-4o-mini", base_url=url), replay=False)
    assert key == (OPENAI_KEY if openai else NO_KEY)


def test_the_embedded_model_gets_no_key():
    assert api_key_for(ModelConfig(), replay=False) == NO_KEY


def test_a_key_variable_for_openais_api_is_refused():
    with pytest.raises(EmulateError, match=r"'OTHER_KEY': must be given with --base-url \(OpenAI"):
        ModelConfig(model="gpt-4o-mini", api_key_env="OTHER_KEY")


def test_a_run_resumes_with_its_key_in_another_variable(fake_server, tmp_path, monkeypatch):
    """Where the key is kept is the machine's: --config with another --api-key-env
    resumes the same run (the same id, no 'another configuration'), and the command a
    stopped run prints names the variable it needs."""
    monkeypatch.setenv("OTHER_KEY", OTHER_KEY)
    monkeypatch.setenv("THIRD_KEY", "third-MARK")
    fake_server.completion(" [1, 2, 3]")
    out = tmp_path / "run"
    assert _run(fake_server.url, out, "--api-key-env", "OTHER_KEY") == 0
    lines = (out / "journal.jsonl").read_text().splitlines()
    (out / "journal.jsonl").write_text("\n".join(lines[:1]) + "\n")
    assert main(["run", "--config", str(out / "run.json"), "--out", str(out), "--resume",
                 "--api-key-env", "THIRD_KEY", "--no-progress"]) == 0  # fmt: skip
    assert _auth(fake_server)[-2:] == ["Bearer third-MARK"] * 2
    assert len((out / "journal.jsonl").read_text().splitlines()) == 3


def test_the_command_that_goes_on_names_the_key_variable(tmp_path):
    from emulate.pipeline.folder import again

    config = emulate.make_config("conv", n=1, model="m", base_url="http://127.0.0.1:9/v1",
                                 api_key_env="OTHER_KEY")  # fmt: skip
    assert again(config, tmp_path) == (
        f"emulate run --config {tmp_path / 'run.json'} --out {tmp_path} --api-key-env OTHER_KEY"
    )


def test_a_missing_key_is_found_before_the_folder_is_touched(tmp_path, monkeypatch, capsys):
    """An --out that exists (a batch export's, say) keeps nothing of a run that had no
    key: it can be run again once the key is set, without --resume."""
    monkeypatch.delenv("OPENAI_API_KEY")
    out = tmp_path / "run"
    out.mkdir()
    argv = ["run", "conv", *CONV, "--n", "1", "--model", "gpt-4o-mini", "--out", str(out)]
    assert main(argv) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err
    assert list(out.iterdir()) == []
