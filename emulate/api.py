"""The Python API. The CLI is a thin layer over these functions, with the same names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .case import Case
from .config import Grid, RunConfig, default_mode, make_config, probe_name
from .model_config import LOCAL, server_label
from .probe import Probe, build_cases, check_grid, expand
from .registry import get_probe

if TYPE_CHECKING:
    from .cost import Cost
    from .pipeline.options import RunOptions
    from .pipeline.runner import RunResult


def run(
    probe: str | Probe,
    grid: Grid | None = None,
    *,
    options: RunOptions | None = None,
    echo: bool = False,
    **given: Any,
) -> RunResult:
    """Run `probe` over a grid against a model; write the journal and results.csv in
    `options.out`.

    `grid` maps parameter names to a value or a list of values (`{"size": [3, 4]}`);
    parameters left out take the probe's defaults. The keywords are `make_config`'s (n,
    seed, model, base_url, api_key_env, mode, temperature, ...) and RunOptions' fields
    (out, record, replay, resume, retry_errors, max_errors, concurrency, progress,
    prices), or a RunOptions as `options`. `model="local"` starts the embedded Gemma 3
    270M server (or replays without one). Results: `load_results(result.out)`. More
    cases than `max_errors` (a count, or a fraction) ending in API errors raise
    TooManyErrors once results.csv is written; `resume=True, retry_errors=True` asks
    those cases again. A batch's answers: `emulate.score_batch`.
    """
    from .pipeline.options import split_options

    run_options, config_options = split_options(options, given)
    config = make_config(probe, grid, **config_options)
    from .pipeline.runner import execute  # the SDK and the run machinery: only to run

    return execute(config, run_options, echo=print if echo else None)


def cases(
    probe: str | Probe,
    grid: Grid | None = None,
    *,
    n: int | None = None,
    seed: int = 0,
    mode: str | None = None,
    model: str = LOCAL,
    skip_impossible: bool = False,
) -> list[Case]:
    """The cases a run would ask, with prompts and truth, without calling any model.

    The mode defaults as `run`'s does for the same `model`, so what you inspect is what
    a run sends."""
    probe = probe_name(probe)
    p = get_probe(probe)
    mode = mode or default_mode(probe, model)
    n = p.default_n if n is None else n
    return build_cases(p, check_grid(p, grid or {}), n, seed, mode, skip_impossible)


@dataclass(frozen=True)
class Estimate:
    cases: int
    requests: int
    prompt_tokens: int
    completion_tokens: int  # the answers' own length; a chatty model writes more
    max_completion_tokens: int  # the budget the requests allow
    cost: Cost  # at the estimated answer length
    max_cost: Cost  # if every answer ran to its budget
    encoding: str = "o200k_base"
    batch_cost: Cost | None = None  # the same through a batch API (`emulate batch submit`)


# A dry run builds at most this many cases and scales up: counting 10 million cases
# must not build them.
ESTIMATE_SAMPLE = 2000


def estimate(config: RunConfig, prices: str | Path | None = None) -> Estimate:
    """Case count, tokens and cost of a run, offline: tokens counted with tiktoken's
    o200k_base, priced from the shipped table or the JSON file `prices`. A large run is
    estimated from an even sample of its cases (exact count, scaled token figures)."""
    probe = get_probe(config.probe)
    grid = check_grid(probe, config.grid)
    cells = expand(probe, grid, config.skip_impossible)
    if any(c.get("items") for c in cells) or len(cells) * config.n <= ESTIMATE_SAMPLE:
        sample = build_cases(probe, grid, config.n, config.seed, config.model.mode,
                             config.skip_impossible)  # fmt: skip
        total = len(sample)
    else:
        total = len(cells) * config.n
        per_cell = max(1, ESTIMATE_SAMPLE // len(cells))
        step = max(1, len(cells) // ESTIMATE_SAMPLE)
        sample = probe.build(cells[::step], min(per_cell, config.n), config.seed,
                             config.model.mode)  # fmt: skip
    scale = total / len(sample) if sample else 0.0
    asked = [(c, probe.requests(c)) for c in sample]
    requests = [r for _, rs in asked for r in rs]
    from .cost import BATCH_SUFFIX, cost, load_prices  # tiktoken: only to estimate

    table = load_prices(prices)
    from . import tokens  # tiktoken loads its encodings: only when estimating

    prompt_tokens = round(scale * sum(tokens.count_prompt(prompt) for prompt, _ in requests))
    completion_tokens = round(scale * sum(tokens.count(answer) for _, answer in requests))
    # Each request may run to its case's budget (a multi-request probe asks several).
    budget = round(
        scale * sum((config.model.max_tokens or c.max_tokens) * len(rs) for c, rs in asked)
    )
    server = server_label(config.model)
    return Estimate(
        cases=total,
        requests=round(scale * len(requests)),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        max_completion_tokens=budget,
        cost=cost(config.model.request_model, server, prompt_tokens, completion_tokens, table),
        max_cost=cost(config.model.request_model, server, prompt_tokens, budget, table),
        batch_cost=cost(
            config.model.request_model,
            server + BATCH_SUFFIX,
            prompt_tokens,
            completion_tokens,
            table,
        ),  # fmt: skip
    )
