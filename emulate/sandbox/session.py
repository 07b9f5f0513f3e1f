"""Shell sessions: a probe's commands, one after another, in one bash under
bubblewrap, in a home seeded with files at fixed times; each turn's output and
what cut it short."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .process import (
    Limits,
    PidsGroup,
    bwrap_argv,
    isolation,
    limit_child,
    program_env,
    read_output,
    wait_or_kill,
)

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
        _seed_home(home, session)
        ctl.mkdir()
        (ctl / "session.sh").write_text(_session_script(session))
        group = PidsGroup.make(limits.procs)
        proc = subprocess.Popen(
            _session_argv(session, home, ctl),
            env=_session_env(session),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: limit_child(limits, group),
        )
        try:
            wait_or_kill(proc, limits.wall_s)
        finally:
            if group is not None:
                group.kill_all()
        return _read_turns(ctl, session)


def _seed_home(home: Path, session: Session) -> None:
    """The session's files and folders under `home`, each with its fixed time."""
    home.mkdir()
    for rel, (text, mtime) in session.files.items():
        path = home / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        os.utime(path, (mtime, mtime))
    for rel, mtime in sorted(session.dirs.items(), key=lambda kv: -kv[0].count("/")):
        (home / rel).mkdir(parents=True, exist_ok=True)
        os.utime(home / rel, (mtime, mtime))
    os.chmod(home, 0o755)


def _session_argv(session: Session, home: Path, ctl: Path) -> list[str]:
    return [
        *bwrap_argv(
            session.limits.disk_mb,
            "--tmpfs", "/home",
            "--bind", str(home), "/home/user",
            "--bind", str(ctl), "/home/.emulate",
            "--hostname", session.hostname,
            "--chdir", "/home/user",
            interpreter=False,  # the session's python3 is the system's
        ),
        "bash", "--norc", "--noprofile", "/home/.emulate/session.sh",
    ]  # fmt: skip


def _session_env(session: Session) -> dict[str, str]:
    env = program_env("/home/user") | {
        "USER": session.user,
        "LOGNAME": session.user,
        "HOSTNAME": session.hostname,
        "SHELL": "/bin/bash",
        "TERM": "dumb",
    }
    env["TMPDIR"] = "/home/user"
    return env


def _read_turns(ctl: Path, session: Session) -> list[Turn]:
    """Each command's output and exit code, as the session script left them in `ctl`."""
    turns = []
    for k in range(len(session.commands)):
        try:
            code = int((ctl / f"{k}.rc").read_text().strip())
        except (OSError, ValueError):
            turns.append(Turn("", -1, "session"))  # never ran: the session was cut
            continue
        output = read_output(ctl / f"{k}.out", session.limits.output_chars)
        limit = {124: "wall", 137: "wall", 153: "file_size"}.get(code)
        turns.append(Turn(output, code, limit))
    return turns
