"""Hostile programs, as a stranger's items file could hold: each is contained, and
its result says which limit it hit. Run under every isolation this machine has
(bubblewrap, then the fallbacks a machine without it would use)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from emulate import sandbox
from emulate.errors import EmulateError
from emulate.sandbox import IsolationError, Limits, Program, process, run

BWRAP = pytest.mark.skipif(
    sandbox.isolation() != "bwrap", reason="needs bubblewrap (apt-get install bubblewrap)"
)
FAST = Limits(cpu_s=5, wall_s=5, file_mb=4, procs=32, disk_mb=16)


def _secret_files(tmp_path: Path) -> list[Path]:
    marker = f"SECRET-{uuid.uuid4().hex}"
    home_secret = Path.home() / f".emulate-test-{uuid.uuid4().hex}"
    tmp_secret = tmp_path / "secret.txt"
    for p in (home_secret, tmp_secret):
        p.write_text(marker)
    return [Path("/etc/shadow"), home_secret, tmp_secret]


@BWRAP
def test_reads_of_host_secrets_find_nothing(tmp_path):
    paths = _secret_files(tmp_path)
    try:
        reader = (
            "try:\n    print(open({!r}).read())\nexcept OSError as e:\n    print('no', e.errno)"  # noqa: E501
        )
        source = "\n".join(reader.format(str(p)) for p in paths)
        r = run(Program(source, limits=FAST))
        assert r.ok and r.stdout.splitlines() == ["no 2"] * len(paths), r.stdout
        listing = run(Program("import os; print(sorted(os.listdir('/tmp')))"))
        # A fresh /tmp: empty, but for the mount point of an interpreter that lives
        # under the host's /tmp (a CI checkout's venv), shown read-only.
        inside = sorted({d.split("/")[2] for d in process.interpreter_dirs()
                         if d.startswith("/tmp/")})  # fmt: skip
        assert listing.stdout == f"{inside}\n"
        etc = run(Program("import os; print(os.listdir('/etc'))")).stdout
        assert "shadow" not in etc and "ssh" not in etc
    finally:
        paths[1].unlink()


@BWRAP
def test_a_disk_filler_hits_the_disk_limit_and_not_the_host():
    source = "i = 0\nwhile True:\n    open(f'f{i}', 'wb').write(b'x' * 1024 * 1024)\n    i += 1"
    r = run(Program(source, limits=FAST))
    assert r.limit == "disk" and not r.ok


@BWRAP
def test_a_socket_hits_the_network_limit():
    r = run(Program("import socket; socket.create_connection(('1.1.1.1', 80), timeout=2)"))
    assert r.limit == "network" and not r.ok


def test_a_hundred_mb_of_output_hits_the_file_size_limit():
    r = run(Program("import sys\nfor _ in range(100): sys.stdout.write('x' * 2**20)", limits=FAST))
    assert r.limit == "file_size" and len(r.stdout) <= FAST.output_chars


def test_sleeping_forever_hits_the_wall():
    r = run(Program("import time; time.sleep(10**6)", limits=Limits(wall_s=1)))
    assert r.limit == "wall" and r.duration_s < 5


FORK_300 = """
import os, time
n = 0
try:
    for _ in range(300):
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
finally:
    print(n, flush=True)
"""

# A double-forked, setsid daemon that writes a heartbeat to a host file while it lives.
DAEMON = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for _ in range(2400):
            with open({marker!r}, 'a') as f:
                f.write('.')
            time.sleep(0.05)
    os._exit(0)
time.sleep(0.5)
print("parent done")
"""


def _ours_sleeping() -> int:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return sum("main.py" in line for line in out.splitlines())


@pytest.fixture(params=["bwrap", "netns", "none"])
def isolation(request, monkeypatch):
    """The sandbox as it runs on this machine, and as it would without bubblewrap."""
    kind = request.param
    if kind == "bwrap" and sandbox.isolation() != "bwrap":
        pytest.skip("needs bubblewrap")
    if kind == "netns" and not process._works(process._UNSHARE):
        pytest.skip("unshare cannot make namespaces here")
    monkeypatch.setattr(sandbox, "isolation", lambda: kind)
    return kind


def test_fork_300_is_capped_and_leaves_nothing_behind(isolation):
    before = _ours_sleeping()
    r = run(Program(FORK_300, limits=FAST))
    assert int(r.stdout.split()[0]) < 300 or isolation != "none" or process.cgroup_base() is None
    if process.cgroup_base() is not None or os.geteuid() != 0:
        assert r.limit == "procs" and int(r.stdout) < FAST.procs
    time.sleep(0.2)
    assert _ours_sleeping() <= before


def test_a_daemon_does_not_outlive_its_program(isolation, tmp_path):
    marker = tmp_path / "daemon.pid"
    if isolation == "bwrap":
        pytest.skip("under bubblewrap the daemon cannot write the host's folder to report itself")
    if isolation == "none" and process.cgroup_base() is None:
        pytest.skip("without namespaces or a pids cgroup a daemon can escape (documented)")
    r = run(Program(DAEMON.format(marker=str(marker)), limits=FAST))
    assert r.ok and r.stdout == "parent done\n"
    assert marker.stat().st_size > 0  # it did start
    time.sleep(0.2)
    beats = marker.stat().st_size
    time.sleep(0.5)
    assert marker.stat().st_size == beats  # and is gone


def test_items_code_needs_bubblewrap_unless_the_user_opts_in(monkeypatch):
    monkeypatch.setattr(sandbox, "isolation", lambda: "none")
    monkeypatch.delenv(sandbox.UNISOLATED_OPT_IN, raising=False)
    with pytest.raises(IsolationError, match="EMULATE_ALLOW_UNISOLATED=1"):
        run(Program("print(1)", origin="items"))
    assert run(Program("print(1)")).stdout == "1\n"  # emulate's own programs still run
    monkeypatch.setenv(sandbox.UNISOLATED_OPT_IN, "1")
    assert run(Program("print(1)", origin="items")).stdout == "1\n"
    assert issubclass(IsolationError, EmulateError)


def test_an_items_run_without_bubblewrap_is_one_line_and_exit_2(monkeypatch, tmp_path, capsys):
    from emulate.cli.main import main

    monkeypatch.setattr(sandbox, "isolation", lambda: "none")
    monkeypatch.delenv(sandbox.UNISOLATED_OPT_IN, raising=False)
    monkeypatch.setenv("EMULATE_CACHE", "")  # a cached truth would hide the refusal
    items = tmp_path / "items.jsonl"
    items.write_text('{"code": "def f(x):\\n    return x", "input": "1", "id": "a"}\n')
    out = tmp_path / "out"
    assert main(["run", "program", "-P", f"items={items}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "EMULATE_ALLOW_UNISOLATED=1" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
