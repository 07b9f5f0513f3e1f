"""Values worked by hand, for code whose plausible one-line bugs the other tests let
through (issue 26 planted them): each test pins a figure that the bug would move.
None needs torch, bubblewrap or a cassette."""

from __future__ import annotations

import math

import numpy as np
import pytest

import emulate
from emulate.analysis.compare import Comparison, _with_q
from emulate.analysis.stats import compare_correct
from emulate.case import Answer, Case, TokenLogprob
from emulate.extract import find
from probes import bracket_scoring, conv, markov, shell


def _int(text: str) -> int:
    if not text.strip().lstrip("-").isdigit():
        raise ValueError(text)
    return int(text)


# --- statistics ------------------------------------------------------------------------


def test_benjamini_hochberg_takes_the_cumulative_minimum():
    """p = .01, .04, .03, .2 over four cells. Sorted, p * m / rank is .04, .06, .0533,
    .2; BH's q is the running minimum from the largest p down: .04, .0533, .0533, .2.
    Without the minimum the cell with p = .03 would get .06."""
    rows = [
        Comparison("all", "", "correct", 40, 0.5, 0.6, 0.1, 0.0, 0.2, 0.5),
        *(
            Comparison("cell", f"size={i}", "correct", 10, 0.5, 0.6, 0.1, 0.0, 0.2, p)
            for i, p in enumerate((0.01, 0.04, 0.03, 0.2))
        ),
    ]
    q = [r.q_value for r in _with_q(rows)]
    assert q[0] is None
    assert q[1:] == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.2])


def test_the_paired_interval_keeps_the_pairs():
    """40 cases, half right in both runs, B right on 2 more: the differences are 38
    zeros and 2 ones. Resampled as pairs the interval starts at 0: a resample with
    neither one has probability (38/40)^40 = 13%, above the 2.5% tail (BCa puts the
    top at .175). Resampling each run alone (pairs lost) spans about +/-.22 around .05."""
    a = {f"c{i}": i % 2 == 0 for i in range(40)}
    b = dict(a) | {"c1": True, "c3": True}
    paired = compare_correct(a, b, seed=0)
    assert paired.difference == pytest.approx(0.05)
    assert (paired.a_only_right, paired.b_only_right) == (0, 2)
    assert paired.low == 0.0 and 0.05 < paired.high < 0.2
    assert paired.p_value == pytest.approx(0.5)  # binomial: both of 2 discordant to B


# --- extraction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,want",
    [
        ("<think>The answer is 6.</think>\n5", 5),  # a marker inside the block is not one
        ("<think>so it prints 6\nThe answer is 6</think>The answer is 5", 5),
        ("<THINKING>6</thinking>\n5", 5),
        ("<reasoning>The answer is 6.</reasoning>\n5", 5),
        ("<think>Let me count. The answer is 6", None),  # cut off inside the block
    ],
)
def test_reasoning_blocks_are_dropped_whole(text, want):
    found = find(text, _int)
    assert (found.value if found else None) == want


# --- conv: 2-D strides and dilations, in numpy ---------------------------------------


def test_2d_stride_and_dilation_by_hand():
    x = np.arange(16).reshape(1, 4, 4)  # 0..15, one channel
    w = np.array([[[[1, 0], [0, 1]]]])  # one output channel, the main diagonal
    # Stride 2: windows at (0,0), (0,2), (2,0), (2,2): x[i,j] + x[i+1,j+1].
    assert conv.cross_correlate(x, w, stride=2).tolist() == [[[5, 9], [21, 25]]]
    # Dilation 2: taps 2 apart, x[i,j] + x[i+2,j+2], over a 2 x 2 grid of positions.
    assert conv.cross_correlate(x, w, dilation=2).tolist() == [[[10, 12], [18, 20]]]
    # Stride 1 on a 3 x 3: [[1+5, 2+6], [4+8, 5+9]].
    x3 = np.arange(1, 10).reshape(1, 3, 3)
    assert conv.cross_correlate(x3, w).tolist() == [[[6, 8], [12, 14]]]
    # Padding 1, stride 2 on the 3 x 3: padded 5 x 5, windows at 0, 2 each way.
    assert conv.cross_correlate(x3, w, stride=2, padding=1).tolist() == [[[1, 3], [7, 14]]]


def test_2d_cases_have_the_shape_stride_gives():
    for case in emulate.cases("conv", {"dims": 2, "size": 7, "kernel": 3, "stride": [2, 3]}, n=1):
        s = case.params["stride"]
        side = (7 - 3) // s + 1
        assert np.asarray(case.truth.output).shape[-2:] == (side, side)


# --- markov's scorer, on a case built by hand --------------------------------------------


def _markov_case() -> Case:
    inputs = markov.Inputs("0101", ["0", "1"], ["0", "1"], ["0", "1"])
    truth = markov.Truth(
        chain={"0": [0.0, 1.0], "1": [1.0, 0.0]},
        counts={"0": [0.25, 0.75], "1": [0.5, 0.5]},
        baby_gpt={"0": [0.5, 0.5], "1": [0.9, 0.1]},
    )
    return Case("m", "markov", 1, {}, 0, inputs, truth, "0101", mode="completion")


def _token(p1: float) -> TokenLogprob:
    """The model's next token: "1" with probability p1, "0" with the rest."""
    return TokenLogprob("1", math.log(p1), (("1", math.log(p1)), ("0", math.log(1 - p1))))


def test_markov_metrics_by_hand():
    """Model rows: state 0 -> [.25, .75], state 1 -> [.6, .4]; both states seen.
    TV to the chain: .5 (|.25| + |.25|) = .25 and .5 (.4 + .4) = .4, mean .325.
    KL(chain || model) in bits: log2(1/.75) = .41504 and log2(1/.6) = .73697, mean
    .57600 (the other direction would put the floored zeros in a denominator).
    TV to the counts: 0 and .1, mean .05; to the baby GPT: .25 and .3, mean .275."""
    score = markov.score(_markov_case(), Answer("", (_token(0.75), _token(0.4))))
    m = score.metrics
    assert m["tv_chain_seen"] == pytest.approx(0.325)
    assert m["kl_chain_seen"] == pytest.approx((math.log2(4 / 3) + math.log2(1 / 0.6)) / 2)
    assert m["tv_counts_seen"] == pytest.approx(0.05)
    kl_counts = (0.5 * math.log2(0.5 / 0.6) + 0.5 * math.log2(0.5 / 0.4)) / 2
    assert m["kl_counts_seen"] == pytest.approx(kl_counts)
    assert m["tv_gpt_seen"] == pytest.approx(0.275)
    assert m["tv_chain_unseen"] is None and m["off_vocab"] == pytest.approx(0.0)
    assert m["top_match"] == 1.0 and score.correct


def test_counts_are_smoothed_by_adding_one():
    """0 1 0 1 1, context 1: after 0 came 1 twice; after 1, 0 once and 1 once.
    (n + 1) / (total + 2): state 0 -> [1/4, 3/4], state 1 -> [2/4, 2/4]."""
    rows = markov.counts_rows([0, 1, 0, 1, 1], vocab=2, context=1)
    assert rows == {(0,): [0.25, 0.75], (1,): [0.5, 0.5]}


# --- brackets: illegal mass and the chance of guessing -------------------------------


def test_ending_with_brackets_open_is_illegal_mass():
    case = emulate.cases("brackets", {"task": "next_token", "depth": 2, "length": 8}, n=1)[0]
    closer = case.truth.due
    top = ((closer, math.log(0.5)), ("\n", math.log(0.3)), ("x", math.log(0.2)))
    m = bracket_scoring.score_next_token(
        case, Answer("", (TokenLogprob(closer, top[0][1], top),)), {}
    )
    assert m.metrics["p_end_open"] == pytest.approx(0.3)
    assert m.metrics["p_illegal"] == pytest.approx(0.3)
    assert m.metrics["p_legal"] == pytest.approx(0.5) and m.metrics["p_other"] == pytest.approx(0.2)


@pytest.mark.parametrize("types", [1, 2, 4])
def test_each_tasks_chance_is_its_formula(types):
    grid = {"types": types, "depth": 2, "length": 8}
    k = types
    for task, want in (
        ("classify", lambda c: 0.5),
        ("depth", lambda c: 2 / 8),
        ("next_token", lambda c: (k + 1) / (2 * k + 1)),
        ("complete", lambda c: k ** -c.covariates["closers"]),
    ):
        for case in emulate.cases("brackets", grid | {"task": task}, n=4):
            assert case.chance == pytest.approx(want(case)), (task, case.params)


# --- shell: state tracking ----------------------------------------------------------


def test_state_accuracy_counts_only_turns_that_read_an_earlier_change():
    """Five turns; turn 3 reads turn 1's change (1 back: near), turn 5 reads turn 1's
    (4 back: far). The model gets turns 1, 2 and 5 right: state_acc 1/2, near 0/1,
    far 1/1; turn_exact 3/5; the first divergence is turn 3, a lost state."""
    commands = ["mkdir d", "echo hi", "ls", "pwd", "ls d"]
    inputs = shell.Commands(commands, [None, None, 0, None, 0], "seed")
    truth = shell.Outputs(["", "hi", "d", "/home/user", ""], [None] * 5, [0] * 5)
    case = Case("s", "shell", 1, {"task": "session"}, 0, inputs, truth, "", mode="completion")
    replies = ("", "hi", "nothing", "/root", "")
    score = shell.score_session(case, replies, {})
    m = score.metrics
    assert m["turn_exact"] == pytest.approx(3 / 5)
    assert (m["state_acc"], m["state_acc_near"], m["state_acc_far"]) == (0.5, 0.0, 1.0)
    assert m["first_divergence"] == 3 and score.error_type == "state_lost"
