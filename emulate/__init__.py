"""emulate: does a language model compute, or produce what computation output looks like?

The names below load on first use (PEP 562): `import emulate` and the CLI start
without the openai SDK, scipy, datasets or matplotlib, which only the commands that
use them import."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .analysis.compare import compare
    from .analysis.export import export, load_results
    from .analysis.report import report
    from .analysis.rescore import grade, rescore
    from .analysis.stats import breaking_point
    from .api import cases, estimate, make_config, run
    from .batch.execute import execute_batch
    from .batch.files import export_batch
    from .batch.score import score_batch
    from .batch.service import submit_batch
    from .case import Answer, Case, Row, Score, TokenLogprob
    from .config import RunConfig, load_config
    from .errors import BatchPending, EmulateError, TooManyErrors
    from .pipeline.options import RunOptions
    from .pipeline.runner import RunResult, run_config
    from .pipeline.sweep import sweep
    from .registry import get_probe
    from .studies.api import estimate_study, report_study, study

# Each public name and the module that holds it.
_WHERE = {
    "Answer": "case",
    "BatchPending": "errors",
    "Case": "case",
    "EmulateError": "errors",
    "Row": "case",
    "RunConfig": "config",
    "RunOptions": "pipeline.options",
    "RunResult": "pipeline.runner",
    "Score": "case",
    "TokenLogprob": "case",
    "TooManyErrors": "errors",
    "breaking_point": "analysis.stats",
    "cases": "api",
    "compare": "analysis.compare",
    "estimate": "api",
    "execute_batch": "batch.execute",
    "export": "analysis.export",
    "export_batch": "batch.files",
    "get_probe": "registry",
    "grade": "analysis.rescore",
    "load_config": "config",
    "load_results": "analysis.export",
    "make_config": "api",
    "report": "analysis.report",
    "rescore": "analysis.rescore",
    "run": "api",
    "score_batch": "batch.score",
    "estimate_study": "studies.api",
    "report_study": "studies.api",
    "study": "studies.api",
    "submit_batch": "batch.service",
    "run_config": "pipeline.runner",
    "sweep": "pipeline.sweep",
}

__all__ = [
    "Answer",
    "BatchPending",
    "Case",
    "EmulateError",
    "Row",
    "RunConfig",
    "RunOptions",
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
    "score_batch",
    "submit_batch",
    "run_config",
    "sweep",
    "estimate_study",
    "report_study",
    "study",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'emulate' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
