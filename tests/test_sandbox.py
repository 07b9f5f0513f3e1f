"""The sandbox that runs probe-generated programs for their truth."""

import sys
from pathlib import Path

import pytest

from emulate import sandbox
from emulate.sandbox import Limits, Program, run, run_cached, run_many

FULL = pytest.mark.skipif(
    sandbox.isolation() != "bwrap", reason="needs bubblewrap (apt-get install bubblewrap)"
)


def test_runs_in_a_fresh_directory_with_a_minimal_environment():
    source = (
        "import os, sys\nprint(os.getcwd())\nprint(sorted(os.environ))\n"
        "print(sys.flags.no_user_site, sys.flags.safe_path, sys.flags.hash_randomization)"
    )
    r = run(Program(source))
    cwd, env, flags = r.stdout.splitlines()
    # No user site, no script folder on the path, and a fixed hash seed (not -I, which
    # would ignore PYTHONHASHSEED and make set order differ from run to run).
    assert (
        r.ok
        and cwd == (sandbox.SANDBOX if r.isolation == "bwrap" else "")
        or ("emulate-sandbox-" in cwd)
    )
    assert flags == "1 True 0"
    assert "OPENAI_API_KEY" not in env and "HOME" in env


def test_files_beside_the_program():
    r = run(Program("print(open('data/x.txt').read())", files={"data/x.txt": "hello"}))
    assert r.stdout == "hello\n"
    with pytest.raises(ValueError, match="outside"):
        run(Program("", files={"../evil.txt": "x"}))


@FULL
def test_cannot_write_outside_its_directory(tmp_path):
    for target in [Path.cwd(), Path.home(), tmp_path]:
        target = target / "escaped.txt"
        r = run(Program(f"open({str(target)!r}, 'w').write('x')"))
        # Read-only, or not there at all (the host's temp folder is not shown), or, under
        # /tmp, written to the sandbox's own tmpfs: never to the host's file.
        assert not target.exists()
        if r.ok:
            assert str(target).startswith("/tmp/")
        else:
            assert "Read-only file system" in r.stderr or "No such file" in r.stderr
            assert r.limit == ("filesystem" if "Read-only" in r.stderr else None)


@FULL
def test_no_network():
    r = run(Program("import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)"))
    assert not r.ok and ("unreachable" in r.stderr or "refused" in r.stderr)


@pytest.mark.parametrize(
    "source,limits,limit",
    [
        ("while True: pass", Limits(cpu_s=1, wall_s=10), "cpu"),
        ("import time; time.sleep(30)", Limits(wall_s=1), "wall"),
        ("x = bytearray(4 * 1024**3)", Limits(memory_mb=512), "memory"),
        ("while True: print('x' * 1000)", Limits(file_mb=1), "file_size"),
    ],
)
def test_runaways_are_stopped_at_their_limit(source, limits, limit):
    r = run(Program(source, limits=limits))
    assert r.limit == limit and not r.ok
    assert r.duration_s < limits.wall_s + 5


def test_a_crash_is_a_result():
    r = run(Program("raise SystemExit(3)"))
    assert r.exit_code == 3 and r.limit is None and not r.ok
    r = run(Program("1/0"))
    assert "ZeroDivisionError" in r.stderr and r.exit_code == 1


def test_many_run_in_parallel_and_keep_their_order():
    results = run_many([Program(f"print({i} * {i})") for i in range(12)])
    assert [r.stdout for r in results] == [f"{i * i}\n" for i in range(12)]


def test_cache_answers_repeats(tmp_path, monkeypatch):
    monkeypatch.setenv("EMULATE_CACHE", str(tmp_path))
    program = Program("import time; print(time.time_ns())")
    first = run_cached([program])[0]
    assert run_cached([program])[0] == first  # a rerun would print another time
    assert run_cached([program], salt="torch 2")[0] != first
    # A result is the sandbox's too: another sandbox, or another venv, asks again.
    monkeypatch.setattr("emulate.sandbox.SANDBOX_VERSION", -1)
    assert run_cached([program])[0] != first
    monkeypatch.undo()
    key = sandbox._key(program, "")
    monkeypatch.setattr("sys.executable", sys.executable + "-elsewhere")
    assert sandbox._key(program, "") != key
    monkeypatch.undo()
    monkeypatch.setenv("EMULATE_CACHE", "")
    assert run_cached([program])[0] != first
