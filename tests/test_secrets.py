"""Secrets reach no file and no message: a key planted in the environment, in the
base URL's userinfo and in its query string is searched for in everything that run,
report, export and rescore write, and in what they print."""

from __future__ import annotations

import json

import pytest
from vcr.request import Request

from emulate import redact
from emulate.cli.main import main
from emulate.record import _normalise_request

from .doubles import FaultServer

pytestmark = pytest.mark.enable_socket
MARKERS = ("MARKENV7f3a9", "MARKUSERINFO8b2c", "MARKQUERY5d1e")


def test_planted_secrets_are_in_no_file_and_no_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", f"sk-{MARKERS[0]}")
    runs = tmp_path / "runs"
    with FaultServer({"500": 0.4}, seed=2) as server:
        url = server.url.replace("127.0.0.1", f"user:{MARKERS[1]}@127.0.0.1")
        url += f"?api-key={MARKERS[2]}"
        code = main(
            ["run", "conv", "-P", "size=4", "-P", "dims=1,2", "-P", "kernel=1,2,3", "-P",
             "values=1,9", "--n", "6", "--model", "fake", "--base-url", url,
             "--out", str(runs / "a"), "--record", str(tmp_path / "cassette.json"),
             "--max-errors", "100%", "--no-progress"]
        )  # fmt: skip
        assert code == 0
        # The run.json holds the URL masked; the whole URL again repeats the run.
        stored = json.loads((runs / "a" / "run.json").read_text())["config"]["model"]
        assert stored["base_url"] == server.url.replace("127.0.0.1", "***@127.0.0.1") + (
            "?api-key=***"
        )
        # (500s at 40% leave about 5 of 72 cases failed after retries, by chance more than
        # the default 10%: that is not what this test is about.)
        assert main(["run", "--config", str(runs / "a" / "run.json"), "--out",
                     str(runs / "b"), "--no-progress", "--base-url", url,
                     "--max-errors", "100%"]) == 0  # fmt: skip
        assert main(["run", "--config", str(runs / "a" / "run.json"), "--out",
                     str(runs / "c"), "--no-progress"]) == 2  # fmt: skip
    assert main(["report", str(runs / "a"), str(runs / "b"), "--out", str(tmp_path / "rep")]) == 0
    for fmt in ("csv", "jsonl", "parquet"):
        assert main(["export", str(runs / "a"), "--format", fmt]) == 0
    assert main(["rescore", str(runs / "a")]) == 0
    printed = capsys.readouterr()
    assert "boom at" in (runs / "a" / "journal.jsonl").read_text()  # the echo was recorded
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for marker in MARKERS:
                assert marker.encode() not in data, f"{marker} in {path}"
    for marker in MARKERS:
        assert marker not in printed.out + printed.err


@pytest.mark.parametrize(
    "body",
    [
        '{"api_key": "x"}',
        '{"options": {"Authorization": "Bearer x"}}',
        '{"note": "sk-abcdefghijklmnop"}',
    ],
)
def test_credential_like_extra_body_fields_are_refused(tmp_path, capsys, body):
    out = tmp_path / "run"
    code = main(["run", "conv", "--model", "fake", "--base-url", "http://127.0.0.1:9/v1",
                 "--extra-body", body, "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "looks like a credential" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_ordinary_extra_body_fields_pass():
    redact.check_extra_body({"cache_prompt": False, "max_tokens": 3, "n_probs": 2, "min_keep": 1})


def test_cassette_urls_are_scrubbed_for_every_host():
    req = Request(
        "POST",
        "https://u:KEY1@api.example.com/v1/completions?api-key=KEY2&api-version=2024-10-01",
        b"{}",
        {"Authorization": "Bearer KEY3", "Content-Type": "application/json"},
    )
    clean = _normalise_request(req)
    assert clean.uri == (
        "https://***@api.example.com/v1/completions?api-key=***&api-version=2024-10-01"
    )
    assert "Authorization" not in clean.headers


@pytest.mark.parametrize(
    "url,shown",
    [
        ("https://sk-abcdefghijklmnop@host/v1", "https://***@host/v1"),
        ("http://h:8000/v1?token=abcdef&x=1", "http://h:8000/v1?token=***&x=1"),
        ("http://h/v1?q=sk-abcdefghijklmnop", "http://h/v1?q=***"),
        ("http://h/v1", "http://h/v1"),
    ],
)
def test_urls_are_masked(url, shown):
    assert redact.url(url) == shown
    for secret in redact.url_secrets(url):
        assert secret not in redact.text(f"failed at {url}", redact.url_secrets(url))
