"""Flags more than one command takes (run, the batch commands, study, report)."""

from __future__ import annotations

# Flags that define a run; with --config they come from run.json instead.
CONFIG_FLAGS = (
    "params", "n", "seed", "model", "base_url", "mode", "temperature", "max_tokens",
    "stop", "top_logprobs", "extra_body", "skip_impossible",
)  # fmt: skip


def add_api_key_env(p) -> None:
    p.add_argument(
        "--api-key-env",
        default=None,
        metavar="VAR",
        help="the environment variable that holds the key for the server at --base-url (or "
        "each NAME@URL). OPENAI_API_KEY goes only to OpenAI's API: any other server gets the "
        "key this names, or none",
    )


def add_prices(p) -> None:
    p.add_argument(
        "--prices",
        default=None,
        metavar="FILE",
        help='a JSON price table, {"as_of": DATE, "models": {NAME: {"input": USD, '
        '"output": USD}}} per 1M tokens (default: the dated table shipped with emulate)',
    )


def add_concurrency(g) -> None:
    g.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="requests in flight (default 1 for the embedded model, which gets as many "
        "server slots; 4 otherwise)",
    )
