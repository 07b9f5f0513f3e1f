"""The sandbox pool's fork server: runs inside one bubblewrap, as `python -s -P -c`.

Starting a fresh interpreter costs 20-30 ms, more than most probe programs take to
run, so the pool starts one interpreter (this script, with the same flags, hash
seed and environment a program gets) and forks it once per program. Each fork
first becomes a supervisor in new user, mount, PID, IPC and network namespaces
(nested inside the bubblewrap's): it mounts a fresh tmpfs on /sandbox and on /tmp,
writes the program's files, and forks the program as PID 1 of its own PID
namespace, so when the program ends, everything it started dies with it. The
program drops every capability, takes its own rlimits, and runs its source as
`__main__` in the already-started interpreter, then exits as the interpreter would
(threads joined, atexit run, output flushed). Every process here is non-dumpable,
so no program can read or write another's memory through /proc; a program cannot
name another's PID; nothing it writes outlives it. It cannot poison the next one.

Stdlib only, no emulate imports: the package's folder is not inside the sandbox.
Protocol on stdin/stdout: 4-byte big-endian length, then JSON. A job is
{"id", "files": {path: text}, "limits": {...}, "env": {...}}; an answer is
{"id", "stdout", "stderr", "code" (negative: the signal), "timed_out",
"hit_procs", "duration"} or {"id", "error"} when the sandbox itself failed.
"""

import contextlib
import ctypes
import json
import os
import resource
import select
import selectors
import signal
import struct
import sys
import time
from typing import Any

SANDBOX = "/sandbox"
CGROUP = "/cgroup"  # where the host bound this pool's pids cgroup, if it has one
MB = 1024 * 1024
# From <sched.h>, <sys/mount.h>, <linux/prctl.h>, <linux/capability.h>.
CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND = 1, 2, 4, 32, 4096
MS_REC, MS_PRIVATE = 0x4000, 0x40000
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 4, 38
CAPABILITY_VERSION_3 = 0x20080522

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount_tmpfs(path: str, size_mb: int) -> None:
    data = f"size={size_mb * MB},mode=0755".encode()
    _check(libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, data), path)


def _drop_capabilities() -> None:
    header = (ctypes.c_uint32 * 2)(CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable; two words each
    _check(libc.capset(header, data), "capset")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _size(frame: bytes | bytearray) -> int:
    return struct.unpack(">I", frame[:4])[0]


def _send(fd: int, message: dict) -> None:
    body = json.dumps(message).encode()
    _write(fd, struct.pack(">I", len(body)) + body)


# --- the program -------------------------------------------------------------------


def _exit_code(exc: SystemExit) -> int:
    """What the interpreter makes of SystemExit: None is 0, an int is itself, and
    anything else is printed to stderr and is 1."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _program(job: dict, stdout: int, stderr: int) -> None:
    """The program: limit, drop privileges, run main.py as __main__, exit as the
    interpreter would. Never returns."""
    code = 1
    try:
        _confine(job, stdout, stderr)
        main = _main_module()
        # main.py runs in this frame, as deep in the stack as it always has: a program
        # that recurses to the limit stops where it always stopped.
        here = sys._getframe().f_code
        interrupted = False
        try:
            with open(f"{SANDBOX}/main.py", "rb") as f:
                source = f.read()
            exec(compile(source, f"{SANDBOX}/main.py", "exec", dont_inherit=True), main.__dict__)
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc)
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            tb = exc.__traceback__
            while tb is not None and tb.tb_frame.f_code is here:
                tb = tb.tb_next  # the traceback starts at main.py, as it would
            sys.excepthook(type(exc), exc.with_traceback(tb), tb)
            code = 1
        # Then what the interpreter does on its way out, in its order (in this frame
        # too, for exit handlers that go deep).
        try:
            if "threading" in sys.modules:
                sys.modules["threading"]._shutdown()
            import atexit

            atexit._run_exitfuncs()
        except SystemExit as exc:
            code = _exit_code(exc)
        except BaseException:
            pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                code = 120  # as Py_FinalizeEx when flushing stdout fails
        if interrupted and code == 1:
            # An uncaught KeyboardInterrupt ends the interpreter by SIGINT.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        os._exit(code & 0xFF if code >= 0 else 1)


def _confine(job: dict, stdout: int, stderr: int) -> None:
    """The program's session, folder, standard streams (and no other descriptors),
    capabilities (none), environment and rlimits."""
    limits = job["limits"]
    os.setsid()
    os.chdir(SANDBOX)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    os.closerange(3, 1 << 16)
    _drop_capabilities()
    os.environ.clear()
    os.environ.update(job["env"])
    for res, value in (
        (resource.RLIMIT_CPU, limits["cpu_s"]),
        (resource.RLIMIT_AS, limits["memory_mb"] * MB),
        (resource.RLIMIT_FSIZE, limits["file_mb"] * MB),
        (resource.RLIMIT_NPROC, limits["procs"]),
        (resource.RLIMIT_CORE, 0),
    ):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(res, (value, value))


def _main_module() -> Any:
    """A fresh __main__ for main.py, as the interpreter makes one."""
    import builtins
    import types

    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=f"{SANDBOX}/main.py", __cached__=None)
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    sys.argv[:] = ["main.py"]
    return main


def _init(job: dict, stdout: int, stderr: int, status_w: int) -> None:
    """PID 1 of the program's namespace: start the program as PID 2 (as under
    bubblewrap: PID 1 ignores signals it has no handler for, so a program that
    signals itself must not be it), reap, pass on its wait status, exit; the kernel
    then kills whatever the program left running. Never returns."""
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        program = os.fork()
        if program == 0:
            os.close(status_w)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for sig in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            _program(job, stdout, stderr)
        while True:
            pid, status = os.wait()
            if pid == program:
                _write(status_w, struct.pack(">i", status))
                break
    finally:
        os._exit(0)


# --- the supervisor ----------------------------------------------------------------


def _enter_cgroup(job_id: int, procs: int) -> str | None:
    if not os.path.isdir(CGROUP):
        return None
    path = f"{CGROUP}/job-{job_id}"
    os.mkdir(path)
    with open(f"{path}/pids.max", "w") as f:
        f.write(str(procs + 2))  # and the supervisor and the init
    with open(f"{path}/cgroup.procs", "w") as f:
        f.write("0")  # this process; its children follow it
    return path


def _hit_procs(group: str | None) -> bool:
    if group is None:
        return False
    try:
        with open(f"{group}/pids.events") as f:
            events = f.read().split()
        return int(events[events.index("max") + 1]) > 0
    except (OSError, ValueError, IndexError):
        return False


def _supervise(job: dict) -> dict:
    limits = job["limits"]
    group = _enter_cgroup(job["id"], limits["procs"])
    stdout, stderr = os.memfd_create("stdout"), os.memfd_create("stderr")
    uid, gid = os.getuid(), os.getgid()
    _check(
        libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET),
        "unshare",
    )
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                       ("gid_map", f"{gid} {gid} 1")):  # fmt: skip
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "private /")
    _mount_tmpfs(SANDBOX, limits["disk_mb"])
    # The interpreter may live under /tmp (a venv there): held open across the fresh
    # /tmp, then bound back read-only at its own path, as bubblewrap shows it.
    held = [(d, os.open(d, os.O_PATH)) for d in job.get("under_tmp", ())]
    _mount_tmpfs("/tmp", limits["disk_mb"])
    for path, fd in held:
        os.makedirs(path, exist_ok=True)
        source = f"/proc/self/fd/{fd}".encode()
        _check(libc.mount(source, path.encode(), None, MS_BIND | MS_REC, None), path)
        libc.mount(None, path.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
        os.close(fd)
    for name, text in job["files"].items():
        path = f"{SANDBOX}/{name}"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    start = time.perf_counter()
    status_r, status_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _init(job, stdout, stderr, status_w)
    os.close(status_w)
    pidfd = os.pidfd_open(pid)
    timed_out = not select.select([pidfd], [], [], limits["wall_s"])[0]
    if timed_out:
        os.kill(pid, signal.SIGKILL)  # PID 1: the kernel kills its namespace with it
    os.waitpid(pid, 0)
    duration = time.perf_counter() - start
    status = os.read(status_r, 4)
    answer: dict[str, Any] = {
        "code": os.waitstatus_to_exitcode(struct.unpack(">i", status)[0])
        if len(status) == 4
        else -signal.SIGKILL,
        "timed_out": timed_out,
        "hit_procs": _hit_procs(group),
        "duration": duration,
    }
    for name, fd in (("stdout", stdout), ("stderr", stderr)):
        answer[name] = os.pread(fd, limits["output_chars"], 0).decode("utf-8", "replace")
    if group is not None:
        _leave_cgroup(group)
    return answer


def _leave_cgroup(group: str) -> None:
    # The namespace's other processes are being killed with its PID 1; wait for them.
    with open(f"{CGROUP}/cgroup.procs", "w") as f:
        f.write("0")
    for _ in range(400):
        try:
            os.rmdir(group)
            return
        except OSError:
            time.sleep(0.005)


def _job(job: dict, answer_fd: int) -> None:
    """A forked supervisor: answer on answer_fd, then exit. Never returns."""
    try:
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.closerange(3, answer_fd)
        os.closerange(answer_fd + 1, 1 << 16)
        answer = _supervise(job)
    except BaseException as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        _send(answer_fd, {"id": job["id"], **answer})
    finally:
        os._exit(0)


# --- the server --------------------------------------------------------------------


def serve() -> None:
    _check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "dumpable")
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ)
    inbox = bytearray()
    running: dict[int, tuple[int, int, list[bytes]]] = {}  # fd -> (pid, job id, chunks)
    while True:
        for key, _ in sel.select():
            fd = key.fd
            if fd == 0:
                data = os.read(0, 1 << 20)
                if not data:
                    for pid, _, _ in running.values():
                        os.kill(pid, signal.SIGKILL)
                    return
                inbox += data
                while len(inbox) >= 4 and len(inbox) >= 4 + (size := _size(inbox)):
                    job = json.loads(inbox[4 : 4 + size])
                    del inbox[: 4 + size]
                    r, w = os.pipe()
                    pid = os.fork()
                    if pid == 0:
                        _job(job, w)
                    os.close(w)
                    running[r] = (pid, job["id"], [])
                    sel.register(r, selectors.EVENT_READ)
                continue
            chunk = os.read(fd, 1 << 20)
            if chunk:
                running[fd][2].append(chunk)
                continue
            pid, job_id, chunks = running.pop(fd)
            sel.unregister(fd)
            os.close(fd)
            os.waitpid(pid, 0)
            body = b"".join(chunks)
            if body:
                _write(1, body)  # one whole frame: the supervisor wrote it, then exited
            else:
                _send(1, {"id": job_id, "error": "the supervisor died without an answer"})


if __name__ == "__main__":
    serve()
