"""Running probe-generated programs for their ground truth.

Only programs that a probe generated (or a published item's code) run here, never
model output. Each run gets a fresh directory as its working directory and HOME,
`python -s -P` (no user site, no script folder on the path) in a minimal
environment with a fixed hash seed (so `set` order, and a truth that shows it, is
the same on every machine; `-I` would ignore PYTHONHASHSEED), limits on CPU time,
memory, file size and processes, and a wall-clock timeout.

With bubblewrap (`apt-get install bubblewrap`) a program sees only what it needs:
the system's programs and libraries and the interpreter, read-only, a few files of
/etc (users, groups, the loader's cache), and its own `/sandbox` and `/tmp`, each
a size-limited tmpfs; nothing of the user's home, /root, /etc/shadow or the host's
temp folder, and no network. It runs in its own PID namespace, so everything it
started dies with it. Where the machine lets emulate make a pids cgroup (root on
cgroup v1, or a delegated v2 tree), that caps its processes even for root, and
finds and kills every one of them, daemons included, at the end.

Under bubblewrap, programs run warm by default: one fork server in one bubblewrap
forks a started interpreter per program, each fork in its own nested namespaces
with its own fresh /sandbox and /tmp and its own limits (pool.py and zygote.py
here say how; 5x faster, the same output). `EMULATE_SANDBOX_POOL=0`
starts one bubblewrap and one interpreter per program instead.

Without bubblewrap, a private network and PID namespace (`unshare`) still cut the
network and reap leftovers where the kernel allows ("netns"), else nothing does
("none"); Result.isolation says which held. Programs from a user's items file
then do not run unless the user opts in with EMULATE_ALLOW_UNISOLATED=1.

Shell sessions (`run_session`) run a probe's commands, one after another, in one
bash process, in a home directory seeded with files at fixed times; they need
bubblewrap, which mounts that home at a fixed /home/user.

stdout and stderr go to files in the sandbox, so the file-size limit also caps a
program that floods its output. The result says which limit stopped a program;
a probe keeps such a case, marked, rather than hanging or crashing the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from . import pool
from .process import (
    MB,
    PYTHON_FLAGS,
    SANDBOX,
    UNISOLATED_OPT_IN,
    Execution,
    IsolationError,
    Limits,
    Program,
    Result,
    checked_files,
    isolation,
    run_cold,
)
from .session import SHELL_BUILTINS, Session, Turn, run_session


def run(program: Program) -> Result:
    """Run one program in a fresh sandbox and return what it printed."""
    kind = isolation()
    if program.origin != "probe" and kind != "bwrap" and not os.environ.get(UNISOLATED_OPT_IN):
        raise IsolationError(
            "programs from an items file run only under bubblewrap, which this machine "
            f"lacks (apt-get install bubblewrap); to run them without it, at your own risk, "
            f"set {UNISOLATED_OPT_IN}=1"
        )
    if kind == "bwrap" and (warm := pool.shared(program.hash_seed)) is not None:
        return warm.run(program)  # it checks the files itself
    return run_cold(program, kind)


def run_many(programs: Sequence[Program], workers: int | None = None) -> list[Result]:
    """Run programs in parallel, one per core, keeping their order."""
    if not programs:
        return []
    workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=min(workers, len(programs))) as pool:
        return list(pool.map(run, programs))


# A program's output depends only on its text, its limits and the interpreter (and
# the libraries it imports, which the caller names in `salt`), so results are cached.
# Also on the sandbox: a layout that hid the interpreter's packages once made every
# program fail, and those failures were cached. Keys carry the interpreter's path (a
# venv of its own) and this number, raised whenever the sandbox's layout changes.
SANDBOX_VERSION = 3  # 3: a netns program killed by SIGKILL reads as killed


def cache_dir() -> Path:
    base = os.environ.get("EMULATE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "emulate"
    )
    return Path(base) / "sandbox"


def _key(program: Program, salt: str) -> str:
    blob = json.dumps(
        [
            program.source,
            dict(program.files),
            asdict(program.limits),
            sys.version,
            sys.executable,
            SANDBOX_VERSION,
            salt,
            PYTHON_FLAGS,
            program.hash_seed,
        ],
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def run_cached(
    programs: Sequence[Program], salt: str = "", workers: int | None = None
) -> list[Result]:
    """run_many, answering from the on-disk cache where it can (`EMULATE_CACHE=` off)."""
    if os.environ.get("EMULATE_CACHE") == "":
        return run_many(programs, workers)
    folder = cache_dir()
    keys = [_key(p, salt) for p in programs]
    results: list[Result | None] = []
    for key in keys:
        try:
            results.append(Result(**json.loads((folder / f"{key}.json").read_text())))
        except (OSError, ValueError, TypeError):
            results.append(None)
    todo = [i for i, r in enumerate(results) if r is None]
    fresh = run_many([programs[i] for i in todo], workers)
    folder.mkdir(parents=True, exist_ok=True)
    for i, result in zip(todo, fresh, strict=True):
        results[i] = result
        if result.limit != "wall":  # a timeout may be the machine's load, not the program
            tmp = folder / f".{keys[i]}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(asdict(result)))
            os.replace(tmp, folder / f"{keys[i]}.json")
    return results  # type: ignore[return-value]


__all__ = [
    "MB",
    "SANDBOX",
    "SANDBOX_VERSION",
    "SHELL_BUILTINS",
    "UNISOLATED_OPT_IN",
    "Execution",
    "IsolationError",
    "Limits",
    "Program",
    "Result",
    "Session",
    "Turn",
    "cache_dir",
    "checked_files",
    "isolation",
    "run",
    "run_cached",
    "run_many",
    "run_session",
]
