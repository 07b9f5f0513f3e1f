"""The command line's commands, flags and help: what `emulate --help` teaches."""

from __future__ import annotations

import argparse

from emulate.config import DEFAULT_POLL_S
from emulate.probe import MODES
from emulate.registry import names

from .flags import add_api_key_env, add_concurrency, add_prices
from .study import add_study

EXAMPLES = """\
examples:
  emulate probes                                  what can be measured, with parameter ranges
  emulate cases conv -P size=4 --n 2              the cases as JSONL, without any model
  emulate run conv                                the default sweep on the embedded model
  emulate run conv -P dims=2 -P size=3,4,5,6 --n 10 --out runs/conv2d
  emulate run conv --dry-run                      case count and token estimate, offline
  emulate run conv --model gpt-4o-mini            OpenAI (needs OPENAI_API_KEY)
  emulate run conv --model qwen --base-url http://127.0.0.1:8000/v1   any OpenAI-compatible server
  emulate run --config runs/conv2d/run.json --out runs/again          repeat a run
  emulate run --config cassettes/conv/completion/run.json \\
      --replay cassettes/conv/completion/cassette.json --out /tmp/replay   offline replay
  emulate report runs/conv-a runs/conv-b          summary.csv, plots and report.html
  emulate compare runs/conv-a runs/conv-b         paired test of two models on shared cases
  emulate export runs/conv2d --format parquet     nested rows for pandas, Arrow or HF datasets
  emulate rescore runs/conv-a runs/conv-b         score recorded answers again with today's rules
  emulate cases conv --n 1 | emulate grade - '[1, 2]'   score one answer to one case
  emulate batch export conv --model gpt-4o-mini --file req.jsonl --out runs/b   a batch's requests
  emulate batch execute req.jsonl --base-url http://127.0.0.1:8000/v1 --out output.jsonl
  emulate batch score output.jsonl --config runs/b/run.json     score a batch's results
  emulate batch submit conv --model gpt-4o-mini --out runs/b   OpenAI's Batch API, at half price
  emulate run conv --model gpt-4o-mini --model qwen@http://127.0.0.1:8000/v1 --out runs/sweep
  emulate study                                   computes or imitates? claim by claim (seeds)
"""


def _add_grid_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-P",
        dest="params",
        action="append",
        metavar="KEY=V1,V2",
        help="set a parameter; several values (and several -P) form a grid. "
        "See `emulate probes` for names and ranges",
    )
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help="cases per grid cell (default: the probe's, 3 for most; see `emulate probes -v`)",
    )
    p.add_argument("--seed", type=int, default=None, help="first case seed (default 0)")
    p.add_argument(
        "--mode",
        choices=MODES,
        default=None,
        help="chat messages or a completion prompt (default: completion for the "
        "embedded base model, chat otherwise)",
    )
    p.add_argument(
        "--skip-impossible",
        action="store_true",
        default=None,
        help="run the grid cells that can exist and skip the others (default: an error)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emulate",
        description="Measure whether a language model computes or only produces what "
        "computation output usually looks like. Each probe generates seeded cases, "
        "computes the true answer locally, asks the model and scores the answer.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "probes",
        help="list the probes and their parameters",
        description="One line per probe: its name, what it measures, and its parameters "
        "with their ranges. -v adds each parameter's default grid and meaning.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="one line per parameter too")

    p = sub.add_parser(
        "cases",
        help="write a probe's cases as JSONL to stdout, without calling a model",
        description="Write the cases (id, params, prompt, structured inputs, truth) as JSONL, "
        "one case a line. No model is called.",
    )
    p.add_argument("probe", help=f"one of: {', '.join(names())}")
    _add_grid_args(p)
    p.add_argument(
        "--model",
        default=None,
        help="the model the cases are for: its default --mode is the one `run` would use "
        "(completion for the embedded model, the default; chat otherwise)",
    )

    _add_run(sub)
    add_study(sub)

    _add_analysis(sub)
    _add_batch(sub)

    p = sub.add_parser(
        "serve",
        help="run the embedded model's server in the foreground and print its URL",
        description="Start Gemma 3 270M under llama-server on loopback, print the base URL for "
        "other tools, and stop it on Ctrl-C.",
    )
    p.add_argument("--slots", type=int, default=2, help="parallel slots (default 2)")
    p.add_argument("--seed", type=int, default=0, help="server sampling seed (default 0)")
    return parser


def _add_run(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run a probe against a model",
        description="Run a probe against a model. Writes journal.jsonl (one line per finished "
        "case, so an interrupted run resumes with --resume), results.csv and run.json in "
        "--out, and prints accuracy by difficulty. Exit code 2 on bad input. Batches "
        "(export, submit, score, execute) are `emulate batch ...`.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_args(p, sweep=True)
    g = p.add_argument_group("output and recording")
    _add_out_args(g)
    rec = g.add_mutually_exclusive_group()
    rec.add_argument("--record", metavar="CASSETTE", help="record HTTP exchanges to a cassette")
    rec.add_argument(
        "--replay", metavar="CASSETTE", help="answer only from a cassette; no network, no server"
    )
    g.add_argument(
        "--dry-run", action="store_true", help="print case count and token estimate; ask nothing"
    )


def _add_config_args(p: argparse.ArgumentParser, sweep: bool = False) -> None:
    """What a run asks: the probe, its grid, the model and how it is asked."""
    p.add_argument("probe", nargs="?", help=f"one of: {', '.join(names())}")
    _add_grid_args(p)
    p.add_argument("--config", default=None, help="repeat the run described by a run.json")
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        action="append" if sweep else "store",
        default=None,
        metavar="NAME[@URL]",
        help="model name; 'local' (the default) starts Gemma 3 270M under llama-server; "
        "NAME@URL for a model behind its own OpenAI-compatible server"
        + (". Repeat it for a sweep: the same cases on each model into --out/MODEL, then "
           "one report and every pair compared" if sweep else ""),
    )  # fmt: skip
    if sweep:
        g.add_argument(
            "--models",
            default=None,
            metavar="FILE",
            help="a sweep's models, one NAME or NAME@URL a line, optionally followed by "
            "api_key_env=VAR (# comments)",
        )
    g.add_argument(
        "--base-url",
        default=None,
        help="an OpenAI-compatible server, e.g. http://host:8000/v1 (default: OPENAI_BASE_URL "
        "if set, else OpenAI's API)",
    )
    add_api_key_env(g)
    g.add_argument("--temperature", type=float, default=None, help="default 0")
    g.add_argument("--max-tokens", type=int, default=None, help="default: sized per case")
    g.add_argument(
        "--stop",
        action="append",
        default=None,
        metavar="TEXT",
        help="a stop sequence, repeatable (default: the probe's own per mode)",
    )
    g.add_argument(
        "--top-logprobs", type=int, default=None, help="ask for logprobs with N alternatives"
    )
    g.add_argument(
        "--extra-body",
        default=None,
        metavar="JSON",
        help="server options sent with each request, e.g. '{\"cache_prompt\": false}'",
    )
    add_concurrency(g)


def _add_out_args(g, retry: bool = True) -> None:
    """Where a run's folder is and how it goes on: RunOptions' flags."""
    g.add_argument("--out", default=None, help="output folder (default runs/PROBE-TIMESTAMP)")
    g.add_argument("--resume", action="store_true", help="skip cases already in --out's journal")
    if retry:
        g.add_argument(
            "--retry-errors",
            action="store_true",
            help="with --resume: ask again for the cases that ended in an API error or timeout",
        )
    g.add_argument(
        "--max-errors",
        default=None,
        metavar="N|FRACTION",
        help="more API errors than this (a count like 5, or a fraction of the cases like "
        "0.1 or 10%%) stop the run with exit code 3 and the command that retries them "
        "(default 10%%)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_prices(g)


def _add_batch(sub) -> None:
    p = sub.add_parser(
        "batch",
        help="runs in batches: export, submit (OpenAI's Batch API), score, execute",
        description="Batch files are a run's requests in OpenAI's Batch API format. "
        "`batch export` writes them; `batch submit` sends them through a Batch API (OpenAI's "
        "costs half and takes up to 24 h) and scores the results; where there is no batch "
        "API (a llama-server, a vLLM endpoint) `batch execute` sends them and writes the "
        "output file a Batch API would, and `batch score` scores it.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bsub = p.add_subparsers(dest="batch_command", required=True, metavar="COMMAND")
    p = bsub.add_parser(
        "export",
        help="write a run's requests as a batch file, asking nothing",
        description="Write the run's requests in OpenAI's Batch API input format (which "
        "vLLM's run_batch reads too; custom_id = case id) to --file, and run.json in --out.",
    )
    _add_config_args(p)
    p.add_argument("--file", required=True, metavar="FILE.jsonl", help="the requests file")
    p.add_argument("--out", default=None, help="the run's folder (default runs/PROBE-TIMESTAMP)")
    p = bsub.add_parser(
        "submit",
        help="run through a server's Batch API: upload, submit, wait, download, score",
        description="Upload the run's requests to the Batch API at --base-url (OpenAI's by "
        "default), submit, wait with progress, download the results and score them into "
        "--out. Stopped, --resume goes on with the batches saved in --out; --resume "
        "--retry-errors sends the failed or unanswered cases as new batches.",
    )
    _add_config_args(p)
    _add_out_args(p)
    p.add_argument(
        "--batch-wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop waiting after this long and exit with code 75 (the batches go "
        "on; --resume later); 0 submits and returns (default: wait until they end)",
    )
    p.add_argument(
        "--batch-poll",
        type=float,
        default=DEFAULT_POLL_S,
        metavar="SECONDS",
        help=f"seconds between status checks (default {DEFAULT_POLL_S:g})",
    )
    p = bsub.add_parser(
        "score",
        help="score a batch's results file(s) against the run that wrote its requests",
        description="Ask nothing: score a batch's output file (and its error file, if any) "
        "against --config RUN/run.json, journaled into RUN (or --out) as a live run would be.",
    )
    p.add_argument("results", nargs="+", metavar="FILE.jsonl", help="output (and error) files")
    p.add_argument("--config", required=True, help="the run.json `batch export` wrote")
    _add_out_args(p, retry=False)
    _add_execute(bsub)


def _add_execute(bsub) -> None:
    p = bsub.add_parser(
        "execute",
        help="send a batch file's requests and write the Batch API output file",
        description="Send each request in REQUESTS (concurrently, with the SDK's retries and "
        "backing off on 429s) and append its result to --out as a line of the Batch API's "
        "output format (custom_id, response: {status_code, body}, error). Stopped, it "
        "continues with --resume: requests already answered are not sent again, failed ones "
        "are. With no --base-url, requests for the embedded model start it; others go to "
        "OpenAI (OPENAI_API_KEY).",
    )
    p.add_argument("requests", metavar="REQUESTS", help="a batch input file (JSONL)")
    p.add_argument("--out", required=True, metavar="OUTPUT.jsonl", help="the results file")
    p.add_argument(
        "--base-url", default=None, help="an OpenAI-compatible server, e.g. http://host:8000/v1"
    )
    add_api_key_env(p)
    p.add_argument("--resume", action="store_true", help="finish an --out begun before")
    add_concurrency(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _add_analysis(sub) -> None:
    """The commands that read runs back: report, compare, export, rescore, grade."""
    _add_report(sub)
    _add_compare(sub)
    _add_export(sub)
    _add_rescore(sub)
    _add_grade(sub)


def _add_report(sub) -> None:
    p = sub.add_parser(
        "report",
        help="summary.csv, plots and a self-contained report.html from run folders",
        description="Read the journals of one or more runs (of any probes) and write "
        "summary.csv (accuracy with a Wilson 95% interval, chance and metric means per "
        "probe, model, axis value and grid cell), plots/PROBE-AXIS.png (accuracy against each "
        "difficulty axis, one line per model, breaking points marked; markov runs add their "
        "transition graphs) and report.html (the "
        "same, plus run metadata, tokens and cost, in one file that opens offline).",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run folders (the --out of `run`)")
    p.add_argument(
        "--out", default=None, help="where to write (default DIR/report, or report-TIMESTAMP)"
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument(
        "--per-case",
        action="store_true",
        help="for probes that draw their cases (markov's transition graphs): a picture of "
        "every case in plots/, not only the run's founding or first case",
    )
    add_prices(p)


def _add_compare(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="compare two runs of one probe case by case",
        description="Pair two runs of one probe on the case ids they share: accuracy of each, "
        "the difference B - A with a paired bootstrap 95% interval and an exact McNemar "
        "p-value, overall, per axis value and per grid cell (with Benjamini-Hochberg "
        "q-values over the cells), then the probe's main metrics with a permutation test. "
        "Cases only one run has are counted and left out.",
    )
    p.add_argument("a", metavar="A", help="a run folder")
    p.add_argument("b", metavar="B", help="another run folder of the same probe")
    p.add_argument("--out", default=None, metavar="CSV", help="also write the table as CSV")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def _add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write runs as CSV, Parquet, JSONL or a saved HF dataset",
        description="Export the finished cases of one or more runs of one probe. csv is flat "
        "(a column per parameter and metric, like results.csv); parquet, jsonl and dataset "
        "(datasets.save_to_disk) keep the journal's nesting: case, answer (with logprobs and "
        "turns) and score (with metrics). In parquet and dataset, inputs, truth, foils and "
        "the parsed answer are JSON text, since their shape differs from case to case.",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run folders of one probe")
    p.add_argument("--format", required=True, choices=("csv", "parquet", "jsonl", "dataset"))
    p.add_argument(
        "--out", default=None, help="file (a folder for dataset); default DIR/results.FORMAT"
    )


def _add_rescore(sub) -> None:
    p = sub.add_parser(
        "rescore",
        help="score runs' recorded answers again with today's scorers, without asking again",
        description="Read each run's journal, score every recorded raw answer again with "
        "today's answer extraction and scorers (against each case as recorded), and write "
        "journal.jsonl (the old one kept as journal.previous.jsonl), results.csv and the "
        "summary again. Prints how many cases changed verdict and how. The model is never "
        "asked. --check writes nothing and exits 1 if any case would change.",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run folders (the --out of `run`)")
    p.add_argument("--out", default=None, help="write the rescored run here (one DIR only)")
    p.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if anything would change"
    )


def _add_grade(sub) -> None:
    p = sub.add_parser(
        "grade",
        help="score one answer to one case, as a run would",
        description="Score ANSWER against the case in CASE (a file holding one JSON line as "
        "`emulate cases` writes it, or - for stdin, first line) and print the score as JSON: "
        "correct, metrics, error_type, reason, parsed.",
    )
    p.add_argument("case", metavar="CASE", help="a file with one case JSON line, or -")
    p.add_argument("answer", metavar="ANSWER", help="the model's text, or @FILE to read it")
