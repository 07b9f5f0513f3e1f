"""Token usage and cost: the dated price table, --prices files, and estimates."""

import csv
import json

import pytest

import emulate
from emulate.case import Row
from emulate.cli.main import main
from emulate.cost import cost, load_prices, usage
from emulate.errors import EmulateError

from .conftest import CASSETTES, journal_row


def test_the_shipped_table_is_dated_and_matches_snapshots_only():
    prices = load_prices()
    assert prices.as_of == "2026-03" and prices.source
    assert prices.lookup("gpt-4o-mini") == (0.15, 0.60)
    assert prices.lookup("gpt-4o-mini-2024-07-18") == (0.15, 0.60)
    assert prices.lookup("gpt-5-mini") == (0.25, 2.00)  # not gpt-5's price
    assert prices.lookup("o3-pro") is None  # a different model, not o3 at o3's price
    assert prices.lookup("my-finetune") is None


def test_cost_arithmetic_and_local_servers():
    prices = load_prices()
    c = cost("gpt-4o-mini", "api.openai.com", 1_000_000, 500_000, prices)
    assert c.amount == pytest.approx(0.15 + 0.30)
    assert cost("gemma", "llama-server (embedded)", 10**9, 10**9, prices).amount == 0
    unpriced = cost("o3-pro", "api.openai.com", 10, 10, prices)
    assert unpriced.amount is None and "--prices" in unpriced.note


def test_a_batch_costs_the_tables_batch_fraction(tmp_path):
    prices = load_prices()
    c = cost("gpt-4o-mini", "api.openai.com (batch)", 1_000_000, 500_000, prices)
    assert c.amount == pytest.approx((0.15 + 0.30) * 0.5) and "batch price x0.5" in c.note
    assert cost("gemma", "localhost (batch)", 10**9, 10**9, prices).amount == 0
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"as_of": "x", "models": {"m": {"input": 2, "output": 0}}}))
    own = cost("m", "h.example (batch)", 1_000_000, 0, load_prices(path))
    assert own.amount == 2 and "no batch discount" in own.note


@pytest.mark.enable_socket
def test_results_a_batch_api_wrote_are_batch_priced_and_executed_ones_are_not(
    fake_server, tmp_path
):
    from emulate.batch.execute import execute_batch

    fake_server.completion(" [1]")
    config = emulate.make_config("conv", {"size": 4, "dims": 1}, n=1, model="gpt-4o-mini",
                                 base_url=fake_server.url, mode="completion")  # fmt: skip
    emulate.export_batch(config, tmp_path / "requests.jsonl", tmp_path / "run")
    execute_batch(tmp_path / "requests.jsonl", tmp_path / "out.jsonl", base_url=fake_server.url,
                  progress=False)  # fmt: skip
    executed = emulate.score_batch(config, [tmp_path / "out.jsonl"], tmp_path / "run",
                                  progress=False, echo=None)  # fmt: skip
    # the same lines as a batch API writes them (its own ids): half the price
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    api = tmp_path / "api.jsonl"
    api.write_text("".join(json.dumps({**x, "id": f"batch_req_{i}"}) + "\n"
                           for i, x in enumerate(lines)))  # fmt: skip
    emulate.export_batch(config, tmp_path / "r2.jsonl", tmp_path / "run2")
    batched = emulate.score_batch(config, [api], tmp_path / "run2", progress=False,
                                 echo=None)  # fmt: skip

    def servers(run):
        return {json.loads(x)["server"] for x in (run / "journal.jsonl").read_text().splitlines()}

    # the label is what a report prices by ("localhost" itself costs nothing here)
    assert servers(tmp_path / "run") == {"localhost"} and "batch" not in executed.cost.note
    assert servers(tmp_path / "run2") == {"localhost (batch)"} and batched.done == executed.done


def test_a_prices_file_replaces_the_table(tmp_path, capsys):
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps({"as_of": "2027-01-01", "models": {"qwen": {"input": 1000, "output": 0}}})
    )
    args = ["run", "conv", "--dry-run", "--model", "qwen", "--base-url", "http://h.example/v1"]
    assert main([*args, "--prices", str(path)]) == 0
    out = capsys.readouterr().out
    est = emulate.estimate(emulate.make_config("conv", model="qwen"), prices=path)
    assert est.cost.amount == pytest.approx(est.prompt_tokens * 1000 / 1e6)
    assert f"${est.cost.amount:,.4f}" in out and "as of 2027-01-01" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ('{"models": {}}', "as_of"),
        ('{"as_of": "x", "models": {"m": {"input": -1, "output": 1}}}', "negative"),
        ('{"as_of": "x", "models": {"m": {"input": "cheap", "output": 1}}}', "cheap"),
    ],
)
def test_bad_price_files_are_clear_errors(tmp_path, capsys, text, message):
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(EmulateError, match=message):
        load_prices(path)
    assert main(["run", "conv", "--dry-run", "--prices", str(path)]) == 2
    assert main(["run", "conv", "--dry-run", "--prices", str(tmp_path / "none")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_usage_counts_reported_tokens_and_estimates_the_rest():
    reported = journal_row("0" * 16, {}, True, prompt_tokens=100, completion_tokens=7)
    missing = journal_row("1" * 16, {}, True, prompt_tokens=None, completion_tokens=None,
                          text="hello world")  # fmt: skip
    failed = journal_row("2" * 16, {}, False, error="APIError: 500")
    u = usage([Row.from_json(r) for r in (reported, missing, failed)])
    # "prompt text" and "hello world" are 2 tokens each in o200k_base.
    assert (u.prompt_tokens, u.completion_tokens) == (102, 9)
    assert (u.cases, u.estimated) == (3, 1)
    assert "tiktoken estimates for 1 of 3" in u.describe()


def test_a_run_reports_its_tokens_and_cost(tmp_path):
    folder = CASSETTES / "conv" / "completion"
    lines = []
    result = emulate.run_config(
        emulate.load_config(folder / "run.json"), tmp_path / "run",
        replay=folder / "cassette.json", progress=False, echo=lines.append,
    )  # fmt: skip
    with open(folder / "results.csv", newline="") as f:
        recorded = list(csv.DictReader(f))
    assert result.usage.prompt_tokens == sum(int(r["prompt_tokens"]) for r in recorded)
    assert result.usage.completion_tokens == sum(int(r["completion_tokens"]) for r in recorded)
    assert result.usage.estimated == 0  # llama-server reports usage
    assert result.cost.amount == 0
    assert any(line.startswith("tokens: ") and "cost $0" in line for line in lines)
