"""The cassette: vcrpy's format behind an index, tested on its guarantees.

A loopback double stands in for the server (the harness is under test, not a model)."""

import asyncio
import json
import time

import httpx2
import pytest
import vcr

from emulate.errors import EmulateError, ReplayMiss
from emulate.model import Model
from emulate.model_config import ModelConfig
from emulate.record import Tape, _key, cassette

pytestmark = pytest.mark.enable_socket
FAST = {"retry-after-ms": "10"}


def _ask_many(server_url, tape, prompts, **kw):
    config = ModelConfig(model="fake", base_url=server_url, mode="completion", **kw)
    model = Model(config, server_url, "sk-test-0123456789abcdefghij", tape=tape)

    async def go():
        try:
            return [await model.ask(p, max_tokens=8) for p in prompts]
        finally:
            await model.aclose()

    return asyncio.run(go())


def test_a_cassette_is_one_plain_vcrpy_can_replay(fake_server, tmp_path):
    path = tmp_path / "c.json"
    fake_server.completion(" [7]")
    with cassette(path, "record") as tape:
        _ask_many(fake_server.url, tape, ["Input: [1]"])
    fake_server.completion(" [8]")  # the server's answer changed: only the tape says [7]
    request = fake_server.requests[0]
    recorder = vcr.VCR(serializer="json", match_on=("method", "path", "body"), record_mode="none")
    with recorder.use_cassette(str(path)):
        r = httpx2.post(
            fake_server.url.replace("127.0.0.1", "localhost") + "/completions",
            json=request["body"],
        )
    assert r.json()["choices"][0]["text"] == " [7]"


def test_each_request_gets_its_own_answer_and_key_order_does_not_matter(tmp_path):
    tape = Tape(tmp_path / "c.json", "record")
    for i in range(3):
        body = json.dumps({"prompt": f"p{i}", "seed": i})
        tape.add(
            {
                "method": "POST",
                "uri": "http://localhost/v1/completions",
                "body": body,
                "headers": {},
            },  # fmt: skip
            {
                "status": {"code": 200, "message": "OK"},
                "headers": {},
                "body": {"string": f"answer {i}"},
            },  # fmt: skip
        )
    tape.save()
    again = Tape(tmp_path / "c.json", "replay")
    for i in (2, 0, 1):
        key = _key("post", "http://localhost/v1/completions", f'{{"seed": {i}, "prompt": "p{i}"}}')
        assert again.find(key)["body"]["string"] == f"answer {i}"
    assert again.find(_key("POST", "http://localhost/v1/completions", '{"prompt": "p9"}')) is None


def test_a_retried_request_replays_in_recorded_order(fake_server, tmp_path):
    path = tmp_path / "c.json"
    fake_server.error(500, "boom", headers=FAST)
    fake_server.completion(" [1]")
    with cassette(path, "record") as tape:
        live = _ask_many(fake_server.url, tape, ["same", "same"])
    assert [a.text for a in live] == [" [1]", " [1]"] and len(fake_server.requests) == 3
    with cassette(path, "replay") as tape:
        replayed = _ask_many("http://127.0.0.1:1/v1", tape, ["same", "same"])
    assert [a.text for a in replayed] == [" [1]", " [1]"]
    assert len(json.loads(path.read_text())["interactions"]) == 3


def test_a_miss_raises_at_once_without_the_sdk_retrying(fake_server, tmp_path):
    path = tmp_path / "c.json"
    fake_server.completion(" [1]")
    with cassette(path, "record") as tape:
        _ask_many(fake_server.url, tape, ["known"])
    start = time.perf_counter()
    with cassette(path, "replay") as tape, pytest.raises(ReplayMiss):
        _ask_many(fake_server.url, tape, ["unknown"], max_retries=5)
    assert time.perf_counter() - start < 0.4  # five retries would back off for seconds
    assert len(fake_server.requests) == 1  # the replay never reached the server


def test_a_damaged_cassette_is_named(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"version": 1, "interactions": [{"request": {}}]}')
    with pytest.raises(EmulateError, match="not a vcrpy cassette"):
        Tape(path, "replay")


def test_lookups_do_not_scan_the_cassette(tmp_path):
    """An index, not a scan: 20,000 lookups in a 20,000-interaction tape take about as
    long per lookup as in a 200-interaction one (a scan would be 100x slower)."""

    def per_lookup(n):
        tape = Tape(tmp_path / f"c{n}.json", "replay")
        for i in range(n):
            tape.add(
                {
                    "method": "POST",
                    "uri": "http://localhost/v1/c",
                    "body": f'{{"i": {i}}}',
                    "headers": {},
                },  # fmt: skip
                {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {},
                    "body": {"string": str(i)},
                },  # fmt: skip
            )
        keys = [_key("POST", "http://localhost/v1/c", f'{{"i": {i % n}}}') for i in range(20000)]
        start = time.perf_counter()
        assert [tape.find(k)["body"]["string"] for k in keys[:3]] == ["0", "1", "2"]
        for k in keys:
            tape.find(k)
        return time.perf_counter() - start

    small, big = per_lookup(200), per_lookup(20000)
    assert big < 10 * small
