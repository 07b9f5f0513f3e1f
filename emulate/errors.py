"""The errors a user can act on, each printed by the CLI as one line."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO


class EmulateError(Exception):
    """A problem the user can fix. The CLI prints it on one line and exits with code 2."""


class ArgumentError(EmulateError):
    """A bad argument, named as the Python API spells it (`retry_errors`); the CLI names
    its flag instead (`--retry-errors`). `template` holds each name as a {field}."""

    def __init__(self, template: str, *names: str):
        self.template, self.names = template, names
        super().__init__(self.spelled({n: n for n in names}))

    def spelled(self, spelling: dict[str, str]) -> str:
        """The message with each argument spelled as `spelling` says (the CLI's flags)."""
        out = self.template
        for n in self.names:
            out = out.replace("{" + n + "}", spelling.get(n, n))
        return out


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


# What a full disk, a quota, a file too large, a failing or read-only disk say.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})


def is_storage_error(err: OSError, within: Iterable[str | Path] = ()) -> bool:
    """A failure of the disk, or of a file or folder under one of `within` (a run's
    folder removed, its permissions lost): not a program that would not start, say."""
    if err.errno in STORAGE_ERRNOS:
        return True
    if not err.filename or not isinstance(err.filename, str | Path):
        return False
    path = Path(err.filename).absolute()
    return any(path == Path(w).absolute() or Path(w).absolute() in path.parents for w in within)


def describe_os_error(err: OSError) -> str:
    """`PATH: what failed`, as one line."""
    what = err.strerror or errno.errorcode.get(err.errno or 0) or str(err)
    return f"{err.filename}: {what}" if err.filename else f"a write failed: {what}"


@contextlib.contextmanager
def storage_errors(
    way_back: Callable[[OSError], str], within: Iterable[str | Path | None] = ()
) -> Iterator[None]:
    """An OSError in the block that the disk caused, or that names a file under one of
    `within` (the run's own folder and cassette), becomes a StorageError naming the
    path, what failed and `way_back(err)`, asked only then (it may look at what was
    written). Other OSErrors (a server that would not start) pass as they are."""
    try:
        yield
    except StorageError:
        raise
    except OSError as err:
        if not is_storage_error(err, [w for w in within if w is not None]):
            raise
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
