"""The warm sandbox (emulate/sandbox/pool.py and zygote.py): a forked interpreter gives
what a fresh one gives, and no program can touch another or outlive itself."""

import os
import time

import pytest

from emulate.sandbox import Limits, Program, pool, process, run, run_many

pytestmark = pytest.mark.skipif(
    process.isolation() != "bwrap", reason="needs bubblewrap (apt-get install bubblewrap)"
)


@pytest.fixture
def fresh_pools(monkeypatch):
    """Pools started by this test alone (and the probe of usability run again)."""
    monkeypatch.delenv(pool.OPT_OUT, raising=False)
    pool.close_all()
    monkeypatch.setattr(pool, "_usable", None)
    yield
    pool.close_all()


def _shown_in_tmp(*mine: str) -> list[str]:
    """What a program sees in /tmp besides its own files: the folders an interpreter
    under /tmp (a venv there) is mounted at, as bubblewrap shows them."""
    under = [d.split("/")[2] for d in process.interpreter_dirs() if d.startswith("/tmp/")]
    return sorted({*under, *mine})


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


# What a fresh `python -s -P main.py` does on its way out, each a way a forked
# interpreter could differ: exit codes, tracebacks, threads, atexit, signals, PIDs.
TRICKY = [
    "print(sorted(set('abcdefghij')))",
    "1/0",
    "def f(:\n    pass",
    "import sys; sys.exit('bye')",
    "raise SystemExit(3)",
    "print('partial', end='')\nraise KeyboardInterrupt",
    "import os, signal; os.kill(os.getpid(), signal.SIGTERM)",
    "import os; os._exit(7)",
    "import threading, time\n"
    "threading.Thread(target=lambda: (time.sleep(0.2), print('thread'))).start()\n"
    "print('main')",
    "import atexit; atexit.register(print, 'at exit')\nprint('body')",
    "import os, sys; print(os.getpid(), os.getcwd(), sys.argv, __file__, __name__)",
    "import os; print(sorted(os.environ.items()))",
    "import resource as r; print(r.getrlimit(r.RLIMIT_CPU), r.getrlimit(r.RLIMIT_FSIZE))",
    "import sys; print(sys.stdin.read() == '', sys.stdout.line_buffering, sys.flags.safe_path)",
    "import os; print(sorted(os.listdir('.')), os.listdir('/tmp'))",
]


def test_a_forked_interpreter_gives_what_a_fresh_one_gives(fresh_pools, monkeypatch):
    programs = [Program(source) for source in TRICKY]
    warm = run_many(programs)
    assert pool._pools, "the pool did not run"
    monkeypatch.setenv(pool.OPT_OUT, "0")
    cold = run_many(programs)
    for source, w, c in zip(TRICKY, warm, cold, strict=True):
        assert (w.stdout, w.stderr, w.exit_code, w.limit) == (
            c.stdout,
            c.stderr,
            c.exit_code,
            c.limit,
        ), source
    # The values themselves, so that both paths being wrong alike fails too.
    assert warm[1].stderr.startswith('Traceback (most recent call last):\n  File "/sandbox/')
    assert [r.exit_code for r in warm[3:8]] == [1, 3, -2, -15, 7]
    assert warm[8].stdout == "main\nthread\n" and warm[9].stdout == "body\nat exit\n"
    assert warm[10].stdout == "2 /sandbox ['main.py'] /sandbox/main.py __main__\n"


HOSTILE = """
import os, signal, subprocess, time
me = os.readlink('/proc/self')
opened = 0
for pid in os.listdir('/proc'):
    if pid.isdigit() and pid != me:
        try:
            open(f'/proc/{pid}/mem', 'r+b').close()
            opened += 1
        except OSError:
            pass
for pid in range(1, 400):
    if pid != os.getpid():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
open('/tmp/left', 'w').write('x')
open('left', 'w').write('x')
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            open('/tmp/left', 'a').write('.')
            time.sleep(0.01)
    os._exit(0)
print(opened)
"""


def test_a_program_cannot_poison_the_next_one(fresh_pools):
    first = run(Program("print(1)"))
    warm = pool._pools[0]
    server = warm._proc.pid
    baseline = len(_descendants(server))
    r = run(Program(HOSTILE, limits=Limits(wall_s=10)))
    assert r.ok and r.stdout == "0\n", r.stderr  # no other process's memory opened
    time.sleep(0.3)
    assert len(_descendants(server)) == baseline  # its daemon died with it
    after = run(Program("import os; print(sorted(os.listdir('.')), sorted(os.listdir('/tmp')))"))
    assert after.stdout == f"['main.py'] {_shown_in_tmp()}\n"  # nothing it wrote is left
    assert pool._pools[0] is warm and warm.alive and first.ok


def test_programs_running_at_once_do_not_see_each_other(fresh_pools):
    writer = "import time\nopen('/tmp/mine', 'w').write('1')\nopen('mine', 'w').write('1')\n"
    writer += (
        "time.sleep(1.5)\nimport os; print(sorted(os.listdir('.')), sorted(os.listdir('/tmp')))"
    )
    listing = "print(sorted(os.listdir('.')), sorted(os.listdir('/tmp')))"
    reader = f"import os, time\ntime.sleep(0.5)\n{listing}"
    a, b = run_many([Program(writer), Program(reader)], workers=2)
    assert a.stdout == f"['main.py', 'mine'] {_shown_in_tmp('mine')}\n"
    assert b.stdout == f"['main.py'] {_shown_in_tmp()}\n"


def test_a_wall_timeout_kills_the_program_and_all_it_started(fresh_pools):
    source = "import os, time\nif os.fork() == 0:\n    os.setsid()\ntime.sleep(60)"
    run(Program("print(1)"))
    server = pool._pools[0]._proc.pid
    baseline = len(_descendants(server))
    r = run(Program(source, limits=Limits(wall_s=1)))
    assert r.limit == "wall" and 1 <= r.duration_s < 5
    time.sleep(0.3)
    assert len(_descendants(server)) == baseline


def test_without_a_working_pool_each_program_gets_its_own_bubblewrap(
    fresh_pools, monkeypatch, tmp_path
):
    broken = tmp_path / "zygote.py"
    broken.write_text("raise SystemExit(1)\n")
    monkeypatch.setattr(pool, "ZYGOTE", broken)
    r = run(Program("import os; print(os.getpid())"))
    assert r.ok and r.stdout == "2\n" and r.isolation == "bwrap"  # bwrap's own PID 1
    assert pool._usable is False and not pool._pools
