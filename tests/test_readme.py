"""README.md is the contract: each claim a user acts on, checked against the code
(the complete examples run in tests/test_docs.py)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

import emulate
from emulate.api import default_mode
from emulate.errors import EmulateError
from emulate.journal import iter_journal
from emulate.registry import get_probe, names

from .conftest import CASSETTES, ROOT, skip_unless_runnable

README = (ROOT / "README.md").read_text()


def _results_columns_as_documented(probe, params) -> list[str]:
    """The column list README's "What a run writes" gives, expanded for one probe and
    its cases' parameters."""
    cell = re.search(r"\| `results\.csv` \|(.*?)\|\n", README).group(1)
    listed = cell.split("in this order:", 1)[1].strip()
    columns: list[str] = []
    for item in listed.split(", "):
        if item == "each parameter":
            columns += list(params)
        elif item == "each covariate":
            columns += list(probe.covariates)
        elif item == "each metric":
            columns += list(probe.metrics)
        else:
            columns.append(re.fullmatch(r"`(\w+)`.*", item).group(1))
    return columns


@pytest.mark.parametrize("name", ["conv/completion", "brackets/next_token", "markov/completion"])
def test_results_csv_has_the_columns_readme_lists_in_its_order(name, replayed):
    skip_unless_runnable(CASSETTES / name)
    run = replayed(name)
    probe = get_probe(name.split("/")[0])
    with open(run / "results.csv", newline="") as f:
        header = next(csv.reader(f))
    params = next(iter_journal(run / "journal.jsonl")).case.params
    documented = _results_columns_as_documented(probe, params)
    if "chance" not in header:  # "where the probe defines it"
        documented.remove("chance")
    assert header == documented


def test_the_default_mode_is_as_readme_says():
    """Completion for the embedded model; otherwise chat, but markov's completion."""
    assert "defaults to `completion`\n  for every model" in README
    for name in names():
        assert default_mode(name, "local") == "completion"
        assert default_mode(name, "gpt-4o-mini") == ("completion" if name == "markov" else "chat")


def test_extra_body_adds_to_the_embedded_models_options():
    assert "`--extra-body` adds its fields to those" in README
    config = emulate.make_config("conv", n=1, extra_body={"n_probs": 2})
    assert dict(config.model.extra_body) == {"cache_prompt": False, "n_probs": 2}
    mine = emulate.make_config("conv", n=1, extra_body={"cache_prompt": True})
    assert dict(mine.model.extra_body) == {"cache_prompt": True}
    other = emulate.make_config("conv", n=1, model="m", base_url="http://127.0.0.1:9/v1")
    assert dict(other.model.extra_body) == {}


def test_impossible_cells_are_an_error_unless_skipped():
    assert "is an error\n  naming them, exit code 2; `--skip-impossible` runs" in README
    grid = {"dims": 1, "size": [2, 5], "kernel": 3, "padding": 0, "values": 9}
    with pytest.raises(EmulateError, match="add --skip-impossible to run the others"):
        emulate.cases("conv", grid, n=1)
    cases = emulate.cases("conv", grid, n=1, skip_impossible=True)
    assert [c.params["size"] for c in cases] == [5]


def test_a_report_goes_where_readme_says(replayed, tmp_path, monkeypatch):
    assert "default: `DIR/report` for one folder" in README
    run = replayed("conv/completion")
    monkeypatch.chdir(tmp_path)
    assert emulate.report([run]).out == run / "report"
    several = emulate.report([run, run])
    assert re.fullmatch(r"report-\d{8}-\d{6}", str(several.out))
    assert (tmp_path / several.out / "report.html").is_file()


def test_every_exit_code_in_readme_is_one_the_code_returns():
    table = README.split("**Exit codes**", 1)[1].split("\n\n", 2)[1]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", table, re.M)}
    from emulate.errors import BatchPending, StorageError, TooManyErrors

    source = (ROOT / "emulate" / "cli" / "main.py").read_text()
    assert documented == {0, 1, 2, 3, 71, 74, 75, 130}
    assert (TooManyErrors.exit_code, StorageError.exit_code, BatchPending.exit_code) == (3, 74, 75)
    assert "return 130" in source and "return 1 if any(r.changed_rows" in source
    assert "OS_ERROR = 71" in source


def test_every_environment_variable_the_code_reads_is_documented():
    read = set()
    for path in [*Path(ROOT / "emulate").glob("*.py"), *Path(ROOT / "probes").glob("*.py")]:
        text = path.read_text()
        read |= set(re.findall(r"environ(?:\.get)?\(\s*\"([A-Z_]+)\"", text))
        read |= set(re.findall(r"environ\[\"([A-Z_]+)\"\]", text))
    read |= {"EMULATE_ALLOW_UNISOLATED", "EMULATE_SANDBOX_POOL"}  # read through constants
    table = README.split("**Environment variables:**", 1)[1].split("\n\n", 2)[1]
    for var in sorted(read):
        assert f"`{var}`" in table or f"`{var}=" in table, var
