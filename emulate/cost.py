"""Tokens and what they cost: usage the server reported, tiktoken estimates where it
reported none, priced from a dated table that a user can replace (`--prices FILE`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from . import tokens
from .case import Row
from .errors import EmulateError

PRICES_FILE = "prices-2026-03.json"
# Servers on this machine: what they cost is electricity, not a bill.
LOCAL_SERVERS = ("llama-server (embedded)", "localhost")
# A run scored from a batch's results is labelled with its server and this.
BATCH_SUFFIX = " (batch)"
# A dated snapshot of a priced model (gpt-4o-mini-2024-07-18, gpt-4-0613) costs what it does.
_SNAPSHOT = re.compile(r"-\d{4}(-\d{2}-\d{2})?$")


@dataclass(frozen=True)
class Prices:
    """US dollars (or `currency`) per million tokens, by model, as of a date."""

    models: Mapping[str, tuple[float, float]]  # name -> (input, output)
    as_of: str
    currency: str = "USD"
    source: str = ""
    path: str = ""
    batch: float = 1.0  # a batch's price as a fraction of the standard (OpenAI's: 0.5)

    def lookup(self, model: str) -> tuple[float, float] | None:
        """The entry for `model`, or for the priced model it is a dated snapshot of."""
        if model in self.models:
            return self.models[model]
        for name in sorted(self.models, key=len, reverse=True):
            if model.startswith(name) and _SNAPSHOT.fullmatch(model[len(name) :]):
                return self.models[name]
        return None


def load_prices(path: str | Path | None = None) -> Prices:
    """The price table: the dated one shipped with emulate, or the JSON file at `path`
    (same shape: {"as_of": ..., "models": {name: {"input": $, "output": $}}})."""
    where = str(path) if path else f"emulate/data/{PRICES_FILE}"
    try:
        text = (
            Path(path).read_text()
            if path
            else files("emulate").joinpath("data", PRICES_FILE).read_text()
        )
        data = json.loads(text)
    except FileNotFoundError:
        raise EmulateError(f"--prices {path}: no such file") from None
    except json.JSONDecodeError as err:
        raise EmulateError(f"--prices {where}: not valid JSON ({err})") from None
    try:
        models = {
            name: (float(p["input"]), float(p["output"])) for name, p in data["models"].items()
        }
        if any(v < 0 for pair in models.values() for v in pair):
            raise ValueError("a price is negative")
        batch = float(data.get("batch", 1.0))
        if not 0 < batch <= 1:
            raise ValueError("batch is a fraction of the standard price, above 0 and at most 1")
        return Prices(
            models, str(data["as_of"]), data.get("currency", "USD"), data.get("source", ""), where,
            batch,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise EmulateError(
            f'--prices {where}: expected {{"as_of": DATE, "models": {{NAME: '
            f'{{"input": PRICE, "output": PRICE}}}}}}, prices per 1M tokens ({err!r})'
        ) from None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cases: int
    estimated: int  # cases whose server reported no usage: counted with tiktoken instead

    def describe(self) -> str:
        how = (
            "reported by the server"
            if not self.estimated
            else f"tiktoken estimates for {self.estimated} of {self.cases} cases"
        )
        return f"{self.prompt_tokens:,} prompt + {self.completion_tokens:,} answer tokens ({how})"


def usage(rows: Iterable[Row]) -> Usage:
    """Token usage of journal rows. A failed request counts nothing."""
    prompt = completion = cases = estimated = 0
    for row in rows:
        answer, cases = row.answer, cases + 1
        if answer.error:
            continue
        if answer.prompt_tokens is None or answer.completion_tokens is None:
            estimated += 1
            # A multi-turn case resends its history each turn; this counts the first prompt
            # and every reply, so it is a floor.
            prompt += tokens.count_prompt(row.case.prompt)
            completion += sum(tokens.count(t) for t in answer.turns or [answer.text])
        else:
            prompt += answer.prompt_tokens
            completion += answer.completion_tokens
    return Usage(prompt, completion, cases, estimated)


@dataclass(frozen=True)
class Cost:
    amount: float | None  # None: the model has no price in the table
    note: str

    def describe(self) -> str:
        return self.note if self.amount is None else f"{dollars(self.amount)} ({self.note})"


def dollars(amount: float) -> str:
    return "$0" if amount == 0 else f"${amount:,.4f}"


def cost(
    model: str, server: str, prompt_tokens: int, completion_tokens: int, prices: Prices
) -> Cost:
    batch = server.endswith(BATCH_SUFFIX)
    if server.removesuffix(BATCH_SUFFIX) in LOCAL_SERVERS:
        return Cost(0.0, "a server on this machine")
    price = prices.lookup(model)
    if price is None:
        return Cost(
            None,
            f"no price for {model} in {prices.path} (as of {prices.as_of}); "
            "pass --prices FILE with its entry",
        )
    amount = (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6
    note = f"{prices.currency} at {model}'s prices as of {prices.as_of}"
    if batch:
        amount *= prices.batch
        note += (
            f", batch price x{prices.batch:g}" if prices.batch < 1
            else ", at standard prices: the table gives no batch discount"
        )  # fmt: skip
    return Cost(amount, note)
