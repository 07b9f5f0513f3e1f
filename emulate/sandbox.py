"""Running probe-generated programs for their ground truth.

Only programs that a probe generated (or a published item's code) run here, never
model output. Each run gets a fresh temporary directory as its working directory
and HOME, `python -s -P` (no user site, no script folder on the path) in a minimal
environment with a fixed hash seed (so `set` order, and a truth that shows it, is
the same on every machine; `-I` would ignore PYTHONHASHSEED),
limits on CPU time, memory, file size and processes, and a wall-clock timeout that
kills its whole process group. With bubblewrap (`apt-get install bubblewrap`) the
whole filesystem is read-only but the sandbox directory, and there is no network;
without it, a private network namespace (`unshare`) still cuts the network where
the kernel allows, and Result.isolation says which held.

Shell sessions (`run_session`) run a probe's commands, one after another, in one
bash process, in a home directory seeded with files at fixed times; they need
bubblewrap, which mounts that home at a fixed /home/user.

stdout and stderr go to files in the sandbox, so the file-size limit also caps a
program that floods its output. The result says which limit stopped a program;
a probe keeps such a case, marked, rather than hanging or crashing the run.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    cpu_s: int = 10
    wall_s: float = 20.0
    memory_mb: int = 2048  # address space; torch needs several GB of it
    file_mb: int = 8  # any one file, stdout and stderr included
    procs: int = 64
    output_chars: int = 200_000  # what is read back of stdout and stderr


@dataclass(frozen=True)
class Result:
    stdout: str
    stderr: str
    exit_code: int | None  # negative: killed by that signal
    limit: str | None = None  # "wall", "cpu", "memory", "file_size", or None
    duration_s: float = 0.0
    isolation: str = "bwrap"  # "bwrap" (filesystem and network), "netns" (network), "none"

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.limit is None

    def as_truth(self) -> Execution:
        """What running gave, as a probe's truth: marked when it did not finish normally."""
        status = "ok" if self.ok else (self.limit or f"exit {self.exit_code}")
        return Execution(self.stdout, status, self.stderr[-300:])


@dataclass(frozen=True)
class Execution:
    """A program's run as a truth: what it printed, and whether it finished ("ok"), or
    which limit or exit code stopped it (then there is no truth to score against)."""

    stdout: str
    status: str
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Program:
    """A program to run: its source (as main.py) and any files beside it."""

    source: str
    files: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    hash_seed: int = 0  # PYTHONHASHSEED: a second seed tells whether output hangs on it


def _works(argv: Sequence[str]) -> bool:
    try:
        return subprocess.run([*argv, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.cache
def isolation() -> str:
    """The strongest isolation this machine allows: bwrap, netns or none."""
    if shutil.which("bwrap") and _works(_bwrap(tempfile.gettempdir())):
        return "bwrap"
    if shutil.which("unshare") and _works(_UNSHARE):
        return "netns"
    return "none"


_UNSHARE = ("unshare", "--net", "--map-root-user")


def _bwrap(work: str) -> list[str]:
    return [
        "bwrap",
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        # No tmpfs over /tmp: the interpreter itself may live there (a CI venv).
        "--bind", work, work,
        "--unshare-net",
        "--unshare-pid",
        "--die-with-parent",
        "--chdir", work,
    ]  # fmt: skip


def _prefix(work: str) -> list[str]:
    kind = isolation()
    return _bwrap(work) if kind == "bwrap" else list(_UNSHARE) if kind == "netns" else []


def _limit_child(limits: Limits) -> None:
    # Runs in the child between fork and exec.
    os.setsid()  # its own process group, so a timeout kills everything it started
    for res, value in (
        (resource.RLIMIT_CPU, limits.cpu_s),
        (resource.RLIMIT_AS, limits.memory_mb * MB),
        (resource.RLIMIT_FSIZE, limits.file_mb * MB),
        (resource.RLIMIT_NPROC, limits.procs),
        (resource.RLIMIT_CORE, 0),
    ):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(res, (value, value))


def _env(home: str, hash_seed: int = 0) -> dict[str, str]:
    return {
        "PYTHONHASHSEED": str(hash_seed),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        # One thread each: runs in parallel across cores, and numerics repeat.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _read(path: Path, limit: int) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")


def run(program: Program) -> Result:
    """Run one program in a fresh sandbox and return what it printed."""
    limits = program.limits
    with tempfile.TemporaryDirectory(prefix="emulate-sandbox-") as tmp:
        work = Path(tmp)
        (work / "main.py").write_text(program.source, encoding="utf-8")
        for name, text in program.files.items():
            target = (work / name).resolve()
            if work.resolve() not in target.parents:
                raise ValueError(f"sandbox file {name!r} is outside the sandbox")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        argv = [*_prefix(tmp), sys.executable, *_PYTHON_FLAGS, "main.py"]
        start = time.perf_counter()
        with open(work / ".stdout", "wb") as out, open(work / ".stderr", "wb") as err:
            proc = subprocess.Popen(
                argv,
                cwd=work,
                env=_env(tmp, program.hash_seed),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                preexec_fn=lambda: _limit_child(limits),
            )
            timed_out = False
            try:
                proc.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        duration = time.perf_counter() - start
        stdout = _read(work / ".stdout", limits.output_chars)
        stderr = _read(work / ".stderr", limits.output_chars)
    code = proc.returncode
    if isolation() == "bwrap" and code is not None and code > 128:
        code = 128 - code  # bwrap reports a child killed by signal N as 128 + N
    return Result(
        stdout=stdout,
        stderr=stderr,
        exit_code=code,
        limit=_which_limit(code, timed_out, stderr),
        duration_s=duration,
        isolation=isolation(),
    )


def _which_limit(code: int | None, timed_out: bool, stderr: str) -> str | None:
    if timed_out:
        return "wall"
    if code == -signal.SIGXCPU or code == -signal.SIGKILL:
        return "cpu"
    if code == -signal.SIGXFSZ or "File too large" in stderr[-500:]:
        return "file_size"
    if code and "MemoryError" in stderr[-2000:]:
        return "memory"
    return None


def run_many(programs: Sequence[Program], workers: int | None = None) -> list[Result]:
    """Run programs in parallel, one per core, keeping their order."""
    if not programs:
        return []
    workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=min(workers, len(programs))) as pool:
        return list(pool.map(run, programs))


# A program's output depends only on its text, its limits and the interpreter (and
# the libraries it imports, which the caller names in `salt`), so results are cached.


def cache_dir() -> Path:
    base = os.environ.get("EMULATE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "emulate"
    )
    return Path(base) / "sandbox"


_PYTHON_FLAGS = ("-s", "-P")


def _key(program: Program, salt: str) -> str:
    blob = json.dumps(
        [
            program.source,
            dict(program.files),
            asdict(program.limits),
            sys.version,
            salt,
            _PYTHON_FLAGS,
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


# --- shell sessions -----------------------------------------------------------------

SHELL_BUILTINS = ("cd", "export", "umask", "unset", "pushd", "popd")


@dataclass(frozen=True)
class Turn:
    output: str  # stdout and stderr together, as a terminal shows them
    exit_code: int
    limit: str | None = None  # "wall" or "file_size" when the command was cut


@dataclass(frozen=True)
class Session:
    """Files to seed (path under home -> (text, mtime as epoch seconds)) and commands."""

    files: Mapping[str, tuple[str, float]]
    commands: Sequence[str]
    dirs: Mapping[str, float] = field(default_factory=dict)  # extra dirs -> mtime
    hostname: str = "ubuntu"
    user: str = "user"
    turn_wall_s: float = 5.0
    limits: Limits = field(default_factory=lambda: Limits(cpu_s=30, wall_s=120, file_mb=1))


def _session_script(session: Session) -> str:
    lines = ["cd /home/user", "umask 022"]
    for k, cmd in enumerate(session.commands):
        out = f"/home/.emulate/{k}"
        if cmd.split(maxsplit=1)[0] in SHELL_BUILTINS:
            # Builtins change this shell's state, so they run in it, not in a child.
            lines.append(f"{cmd} > {out}.out 2>&1; echo $? > {out}.rc")
        else:
            quoted = "'" + cmd.replace("'", "'\\''") + "'"
            t = session.turn_wall_s
            lines.append(f"timeout -k 1 {t} bash -c {quoted} > {out}.out 2>&1; echo $? > {out}.rc")
    return "\n".join(lines) + "\n"


def run_session(session: Session) -> list[Turn]:
    """Run a shell session for its true outputs, one Turn per command."""
    if isolation() != "bwrap":
        raise RuntimeError("shell sessions need bubblewrap (apt-get install bubblewrap)")
    limits = session.limits
    with tempfile.TemporaryDirectory(prefix="emulate-session-") as tmp:
        home, ctl = Path(tmp, "home"), Path(tmp, "ctl")
        home.mkdir()
        ctl.mkdir()
        for rel, (text, mtime) in session.files.items():
            path = home / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            os.utime(path, (mtime, mtime))
        for rel, mtime in sorted(session.dirs.items(), key=lambda kv: -kv[0].count("/")):
            (home / rel).mkdir(parents=True, exist_ok=True)
            os.utime(home / rel, (mtime, mtime))
        os.chmod(home, 0o755)
        (ctl / "session.sh").write_text(_session_script(session))
        argv = [
            "bwrap",
            "--ro-bind", "/", "/",
            "--dev", "/dev",
            "--proc", "/proc",
            "--tmpfs", "/home",
            "--bind", str(home), "/home/user",
            "--bind", str(ctl), "/home/.emulate",
            "--unshare-net",
            "--unshare-pid",
            "--unshare-uts",
            "--hostname", session.hostname,
            "--die-with-parent",
            "--chdir", "/home/user",
            "bash", "--norc", "--noprofile", "/home/.emulate/session.sh",
        ]  # fmt: skip
        env = _env("/home/user") | {
            "USER": session.user,
            "LOGNAME": session.user,
            "HOSTNAME": session.hostname,
            "SHELL": "/bin/bash",
            "TERM": "dumb",
        }
        env["TMPDIR"] = "/home/user"
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: _limit_child(limits),
        )
        try:
            proc.wait(timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        turns = []
        for k in range(len(session.commands)):
            try:
                code = int((ctl / f"{k}.rc").read_text().strip())
            except (OSError, ValueError):
                turns.append(Turn("", -1, "session"))  # never ran: the session was cut
                continue
            output = _read(ctl / f"{k}.out", limits.output_chars)
            limit = {124: "wall", 137: "wall", 153: "file_size"}.get(code)
            turns.append(Turn(output, code, limit))
    return turns
