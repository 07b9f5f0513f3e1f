"""A run's end: results.csv from the journal, tokens and cost, the printed summary,
and the error limit held."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emulate.analysis.results import RowTable
from emulate.analysis.summary import run_summary
from emulate.config import RunConfig
from emulate.cost import Cost, Prices, Usage, cost, usage
from emulate.errors import TooManyErrors
from emulate.journal import JOURNAL, RUN_JSON, iter_journal
from emulate.probe import Probe

from .folder import again
from .options import RunOptions


@dataclass(frozen=True)
class RunResult:
    out: Path
    config: RunConfig
    total: int
    done: int
    correct: int
    errors: int
    summary: str
    usage: Usage | None = None
    cost: Cost | None = None
    missing: tuple[str, ...] = ()  # cases a batch's results did not answer: not scored

    @property
    def accuracy(self) -> float:
        return self.correct / self.done if self.done else float("nan")


@dataclass(frozen=True)
class Ending:
    """What the run's end reports beyond its rows."""

    server: str
    total: int
    prices: Prices
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # the answer source's own (a batch's expired parts)
    # Arguments that give the run's answers again, for the retry hint (a batch's files).
    source_args: str = ""


def finish(
    config: RunConfig,
    probe: Probe,
    options: RunOptions,
    out: Path,
    rows: RowTable,
    ending: Ending,
    echo: Callable[[str], None] | None,
) -> RunResult:
    """The RunResult of the rows in results.csv, printed with `echo`; TooManyErrors when
    more cases failed than the options allow."""
    used = _usage(rows, out / JOURNAL)
    spent = cost(config.model.request_model, ending.server, used.prompt_tokens,
                 used.completion_tokens, ending.prices)  # fmt: skip
    result = RunResult(
        out=out,
        config=config,
        total=ending.total,
        done=len(rows),
        correct=sum(map(bool, rows.column("correct"))),
        errors=sum(map(bool, rows.column("error"))),
        summary=run_summary(probe, config, rows),
        usage=used,
        cost=spent,
        missing=ending.missing,
    )
    if echo:
        _echo(result, probe, rows, ending, echo)
    if result.errors > options.allowed_errors(result.total):
        unasked = result.total - result.done
        raise TooManyErrors(
            f"{result.errors} of {result.total} cases failed with API errors or timeouts "
            f"(more than --max-errors {options.describe_max_errors()})"
            + (f"; {unasked} were not asked" if unasked else "")
            + f". Retry them: {again(config, out)} --resume --retry-errors"
            + (
                f" (live), or as a new batch: emulate batch submit --config {out / RUN_JSON} "
                "--resume --retry-errors"
                if ending.source_args
                else ""
            ),
            result,
        )
    return result


def _echo(
    result: RunResult, probe: Probe, rows: RowTable, ending: Ending, echo: Callable[[str], None]
) -> None:
    config, used = result.config, result.usage
    echo(f"{config.probe} on {config.model.model} ({config.model.mode}), run {config.run_id}")
    echo(result.summary)
    for note in [*probe.notes(rows), *ending.notes]:
        echo(f"note: {note}")
    assert used is not None and result.cost is not None
    echo(f"tokens: {used.describe()}; cost {result.cost.describe()}")
    if result.missing:
        echo(
            f"{len(result.missing)} of {result.total} cases have no answer in the results "
            f"(the first: {result.missing[0]}); score them once you have them with "
            f"emulate batch score FILE.jsonl --config {result.out / 'run.json'} --resume, "
            "or ask them live: "
            f"{again(config, result.out)} --resume"
        )
    echo(f"wrote {result.out / 'results.csv'} and {result.out / JOURNAL}")


def _usage(rows: RowTable, journal: Path) -> Usage:
    """Token usage from results.csv's columns; the journal is read again only when a
    server left counts out (they are then estimated from the prompts and answers)."""
    ok = [not e for e in rows.column("error")]
    prompt, completion = rows.column("prompt_tokens"), rows.column("completion_tokens")
    if any(o and (p is None or c is None) for o, p, c in zip(ok, prompt, completion, strict=True)):
        return usage(iter_journal(journal))
    return Usage(
        sum(p for o, p in zip(ok, prompt, strict=True) if o),
        sum(c for o, c in zip(ok, completion, strict=True) if o),
        len(rows),
        0,
    )
