"""The errors a user can act on, each printed by the CLI as one line."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


class EmulateError(Exception):
    """A problem the user can fix. The CLI prints it on one line and exits with code 2."""


class ReplayMiss(EmulateError):
    """A request had no recorded answer in the replay cassette."""


class TooManyErrors(EmulateError):
    """Too many of a run's cases ended in API errors for its numbers to be trusted.
    The CLI exits with code 3; `result` (a RunResult) holds what was done."""

    exit_code = 3

    def __init__(self, message: str, result: object = None):
        super().__init__(message)
        self.result = result


class BatchPending(EmulateError):
    """The batches have not ended yet (a --batch-wait ran out); resume later.
    The CLI exits with code 75, EX_TEMPFAIL: try again later."""

    exit_code = 75


class StorageError(EmulateError):
    """Writing failed for a reason of the machine's (disk full, folder removed,
    permission lost), not of the input. What was finished is kept; the message says how
    to go on. The CLI exits with code 74 (sysexits' EX_IOERR)."""

    exit_code = 74


def describe_os_error(err: OSError) -> str:
    """`PATH: what failed`, as one line."""
    what = err.strerror or errno.errorcode.get(err.errno or 0) or str(err)
    return f"{err.filename}: {what}" if err.filename else f"a write failed: {what}"


@contextlib.contextmanager
def storage_errors(way_back: Callable[[OSError], str]) -> Iterator[None]:
    """An OSError in the block (the run's own files: journal, results, cassette,
    report) becomes a StorageError naming the path, what failed and `way_back(err)`,
    which is asked only then (it may look at what was written)."""
    try:
        yield
    except (StorageError, ConnectionError, TimeoutError):
        raise  # a StorageError already says it; a network's failures are not the disk's
    except OSError as err:
        raise StorageError(f"{describe_os_error(err)}; {way_back(err)}") from err


def open_file(path: str | Path, what: str) -> BinaryIO:
    """A user's file opened for reading bytes, or an EmulateError naming it (`what`)
    and what is wrong: missing, a folder, unreadable."""
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError:
        raise EmulateError(f"{what}: no such file") from None
    except IsADirectoryError:
        raise EmulateError(f"{what} is a folder: name a file") from None
    except OSError as err:
        raise EmulateError(f"{what}: cannot read it ({err.strerror})") from None


def read_text(path: str | Path, what: str) -> str:
    """A user's file as text, or an EmulateError naming it (`what`, e.g. "items=x.json")
    and what is wrong: missing, a folder, unreadable, binary or not UTF-8."""
    with open_file(path, what) as f:
        data = f.read()
    if b"\0" in data:
        raise EmulateError(f"{what}: a binary file, not text; name a JSON or JSONL file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise EmulateError(f"{what}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
