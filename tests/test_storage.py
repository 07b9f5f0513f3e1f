"""The machine fails, not the input: a disk that fills mid-run, a folder that goes. The
run ends with one line (the path, what failed, the way back) and exit code 74, keeps
every finished case, and `--resume` elsewhere finishes the run exactly once.

The disk is real where the test can mount one (a 150 kB tmpfs in a mount namespace of
its own, as root); an injected ENOSPC covers the rest, and every machine."""

from __future__ import annotations

import errno
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import emulate
from emulate import journal
from emulate.cli.main import main
from emulate.errors import StorageError
from emulate.journal import JOURNAL

from .doubles import FaultServer

pytestmark = pytest.mark.enable_socket
GRID = ["-P", "dims=1", "-P", "size=5", "-P", "kernel=2", "-P", "values=9"]
CASES = 400


def _run_argv(url: str, out: Path, *more: str) -> list[str]:
    return ["run", "conv", *GRID, "--n", str(CASES), "--mode", "completion", "--model", "fake",
            "--base-url", url, "--out", str(out), "--no-progress", *more]  # fmt: skip


def _ids(out: Path) -> list[str]:
    """The journal's case ids; a torn last line (a write the disk cut) is no row."""
    return [r.case.id for r in journal.iter_journal(out / JOURNAL)]


def _can_mount() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount(), reason="needs unshare -m and mount (root): a real tmpfs")
def test_a_disk_that_fills_mid_run_ends_in_one_line_and_resumes(tmp_path):
    small, roomy = tmp_path / "small", tmp_path / "roomy"
    small.mkdir()
    with FaultServer() as server:
        cli = " ".join(f"'{a}'" for a in [sys.executable, "-m", "emulate",
                                          *_run_argv(server.url, small / "run")])  # fmt: skip
        # The tmpfs lives in this namespace only: copy the run out before it ends.
        script = (f"mount -t tmpfs -o size=150k tmpfs {small} && {{ {cli}; echo $? > "
                  f"{tmp_path / 'rc'}; }}; cp -a {small / 'run'} {roomy}")  # fmt: skip
        done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        err = done.stderr
        assert (tmp_path / "rc").read_text().strip() == "74", err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert f"{small / 'run' / JOURNAL}: No space left on device" in err
        assert f"--out {small / 'run'} --resume" in err
        kept = _ids(roomy)  # a torn last line is no row
        assert 0 < len(kept) < CASES and len(set(kept)) == len(kept)
        config = str(roomy / "run.json")
        assert main(["run", "--config", config, "--out", str(roomy), "--resume",
                     "--no-progress"]) == 0  # fmt: skip
    ids = _ids(roomy)
    assert len(ids) == len(set(ids)) == CASES and ids[: len(kept)] == kept
    assert (roomy / "results.csv").read_text().count("\n") == CASES + 1


class _FullAfter:
    """A journal file that takes `lines` lines, then reports a full disk."""

    def __init__(self, f, lines: int):
        self._f, self._left = f, lines

    def write(self, text: str) -> int:
        if self._left <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._left -= 1
        return self._f.write(text)

    def __getattr__(self, name):
        return getattr(self._f, name)


def test_an_injected_full_disk_stops_the_run_keeps_the_journal_and_resumes(
    tmp_path, monkeypatch, capsys
):
    opened = journal.JournalWriter.__init__

    def full_after_30(self, path):
        opened(self, path)
        self._f = _FullAfter(self._f, 30)

    out = tmp_path / "run"
    with FaultServer() as server:
        monkeypatch.setattr(journal.JournalWriter, "__init__", full_after_30)
        assert main(_run_argv(server.url, out)) == 74
        err = capsys.readouterr().err
        assert err == (
            f"emulate: error: {out / JOURNAL}: No space left on device; every finished case "
            f"is in the journal: free space (or restore the folder), then finish the run "
            f"with: emulate run --config {out / 'run.json'} --out {out} --resume\n"
        )
        assert len(_ids(out)) == 30 and not (out / "results.csv").exists()
        monkeypatch.undo()
        result = emulate.run_config(emulate.load_config(out / "run.json"), out, resume=True,
                                    progress=False, echo=None)  # fmt: skip
    assert result.done == CASES and len(set(_ids(out))) == len(_ids(out)) == CASES


def test_a_run_that_could_keep_nothing_says_so_and_leaves_nothing(tmp_path, monkeypatch):
    def full(self, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(journal.JournalWriter, "__init__", full)
    out = tmp_path / "run"
    with FaultServer() as server, pytest.raises(StorageError) as caught:
        emulate.run("conv", n=1, model="fake", base_url=server.url, mode="completion",
                    out=out, progress=False)  # fmt: skip
    assert str(caught.value) == (
        f"{out / JOURNAL}: No space left on device; nothing was kept: free space (or "
        "choose another --out) and run again"
    )
    assert caught.value.exit_code == 74 and not out.exists()


def test_a_cassette_that_cannot_be_saved_is_one_line(tmp_path, monkeypatch, capsys):
    from emulate import record

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(record, "write_atomic", full)
    tape = tmp_path / "tape.json"
    with FaultServer() as server:
        argv = _run_argv(server.url, tmp_path / "run", "--record", str(tape))
        argv[argv.index(str(CASES))] = "3"
        assert main(argv) == 74
    err = capsys.readouterr().err
    assert err.startswith(f"emulate: error: {tape}: No space left on device; the journal ")
    assert "the cassette holds none of this run's exchanges" in err and err.count("\n") == 1
    assert err.endswith(f"--out NEW_FOLDER --record {tape}\n")


def test_a_report_on_a_full_disk_is_one_line_and_touches_no_run(
    tmp_path, monkeypatch, capsys, replayed
):
    run = replayed("conv/completion")
    before = (run / JOURNAL).read_bytes()

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    # (emulate.analysis.report is the function; its module is emulate's report.py)
    monkeypatch.setattr(importlib.import_module("emulate.analysis.report"), "write_atomic", full)
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 74
    err = capsys.readouterr().err
    assert "No space left on device; free space (or fix the folder), then run the command" in err
    assert err.count("\n") == 1 and (run / JOURNAL).read_bytes() == before


def test_write_atomic_leaves_no_half_file(tmp_path, monkeypatch):
    target = tmp_path / "results.csv"
    target.write_text("old\n")

    def full(self, data, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError, match="No space left") as caught:
        journal.write_atomic(target, "new\n")
    assert caught.value.filename == str(target)
    monkeypatch.undo()
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "results.csv"
    ]


def test_only_the_disk_and_the_runs_own_files_are_storage_errors(tmp_path):
    from emulate.errors import is_storage_error, storage_errors

    out = tmp_path / "run"
    full = OSError(errno.ENOSPC, "No space left on device")  # no file named: still the disk
    gone = FileNotFoundError(errno.ENOENT, "No such file or directory", str(out / "x.csv"))
    other = PermissionError(errno.EACCES, "Permission denied", "/usr/bin/llama-server")
    assert is_storage_error(full) and is_storage_error(gone, [out])
    assert not is_storage_error(other, [out]) and not is_storage_error(gone, [tmp_path / "b"])
    expected = pytest.raises(StorageError, match="x.csv: No such file or directory; go on")
    with expected, storage_errors(lambda err: "go on", [out]):
        raise gone
    with pytest.raises(PermissionError), storage_errors(lambda err: "go on", [out]):
        raise other


def test_a_failure_of_the_machine_that_is_no_storage_is_one_line_exit_71(monkeypatch, capsys):
    from emulate.cli import main as cli

    def refuse(args):
        raise PermissionError(errno.EACCES, "Permission denied", "/usr/bin/llama-server")

    monkeypatch.setattr(cli, "cmd_probes", refuse)
    assert main(["probes"]) == 71
    err = capsys.readouterr().err
    assert err == (
        "emulate: error: /usr/bin/llama-server: Permission denied (a failure of this machine, "
        "not of the input)\n"
    )
