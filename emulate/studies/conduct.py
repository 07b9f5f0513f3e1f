"""Running a study: every claim's runs for every model into OUT/runs/MODEL/CLAIM-RUN,
then the verdicts and the study's page (emulate/studies/page.py).

A run is an ordinary run (emulate/pipeline): it records to, or replays from, the
study's one cassette, resumes where it stopped, and its folder opens in `emulate
report`. The embedded model is started once for the whole study, and only if a run
needs it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from emulate.analysis.runs import load_run
from emulate.case import Row
from emulate.config import DEFAULT_POLL_S, RunConfig, load_config, make_config
from emulate.errors import ArgumentError, BatchPending, EmulateError
from emulate.journal import JOURNAL, RUN_JSON, iter_journal
from emulate.local import shared_server
from emulate.model_config import LOCAL, ModelSpec, api_key_for, default_base_url
from emulate.pipeline.options import RunOptions
from emulate.pipeline.runner import execute
from emulate.pipeline.sweep import model_folders
from emulate.probe import check_grid, expand
from emulate.registry import get_probe

from .spec import Claim, RunSpec, Study
from .verdict import ClaimResult, evaluate

RUNS = "runs"
STUDY_TOML = "study.toml"


@dataclass(frozen=True)
class Planned:
    """One run of one claim on one model, configured and placed."""

    claim: Claim
    run: RunSpec
    model: ModelSpec
    folder: Path
    config: RunConfig | None  # None when the probe cannot run here (`missing`)
    missing: str | None = None

    @property
    def cases(self) -> int:
        if self.config is None:
            return 0
        probe = get_probe(self.config.probe)
        cells = expand(probe, check_grid(probe, self.config.grid), self.config.skip_impossible)
        return len(cells) * self.config.n


def plan(
    study: Study, models: Sequence[ModelSpec], out: Path, given: Mapping[str, Any],
    api_key_env: str | None = None,
) -> list[Planned]:  # fmt: skip
    """Every run's configuration, checked before any model is asked."""
    planned = []
    for spec, folder in zip(models, model_folders(models), strict=True):
        for claim in study.claims:
            for run in claim.runs:
                where = out / RUNS / folder / f"{claim.id}-{run.name}"
                try:
                    probe = get_probe(run.probe)
                except EmulateError as err:
                    raise EmulateError(f"{study.source}: claim {claim.id}: {err}") from None
                missing = probe.missing()
                config = None if missing else _config(run, spec, given, api_key_env, claim)
                planned.append(Planned(claim, run, spec, where, config, missing))
    return planned


def _config(run: RunSpec, spec: ModelSpec, given: Mapping[str, Any], api_key_env: str | None,
            claim: Claim) -> RunConfig:  # fmt: skip
    url = spec.base_url or default_base_url(spec.model)
    key_env = spec.api_key_env or (api_key_env if url else None)
    try:
        return make_config(run.probe, run.grid, n=run.n, seed=run.seed, model=spec.model,
                           base_url=url, api_key_env=key_env, mode=run.mode,
                           **{**given, **run.options})  # fmt: skip
    except EmulateError as err:
        raise EmulateError(f"claim {claim.id}, run {run.name}: {err}") from None


def finished(p: Planned) -> bool:
    """Whether the run's folder already holds this run (its run.json the same
    configuration) with every case, none of them failed."""
    journal = p.folder / JOURNAL
    if p.config is None or not journal.exists() or not (p.folder / RUN_JSON).exists():
        return False
    try:
        if load_config(p.folder / RUN_JSON) != p.config:
            return False
    except EmulateError:
        return False
    ids = set()
    for row in iter_journal(journal):
        if row.score.error_type == "api_error":
            return False
        ids.add(row.case.id)
    return len(ids) >= p.cases


@contextlib.contextmanager
def _servers(planned: Sequence[Planned], options: RunOptions) -> Iterator[None]:
    """The embedded model, started once, when a run will ask it live."""
    live_local = [
        p for p in planned
        if p.config and p.config.model.model == LOCAL and p.config.model.base_url is None
        and not options.replay and not (options.resume and finished(p))
    ]  # fmt: skip
    if not live_local:
        yield
        return
    assert live_local[0].config is not None
    config = live_local[0].config
    with shared_server(options.slots(config.model), seed=config.seed):
        yield


@dataclass(frozen=True)
class Batch:
    """Each run through its server's Batch API (emulate.submit_batch), at half the
    price: every run's batches are submitted first, then waited for, together, for
    at most `wait_s` (None: until they end)."""

    wait_s: float | None = None
    poll_s: float = DEFAULT_POLL_S


def run_all(planned: Sequence[Planned], options: RunOptions, echo: bool,
            batch: Batch | None = None) -> None:  # fmt: skip
    """Every run not finished yet, live or (with `batch`) through a Batch API. Batches
    not done by the end raise BatchPending (exit 75): run the study again with resume."""
    todo = [p for p in planned if p.config is not None]
    with _servers(todo if batch is None else [], options):
        for i, p in enumerate(todo, 1):
            if options.resume and finished(p):
                if echo:
                    print(f"[{i}/{len(todo)}] {p.claim.id} {p.run.name}: finished, kept")
                continue
            if echo:
                print(f"[{i}/{len(todo)}] {p.claim.id} {p.run.name} on {p.model.model}: "
                      f"{p.run.probe}, {p.cases} cases")  # fmt: skip
            each = replace(options, out=p.folder, resume=options.resume and p.folder.exists())
            assert p.config is not None
            if batch is None:
                execute(p.config, each, echo=print if echo else None)
            else:
                _submit(p, each, batch.poll_s, echo)
    if batch is not None:
        _wait(todo, options, batch, echo)


def _submit(p: Planned, options: RunOptions, poll_s: float, echo: bool) -> None:
    from emulate.batch.service import submit_batch

    assert p.config is not None
    with contextlib.suppress(BatchPending):
        submit_batch(p.config, options=options, wait_s=0, poll_s=poll_s,
                     echo=print if echo else None)  # fmt: skip


def _wait(todo: Sequence[Planned], options: RunOptions, batch: Batch, echo: bool) -> None:
    """Each submitted run's batches, waited for in turn until `batch.wait_s` is spent."""
    from emulate.batch.service import submit_batch

    end = None if batch.wait_s is None else time.monotonic() + batch.wait_s
    pending = []
    for p in todo:
        if finished(p):
            continue
        left = None if end is None else max(0.0, end - time.monotonic())
        assert p.config is not None
        try:
            submit_batch(p.config, options=replace(options, out=p.folder, resume=True),
                         wait_s=left, poll_s=batch.poll_s,
                         echo=print if echo else None)  # fmt: skip
        except BatchPending:
            pending.append(f"{p.claim.id} {p.run.name}")
    if pending:
        raise BatchPending(
            f"{len(pending)} runs' batches are not done yet ({', '.join(pending[:3])}"
            f"{', …' if len(pending) > 3 else ''}): run the same study again with --resume"
        )


def verdicts(study: Study, planned: Sequence[Planned], seed: int = 0) -> list[ClaimResult]:
    """Each claim's result on each model, from the runs' journals."""
    results = []
    by_model: dict[str, list[Planned]] = {}
    for p in planned:
        by_model.setdefault(p.model.model, []).append(p)
    for model, mine in by_model.items():
        for claim in study.claims:
            parts = [p for p in mine if p.claim.id == claim.id]
            rows: dict[str, Sequence[Row]] = {}
            for p in parts:
                if (p.folder / JOURNAL).exists():  # (a journal reads here, whatever ran it)
                    rows[p.run.name] = load_run(p.folder).rows
            missing = next((p for p in parts if p.missing and p.run.name not in rows), None)
            if missing is not None:
                results.append(_not_run(claim, model, f"{missing.run.probe}: {missing.missing}"))
                continue
            unfinished = [p for p in parts if p.run.name not in rows]
            if unfinished:
                raise EmulateError(
                    f"{unfinished[0].folder}: no journal; run the study again to finish it"
                )
            results.append(evaluate(claim, rows, model, seed))
    return results


def _not_run(claim: Claim, model: str, why: str) -> ClaimResult:
    return ClaimResult(claim, model, "inconclusive", f"not run: {why}", (), 0, None, 0, why)


def check_models(planned: Sequence[Planned], options: RunOptions) -> None:
    """Each model's key is there before the study's folder is touched."""
    seen = set()
    for p in planned:
        if p.config is not None and p.model.model not in seen:
            seen.add(p.model.model)
            api_key_for(p.config.model, replay=bool(options.replay))


def prepare(out: Path, options: RunOptions, text: str) -> None:
    """The study's folder, with its copy of the study file: a new folder, or (resume)
    one that holds the same study."""
    kept = out / STUDY_TOML
    if (out / RUNS).exists() and not options.resume:
        raise ArgumentError(
            f"{out} already holds a study's runs: pass " + "{resume} to finish it, "
            "or choose another {out}",
            "resume",
            "out",
        )
    if options.resume and kept.exists() and kept.read_text(encoding="utf-8") != text:
        raise EmulateError(f"{out} holds another study (its {STUDY_TOML} differs): resume it "
                           "with the same study file, or choose another --out")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    kept.write_text(text, encoding="utf-8")


def default_study_out(name: str) -> Path:
    return Path("runs") / f"study-{name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
