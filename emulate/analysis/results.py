"""results.csv: one flat row per case, each parameter, covariate and metric a column
of its own, in case order. Rows are held by column (RowTable), so a run of 100,000
cases writes its table without holding 100,000 dicts."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from emulate.case import Row
from emulate.journal import atomic_writer

RESULTS = "results.csv"
_LEAD = ("run_id", "probe", "case_id", "seed", "model", "server", "mode")
_TAIL = (
    "correct",
    "error_type",
    "reason",
    "prompt_tokens",
    "completion_tokens",
    "latency_s",
    "finish_reason",
    "error",
)
TIMING_COLUMNS = ("latency_s",)


def flat_row(row: Row) -> dict[str, Any]:
    """One journal row as flat columns: each parameter and each metric its own column."""
    case, answer, score = row.case, row.answer, row.score
    flat: dict[str, Any] = {
        "run_id": row.run_id,
        "probe": case.probe,
        "case_id": case.id,
        "seed": case.seed,
        "model": row.model,
        "server": row.server,
        "mode": row.mode,
    }
    flat.update(case.params)
    flat.update(case.covariates)
    if case.chance is not None:
        flat["chance"] = case.chance
    flat.update(score.metrics)
    flat.update(
        correct=score.correct,
        error_type=score.error_type,
        reason=score.reason,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        latency_s=answer.latency_s,
        finish_reason=answer.finish_reason,
        error=answer.error,
    )
    return flat


def columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The CSV's columns: the lead, then parameters and metrics as first seen, then
    the tail."""
    seen = dict.fromkeys(_LEAD)
    for r in [rows.names] if isinstance(rows, RowTable) else rows:
        seen.update((k, None) for k in r if k not in seen and k not in _TAIL)
    return list(seen) + list(_TAIL)


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    _write_csv(buf, rows)
    return buf.getvalue()


def _write_csv(f: TextIO, rows: Sequence[Mapping[str, Any]]) -> None:
    writer = csv.DictWriter(f, fieldnames=columns(rows), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


_ABSENT = object()  # a column a row does not have (not the same as a None value)


class RowTable(Sequence[dict[str, Any]]):
    """Flat rows held by column. 100,000 rows as dicts take over a gigabyte; as
    columns, with repeated short texts stored once, a few tens of megabytes. Rows
    come out as dicts, built when asked for."""

    def __init__(self) -> None:
        self._cols: dict[str, list[Any]] = {}
        self._texts: dict[str, str] = {}
        self._n = 0

    @property
    def names(self) -> list[str]:
        return list(self._cols)

    def append(self, row: Mapping[str, Any]) -> None:
        n, texts = self._n, self._texts
        for k, v in row.items():
            col = self._cols.get(k)
            if col is None:
                col = self._cols[k] = [_ABSENT] * n
            if type(v) is str and len(v) <= 64:
                v = texts.setdefault(v, v)
            col.append(v)
        self._n = n = n + 1
        for col in self._cols.values():
            if len(col) < n:
                col.append(_ABSENT)

    def column(self, name: str) -> list[Any]:
        """One column's values, None where a row lacks it."""
        col = self._cols.get(name)
        if col is None:
            return [None] * self._n
        return [None if v is _ABSENT else v for v in col]

    def take(self, order: Sequence[int]) -> RowTable:
        """The rows at these positions, in this order."""
        table = RowTable()
        table._cols = {k: [col[i] for i in order] for k, col in self._cols.items()}
        table._texts, table._n = self._texts, len(order)
        return table

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        return {k: col[i] for k, col in self._cols.items() if col[i] is not _ABSENT}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        items = list(self._cols.items())
        for i in range(self._n):
            yield {k: col[i] for k, col in items if col[i] is not _ABSENT}


def write_results(out: str | Path, order: Sequence[str], journal: Iterable[Row]) -> RowTable:
    """results.csv from the journal's rows, in case order (not finishing order); returns
    its rows. The journal may be a stream (`iter_journal`): it is read once. Rows whose
    case is not in `order` come last, in journal order."""
    table = RowTable()
    for r in journal:
        table.append(flat_row(r))
    rank = {cid: i for i, cid in enumerate(order)}
    last = len(rank)
    ids = table.column("case_id")
    table = table.take(sorted(range(len(table)), key=lambda i: rank.get(ids[i], last)))
    with atomic_writer(Path(out) / RESULTS) as f:
        _write_csv(f, table)
    return table
