"""The run's journal: one JSON line per finished case, appended and flushed at once.

A run killed mid-write leaves at most one truncated last line; reading skips it
with a warning and the next append starts on a fresh line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from .case import Row
from .errors import EmulateError

JOURNAL = "journal.jsonl"
RUN_JSON = "run.json"  # the configuration beside it


def read_journal(path: str | Path, repair: bool = False) -> list[Row]:
    """All complete rows. A truncated last line is skipped (and cut off if `repair`)."""
    return list(iter_journal(path, repair))


def iter_journal(path: str | Path, repair: bool = False) -> Iterator[Row]:
    """The complete rows one at a time, read as they are needed: a journal of 100,000
    cases is never held whole. A truncated last line is skipped with a warning (and
    cut off if `repair`); a bad line anywhere else is an error naming it."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb") as f:
        good_end = 0
        for number, line in enumerate(f, 1):
            if not line.strip():
                good_end += len(line)
                continue
            try:
                row = json.loads(line)
            except ValueError:  # not JSON, or not UTF-8
                if not line.endswith(b"\n"):  # the last line, unfinished: a killed write
                    print(
                        f"warning: {path}: skipped a truncated last line (a run stopped mid-write)",
                        file=sys.stderr,
                    )
                    if repair:
                        f.close()
                        os.truncate(path, good_end)
                    return
                raise EmulateError(
                    f"{path}: line {number} is not valid JSON; the journal is damaged "
                    "(move it aside to start over)"
                ) from None
            try:
                parsed = Row.from_json(row)
            except ValueError:
                raise EmulateError(
                    f"{path}: line {number} is JSON but not an emulate journal row "
                    "(is this a run's journal.jsonl?)"
                ) from None
            good_end += len(line)
            yield parsed


class JournalWriter:
    """Appends whole lines. Outside an event loop each line is flushed as written; in
    one, the lines finished in one pass of the loop (a dozen answers arriving together
    at concurrency 64) are flushed together when the pass ends, so a kill loses at
    most those, and the journal costs one write per pass rather than per case."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._flush_pending = False
        # A flush that failed in the loop's callback (a full disk): raised by the next
        # append or close, where the run sees it and stops.
        self._failed: OSError | None = None

    def append(self, row: Row | dict[str, Any]) -> None:
        if self._failed is not None:
            raise self._failed
        line = row.to_line() if isinstance(row, Row) else json.dumps(row, ensure_ascii=False)
        try:
            self._f.write(line + "\n")
        except OSError as err:
            raise self._named(err) from None
        if self._flush_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            self._flush()
            if self._failed is not None:
                raise self._failed
            return
        self._flush_pending = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if not self._f.closed and self._failed is None:
            try:
                self._f.flush()
            except OSError as err:
                self._failed = self._named(err)

    def _named(self, err: OSError) -> OSError:
        """The error with this journal's path: a flush's own names no file."""
        return OSError(err.errno, err.strerror, str(self.path))

    def close(self) -> None:
        try:
            self._f.close()
        except OSError as err:
            if self._failed is None:
                raise self._named(err) from None
        if self._failed is not None:
            raise self._failed


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write a whole file or nothing: readers never see half of it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)  # a full disk keeps no half-written copy
        raise OSError(err.errno, err.strerror, str(path)) from None


@contextlib.contextmanager
def atomic_writer(path: str | Path) -> Iterator[TextIO]:
    """A text file written in a stream and put in place whole when the block ends;
    if it raises, nothing is left (readers never see half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            yield f
        os.replace(tmp, path)
    except OSError as err:
        if err.filename not in (None, str(tmp)):
            raise  # another file's (one the block was reading)
        raise OSError(err.errno, err.strerror, str(path)) from None  # the file meant
    finally:
        tmp.unlink(missing_ok=True)
