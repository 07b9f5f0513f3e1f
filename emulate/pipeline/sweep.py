"""Sweeps: one probe's cases on several models, each run into its own folder beside
the others, then one report over them all and the paired comparison of every two.

A model is a name, or NAME@URL for one behind an OpenAI-compatible server of its
own (which gets the key in the variable `api_key_env` names, or none: OpenAI's key goes
only to OpenAI); `local` is the embedded default. Every model answers the same cases (the same
seeds, the same prompts: one mode for all), so the comparisons pair them case by case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from pathlib import Path
from typing import Any

from emulate.analysis.compare import Compared, compare
from emulate.analysis.report import Report, report
from emulate.config import Grid, RunConfig, default_mode, make_config
from emulate.errors import ArgumentError, EmulateError
from emulate.journal import write_atomic
from emulate.model_config import ModelSpec, default_base_url, is_openai, parse_model
from emulate.probe import Probe
from emulate.registry import register

from .options import RunOptions, split_options
from .runner import RunResult, execute

REPORT = "report"
COMPARISONS = "comparisons.csv"


@dataclass(frozen=True)
class SweepResult:
    out: Path
    runs: tuple[RunResult, ...]
    report: Report
    comparisons: tuple[Compared, ...]

    def describe(self) -> str:
        lines = [self.report.describe()]
        lines += [c.describe() for c in self.comparisons]
        return "\n\n".join(lines)


def sweep(
    probe: str | Probe,
    grid: Grid | None = None,
    *,
    models: Sequence[str | ModelSpec],
    n: int | None = None,
    seed: int = 0,
    mode: str | None = None,
    options: RunOptions | None = None,
    echo: bool = False,
    api_key_env: str | None = None,
    **given: Any,
) -> SweepResult:
    """Run `probe` over `grid` on each of `models` into OUT/MODEL/, then write
    OUT/report/ (one report, a curve and breaking point per model) and
    OUT/comparisons.csv (every two models paired case by case: McNemar and the
    bootstrap interval, overall, per axis value and per cell). `options` (or the same
    fields as keywords: out, resume, max_errors, ...) hold for every model's run; the
    other keywords are `make_config`'s (temperature, max_tokens, stop, top_logprobs,
    extra_body, skip_impossible), the same for every model. `api_key_env` names the key variable
    of every model at a URL of its own that does not name one itself."""
    specs = model_specs(models)
    if len(specs) < 2:
        raise EmulateError("a sweep needs two models or more: --model A --model B")
    mode = mode or _one_mode(probe, specs)
    options, config_options = split_options(options, given)
    if options.record or options.replay:
        raise ArgumentError(
            "a sweep runs each model live: {record} and {replay} are for one model's run",
            "record",
            "replay",
        )
    out = options.out or Path("runs") / "sweep"
    # Every configuration is checked before the first model is asked.
    configs = [_config(probe, grid, s, n, seed, mode, api_key_env, config_options) for s in specs]
    folders = model_folders(specs)
    runs = []
    for spec, config, folder in zip(specs, configs, folders, strict=True):
        if echo:
            print(f"--- {spec.model}" + (f" at {spec.base_url}" if spec.base_url else ""))
        each = replace(options, out=out / folder)
        runs.append(execute(config, each, echo=print if echo else None))
    dirs = [r.out for r in runs]
    rep = report(dirs, out / REPORT, prices=options.prices, seed=seed)
    pairs = tuple(compare(a, b, seed=seed) for a, b in combinations(dirs, 2))
    table = "".join(c.to_csv().split("\n", 1)[1] if i else c.to_csv() for i, c in enumerate(pairs))
    write_atomic(out / COMPARISONS, table)
    result = SweepResult(out, tuple(runs), rep, pairs)
    if echo:
        print(result.describe())
        print(f"wrote {len(runs)} runs in {out}, {rep.html} and {out / COMPARISONS}")
    return result


def model_specs(models: Sequence[str | ModelSpec]) -> list[ModelSpec]:
    """Each model as a ModelSpec, each named once (its name makes its folder)."""
    specs = [m if isinstance(m, ModelSpec) else parse_model(m) for m in models]
    names = [s.model for s in specs]
    twice = sorted({x for x in names if names.count(x) > 1})
    if twice:
        raise EmulateError(
            f"--model {twice[0]} is named twice: give each model its own name (a server "
            "ignores the name, or serves it under an alias)"
        )
    return specs


def _one_mode(probe: str | Probe, specs: Sequence[ModelSpec]) -> str:
    name = probe if isinstance(probe, str) else register(probe)
    modes: Mapping[str, str] = {s.model: default_mode(name, s.model) for s in specs}
    if len(set(modes.values())) > 1:
        said = ", ".join(f"{m}: {x}" for m, x in modes.items())
        raise EmulateError(
            f"the models' default modes differ ({said}): pass --mode chat or --mode completion "
            "so that every model answers the same prompts"
        )
    return next(iter(modes.values()))


def model_folders(specs: Sequence[ModelSpec]) -> list[str]:
    """One folder per model; names that come out the same as a path get -2, -3, ..."""
    seen: dict[str, int] = {}
    folders = []
    for s in specs:
        seen[s.folder] = seen.get(s.folder, 0) + 1
        folders.append(s.folder if seen[s.folder] == 1 else f"{s.folder}-{seen[s.folder]}")
    return folders


def _config(
    probe: str | Probe, grid: Grid | None, spec: ModelSpec, n: int | None, seed: int, mode: str,
    api_key_env: str | None, options: dict[str, Any],
) -> RunConfig:  # fmt: skip
    """One model's configuration; `api_key_env` names the key of a model at a URL of its
    own that names none (OpenAI's API takes OPENAI_API_KEY)."""
    url = spec.base_url or default_base_url(spec.model)
    key_env = spec.api_key_env or (api_key_env if url and not is_openai(url) else None)
    return make_config(probe, grid, n=n, seed=seed, model=spec.model, base_url=url,
                       api_key_env=key_env, mode=mode, **options)  # fmt: skip
