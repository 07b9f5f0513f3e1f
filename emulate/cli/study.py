"""`emulate study`: its flags, and the command, a thin layer over emulate.study (and
emulate.estimate_study for --dry-run)."""

from __future__ import annotations

import argparse

from emulate.config import DEFAULT_POLL_S

from .flags import add_api_key_env, add_concurrency, add_prices
from .options import extra_body_of, run_options

EPILOG = """\
examples:
  emulate study                                   seeds, quick, on the embedded model
  emulate study --budget standard --out runs/seeds
  emulate study --dry-run                         cases, tokens, cost and time
  emulate study my.toml --model local --model qwen@http://127.0.0.1:8000/v1
  emulate study --replay cassettes/study/cassette.json --out /tmp/study
  emulate report runs/seeds                       the page again, from the runs
"""


def add_study(sub) -> None:
    p = sub.add_parser(
        "study",
        help="answer 'does it compute, or imitate?' claim by claim (the built-in seeds study)",
        description="Run a study: each claim's runs on each --model into OUT/runs/MODEL/, "
        "then each claim's statistics with 95% intervals and its verdict (computes, "
        "imitates, or inconclusive with the cases that would likely decide it) in "
        "study.csv, study.json and study.html, one row per claim and model, linked to each "
        "run's report. With no FILE, the built-in `seeds` study: the project's eight "
        "founding cases. `emulate report OUT` writes the page again from the runs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "file",
        nargs="?",
        default=None,
        metavar="FILE",
        help="a study file (TOML; see README, 'Writing a study'); default: seeds",
    )
    p.add_argument(
        "--budget",
        default="quick",
        choices=("quick", "standard", "full"),
        help="how many cases: the study file says what each budget runs "
        "(seeds on the embedded model, 2 cores: quick about 4 minutes, standard under 20)",
    )
    g = p.add_argument_group("models")
    g.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="NAME[@URL]",
        help="a model to study, repeatable: every model runs every claim "
        "(default: local, the embedded Gemma 3 270M)",
    )
    add_api_key_env(g)
    add_concurrency(g)
    g.add_argument(
        "--extra-body",
        default=None,
        metavar="JSON",
        help="server options sent with every request; for the embedded model "
        "'{\"cache_prompt\": true}' with --concurrency 2 reuses shared prompt "
        "prefixes across parallel slots: faster, and no longer deterministic",
    )
    _add_output(p)
    _add_batch(p)  # fmt: skip


def _add_output(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output and recording")
    g.add_argument(
        "--out", default=None, help="the study's folder (default runs/study-NAME-TIMESTAMP)"
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="keep the finished runs in --out and finish the others",
    )
    g.add_argument(
        "--max-errors",
        default=None,
        metavar="N|FRACTION",
        help="API errors a run accepts (default 10%%)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    g.add_argument(
        "--no-reports",
        action="store_true",
        help="skip each run's report.html (faster; the study's page still links the runs)",
    )
    add_prices(g)
    rec = g.add_mutually_exclusive_group()
    rec.add_argument(
        "--record", metavar="CASSETTE", help="record every run's HTTP exchanges to one cassette"
    )
    rec.add_argument(
        "--replay",
        metavar="CASSETTE",
        help="answer every run from one cassette; no network, no server",
    )
    g.add_argument("--dry-run", action="store_true",
                   help="print each run's cases, tokens and cost, and for the embedded model "
                   "a time estimate; ask nothing")  # fmt: skip


def _add_batch(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("batches")
    g.add_argument(
        "--batch",
        action="store_true",
        help="each run through its server's Batch API (OpenAI's: half the price, "
        "up to 24 h): every run's batches are submitted, then waited for",
    )
    g.add_argument(
        "--batch-wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --batch: stop waiting after this long, exit code 75, and "
        "--resume later (default: wait until every batch ends)",
    )
    g.add_argument("--batch-poll", type=float, default=DEFAULT_POLL_S, metavar="SECONDS",
                   help=f"seconds between status checks (default {DEFAULT_POLL_S:g})")  # fmt: skip


def cmd_study(args: argparse.Namespace) -> None:
    from emulate.studies.api import Batch, estimate_study, study

    models = args.model or ["local"]
    if args.dry_run:
        print(estimate_study(args.file, models=models, budget=args.budget,
                             prices=args.prices).describe())  # fmt: skip
        return
    batch = Batch(args.batch_wait, args.batch_poll) if args.batch else None
    extra = {"extra_body": body} if (body := extra_body_of(args)) else {}
    study(args.file, models=models, budget=args.budget, options=run_options(args),
          echo=True, api_key_env=args.api_key_env, reports=not args.no_reports,
          batch=batch, **extra)  # fmt: skip
