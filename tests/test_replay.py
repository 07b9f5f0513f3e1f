"""Every recorded cassette replays offline (sockets are blocked in this suite) and
reproduces the results.csv of the run that recorded it, timing columns aside."""

import json
import socket

import pytest

import emulate
from emulate.config import load_config
from emulate.errors import ReplayMiss
from emulate.journal import JOURNAL
from emulate.pipeline.runner import run_config
from emulate.testing import assert_reproduces

from .conftest import CASSETTES, cassette_dirs, results_rows, skip_unless_runnable

DIRS = cassette_dirs()
CONV = CASSETTES / "conv" / "completion"


def _needs(folder):
    skip_unless_runnable(folder)


def _replay(folder, out, **kw):
    """Replay a cassette folder with the run.json that recorded it."""
    kw = {"progress": False, "echo": None} | kw
    return run_config(load_config(folder / "run.json"), out, replay=folder / "cassette.json", **kw)


def test_there_are_enough_recorded_conv_cases():
    conv = [d for d in DIRS if d.parent.name == "conv"]
    assert sum(len(results_rows(d / "results.csv")) for d in conv) >= 60


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_network_is_blocked_here():
    with pytest.raises(Exception, match="[Ss]ocket"):
        socket.create_connection(("127.0.0.1", 9))


@pytest.mark.parametrize("folder", DIRS, ids=lambda d: f"{d.parent.name}/{d.name}")
def test_replay_reproduces_recorded_results(folder, tmp_path):
    _needs(folder)
    result = _replay(folder, tmp_path / "out")
    assert result.done == result.total
    assert_reproduces(tmp_path / "out" / "results.csv", folder / "results.csv")


@pytest.mark.parametrize("folder", DIRS, ids=lambda d: f"{d.parent.name}/{d.name}")
def test_replay_is_the_same_at_any_concurrency(folder, tmp_path):
    _needs(folder)
    _replay(folder, tmp_path / "out", concurrency=8)
    assert_reproduces(tmp_path / "out" / "results.csv", folder / "results.csv")


def test_replay_miss_names_the_case_and_leaves_nothing(tmp_path):
    folder = CONV
    config = load_config(folder / "run.json")
    other = emulate.make_config(config.probe, config.grid, n=1, seed=999)
    with pytest.raises(ReplayMiss, match=r"case [0-9a-f]{16} \(\w+="):
        run_config(other, tmp_path / "out", replay=folder / "cassette.json", progress=False)
    assert not (tmp_path / "out").exists()


def test_resume_after_a_kill_mid_write(tmp_path):
    folder = CONV
    config = load_config(folder / "run.json")
    out = tmp_path / "out"
    run_config(config, out, replay=folder / "cassette.json", progress=False, echo=None)
    lines = (out / JOURNAL).read_text().splitlines(keepends=True)
    # As if killed while writing case 11: ten whole lines and half of one.
    (out / JOURNAL).write_text("".join(lines[:10]) + lines[10][: len(lines[10]) // 2])
    (out / "results.csv").unlink()
    with pytest.raises(emulate.EmulateError, match="pass resume to finish it"):
        run_config(config, out, replay=folder / "cassette.json", progress=False)
    result = run_config(
        config, out, replay=folder / "cassette.json", resume=True, progress=False, echo=None
    )
    assert result.done == result.total == len(lines)
    ids = [json.loads(line)["case"]["id"] for line in (out / JOURNAL).read_text().splitlines()]
    assert len(ids) == len(set(ids)) == len(lines)
    assert_reproduces(out / "results.csv", folder / "results.csv")


def test_resume_refuses_another_configuration(tmp_path):
    folder = CONV
    config = load_config(folder / "run.json")
    out = tmp_path / "out"
    run_config(config, out, replay=folder / "cassette.json", progress=False, echo=None)
    other = emulate.make_config(config.probe, config.grid, n=1, seed=7)
    with pytest.raises(emulate.EmulateError, match="another configuration"):
        run_config(other, out, replay=folder / "cassette.json", resume=True, progress=False)


def test_load_results_is_a_typed_dataset(tmp_path):
    folder = CONV
    _replay(folder, tmp_path)
    ds = emulate.load_results(tmp_path)
    assert len(ds) == len(results_rows(folder / "results.csv"))
    assert ds.features["correct"].dtype == "bool"
    assert ds.features["size"].dtype == "int64"
    assert ds.features["cell_acc"].dtype == "float64"
    assert ds.features["case_id"].dtype == "string"


def test_logprobs_from_llama_server_are_normalised(tmp_path):
    folder = CASSETTES / "conv" / "chat-logprobs"
    _replay(folder, tmp_path)
    row = json.loads((tmp_path / JOURNAL).read_text().splitlines()[0])
    logprobs = row["answer"]["logprobs"]
    assert logprobs and len(logprobs) == row["answer"]["completion_tokens"]
    first = logprobs[0]
    assert first["logprob"] <= 0 and len(first["top"]) == 3
    # The chosen token is the first alternative at temperature 0.
    assert first["top"][0][0] == first["token"]
