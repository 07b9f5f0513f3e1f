"""Scoring again without asking again: `emulate.grade` for one answer, `rescore` for runs.

A parser that improves changes verdicts. So that old runs stay comparable with new
ones, `rescore` reads each run's journal, scores every recorded raw answer with
today's scorers (against the case as the journal recorded it: its prompt, inputs and
truth), and writes the journal, results.csv and summary again. The model is never
asked. It says how many cases changed verdict, and how.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emulate.case import Answer, Case, Row, Score
from emulate.config import load_config
from emulate.errors import EmulateError
from emulate.journal import JOURNAL, RUN_JSON, read_journal, write_atomic
from emulate.probe import Probe, score_case
from emulate.registry import get_probe

from .results import RESULTS, TIMING_COLUMNS, flat_row, write_results
from .summary import run_summary

PREVIOUS = "journal.previous.jsonl"  # the journal as it was before an in-place rescore


def grade(case: Case | Mapping[str, Any] | str, answer: str | Sequence[str] | Answer) -> Score:
    """Score one answer to one case, as a run would.

    `case` is a Case, its JSON (a dict) or one line of `emulate cases`; `answer` is the
    model's text, each turn's text for a multi-turn probe (a shell session), or an
    Answer (with logprobs, for brackets next_token).
    """
    if isinstance(case, str):
        try:
            case = json.loads(case)
        except json.JSONDecodeError as err:
            raise EmulateError(f"grade: the case is not a JSON line ({err})") from None
    if not isinstance(case, Case):
        if not isinstance(case, Mapping):
            raise EmulateError("grade: not a case as `emulate cases` writes it (a JSON object)")
        try:
            case = Case.from_json(case)
        except (KeyError, TypeError) as err:
            raise EmulateError(f"grade: not a case as `emulate cases` writes it ({err})") from None
    probe = get_probe(case.probe)
    case = probe.typed(case)
    if isinstance(answer, str):
        answer = Answer(answer)
    elif not isinstance(answer, Answer):
        turns = tuple(answer)
        answer = Answer(turns[-1] if turns else "", turns=turns)
    return score_case(probe, case, answer)


@dataclass(frozen=True)
class Rescored:
    """What rescoring one run changed."""

    path: Path
    cases: int
    # (old verdict, new verdict) -> count, over the cases whose verdict changed.
    verdicts: Counter = field(default_factory=Counter)
    # (old error type, new error type) -> count, over every case whose type changed.
    kinds: Counter = field(default_factory=Counter)
    changed_rows: int = 0  # any column of results.csv, timing aside
    summary: str = ""
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> int:
        return sum(self.verdicts.values())

    def describe(self) -> str:
        word = {True: "right", False: "wrong"}
        lines = [
            f"{self.path}: {self.cases} cases rescored; {self.changed} changed verdict, "
            f"{self.changed_rows} changed in results.csv"
        ]
        for (old, new), k in sorted(self.verdicts.items()):
            lines.append(f"  {k} {word[old]} -> {word[new]}")
        for (old, new), k in self.kinds.most_common(8):
            lines.append(f"  {k} error type {old or 'none'} -> {new or 'none'}")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def rescore(
    paths: Sequence[str | Path], out: str | Path | None = None, *, check: bool = False
) -> list[Rescored]:
    """Score each run's recorded answers again. In place (the old journal is kept as
    journal.previous.jsonl), or into `out` (one run) leaving the run untouched, or
    with `check` only say what would change."""
    if not paths:
        raise EmulateError("name at least one run folder")
    if out is not None and len(paths) != 1:
        raise EmulateError("--out takes one run folder; rescore several in place")
    return [_rescore(Path(p), None if out is None else Path(out), check) for p in paths]


def _rescore(path: Path, out: Path | None, check: bool) -> Rescored:
    journal = path / JOURNAL
    if not journal.exists():
        raise EmulateError(f"{path}: no {JOURNAL} here; pass the --out folder of a run")
    if out is not None and out.resolve() == path.resolve():
        out = None
    rows = read_journal(journal)
    new_rows = []
    verdicts: Counter = Counter()
    kinds: Counter = Counter()
    changed_rows = 0
    probes: dict[str, Probe] = {}
    for row in rows:
        probe = probes.get(row.case.probe) or probes.setdefault(
            row.case.probe, get_probe(row.case.probe)
        )
        case = probe.typed(row.case)
        score = score_case(probe, case, row.answer)
        new = replace(row, case=case, score=score)
        old_score = row.score
        if bool(old_score.correct) != score.correct:
            verdicts[(bool(old_score.correct), score.correct)] += 1
        if old_score.error_type != score.error_type:
            kinds[(old_score.error_type, score.error_type)] += 1
        changed_rows += _changed(_flat(row), _flat(new))
        new_rows.append(new)
    config = load_config(path / RUN_JSON) if (path / RUN_JSON).exists() else None
    flat = [flat_row(r) for r in new_rows]
    # A run is of one probe; a journal mixing several gets no summary table.
    only = next(iter(probes.values())) if len(probes) == 1 else None
    summary = run_summary(only, config, flat) if only else ""
    notes = tuple(only.notes(flat)) if only else ()
    result = Rescored(path, len(rows), verdicts, kinds, changed_rows, summary, notes)
    if check:
        return result
    target = out or path
    body = "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in new_rows)
    if out is not None:
        target.mkdir(parents=True, exist_ok=True)
        if (path / RUN_JSON).exists():
            shutil.copy(path / RUN_JSON, target / RUN_JSON)
    else:
        shutil.copy(journal, path / PREVIOUS)
    write_atomic(target / JOURNAL, body)
    order = [r.case.id for r in rows]
    if (path / RESULTS).exists():
        order = _csv_order(path / RESULTS, order)
    write_results(target, order, new_rows)
    return result


def _changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a row's columns changed; a metric declared since the row was written,
    which has no value for it, is no change."""
    return any(old.get(k) != new.get(k) for k in old.keys() | new.keys())


def _flat(row: Row) -> dict[str, Any]:
    flat = flat_row(row)
    for column in TIMING_COLUMNS:
        flat.pop(column, None)
    return flat


def _csv_order(results: Path, fallback: list[str]) -> list[str]:
    """Keep results.csv in the order it had (case order), not the journal's."""
    with open(results, newline="", encoding="utf-8") as f:
        ids = [r["case_id"] for r in csv.DictReader(f)]
    return ids or fallback
