"""The markov probe: its chains, its three truths, its requests and its scorer."""

import asyncio
import math
import re
from collections import Counter

import pytest

import emulate
from emulate.case import Answer, TokenLogprob
from emulate.registry import get_probe
from probes import babygpt, markov

torch_only = pytest.mark.skipif(
    markov.MarkovProbe().missing() is not None, reason="needs torch: pip install -e '.[torch]'"
)
PROBE = get_probe("markov")


def _case(**cell):
    full = {"chain": "seed", "vocab": 2, "context": 3, "length": 15, "sharpness": 1}
    full |= {"symbols": "digits"} | cell
    return PROBE.make_case(full, 0, "completion")


@torch_only
def test_the_founding_case_is_karpathys_sequence_and_reproduces_his_figures():
    case = _case()
    assert case.inputs.sequence == "111101111011110"
    assert babygpt.parameters() == 12_656
    gpt = case.truth.baby_gpt
    # His figures: 101 -> 011 at 79%, 111 split 45/55, 000 -> 001 at 73%.
    assert gpt["101"][1] == pytest.approx(0.79, abs=0.03)
    assert gpt["111"][1] == pytest.approx(0.45, abs=0.03)
    assert gpt["000"][1] == pytest.approx(0.73, abs=0.03)
    # The data: 101 is always followed by 1, 111 half and half; 000 never shown.
    assert case.truth.chain["101"] == [0.0, 1.0] and case.truth.chain["111"] == [0.5, 0.5]
    assert case.truth.chain["000"] == [0.5, 0.5]
    assert case.inputs.seen == ["011", "101", "110", "111"]
    # Three deterministic seen states (1 in 2 each by guessing) and a tie (2 in 2).
    assert case.chance == pytest.approx(1 / 8)


@torch_only
def test_the_baby_gpt_trains_the_same_twice(monkeypatch):
    monkeypatch.setenv("EMULATE_CACHE", "")
    seq = [int(c) for c in "0120120211201"]
    first = babygpt.train_rows(seq, 3, 2)
    assert babygpt.train_rows(seq, 3, 2) == first
    assert all(sum(row) == pytest.approx(1) for row in first.values()) and len(first) == 9


@torch_only
@pytest.mark.parametrize("vocab,context,length", [(2, 1, 40), (3, 2, 120), (4, 3, 200)])
def test_the_counts_truth_is_an_independent_count(vocab, context, length):
    case = _case(chain="random", vocab=vocab, context=context, length=length, sharpness=0)
    seq = case.inputs.sequence
    assert len(seq) == length and set(seq) <= set("0123"[:vocab])
    # Counted again from the text with overlapping regex windows.
    follows = Counter(
        m.group(1) for m in re.finditer(rf"(?=([0-{vocab - 1}]{{{context + 1}}}))", seq)
    )
    for state in case.inputs.states:
        n = [follows[state + a] for a in case.inputs.symbols]
        want = [(k + 1) / (sum(n) + vocab) for k in n]
        assert case.truth.counts[state] == pytest.approx(want), state
        assert (state in case.inputs.seen) == (sum(n) > 0)
    for row in case.truth.chain.values():
        assert sum(row) == pytest.approx(1)


@torch_only
def test_a_cycle_counts_up_and_its_rule_covers_unseen_states():
    case = _case(chain="cycle", vocab=3, context=2, length=30)
    seq = case.inputs.sequence
    assert all((int(b) - int(a)) % 3 == 1 for a, b in zip(seq, seq[1:], strict=False))
    assert case.truth.chain["00"] == [0.0, 1.0, 0.0] and "00" not in case.inputs.seen


@torch_only
def test_every_state_is_asked_with_the_sequence_then_its_symbols():
    case = _case(length=20)
    asked = []

    async def ask(prompt, *, max_tokens, stop=(), top_logprobs=0):
        asked.append((prompt, max_tokens, top_logprobs))
        return Answer("1", (TokenLogprob("1", -0.1, (("1", -0.1), ("0", -2.4))),))

    answer = asyncio.run(PROBE.converse(case, ask))
    assert [p for p, _, _ in asked] == [case.inputs.sequence + s for s in case.inputs.states]
    assert {(m, k) for _, m, k in asked} == {(1, markov.TOP_LOGPROBS)}
    assert len(answer.logprobs) == 8 and answer.turns == ("1",) * 8


@torch_only
def test_letters_are_spaced_and_keyed_by_their_symbols():
    case = _case(symbols="letters")
    assert case.inputs.sequence == "B B B B A B B B B A B B B B A"
    assert case.inputs.symbols == ["A", "B"] and case.truth.chain["BAB"] == [0.0, 1.0]
    asked = [p for p, _ in PROBE.requests(case)]
    assert asked[5] == case.inputs.sequence + " B A B"  # state 101, written BAB


def _answer(*tops):
    return Answer("", tuple(TokenLogprob(top[0][0], top[0][1], top) for top in tops))


@torch_only
def test_scoring_worked_by_hand():
    case = _case()
    # Every state: "1" 0.6, " 0" 0.3 (a symbol with a space counts), a newline 0.1.
    top = (("1", math.log(0.6)), (" 0", math.log(0.3)), ("\n", math.log(0.1)))
    score = PROBE.score(case, _answer(*[top] * 8))
    m = score.metrics
    row = [1 / 3, 2 / 3]
    assert m["off_vocab"] == pytest.approx(0.1)
    # Seen: 011, 101, 110 are [0, 1] (TV 1/3 each), 111 is [.5, .5] (TV 1/6).
    assert m["tv_chain_seen"] == pytest.approx((3 * (1 / 3) + 1 / 6) / 4)
    kl_111 = 0.5 * math.log2(0.5 / row[0]) + 0.5 * math.log2(0.5 / row[1])
    assert m["kl_chain_seen"] == pytest.approx((3 * math.log2(1 / row[1]) + kl_111) / 4)
    # Unseen: all even in the chain and the counts.
    assert m["tv_chain_unseen"] == pytest.approx(1 / 6) == m["tv_counts_unseen"]
    assert m["entropy_unseen"] == pytest.approx(
        -(row[0] * math.log2(row[0]) + row[1] * math.log2(row[1]))
    )
    gpt = case.truth.baby_gpt
    want = sum(abs(gpt[s][1] - row[1]) for s in ("000", "001", "010", "100")) / 4
    assert m["tv_gpt_unseen"] == pytest.approx(want)
    assert score.correct and m["top_match"] == 1.0  # 111's tie takes either symbol


@torch_only
def test_wrong_tops_off_vocabulary_and_broken_logprobs_are_wrong_answers():
    case = _case()
    zero = (("0", math.log(0.9)), ("1", math.log(0.1)))
    score = PROBE.score(case, _answer(*[zero] * 8))
    assert not score.correct and score.error_type == "wrong_top"
    assert score.metrics["top_match"] == pytest.approx(1 / 4)  # only 111's tie
    words = (("the", math.log(0.5)), ("a", math.log(0.4)))
    score = PROBE.score(case, _answer(*[words] * 8))
    assert score.error_type == "off_vocab" and score.metrics["off_vocab"] == 1.0
    score = PROBE.score(case, _answer(*[(("1", float("nan")),)] * 8))
    assert score.error_type == "bad_logprobs"
    score = PROBE.score(case, Answer("1", None))
    assert score.error_type == "no_logprobs" and not score.correct


@torch_only
def test_the_dry_run_budget_counts_a_token_per_state():
    import emulate

    config = emulate.make_config("markov", n=1, grid={"chain": ["seed"], "length": [15]})
    est = emulate.estimate(config)
    assert (est.cases, est.requests, est.max_completion_tokens) == (1, 8, 8)


@torch_only
def test_the_report_draws_the_founding_case_and_every_case_on_request(tmp_path):
    from emulate.analysis.report import report
    from emulate.config import load_config
    from emulate.pipeline.runner import run_config

    from .conftest import CASSETTES

    folder = CASSETTES / "markov" / "completion"
    out = tmp_path / "run"
    config = load_config(folder / "run.json")
    run_config(config, out, replay=folder / "cassette.json", progress=False, echo=None)
    founding = _case().id
    one = report([out], tmp_path / "one")
    drawn = [p.name for p in one.plots if "-markov-" in p.name]
    assert drawn == [f"run-markov-{founding}.png"]
    assert drawn[0] in one.html.read_text() or "data:image/png" in one.html.read_text()
    every = report([out], tmp_path / "every", per_case=True)
    ids = {p.name.split("-markov-")[1][:-4] for p in every.plots if "-markov-" in p.name}
    assert ids == {r["case_id"] for r in _results(out)} and len(ids) == 18
    png = (tmp_path / "one" / "plots" / drawn[0]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def _results(out):
    import csv

    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


@torch_only
@pytest.mark.enable_socket
def test_a_server_without_logprobs_stops_the_run_at_its_first_answer(fake_server, tmp_path):
    from emulate.errors import EmulateError

    fake_server.completion("1")  # answers, but with "logprobs": null
    grid = {"chain": ["seed"], "length": [15]}
    with pytest.raises(EmulateError, match="returned no logprobs"):
        emulate.run("markov", grid, n=2, model="fake", base_url=fake_server.url,
                    out=tmp_path / "o", progress=False, concurrency=1)  # fmt: skip
    assert len(fake_server.requests) == 1 and not (tmp_path / "o").exists()
