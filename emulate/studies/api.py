"""`emulate study` as Python: run a study, estimate it, or write its page again."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from emulate.errors import EmulateError
from emulate.model_config import LOCAL, ModelSpec
from emulate.pipeline.options import RunOptions, split_options
from emulate.pipeline.sweep import model_specs

from .conduct import (
    STUDY_TOML,
    Batch,
    Planned,
    check_models,
    default_study_out,
    plan,
    prepare,
    run_all,
    verdicts,
)  # fmt: skip
from .page import STUDY_JSON, StudyPage, write_page, write_reports
from .spec import Study, load_study
from .verdict import ClaimResult

__all__ = ["Batch", "StudyEstimate", "StudyResult", "estimate_study", "report_study", "study"]

# Gemma 3 270M Q4_K_M under llama-server on 2 cores, from the quick seeds study's runs.
LOCAL_PER_REQUEST_S = 0.05
LOCAL_PROMPT_TOKENS_PER_S = 1500.0
LOCAL_ANSWER_TOKENS_PER_S = 45.0
LOCAL_START_S = 20.0  # starting the server, building the cases, writing the reports


@dataclass(frozen=True)
class StudyResult:
    out: Path
    study: Study
    results: tuple[ClaimResult, ...]
    page: StudyPage

    def describe(self) -> str:
        return self.page.describe()


def study(
    file: str | Path | None = None,
    *,
    models: Sequence[str | ModelSpec] = (LOCAL,),
    budget: str = "quick",
    options: RunOptions | None = None,
    echo: bool = False,
    api_key_env: str | None = None,
    reports: bool = True,
    batch: Batch | None = None,
    **given: Any,
) -> StudyResult:
    """Run the study in `file` (TOML; None: the built-in `seeds` study) at `budget`
    (quick, standard, full) on each of `models`, into OUT/runs/MODEL/CLAIM-RUN; then
    write OUT/study.csv, study.json and study.html (one row per claim and model) and,
    with `reports`, each run's report in OUT/reports/CLAIM-RUN. `options` (or its
    fields as keywords: out, record, replay, resume, concurrency, ...) hold for every
    run: one cassette records or replays the whole study. The other keywords are
    `make_config`'s (temperature, ...), for every run; a run's own `options` in the file
    win. With `batch` (a Batch), each run goes through its server's Batch API; runs
    whose batches are not done raise BatchPending: call again with resume=True."""
    s = load_study(file, budget)
    run_options, config_options = split_options(options, given)
    out = run_options.out or default_study_out(s.name)
    specs = model_specs(models)
    planned = plan(s, specs, out, config_options, api_key_env)
    check_models(planned, run_options)
    prepare(out, run_options, s.text)
    run_all(planned, run_options, echo, batch)
    return _conclude(out, s, specs, planned, reports=reports, echo=echo)


def _conclude(out: Path, s: Study, specs: Sequence[ModelSpec], planned: Sequence[Planned], *,
              reports: bool, echo: bool, seed: int = 0) -> StudyResult:  # fmt: skip
    results = verdicts(s, planned, seed)
    if reports:
        write_reports(out, planned)
    meta = {"source": s.source, "models": [asdict(m) for m in specs]}
    page = write_page(out, s, planned, results, meta)
    if echo:
        print(page.describe())
        print(f"wrote {page.html}, {page.csv} and {page.json}")
    return StudyResult(out, s, tuple(results), page)


def report_study(
    out: str | Path, *, reports: bool = True, echo: bool = False, seed: int = 0
) -> StudyResult:
    """The study's verdicts and page again, from the folder a study wrote (its copy of
    the study file, its budget and models, its runs' journals); no model is asked."""
    out = Path(out)
    try:
        meta = json.loads((out / STUDY_JSON).read_text(encoding="utf-8"))
        specs = [ModelSpec(**m) for m in meta["models"]]
        budget = meta["budget"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise EmulateError(f"{out / STUDY_JSON}: not a study's record ({err})") from None
    s = replace(load_study(out / STUDY_TOML, budget), source=meta.get("source", STUDY_TOML))
    planned = plan(s, specs, out, {}, None)
    return _conclude(out, s, specs, planned, reports=reports, echo=echo, seed=seed)


def is_study(path: str | Path) -> bool:
    return (Path(path) / STUDY_JSON).is_file() and (Path(path) / STUDY_TOML).is_file()


@dataclass(frozen=True)
class StudyEstimate:
    """What a study would ask, offline: per run and in all."""

    study: Study
    lines: tuple[str, ...]
    cases: int
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None  # USD, where every model is priced
    seconds: float | None  # on the embedded model, where it runs every claim

    def describe(self) -> str:
        from emulate.cost import dollars

        tail = [f"{self.cases} cases, {self.requests} requests; prompt tokens ≈ "
                f"{self.prompt_tokens:,}, answer tokens ≈ {self.completion_tokens:,} "
                "(tiktoken o200k_base)"]  # fmt: skip
        if self.cost is not None:
            tail.append(f"cost ≈ {dollars(self.cost)}")
        if self.seconds is not None:
            tail.append(f"on the embedded model, 2 cores: about {self.seconds / 60:.0f} minutes")
        return "\n".join([*self.lines, *tail])


def estimate_study(
    file: str | Path | None = None,
    *,
    models: Sequence[str | ModelSpec] = (LOCAL,),
    budget: str = "quick",
    prices: str | Path | None = None,
) -> StudyEstimate:
    """Cases, tokens and cost of every run of a study, counted offline (emulate.estimate);
    for the embedded model, a time estimate from its measured speed (local_seconds)."""
    from emulate.api import estimate

    s = load_study(file, budget)
    planned = plan(s, model_specs(models), Path("."), {}, None)
    lines: list[str] = []
    totals = [0, 0, 0, 0]  # cases, requests, prompt tokens, answer tokens
    cost: float | None = 0.0
    seconds: float | None = 0.0
    for p in planned:
        if p.config is None:
            lines.append(f"{p.claim.id} {p.run.name}: not run here ({p.missing})")
            continue
        est = estimate(p.config, prices)
        lines.append(f"{p.claim.id} {p.run.name} on {p.model.model}: {p.run.probe}, "
                     f"{est.cases} cases, {est.requests} requests")  # fmt: skip
        for i, v in enumerate((est.cases, est.requests, est.prompt_tokens, est.completion_tokens)):
            totals[i] += v
        amount = est.cost.amount
        cost = None if cost is None or amount is None else cost + amount
        local = p.config.model.model == LOCAL and p.config.model.base_url is None
        seconds = seconds + local_seconds(est) if local and seconds is not None else None
    if seconds:
        seconds += LOCAL_START_S
    cases, requests, prompt_tokens, answer_tokens = totals
    return StudyEstimate(s, tuple(lines), cases, requests, prompt_tokens, answer_tokens, cost,
                         seconds)  # fmt: skip


def local_seconds(est: Any) -> float:
    """The embedded model's time for a run, from its requests and tokens. Gemma 3 270M
    often writes to its budget, and often stops short: its answer length is taken as
    the geometric mean of the estimated answers and the budget. Fitted to the quick
    seeds study on 2 cores (its runs' answers: 5,910 tokens; this: 7,328; the sum of
    the requests' latencies 160 s; this 163 s)."""
    answer = math.sqrt(est.completion_tokens * est.max_completion_tokens)
    return (
        LOCAL_PER_REQUEST_S * est.requests
        + est.prompt_tokens / LOCAL_PROMPT_TOKENS_PER_S
        + answer / LOCAL_ANSWER_TOKENS_PER_S
    )
