"""Grids, case ids and the registry."""

import pytest

import emulate
from emulate.case import case_id
from emulate.errors import EmulateError
from emulate.probe import expand, parse_grid
from emulate.registry import PROBES, get_probe


def test_case_ids_are_stable_across_machines_and_releases():
    # A changed id silently breaks resume and paired comparison: bump the probe's
    # version instead when its cases change.
    assert case_id("conv", 1, {"size": 3, "kernel": 2}, 0) == "26893b5e0c7c6ae9"
    assert case_id("conv", 1, {"kernel": 2, "size": 3}, 0) == "26893b5e0c7c6ae9"
    assert case_id("conv", 2, {"kernel": 2, "size": 3}, 0) != "26893b5e0c7c6ae9"


def test_cases_are_deterministic_and_independent_of_grid_order():
    a = emulate.cases("conv", {"size": [3, 4]}, n=2, seed=5)
    b = emulate.cases("conv", {"size": [4, 3]}, n=2, seed=5)
    assert {c.id: c.truth for c in a} == {c.id: c.truth for c in b}
    assert len({c.id for c in a}) == len(a)


def test_grid_values_form_a_product():
    probe = get_probe("conv")
    grid = parse_grid(probe, ["size=3,4", "kernel=1,2", "dims=1", "values=9"])
    assert len(expand(probe, grid)) == 4


def test_impossible_cells_are_an_error_or_skipped_with_a_note(capsys):
    probe = get_probe("conv")
    grid = {"size": [3, 6], "kernel": [5], "dims": [1], "values": [9]}
    with pytest.raises(EmulateError, match="size=3 kernel=5"):
        expand(probe, grid)
    cells = expand(probe, grid, skip_impossible=True)
    assert [c["size"] for c in cells] == [6]
    assert "skipped 1 of 2 grid cells" in capsys.readouterr().err


def test_api_grid_values_are_validated_too():
    with pytest.raises(EmulateError, match="stride=9 is out of range"):
        emulate.cases("conv", {"stride": 9})


def test_every_registered_probe_loads_and_declares_its_columns():
    for name in PROBES:
        probe = get_probe(name)
        assert probe.name == name and probe.version >= 1 and probe.summary
        names = [p.name for p in probe.params]
        assert not set(names) & set(probe.metrics), "a parameter and a metric share a column"
        if probe.missing():
            continue  # e.g. torch or bubblewrap not here; their own tests skip too
        case = emulate.cases(name, n=1)[0]
        assert case.probe == name


def test_a_probe_this_machine_cannot_run_says_what_to_install(monkeypatch):
    probe = get_probe("training")
    monkeypatch.setattr(type(probe), "missing", lambda self: "needs X: pip install X")
    with pytest.raises(EmulateError, match="training: needs X: pip install X"):
        emulate.cases("training", n=1)
