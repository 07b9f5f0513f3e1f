"""Finished runs, read back from their folders for reports, comparisons and exports."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulate.case import Row
from emulate.errors import EmulateError
from emulate.journal import JOURNAL, RUN_JSON, read_journal

from .results import flat_row


@dataclass(frozen=True)
class Run:
    """One run folder: its journal rows (nested, as written) and its run.json."""

    path: Path
    rows: tuple[Row, ...]
    meta: Mapping[str, Any]  # run.json; empty when the folder has none

    @property
    def probe(self) -> str:
        return self.rows[0].case.probe

    @property
    def model(self) -> str:
        return self.rows[0].model

    @property
    def mode(self) -> str:
        return self.rows[0].mode

    @property
    def server(self) -> str:
        return self.rows[0].server

    @property
    def run_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.run_id for r in self.rows))

    def flat(self) -> list[dict[str, Any]]:
        return [flat_row(r) for r in self.rows]


def load_run(path: str | Path) -> Run:
    """A run folder (the --out of `emulate run`), with a clear error when it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise EmulateError(f"{path}: no such folder; pass the --out folder of a run")
    if not (path / JOURNAL).exists():
        inside = sorted(p.parent.name for p in path.glob(f"*/{JOURNAL}"))
        hint = (
            f"; it holds {len(inside)} run folders ({', '.join(inside[:3])}"
            f"{', …' if len(inside) > 3 else ''}): pass one of those"
            if inside
            else "; pass the --out folder of a run"
        )
        raise EmulateError(f"{path}: no {JOURNAL} here{hint}")
    rows = read_journal(path / JOURNAL)
    if not rows:
        raise EmulateError(f"{path}: the journal holds no finished case yet")
    probes = sorted({r.case.probe for r in rows})
    if len(probes) > 1:
        raise EmulateError(f"{path / JOURNAL}: holds several probes ({', '.join(probes)})")
    meta: Mapping[str, Any] = {}
    if (path / RUN_JSON).exists():
        try:
            meta = json.loads((path / RUN_JSON).read_text())
        except json.JSONDecodeError as err:
            raise EmulateError(f"{path / RUN_JSON}: not valid JSON ({err})") from None
    return Run(path, tuple(rows), meta)


def _fixed(run: Run) -> dict[str, Any]:
    """The case parameters that take one value throughout a run."""
    values: dict[str, dict[Any, Any]] = {}
    for r in run.rows:
        for k, v in r.case.params.items():
            # Parameters are scalars but for the odd list: those compare as JSON. (The
            # type is in the key: 1 and True and 1.0 are three values here.)
            same = (type(v), v) if isinstance(v, int | float | str | None) else json.dumps(v)
            values.setdefault(k, {}).setdefault(same, v)
    return {k: next(iter(v.values())) for k, v in values.items() if len(v) == 1}


def load_runs(paths: Sequence[str | os.PathLike[str]]) -> list[Run]:
    """Run folders; a folder that is no run but holds some (a sweep's) stands for them."""
    if not paths:
        raise EmulateError("name at least one run folder")
    runs = []
    for p in map(Path, paths):
        inside = [] if (p / JOURNAL).exists() else sorted(p.glob(f"*/{JOURNAL}"))
        runs += [load_run(j.parent) for j in inside] if inside else [load_run(p)]
    return runs


def one_probe(runs: Sequence[Run], what: str) -> str:
    """The probe all `runs` share; an error naming the folders when they differ."""
    probes = {r.probe for r in runs}
    if len(probes) > 1:
        listed = ", ".join(f"{r.path} ({r.probe})" for r in runs)
        raise EmulateError(f"{what} needs runs of one probe, and these differ: {listed}")
    return probes.pop()


def series_labels(runs: Sequence[Run]) -> dict[Path, str]:
    """A short, unique name for each run in a plot legend or table: the model, then
    its mode and run id only where they are needed to tell runs apart."""
    labels = {}
    fixed_of = {run.path: _fixed(run) for run in runs}
    for run in runs:
        same_model = [r for r in runs if r.probe == run.probe and r.model == run.model]
        label = run.model
        if len({r.mode for r in same_model}) > 1:
            label += f" ({run.mode})"
        same = [r for r in same_model if r.mode == run.mode]
        if len({r.run_ids for r in same}) > 1:
            fixed = [fixed_of[r.path] for r in same]
            # Parameters each run holds fixed, at values that differ between them
            # (task=complete, task=depth) say more than a run id.
            telling = [
                k for k in fixed[0]
                if all(k in f for f in fixed) and len({repr(f[k]) for f in fixed}) == len(same)
            ]  # fmt: skip
            mine = fixed_of[run.path]
            label += (
                " (" + " ".join(f"{k}={mine[k]}" for k in telling) + ")"
                if telling
                else f" [{run.run_ids[0]}]"
            )
        labels[run.path] = label
    return labels
