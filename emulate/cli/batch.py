"""`emulate batch ...`: export, submit, score and execute, each a thin layer over the
function of the same name (export_batch, submit_batch, score_batch, execute_batch)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from emulate.config import load_config

from .options import run_config_of, run_options


def cmd_batch(args: argparse.Namespace) -> None:
    {
        "export": _export,
        "submit": _submit,
        "score": _score,
        "execute": _execute,
    }[args.batch_command](args)


def _export(args: argparse.Namespace) -> None:
    from emulate.batch.files import export_batch

    exported = export_batch(run_config_of(args), args.file, args.out)
    print(
        f"wrote {exported.requests} requests for {exported.cases} cases to {exported.path} "
        f"and {exported.out / 'run.json'}"
    )


def _submit(args: argparse.Namespace) -> None:
    from emulate.batch.service import submit_batch

    options = run_options(args)
    out = options.out or _folder_of(args.config)
    submit_batch(run_config_of(args), wait_s=args.batch_wait, poll_s=args.batch_poll,
                 options=replace(options, out=out))  # fmt: skip


def _score(args: argparse.Namespace) -> None:
    from emulate.batch.score import score_batch

    options = run_options(args)
    out = options.out or _folder_of(args.config)
    score_batch(load_config(args.config), args.results, options=replace(options, out=out))


def _folder_of(config: str | None) -> Path | None:
    """A batch's run folder defaults to the one its run.json was written in."""
    return Path(config).parent if config else None


def _execute(args: argparse.Namespace) -> None:
    from emulate.batch.execute import execute_batch

    done = execute_batch(
        args.requests,
        args.out,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        resume=args.resume,
        concurrency=args.concurrency,
        progress=not args.no_progress,
    )
    print(done.describe())
