"""A warm sandbox: one fork server (zygote.py) in one bubblewrap, per hash seed.

A fresh interpreter per program costs 20-30 ms of startup, more than most probe
programs run; forking one that has started costs well under a millisecond. The
isolation is the per-program bubblewrap's and more: each program gets its own user,
mount, PID, IPC and network namespaces, a fresh tmpfs /sandbox and /tmp, its own
rlimits and (where the machine allows) its own pids cgroup, and nothing it leaves
running outlives it (zygote.py says how). `EMULATE_SANDBOX_POOL=0` turns it off;
where the kernel refuses nested namespaces the sandbox falls back to one bubblewrap
per program by itself.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import struct
import subprocess
import sys
import threading
from concurrent.futures import Future
from dataclasses import asdict
from pathlib import Path
from typing import Any

from emulate.errors import EmulateError

from . import process as sandbox

ZYGOTE = Path(__file__).with_name("zygote.py")
OPT_OUT = "EMULATE_SANDBOX_POOL"


class PoolError(EmulateError):
    """The fork server failed (not a program: programs' failures are Results)."""


class Pool:
    """One fork server for programs run with `hash_seed`; thread-safe."""

    _count = itertools.count()

    def __init__(self, hash_seed: int):
        self.hash_seed = hash_seed
        # The interpreter's folders under /tmp, which each program's fresh /tmp must show.
        self._under_tmp = [d for d in sandbox.interpreter_dirs() if d.startswith("/tmp/")]
        self._group = _make_group()
        mounts = ["--dir", sandbox.SANDBOX]
        if self._group is not None:
            mounts += ["--bind", str(self._group), "/cgroup"]
        argv = [
            *sandbox.bwrap_argv(1, *mounts, "--chdir", "/"),
            "--", sys.executable, *sandbox.PYTHON_FLAGS, "-c", ZYGOTE.read_text(),
        ]  # fmt: skip
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._pending: dict[int, Future] = {}
        self._dead: str | None = None
        started: Future = Future()
        # bubblewrap's --die-with-parent fires when the *thread* that started it ends,
        # so the server is started by the thread that lives as long as the pool.
        threading.Thread(
            target=self._serve, args=(argv, started), daemon=True, name="sandbox-pool"
        ).start()
        self._proc: subprocess.Popen = started.result()

    def _serve(self, argv: list[str], started: Future) -> None:
        try:
            proc = subprocess.Popen(
                argv,
                env=sandbox.program_env(sandbox.SANDBOX, self.hash_seed),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            started.set_exception(PoolError(f"cannot start the sandbox pool: {exc}"))
            return
        started.set_result(proc)
        self._answers(proc)

    @property
    def alive(self) -> bool:
        return self._dead is None

    def run(self, program: sandbox.Program) -> sandbox.Result:
        job: dict[str, Any] = {
            "files": {"main.py": program.source, **sandbox.checked_files(program)},
            "limits": asdict(program.limits),
            "under_tmp": self._under_tmp,
            # bubblewrap's --chdir sets PWD; a program started by it sees that too.
            "env": sandbox.program_env(sandbox.SANDBOX, program.hash_seed)
            | {"PWD": sandbox.SANDBOX},
        }
        answer: Future = Future()
        with self._lock:
            if self._dead is not None:
                raise PoolError(f"the sandbox pool stopped: {self._dead}")
            job["id"] = job_id = next(self._ids)
            self._pending[job_id] = answer
            body = json.dumps(job).encode()
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write(struct.pack(">I", len(body)) + body)
                self._proc.stdin.flush()
            except OSError as exc:
                self._pending.pop(job_id)
                raise PoolError(f"the sandbox pool stopped: {exc}") from exc
        got = answer.result()
        if "error" in got:
            raise PoolError(f"the sandbox pool could not run a program: {got['error']}")
        code = got["code"]
        return sandbox.Result(
            stdout=got["stdout"],
            stderr=got["stderr"],
            exit_code=code,
            limit=sandbox.which_limit(code, got["timed_out"], got["stderr"], got["hit_procs"]),
            duration_s=got["duration"],
            isolation="bwrap",
        )

    def _answers(self, proc: subprocess.Popen) -> None:
        out = proc.stdout
        assert out is not None
        why = "it exited"
        try:
            while len(head := out.read(4)) == 4:
                got = json.loads(out.read(struct.unpack(">I", head)[0]))
                with self._lock:
                    future = self._pending.pop(got["id"], None)
                if future is not None:
                    future.set_result(got)
        except (OSError, ValueError) as exc:
            why = f"its answers broke off ({exc})"
        with self._lock:
            self._dead = why
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future.set_exception(PoolError(f"the sandbox pool stopped: {why}"))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()  # the server kills what still runs and exits
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._group is not None:
            _remove_group(self._group)


def _make_group() -> Path | None:
    """A pids cgroup the server makes one child of per program, where the machine
    lets emulate make one (sandbox.cgroup_base)."""
    base = sandbox.cgroup_base()
    if base is None:
        return None
    path = base / f"emulate-{os.getpid()}-pool-{next(Pool._count)}"
    try:
        path.mkdir()
    except OSError:
        return None
    return path


def _remove_group(path: Path) -> None:
    for child in [p for p in path.iterdir() if p.is_dir()] if path.exists() else []:
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


_pools: dict[int, Pool] = {}
_pools_lock = threading.Lock()
_usable: bool | None = None


def shared(hash_seed: int) -> Pool | None:
    """The process's pool for `hash_seed`, started on first use; None where pools are
    off or this machine cannot run one (the caller then starts one bubblewrap per
    program)."""
    global _usable
    if os.environ.get(OPT_OUT) == "0" or _usable is False:
        return None
    with _pools_lock:
        pool = _pools.get(hash_seed)
        if pool is None or not pool.alive:
            if pool is not None:
                pool.close()
            pool = _pools[hash_seed] = Pool(hash_seed)
        if _usable is None:
            _usable = _try(pool)
            if not _usable:
                _pools.pop(hash_seed).close()
                return None
    return pool


def _try(pool: Pool) -> bool:
    try:
        return pool.run(sandbox.Program("print(6 * 7)")).stdout == "42\n"
    except EmulateError:
        return False


@atexit.register
def close_all() -> None:
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()
