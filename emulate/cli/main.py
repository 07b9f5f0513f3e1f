"""The command line: a thin layer over emulate.api."""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from emulate import api
from emulate.errors import (
    ArgumentError,
    BatchPending,
    EmulateError,
    StorageError,
    describe_os_error,
    is_storage_error,
)
from emulate.journal import write_atomic
from emulate.model_config import LOCAL, ModelSpec
from emulate.registry import all_probes, sources

from .batch import cmd_batch
from .options import extra_body_of, grid_of, models_of, run_config_of, run_options
from .study import cmd_study

if TYPE_CHECKING:
    from emulate.config import RunConfig
from .parser import build_parser

OS_ERROR = 71  # sysexits' EX_OSERR: the system failed (a program would not start)

# Each command imports what it needs (the openai SDK, scipy, datasets, matplotlib)
# when it runs: `emulate --help`, `probes` and `cases` start without them.


def cmd_probes(args: argparse.Namespace) -> None:
    where = sources()
    for probe in all_probes():
        package = where[probe.name].package if probe.name in where else "this script"
        # Plugins say which package they come from; emulate's own go unmarked.
        origin = f" [{package}]" if package != "emulate" else ""
        if not args.verbose:
            ranges = " ".join(p.describe().split(" (")[0] for p in probe.params)
            print(f"{probe.name}{origin}: {probe.summary}; -P {ranges}")
            continue
        print(f"{probe.name}{origin}: {probe.summary}")
        for p in probe.params:
            print(f"  -P {p.describe()}")
        print(f"  --n {probe.default_n} cases per grid cell by default")


def cmd_cases(args: argparse.Namespace) -> None:
    cs = api.cases(
        args.probe,
        grid_of(args.probe, args.params),
        n=args.n,
        seed=args.seed or 0,
        mode=args.mode,
        model=args.model or LOCAL,
        skip_impossible=bool(args.skip_impossible),
    )
    for c in cs:
        sys.stdout.write(json.dumps(c.to_json(), ensure_ascii=False) + "\n")


def cmd_sweep(args: argparse.Namespace, specs: list[ModelSpec]) -> None:
    from emulate.pipeline.sweep import sweep

    others = [flag for flag, given in (
        ("--config", args.config), ("--record", args.record), ("--replay", args.replay),
        ("--dry-run", args.dry_run), ("--base-url", args.base_url)) if given]  # fmt: skip
    if others:
        raise EmulateError(
            f"a sweep over {len(specs)} models runs each live; {others[0]} is for one model "
            "(give each model's server as NAME@URL)"
        )
    if not args.probe:
        raise EmulateError("name a probe to sweep (see `emulate probes`)")
    options = run_options(args)
    sweep(
        args.probe,
        grid_of(args.probe, args.params),
        models=specs,
        n=args.n,
        seed=args.seed or 0,
        mode=args.mode,
        options=replace(options, out=options.out or Path("runs") / "sweep"),
        echo=True,
        api_key_env=args.api_key_env,
        temperature=args.temperature or 0.0,
        max_tokens=args.max_tokens,
        stop=args.stop,
        top_logprobs=args.top_logprobs or 0,
        extra_body=extra_body_of(args),
        skip_impossible=bool(args.skip_impossible),
    )


def cmd_run(args: argparse.Namespace) -> None:
    from emulate.pipeline.runner import execute

    specs = models_of(args)
    if len(specs) > 1:
        return cmd_sweep(args, specs)
    config = run_config_of(args)
    if args.dry_run:
        return _dry_run(args, config)
    execute(config, run_options(args))


def _dry_run(args: argparse.Namespace, config: RunConfig) -> None:
    from emulate.cost import dollars

    est = api.estimate(config, prices=args.prices)
    budget = "" if not est.max_cost.amount else f", at most {dollars(est.max_cost.amount)}"
    print(
        f"{config.probe}: {est.cases} cases, {est.requests} requests "
        f"({config.model.mode} mode, model {config.model.model})\n"
        f"prompt tokens ≈ {est.prompt_tokens:,}; answer tokens ≈ {est.completion_tokens:,} "
        f"(budget {est.max_completion_tokens:,}); counted with tiktoken {est.encoding}, "
        "so other tokenizers differ somewhat\n"
        f"cost ≈ {est.cost.describe()}{budget}"
    )
    if est.batch_cost and est.batch_cost.amount and est.cost.amount:
        print(f"through a batch API (emulate batch submit): ≈ {dollars(est.batch_cost.amount)}")


def cmd_report(args: argparse.Namespace) -> None:
    from emulate.analysis.report import report
    from emulate.studies.api import is_study, report_study

    if len(args.dirs) == 1 and is_study(args.dirs[0]):
        if args.out:
            raise EmulateError(f"{args.dirs[0]} is a study: its page is written in its folder; "
                               "drop --out")  # fmt: skip
        report_study(args.dirs[0], echo=True, seed=args.seed)
        return

    rep = report(args.dirs, args.out, prices=args.prices, seed=args.seed, per_case=args.per_case)
    print(rep.describe())
    print(f"wrote {rep.out / 'summary.csv'}, {len(rep.plots)} plots and {rep.html}")


def cmd_compare(args: argparse.Namespace) -> None:
    from emulate.analysis.compare import compare

    result = compare(args.a, args.b, seed=args.seed)
    print(result.describe())
    if args.out:
        write_atomic(args.out, result.to_csv())
        print(f"wrote {args.out}")


def cmd_export(args: argparse.Namespace) -> None:
    from emulate.analysis.export import export

    print(f"wrote {export(args.dirs, args.format, args.out)}")


def cmd_rescore(args: argparse.Namespace) -> int:
    from emulate.analysis.rescore import rescore

    results = rescore(args.dirs, args.out, check=args.check)
    for r in results:
        print(r.describe())
        if not args.check:
            print(r.summary)
    if args.check:
        return 1 if any(r.changed_rows for r in results) else 0
    return 0


def cmd_grade(args: argparse.Namespace) -> None:
    from emulate.analysis.rescore import grade

    try:
        raw = sys.stdin.readline() if args.case == "-" else Path(args.case).read_text()
        answer = Path(args.answer[1:]).read_text() if args.answer.startswith("@") else args.answer
    except OSError as err:
        raise EmulateError(f"grade: cannot read {err.filename}: {err.strerror}") from None
    line = next((ln for ln in raw.splitlines() if ln.strip()), "")
    if not line:
        raise EmulateError(f"grade: {args.case} holds no case; write one with `emulate cases`")
    print(json.dumps(asdict(grade(line, answer)), ensure_ascii=False))


def cmd_serve(args: argparse.Namespace) -> None:
    from emulate.local import serve

    serve(slots=args.slots, seed=args.seed)


def _on_sigterm(signum, frame):  # noqa: ARG001
    # End as Ctrl-C does, through the same handler: inside asyncio.run that cancels the
    # run's tasks first (raising KeyboardInterrupt here would unwind from whatever
    # callback the loop was in, with a traceback); servers stop, the journal closes.
    os.kill(os.getpid(), signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()  # it lists the probes, plugins included
    except EmulateError as err:
        print(f"emulate: error: {err}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # A shell starts background jobs (`emulate run … &`) with SIGINT ignored, and
        # SIGTERM arrives as SIGINT: without this, `kill` could not stop such a run.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = {
            "probes": cmd_probes,
            "cases": cmd_cases,
            "run": cmd_run,
            "study": cmd_study,
            "report": cmd_report,
            "compare": cmd_compare,
            "export": cmd_export,
            "rescore": cmd_rescore,
            "grade": cmd_grade,
            "batch": cmd_batch,
            "serve": cmd_serve,
        }[args.command](args)
    except BatchPending as err:
        print(f"emulate: {err}", file=sys.stderr)
        return err.exit_code
    except ArgumentError as err:  # named as the API spells it: say the flag
        flags = {n: "--" + n.replace("_", "-") for n in err.names}
        print(f"emulate: error: {err.spelled(flags)}", file=sys.stderr)
        return 2
    except EmulateError as err:
        print(f"emulate: error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 2)  # TooManyErrors: 3
    except KeyboardInterrupt:
        if args.command in ("run", "batch", "study"):
            print(
                "\ninterrupted: what is finished is written; run again with --resume "
                "and the same --out to finish",
                file=sys.stderr,
            )
        return 130
    except BrokenPipeError:  # `emulate cases … | head`
        sys.stderr.close()
        return 0
    except OSError as err:  # the machine's, not the input's
        if is_storage_error(err):
            print(f"emulate: error: {describe_os_error(err)}; free space (or fix the folder), "
                  "then run the command again", file=sys.stderr)  # fmt: skip
            return StorageError.exit_code
        print(f"emulate: error: {describe_os_error(err)} (a failure of this machine, not of "
              "the input)", file=sys.stderr)  # fmt: skip
        return OS_ERROR
    return code or 0


def entry() -> int:
    """The `emulate` command's process: main(), then an exit that does not collect
    what is about to vanish anyway. A run leaves about a million objects (the SDK's
    models, the run's rows); the interpreter's last garbage collection over them took
    0.15 s of a 1.9 s run (bench/scale.py). Frozen, they are freed as the process
    ends, without the scan; every file is closed by then."""
    code = main()
    gc.freeze()
    return code
