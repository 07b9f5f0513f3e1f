"""emulate's pytest plugin (issue 15, part 3): a researcher's own test project that
asks a model through `emulate_run`, records once, and replays offline.

tests/sample_project is such a project (its cassette recorded from the embedded
model, its baseline a replay of it); these tests run it in a copy, as its owner
would, in a pytest of its own. The record-mode tests use a loopback double: they
are about the harness, not a model."""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import emulate
from emulate.record import load_interactions, save_cassette
from emulate_pytest import NetworkBlocked, blocked_network, default_cassette

SAMPLE = Path(__file__).parent / "sample_project"
CASSETTE = Path("cassettes/test_gemma/test_it_closes_brackets.json")
GRID = {"task": "next_token", "types": 4, "depth": [2, 4], "length": [8, 16, 24]}


def _project(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(SAMPLE, copy)
    return copy


def _pytest(project: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=project, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip


def _prompt_of(interaction: dict) -> str:
    return json.loads(interaction["request"]["body"])["prompt"]


def test_the_sample_project_passes_offline(tmp_path):
    done = _pytest(_project(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_a_deleted_recording_fails_naming_its_case(tmp_path):
    project = _project(tmp_path)
    interactions = load_interactions(project / CASSETTE)
    gone = interactions.pop(5)
    save_cassette(project / CASSETTE, interactions)
    case = next(c for c in emulate.cases("brackets", GRID, n=4) if c.prompt == _prompt_of(gone))
    done = _pytest(project)
    assert done.returncode == 1
    assert f"no recorded answer for case {case.id}" in done.stdout
    assert "--emulate-record-mode=new_episodes" in done.stdout
    assert "2 failed" in done.stdout


def test_a_planted_regression_fails_the_mcnemar_assertion_with_its_p_value(tmp_path):
    project = _project(tmp_path)
    interactions = load_interactions(project / CASSETTE)
    baseline = project / "baselines" / "next-bracket" / "journal.jsonl"
    right = {
        row["case"]["prompt"]: row["score"]["correct"]
        for row in map(json.loads, baseline.read_text().splitlines())
    }
    planted = 0
    # Seven answers the model got right now end the line with brackets still open.
    newline = {"token": "\n", "logprob": 0.0, "top_logprobs": [{"token": "\n", "logprob": 0.0}]}
    for it in interactions:
        if planted < 7 and right[_prompt_of(it)]:
            body = json.loads(it["response"]["body"]["string"])
            body["choices"][0].update(text="\n", logprobs={"content": [newline]})
            it["response"]["body"]["string"] = json.dumps(body)
            planted += 1
    assert planted == 7
    save_cassette(project / CASSETTE, interactions)
    done = _pytest(project, "-k", "last_month")
    assert done.returncode == 1
    # 7 discordant pairs, all one way: exact two-sided p = 2 * 0.5**7.
    assert "exact McNemar p = 0.01562 < 0.05" in done.stdout, done.stdout
    assert "7 cases right only in the baseline, 0 only now" in done.stdout


def test_no_cassette_fails_in_replay_mode_and_says_how_to_record(tmp_path):
    project = _project(tmp_path)
    shutil.rmtree(project / "cassettes")
    done = _pytest(project, "-k", "closes_brackets")
    assert done.returncode == 1
    assert "no cassette at" in done.stdout and "--emulate-record-mode=once" in done.stdout


def test_tests_that_do_not_use_it_see_nothing_of_it(tmp_path):
    (tmp_path / "test_plain.py").write_text(
        "import sys\n\ndef test_plain():\n    assert 'openai' not in sys.modules\n"
    )
    done = _pytest(tmp_path)
    assert done.returncode == 0, done.stdout
    help_text = _pytest(tmp_path, "--help").stdout
    assert "--emulate-record-mode={none,once,new_episodes,all,rewrite}" in help_text


def test_default_cassette_is_beside_the_test_file():
    got = default_cassette(Path("/p/tests/test_x.py"), "test_y[a/b-3]")
    assert got == Path("/p/tests/cassettes/test_x/test_y_a_b-3.json")


@pytest.mark.enable_socket
def test_the_network_is_blocked_while_replaying():
    real = socket.socket.connect
    with blocked_network():
        for family, address in ((socket.AF_INET, ("127.0.0.1", 9)), (socket.AF_INET6, ("::1", 9))):
            with socket.socket(family) as s, pytest.raises(NetworkBlocked, match=r"to \("):
                s.connect(address)
        a, b = socket.socketpair()  # the event loop's own, and the sandbox's, still work
        a.close(), b.close()
    assert socket.socket.connect is real


ADD_PROJECT = textwrap.dedent(
    """
    import os

    def test_add(emulate_run):
        result = emulate_run("brackets", {"task": "classify", "length": [8]}, n=1,
                             model="fake", base_url=os.environ["FAKE_URL"], mode="completion")
        assert result.done == 2
    """
)


@pytest.mark.enable_socket
@pytest.mark.parametrize(
    "mode,before,asked,after",
    [
        ("once", None, 2, 2),  # no cassette: record one
        ("once", 2, 0, 2),  # a cassette: replay it
        ("new_episodes", 1, 1, 2),  # ask only what is missing
        ("all", 2, 2, 4),  # ask everything, keep what was there
        ("rewrite", 2, 2, 2),  # ask everything, keep only that
    ],
)
def test_record_modes(fake_server, tmp_path, mode, before, asked, after):
    (tmp_path / "test_add.py").write_text(ADD_PROJECT)
    fake_server.completion(" yes")
    env = {**os.environ, "FAKE_URL": fake_server.url, "OPENAI_API_KEY": "sk-test"}
    cassette = tmp_path / "cassettes" / "test_add" / "test_add.json"
    if before is not None:
        assert _pytest(tmp_path, "--emulate-record-mode=rewrite", env=env).returncode == 0
        save_cassette(cassette, load_interactions(cassette)[:before])
    fake_server.requests.clear()
    done = _pytest(tmp_path, f"--emulate-record-mode={mode}", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(fake_server.requests) == asked
    assert len(load_interactions(cassette)) == after


@pytest.mark.live
def test_the_sample_project_records_from_the_embedded_model_then_replays(tmp_path):
    project = _project(tmp_path)
    shutil.rmtree(project / "cassettes")
    recorded = _pytest(project, "--emulate-record-mode=once")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert len(load_interactions(project / CASSETTE)) == 24
    replayed = _pytest(project)  # offline now, the network blocked
    assert replayed.returncode == 0 and "2 passed" in replayed.stdout, replayed.stdout
