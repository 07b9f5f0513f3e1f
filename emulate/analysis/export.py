"""From journal rows to tables: a datasets.Dataset, and exports (results.csv's own
rows are emulate/results.py's).

CSV is flat: one column per parameter and per metric. Parquet, JSONL and a saved
`datasets` folder keep the nesting of the journal (case, answer, score), with the
free-form fields (inputs, truth, foils, parsed answer) as JSON text, since their
shape differs from case to case and Arrow needs one type per column.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from emulate.case import Row
from emulate.errors import EmulateError
from emulate.journal import JOURNAL, read_journal, write_atomic

from .results import flat_row, to_csv
from .runs import load_runs, one_probe


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


def nested_row(row: Row) -> dict[str, Any]:
    """A journal row with one type per field (see the module note), for Arrow."""
    case, answer, score = row.case, row.answer, row.score
    prompt = case.prompt
    return {
        "run_id": row.run_id,
        "model": row.model,
        "server": row.server,
        "mode": row.mode,
        "case": {
            "id": case.id,
            "probe": case.probe,
            "version": case.version,
            "seed": case.seed,
            "params": dict(case.params),
            "covariates": dict(case.covariates),
            "inputs": _json(_plain(case.inputs)),
            "truth": _json(_plain(case.truth)),
            "foils": _json(dict(case.foils)),
            # A completion prompt is text, a chat prompt a list of messages.
            "prompt_text": prompt if isinstance(prompt, str) else None,
            "messages": None if isinstance(prompt, str) else [dict(m) for m in prompt],
            "max_tokens": case.max_tokens,
            "stop": list(case.stop),
            "top_logprobs": case.top_logprobs,
        },
        "answer": {
            "text": answer.text,
            "logprobs": None
            if answer.logprobs is None
            else [
                {
                    "token": t.token,
                    "logprob": t.logprob,
                    "top": [{"token": a, "logprob": b} for a, b in t.top],
                }
                for t in answer.logprobs
            ],
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "latency_s": answer.latency_s,
            "finish_reason": answer.finish_reason,
            "error": answer.error,
            "turns": list(answer.turns) if answer.turns is not None else None,
        },
        "score": {
            "correct": score.correct,
            "metrics": dict(score.metrics),
            "error_type": score.error_type,
            "reason": score.reason,
            "parsed": _json(score.parsed),
        },
    }


def _plain(value: Any) -> Any:
    """A case's inputs or truth as JSON has them (typed or not)."""
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


def nested_rows(rows: Sequence[Row]) -> list[dict[str, Any]]:
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
        write_atomic(out, "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in rows))
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
