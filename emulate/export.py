"""From journal rows to flat tables: results.csv and a datasets.Dataset."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from .errors import EmulateError
from .journal import JOURNAL, read_journal, write_atomic

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


def flat_row(row: dict[str, Any]) -> dict[str, Any]:
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


def columns(rows: list[dict[str, Any]]) -> list[str]:
    cols = list(_LEAD)
    for r in rows:
        cols += [k for k in r if k not in cols and k not in _TAIL]
    return cols + list(_TAIL)


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns(rows), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_results(out: str | Path, order: list[str]) -> list[dict[str, Any]]:
    """results.csv from the journal, in case order (not finishing order); returns its rows."""
    out = Path(out)
    rank = {cid: i for i, cid in enumerate(order)}
    rows = sorted(
        (flat_row(r) for r in read_journal(out / JOURNAL)),
        key=lambda r: rank.get(r["case_id"], len(rank)),
    )
    write_atomic(out / RESULTS, to_csv(rows))
    return rows


def load_results(out: str | os.PathLike):
    """A run's results as a `datasets.Dataset`: one flat, typed row per case."""
    import datasets

    path = Path(out) / JOURNAL
    if not path.exists():
        raise EmulateError(f"{out}: no {JOURNAL} here; pass the --out folder of a run")
    rows = [flat_row(r) for r in read_journal(path)]
    return datasets.Dataset.from_list(rows)
