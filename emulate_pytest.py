"""emulate's pytest plugin: ask a model inside a test, record once, replay in CI.

Registered through pytest's `pytest11` entry point, so it is active wherever emulate
is installed; a test that does not ask for the `emulate_run` fixture sees nothing of
it. It is a module of its own, outside the `emulate` package, so that pytest loading
it does not load emulate (and the openai SDK) in every session: emulate is imported
only when a test uses the fixture.

    def test_closes_brackets(emulate_run):
        result = emulate_run("brackets", {"task": "next_token"}, n=8)
        assert_accuracy(result, at_least=0.6)

`emulate_run` takes what `emulate.run` takes and returns what it returns. Each test
has its own cassette, `cassettes/{module}/{test}.json` beside the test file, or the
path (relative to the test file) that `@pytest.mark.emulate(cassette=...)` or the
call's own `cassette=` names. `--emulate-record-mode` chooses what happens, with
pytest-recording's (vcrpy's) names:

    none (default)  replay only; a request with no recording fails the test, naming
                    the case, and the network is blocked
    once            replay a cassette that exists (as none); record one that does not
    new_episodes    replay what is recorded, record what is not
    all             ask the server for everything, adding to the cassette
    rewrite         delete the cassette and record it again
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

RECORD_MODES = ("none", "once", "new_episodes", "all", "rewrite")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("emulate", "emulate: recorded model runs in tests")
    group.addoption(
        "--emulate-record-mode",
        choices=RECORD_MODES,
        default="none",
        help="how emulate_run uses each test's cassette: none (replay only, the network "
        "blocked; the default), once (record a missing cassette), new_episodes (record "
        "what is missing), all (ask everything again, adding to the cassette), rewrite "
        "(record the cassette afresh)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "emulate(cassette=PATH): the cassette this test's emulate_run uses, relative to the "
        "test file (default cassettes/{module}/{test}.json)",
    )


def default_cassette(test_file: Path, test_name: str) -> Path:
    """`cassettes/{module}/{test}.json` beside the test file; parametrize ids kept, made
    safe for a file name."""
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", test_name).strip("_") or "test"
    return test_file.parent / "cassettes" / test_file.stem / f"{safe}.json"


class NetworkBlocked(RuntimeError):
    """A connection attempted while a test replays its cassette."""


@contextlib.contextmanager
def blocked_network() -> Iterator[None]:
    """Internet sockets refuse to connect (Unix sockets and pipes still work: the
    sandbox uses them); replay needs no network, so any attempt is a bug worth a
    clear failure rather than a silent call to a real server."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(sock: socket.socket, address: Any, real: Callable[..., Any]) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkBlocked(
                f"emulate_run replays its cassette with the network blocked, and something "
                f"tried to connect to {address}; to record, pass --emulate-record-mode=once"
            )
        return real(sock, address)

    socket.socket.connect = lambda self, address: refuse(self, address, real_connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = lambda self, address: refuse(self, address, real_connect_ex)  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex  # type: ignore[method-assign]


class _Runner:
    """The fixture's callable: one per test, so the cassette's fate (replay, record,
    rewrite) is decided once, at the test's first call, and kept for its later ones."""

    def __init__(self, request: pytest.FixtureRequest, out: Path):
        self._request, self._out = request, out
        self._mode: str = request.config.getoption("--emulate-record-mode")
        marker = request.node.get_closest_marker("emulate")
        self._marked = marker.kwargs.get("cassette") if marker else None
        self._calls = 0
        self._decided: dict[Path, str] = {}  # cassette -> "replay" | "record" | "all"
        self._before_all: dict[Path, list[dict[str, Any]]] = {}

    def cassette(self, named: str | Path | None) -> Path:
        test_file = Path(self._request.node.path)
        chosen = named or self._marked
        if chosen is not None:
            return (test_file.parent / chosen).resolve()
        return default_cassette(test_file, self._request.node.name)

    def _decide(self, path: Path) -> str:
        if path in self._decided:
            return self._decided[path]
        exists = path.is_file()
        if self._mode == "none" and not exists:
            pytest.fail(
                f"{self._request.node.nodeid}: no cassette at {path}; record it once against "
                "a model with --emulate-record-mode=once",
                pytrace=False,
            )
        if self._mode == "rewrite" and exists:
            path.unlink()
        if self._mode == "all" and exists:
            from emulate.record import load_interactions

            # vcrpy's "all": never play what was recorded, keep it, add what is asked now.
            self._before_all[path] = load_interactions(path)
            path.unlink()
        decided = {"none": "replay", "once": "replay" if exists else "record"}.get(
            self._mode, "record"
        )
        self._decided[path] = decided
        return decided

    def __call__(self, probe: Any, grid: Any = None, *, cassette: str | Path | None = None,
                 **kwargs: Any) -> Any:  # fmt: skip
        import emulate
        from emulate.errors import ReplayMiss

        for own in ("record", "replay"):
            if own in kwargs:
                raise TypeError(
                    f"emulate_run manages cassettes itself: drop {own}=, and choose with "
                    "--emulate-record-mode or @pytest.mark.emulate(cassette=...)"
                )
        path = self.cassette(cassette)
        how = self._decide(path)
        self._calls += 1
        kwargs.setdefault("out", self._out / f"run-{self._calls}")
        kwargs.setdefault("progress", False)
        try:
            if how == "replay":
                with blocked_network():
                    return emulate.run(probe, grid, replay=path, **kwargs)
            return emulate.run(probe, grid, record=path, **kwargs)
        except ReplayMiss as err:
            message = str(err).replace("record it with --record", "")
            pytest.fail(
                f"{self._request.node.nodeid}: {message.rstrip('; ')}; record what is missing "
                "with --emulate-record-mode=new_episodes",
                pytrace=False,
            )

    def finish(self) -> None:
        from emulate.record import load_interactions, save_cassette

        for path, before in self._before_all.items():
            save_cassette(path, before + (load_interactions(path) if path.is_file() else []))


@pytest.fixture
def emulate_run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """`emulate.run` with this test's cassette: replayed offline by default, recorded
    as `--emulate-record-mode` says. Returns the RunResult; run folders go in the
    test's tmp_path unless `out=` is given."""
    runner = _Runner(request, tmp_path)
    yield runner
    runner.finish()
