"""From journal rows to tables: results.csv, a datasets.Dataset, and exports.

CSV is flat: one column per parameter and per metric. Parquet, JSONL and a saved
`datasets` folder keep the nesting of the journal (case, answer, score), with the
free-form fields (inputs, truth, foils, parsed answer) as JSON text, since their
shape differs from case to case and Arrow needs one type per column.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from .errors import EmulateError
from .journal import JOURNAL, atomic_writer, read_journal, write_atomic

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


def flat_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One journal row as flat columns: each parameter and each metric its own column."""
    case, answer, score = row["case"], row["answer"], row["score"]
    flat: dict[str, Any] = {
        "run_id": row["run_id"],
        "probe": case["probe"],
        "case_id": case["id"],
        "seed": case["seed"],
        "model": row["model"],
        "server": row["server"],
        "mode": row["mode"],
    }
    flat.update(case["params"])
    flat.update(case.get("covariates") or {})
    if case.get("chance") is not None:
        flat["chance"] = case["chance"]
    flat.update(score["metrics"])
    flat.update(
        correct=score["correct"],
        error_type=score["error_type"],
        reason=score["reason"],
        prompt_tokens=answer["prompt_tokens"],
        completion_tokens=answer["completion_tokens"],
        latency_s=answer["latency_s"],
        finish_reason=answer["finish_reason"],
        error=answer["error"],
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


def write_results(
    out: str | Path, order: Sequence[str], journal: Iterable[Mapping[str, Any]]
) -> RowTable:
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


def load_results(out: str | os.PathLike):
    """A run's results as a `datasets.Dataset`: one flat, typed row per case."""
    import datasets

    path = Path(out) / JOURNAL
    if not path.exists():
        raise EmulateError(f"{out}: no {JOURNAL} here; pass the --out folder of a run")
    rows = [flat_row(r) for r in read_journal(path)]
    return datasets.Dataset.from_list(unify(rows))


def unify(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One type per key, as Arrow needs: where a key holds bools and numbers the bools
    become numbers; where it mixes text with anything, or holds lists or dicts, every
    value becomes JSON text."""
    kinds: dict[str, set[type]] = {}
    for r in rows:
        for k, v in r.items():
            if v is not None:
                kinds.setdefault(k, set()).add(type(v))
    fix = {}
    for k, types in kinds.items():
        if types & {list, dict, tuple} or (str in types and len(types) > 1):
            fix[k] = _text
        elif bool in types and types & {int, float}:
            fix[k] = _number
    if not fix:
        return [dict(r) for r in rows]
    return [{k: fix[k](v) if k in fix else v for k, v in r.items()} for r in rows]


def _text(v: Any) -> Any:
    return v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def _number(v: Any) -> Any:
    return int(v) if isinstance(v, bool) else v


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def nested_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A journal row with one type per field (see the module note), for Arrow."""
    case, answer, score = row["case"], row["answer"], row["score"]
    prompt = case["prompt"]
    logprobs = answer.get("logprobs")
    return {
        "run_id": row["run_id"],
        "model": row["model"],
        "server": row["server"],
        "mode": row["mode"],
        "case": {
            "id": case["id"],
            "probe": case["probe"],
            "version": case["version"],
            "seed": case["seed"],
            "params": case["params"],
            "covariates": case.get("covariates") or {},
            "inputs": _json(case["inputs"]),
            "truth": _json(case["truth"]),
            "foils": _json(case.get("foils") or {}),
            # A completion prompt is text, a chat prompt a list of messages.
            "prompt_text": prompt if isinstance(prompt, str) else None,
            "messages": None if isinstance(prompt, str) else list(prompt),
            "max_tokens": case.get("max_tokens"),
            "stop": list(case.get("stop") or []),
            "top_logprobs": case.get("top_logprobs", 0),
        },
        "answer": {
            "text": answer["text"],
            "logprobs": None
            if logprobs is None
            else [
                {
                    "token": t["token"],
                    "logprob": t["logprob"],
                    "top": [{"token": a, "logprob": b} for a, b in t.get("top") or []],
                }
                for t in logprobs
            ],
            "prompt_tokens": answer.get("prompt_tokens"),
            "completion_tokens": answer.get("completion_tokens"),
            "latency_s": answer.get("latency_s"),
            "finish_reason": answer.get("finish_reason"),
            "error": answer.get("error"),
            "turns": answer.get("turns"),
        },
        "score": {
            "correct": score["correct"],
            "metrics": score["metrics"],
            "error_type": score.get("error_type"),
            "reason": score.get("reason"),
            "parsed": _json(score.get("parsed")),
        },
    }


def nested_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = [nested_row(r) for r in rows]
    for part, key in (("case", "params"), ("case", "covariates"), ("score", "metrics")):
        fixed = unify([r[part][key] for r in out])
        empty = not any(fixed)  # Parquet cannot store a struct with no fields: null instead
        for r, value in zip(out, fixed, strict=True):
            r[part][key] = None if empty else value
    return out


FORMATS = ("csv", "parquet", "jsonl", "dataset")


def export(
    paths: Sequence[str | os.PathLike], format: str, out: str | os.PathLike | None = None
) -> Path:
    """Write the runs in `paths` (one probe) as one file (a folder for `dataset`);
    returns where. Default `out`: DIR/results.FORMAT (DIR/dataset) for one run."""
    from .runs import load_runs, one_probe  # runs reads rows with flat_row, from here

    if format not in FORMATS:
        raise EmulateError(f"--format {format}: use one of {', '.join(FORMATS)}")
    runs = load_runs(paths)
    one_probe(runs, "export")
    if out is None:
        if len(runs) > 1:
            raise EmulateError("exporting several runs needs --out FILE")
        out = runs[0].path / ("dataset" if format == "dataset" else f"results.{format}")
    out = Path(out)
    if format != "dataset" and out.is_dir():
        raise EmulateError(f"--out {out} is a folder: name the {format} file to write")
    rows = [r for run in runs for r in run.rows]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EmulateError(f"--out {out}: cannot write there ({err.strerror})") from None
    if format == "csv":
        write_atomic(out, to_csv([flat_row(r) for r in rows]))
    elif format == "jsonl":
        write_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    else:
        import datasets

        ds = datasets.Dataset.from_list(nested_rows(rows))
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        bars_were_on = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # a bar per shard of a small file is noise
        try:
            if format == "parquet":
                ds.to_parquet(str(tmp))
            else:
                ds.save_to_disk(str(tmp))
        finally:
            if bars_were_on:
                datasets.enable_progress_bars()
        if format == "parquet":
            os.replace(tmp, out)
        else:
            if out.exists():
                if not (out / "dataset_info.json").exists():
                    shutil.rmtree(tmp)
                    raise EmulateError(f"--out {out} exists and is not a saved dataset; "
                                       "choose another --out")  # fmt: skip
                shutil.rmtree(out)
            os.replace(tmp, out)
    return out
