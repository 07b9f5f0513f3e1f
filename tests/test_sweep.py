"""Sweeps over models (issue 16, part 4): the same cases on each model into sibling
folders, one report, every pair compared. Two loopback doubles that answer
differently stand in for two models: the test is about the harness. tests/test_live.py
sweeps the embedded model and a second llama-server."""

import csv
import json

import pytest
from scipy.stats import binomtest

import emulate
from emulate.cli.main import main
from emulate.errors import EmulateError
from emulate.model_config import ModelSpec, load_models, parse_model

from .doubles import FaultServer

pytestmark = pytest.mark.enable_socket
GRID = {"dims": 1, "size": [3, 4, 5, 6], "kernel": 2, "values": 1}


@pytest.fixture
def two():
    with FaultServer() as a, FaultServer() as b:
        b.answer = lambda prompt: "[1, 1]" if len(prompt) % 3 else "[0, 1, 1]"
        yield a, b


def _csv(path):
    return list(csv.DictReader(path.read_text().splitlines()))


def _correct(folder):
    return {
        r["case"]["id"]: r["score"]["correct"]
        for r in map(json.loads, (folder / "journal.jsonl").read_text().splitlines())
    }


def test_a_sweep_writes_runs_a_report_and_the_paired_comparison(two, tmp_path):
    a, b = two
    result = emulate.sweep("conv", GRID, models=[f"model-a@{a.url}", f"org/model:b@{b.url}"],
                           n=6, mode="completion", out=tmp_path / "s", progress=False)  # fmt: skip
    assert [r.out.name for r in result.runs] == ["model-a", "org-model-b"]
    ra, rb = (_correct(tmp_path / "s" / name) for name in ("model-a", "org-model-b"))
    assert ra.keys() == rb.keys() and len(ra) == 24  # the same cases on both
    # one report: both models' rows and curves
    summary = _csv(tmp_path / "s" / "report" / "summary.csv")
    assert {r["model"] for r in summary} == {"model-a", "org/model:b"}
    assert {(c.model, c.axis) for c in result.report.curves} >= {
        ("model-a", "size"), ("org/model:b", "size")}  # fmt: skip
    assert (tmp_path / "s" / "report" / "report.html").exists()
    # the pair, by hand: discordant cases and the exact McNemar p-value
    a_only = sum(ra[k] and not rb[k] for k in ra)
    b_only = sum(rb[k] and not ra[k] for k in ra)
    p = binomtest(min(a_only, b_only), a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    rows = _csv(tmp_path / "s" / "comparisons.csv")
    (overall,) = [r for r in rows if r["group"] == "all" and r["measure"] == "correct"]
    assert (overall["a"], overall["b"]) == ("model-a", "org/model:b")
    assert (int(overall["a_only_right"]), int(overall["b_only_right"])) == (a_only, b_only)
    assert float(overall["p_value"]) == pytest.approx(p, rel=1e-5)
    assert a_only + b_only > 0  # the doubles differ, or the test shows nothing
    # the sweep's folder stands for its runs in `report`
    again = emulate.report([tmp_path / "s"], tmp_path / "again")
    assert {r.model for r in again.summary} == {"model-a", "org/model:b"}


def test_three_models_give_three_pairs_and_a_models_file(two, tmp_path, capsys):
    a, b = two
    models = tmp_path / "models.txt"
    models.write_text(f"# the sweep\nfirst@{a.url}\n\nsecond@{b.url}  # another\nthird@{a.url}\n")
    assert load_models(models) == [ModelSpec("first", a.url), ModelSpec("second", b.url),
                                   ModelSpec("third", a.url)]  # fmt: skip
    argv = ["run", "conv", "-P", "size=3,4", "-P", "dims=1", "--n", "2", "--mode", "completion",
            "--models", str(models), "--out", str(tmp_path / "s"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    rows = _csv(tmp_path / "s" / "comparisons.csv")
    pairs = {(r["a"], r["b"]) for r in rows}
    assert pairs == {("first", "second"), ("first", "third"), ("second", "third")}
    out = capsys.readouterr().out
    assert "B = second against A = first" in out and "comparisons.csv" in out


def test_model_names_and_urls():
    assert parse_model("gpt-4o-mini") == ModelSpec("gpt-4o-mini")
    assert parse_model("me@example@http://h:8000/v1") == ModelSpec("me@example", "http://h:8000/v1")
    assert parse_model("user@host") == ModelSpec("user@host")  # not a URL: all name
    assert ModelSpec("Qwen/Qwen2.5-7B:q4").folder == "Qwen-Qwen2.5-7B-q4"


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--model", "gpt-4o-mini", "--model", "local"],
         "the models' default modes differ (gpt-4o-mini: chat, local: completion)"),
        (["--model", "x@http://h/v1", "--model", "x@http://g/v1"], "--model x is named twice"),
        (["--model", "a@http://h/v1", "--model", "b@http://g/v1", "--dry-run"],
         "--dry-run is for one model"),
        (["--model", "a@http://h/v1", "--model", "b@http://g/v1", "--base-url", "http://h/v1"],
         "--base-url is for one model"),
    ],
)  # fmt: skip
def test_what_a_sweep_cannot_do_is_one_line_and_exit_2(tmp_path, capsys, extra, message):
    assert main(["run", "conv", *extra, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "s").exists()


def test_one_model_needs_no_sweep(two, tmp_path):
    a, _ = two
    argv = ["run", "conv", "-P", "size=3", "--n", "1", "--model", f"solo@{a.url}",
            "--out", str(tmp_path / "r"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert emulate.load_config(tmp_path / "r" / "run.json").model.base_url == a.url
    with pytest.raises(EmulateError, match="two models or more"):
        emulate.sweep("conv", models=["only"])
