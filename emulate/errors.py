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
