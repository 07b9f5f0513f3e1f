"""The run's journal: one JSON line per finished case, appended and flushed at once.

A run killed mid-write leaves at most one truncated last line; reading skips it
with a warning and the next append starts on a fresh line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from .errors import EmulateError

JOURNAL = "journal.jsonl"
RUN_JSON = "run.json"  # the configuration beside it


def read_journal(path: str | Path, repair: bool = False) -> list[dict[str, Any]]:
    """All complete rows. A truncated last line is skipped (and cut off if `repair`)."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    rows, good_end = [], 0
    for i, line in enumerate(lines):
        if not line.strip():
            good_end += len(line) + 1
            continue
        try:
            row = json.loads(line)
        except ValueError:  # not JSON, or not UTF-8
            if i == len(lines) - 1:  # the last line, without its newline: a killed write
                print(
                    f"warning: {path}: skipped a truncated last line (a run stopped mid-write)",
                    file=sys.stderr,
                )
                if repair:
                    with open(path, "r+b") as f:
                        f.truncate(min(good_end, len(data)))
                break
            raise EmulateError(
                f"{path}: line {i + 1} is not valid JSON; the journal is damaged "
                "(move it aside to start over)"
            ) from None
        if not is_row(row):
            raise EmulateError(
                f"{path}: line {i + 1} is JSON but not an emulate journal row "
                "(is this a run's journal.jsonl?)"
            )
        rows.append(row)
        good_end += len(line) + 1
    return rows


def is_row(row: Any) -> bool:
    """The shape every journal row has, whichever version of emulate wrote it."""
    return (
        isinstance(row, dict)
        and {"run_id", "model", "server", "mode", "case", "answer", "score"} <= row.keys()
        and isinstance(row["case"], dict)
        and isinstance(row["answer"], dict)
        and isinstance(row["score"], dict)
        and {"id", "probe", "params"} <= row["case"].keys()
        and isinstance(row["case"]["id"], str)
    )


class JournalWriter:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def append(self, row: dict[str, Any]) -> None:
        # One write of one whole line, then flush: a kill loses at most this line.
        self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write a whole file or nothing: readers never see half of it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)
