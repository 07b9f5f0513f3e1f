"""emulate.grade and emulate rescore: scoring again, never asking again."""

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

import emulate
from emulate.analysis.rescore import PREVIOUS
from emulate.case import Answer, Case
from emulate.cli.main import main
from emulate.config import load_config
from emulate.journal import JOURNAL, RUN_JSON, read_journal
from emulate.pipeline.runner import run_config
from emulate.registry import get_probe
from emulate.testing import assert_reproduces

from .conftest import CASSETTES, cassette_dirs, results_rows, skip_unless_runnable

DIRS = cassette_dirs()


@pytest.mark.parametrize("folder", DIRS, ids=lambda d: f"{d.parent.name}/{d.name}")
def test_rescore_of_every_recorded_run_reproduces_its_results(folder, replayed, tmp_path):
    skip_unless_runnable(folder)
    run = replayed(f"{folder.parent.name}/{folder.name}")
    # Journal -> Case/Answer -> score again: the round trip loses nothing (logprobs,
    # turns, chance, covariates), so nothing changes.
    (check,) = emulate.rescore([run], check=True)
    assert (check.cases, check.changed, check.changed_rows) == (
        len(results_rows(run / "results.csv")),
        0,
        0,
    )
    emulate.rescore([run], tmp_path / "again")
    assert_reproduces(tmp_path / "again" / "results.csv", folder / "results.csv")


def _old_journal(tmp_path):
    """A run of CRUXEval-style items scored by an older rule, which read a fenced answer
    as unparseable and 2.0 for 2 as wrong."""
    items = tmp_path / "items.jsonl"
    codes = [("def f(s):\n    return s == s[::-1]", "'abba'"), ("def f(x):\n    return x", "2")]
    items.write_text("".join(json.dumps({"code": c, "input": i}) + "\n" for c, i in codes))
    config = emulate.make_config("program", {"items": str(items)}, n=1)
    out = tmp_path / "run"
    out.mkdir()
    (out / RUN_JSON).write_text(json.dumps({"config": config.to_json()}))
    cases = emulate.cases("program", {"items": str(items)}, n=1)
    answers = ["```python\nTrue\n```", "2.0"]
    old = [(False, "unparseable"), (False, "wrong_value")]
    with open(out / JOURNAL, "w") as f:
        for case, text, (correct, kind) in zip(cases, answers, old, strict=True):
            score = dict(correct=correct, metrics={}, error_type=kind, reason="old", parsed=None)
            row = dict(run_id=config.run_id, model="m", server="s", mode=case.mode,
                       case=case.to_json(), answer=asdict(Answer(text)), score=score)  # fmt: skip
            f.write(json.dumps(row) + "\n")
    return out


def test_rescore_reports_what_an_older_rule_scored_otherwise(tmp_path, capsys):
    run = _old_journal(tmp_path)
    before = (run / JOURNAL).read_text()
    assert main(["rescore", str(run), "--check"]) == 1
    assert (run / JOURNAL).read_text() == before and not (run / "results.csv").exists()
    (result,) = emulate.rescore([run])
    assert result.verdicts == {(False, True): 2}
    assert result.kinds == {("unparseable", None): 1, ("wrong_value", None): 1}
    assert "2 changed verdict" in result.describe() and "2 wrong -> right" in result.describe()
    assert (run / PREVIOUS).read_text() == before
    rows = results_rows(run / "results.csv")
    assert [r["correct"] for r in rows] == ["True", "True"]
    assert [r["exact_type"] for r in rows] == ["True", "False"]  # 2.0 is == 2, not its type
    capsys.readouterr()
    assert main(["rescore", str(run), "--check"]) == 0
    assert "0 changed verdict" in capsys.readouterr().out


def test_a_journal_from_before_the_typed_contract_reads():
    # Then chance was a covariate, mode was no field, and truths were bare values.
    for probe, grid, bare in (
        ("brackets", {"task": "classify"}, lambda t: t.answer),
        ("brackets", {"task": "depth"}, lambda t: t.depth),
        ("conv", {"size": 4}, lambda t: t.output),
    ):
        case = emulate.cases(probe, grid, n=1)[0]
        old = case.to_json()
        old["covariates"] = {**old["covariates"], "chance": old.pop("chance")}
        old["truth"] = bare(case.truth)
        del old["mode"]
        back = get_probe(probe).typed(Case.from_json(old))
        assert back == case and back.mode == "completion"
        assert back.chance == case.chance


def test_grade_scores_as_a_run_does(capsys, tmp_path, monkeypatch):
    case = emulate.cases("conv", {"size": 4, "kernel": 2, "dims": 1}, n=1)[0]
    truth = json.dumps(case.truth.output)
    line = json.dumps(case.to_json())
    assert emulate.grade(case, f"The output is {truth}.").correct
    assert emulate.grade(line, f"```json\n{truth}\n```").correct
    assert emulate.grade(json.loads(line), "[0]").error_type == "wrong_shape"
    with pytest.raises(emulate.EmulateError, match="not a JSON line"):
        emulate.grade("{nope", "1")
    (tmp_path / "case.jsonl").write_text(line + "\n")
    assert main(["grade", str(tmp_path / "case.jsonl"), truth]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["correct"] is True and printed["error_type"] is None
    with open(tmp_path / "case.jsonl") as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        assert main(["grade", "-", "[1, 2, 3]"]) == 0
    assert json.loads(capsys.readouterr().out)["error_type"] == "wrong_values"
    assert main(["grade", str(tmp_path / "missing.jsonl"), "1"]) == 2


def test_grade_takes_each_turn_of_a_session():
    folder = CASSETTES / "shell" / "completion"
    if why := get_probe("shell").missing():
        pytest.skip(why)
    case = emulate.cases("shell", load_config(folder / "run.json").grid, n=1)[0]
    outputs = case.truth.outputs
    assert emulate.grade(case, [f"```\n{o}```" for o in outputs]).correct
    assert not emulate.grade(case, outputs[:-1] + ["nope"]).correct


def test_rescore_in_place_keeps_the_run_usable(tmp_path):
    folder = CASSETTES / "conv" / "completion"
    out = tmp_path / "run"
    run_config(load_config(folder / "run.json"), out, replay=folder / "cassette.json",
               progress=False, echo=None)  # fmt: skip
    shutil.copy(out / JOURNAL, tmp_path / "before.jsonl")
    emulate.rescore([out])
    assert read_journal(out / JOURNAL) == read_journal(tmp_path / "before.jsonl")
    assert emulate.compare(out, out).rows  # reports and comparisons still read it


@pytest.mark.parametrize("name", ["shell-completion", "brackets-depth"])
def test_journals_written_before_the_typed_contract_rescore_to_todays_results(name, tmp_path):
    probe, _, folder = name.partition("-")
    if why := get_probe(probe).missing():
        pytest.skip(why)
    old = Path(__file__).parent / "data" / "journals-9400dd1" / name
    (result,) = emulate.rescore([old], tmp_path / "run", check=False)
    assert (result.changed, result.changed_rows) == (0, 0)
    assert_reproduces(tmp_path / "run" / "results.csv", CASSETTES / probe / folder / "results.csv")
    assert not (old / PREVIOUS).exists()  # --out leaves the old run as it was
