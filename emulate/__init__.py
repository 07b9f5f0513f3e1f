"""emulate: does a language model compute, or produce what computation output looks like?

The names below load on first use (PEP 562): `import emulate` and the CLI start
without the openai SDK, scipy, datasets or matplotlib, which only the commands that
use them import."""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import cases, estimate, make_config, run
    from .batch import export_batch
    from .batch_api import run_batch
    from .case import Answer, Case, Row, Score, TokenLogprob
    from .compare import compare
    from .config import RunConfig, load_config
    from .errors import BatchPending, EmulateError, TooManyErrors
    from .execute import execute_batch
    from .export import export, load_results
    from .registry import get_probe
    from .report import report
    from .rescore import grade, rescore
    from .runner import RunResult, run_config
    from .stats import breaking_point
    from .sweep import sweep

# Each public name and the module that holds it.
_WHERE = {
    "Answer": "case",
    "BatchPending": "errors",
    "Case": "case",
    "EmulateError": "errors",
    "Row": "case",
    "RunConfig": "config",
    "RunResult": "runner",
    "Score": "case",
    "TokenLogprob": "case",
    "TooManyErrors": "errors",
    "breaking_point": "stats",
    "cases": "api",
    "compare": "compare",
    "estimate": "api",
    "execute_batch": "execute",
    "export": "export",
    "export_batch": "batch",
    "get_probe": "registry",
    "grade": "rescore",
    "load_config": "config",
    "load_results": "export",
    "make_config": "api",
    "report": "report",
    "rescore": "rescore",
    "run": "api",
    "run_batch": "batch_api",
    "run_config": "runner",
    "sweep": "sweep",
}

__all__ = [
    "Answer",
    "BatchPending",
    "Case",
    "EmulateError",
    "Row",
    "RunConfig",
    "RunResult",
    "Score",
    "TokenLogprob",
    "TooManyErrors",
    "breaking_point",
    "cases",
    "compare",
    "estimate",
    "execute_batch",
    "export",
    "export_batch",
    "get_probe",
    "grade",
    "load_config",
    "load_results",
    "make_config",
    "report",
    "rescore",
    "run",
    "run_batch",
    "run_config",
    "sweep",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'emulate' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


class _Package(types.ModuleType):
    """Five functions share their module's name (emulate.report is the function, in
    emulate/report.py). Importing a submodule sets it as an attribute of its package,
    which would make `emulate.report` the module once anything imported it: here the
    function's name stays the function's (the module is sys.modules["emulate.report"])."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _WHERE and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
