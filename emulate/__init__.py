"""emulate: does a language model compute, or produce what computation output looks like?"""

from .api import cases, estimate, make_config, run
from .batch import export_batch
from .batch_api import BatchPending, run_batch
from .case import Answer, Case, Row, Score, TokenLogprob
from .compare import compare
from .config import RunConfig, load_config
from .errors import EmulateError, TooManyErrors
from .execute import execute_batch
from .export import export, load_results
from .registry import get_probe
from .report import report
from .rescore import grade, rescore
from .runner import RunResult, run_config
from .stats import breaking_point
from .sweep import sweep

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
