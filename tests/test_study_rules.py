"""The built-in study's decision rules on synthetic journals: each claim's verdict on
rows made to sit on one side of its thresholds, and where it flips."""

import itertools
import math

import pytest

from emulate.case import Answer, Case, Row, Score
from emulate.studies.spec import load_study
from emulate.studies.verdict import evaluate

_ids = itertools.count()
SEEDS = {c.id: c for c in load_study(None, "quick").claims}


def row(params, *, correct=False, metrics=None, error_type=None, parsed=None, truth=None,
        foils=None, probe="p"):  # fmt: skip
    """A journal row from the real dataclasses; each its own case (inputs differ)."""
    i = next(_ids)
    case = Case(f"c{i}", probe, 1, params, 0, {"i": i}, truth or [0], "q", foils=foils or {})
    score = Score(correct, metrics or {}, None if correct else error_type or "wrong", None, parsed)
    return Row("r", "m", "s", "chat", case, Answer("x"), score)


def many(k, n, make):
    """n rows, the first k made with make(True), the rest with make(False)."""
    return [make(i < k) for i in range(n)]


def verdict(claim, runs):
    return evaluate(SEEDS[claim], runs, "m").verdict


# --- C1: convolution -------------------------------------------------------------------


def _conv(size, right, lookalike=False):
    params = {"dims": 1, "size": size, "kernel": 2, "values": 1}
    truth = {"output": [1.0] * (size - 1)}
    flipped = [0.0] + [1.0] * (size - 2)
    kind = "flipped_kernel" if lookalike else "wrong_values"
    return row(params, correct=right, error_type=kind, truth=truth,
               foils={"flipped_kernel": flipped, "copied_example": []})  # fmt: skip


@pytest.mark.parametrize(("top_right", "expected"), [(30, "computes"), (27, "inconclusive")])
def test_c1_computes_only_when_the_top_size_clears_the_hold(top_right, expected):
    # 30/30 has a Wilson low of 0.886 >= 0.8; 27/30 has 0.744, and nothing to imitate.
    rows = [_conv(s, True) for s in (3, 5, 7) for _ in range(10)]
    rows += many(top_right, 30, lambda ok: _conv(9, ok))
    assert verdict("C1", {"sizes": rows}) == expected


@pytest.mark.parametrize(("lookalike", "expected"), [(True, "imitates"), (False, "inconclusive")])
def test_c1_imitates_when_it_breaks_and_wrong_answers_look_like_convolution(lookalike, expected):
    rows = []
    for size, right in ((3, 10), (5, 8), (7, 2), (9, 0)):
        rows += many(right, 10, lambda ok, s=size: _conv(s, ok, lookalike))
    assert verdict("C1", {"sizes": rows}) == expected


# --- C2: brackets ----------------------------------------------------------------------


def _br(depth, illegal):
    return row({"depth": depth}, metrics={"p_illegal": illegal, "p_wrong_closer": illegal / 2})


@pytest.mark.parametrize(("deep", "expected"), [(0.03, "computes"), (0.05, "inconclusive")])
def test_c2_computes_below_near_zero_at_the_deepest(deep, expected):
    # Means 0.0395 and 0.0595 over 20 cases; the deepest's interval is under 0.05 or not.
    rows = [_br(d, deep + 0.001 * i) for d in (2, 8) for i in range(20)]
    assert verdict("C2", {"depth": rows}) == expected


def test_c2_ten_equal_values_prove_no_bound_a_bootstrap_would_claim():
    # Every value 0.01: a bootstrap's interval is the point; Hoeffding's, over 10 values
    # in [0, 1], reaches 0.01 + sqrt(ln(40) / 20) = 0.439.
    result = evaluate(SEEDS["C2"], {"depth": [_br(8, 0.01) for _ in range(10)]}, "m")
    deep = result.stats[0]
    assert deep.high == pytest.approx(0.01 + (math.log(40) / 20) ** 0.5)
    assert result.verdict == "inconclusive"


def test_c2_imitates_when_illegal_mass_grows_with_depth():
    rows = [_br(2, 0.05 + 0.01 * i) for i in range(10)] + [
        _br(8, 0.3 + 0.01 * i) for i in range(10)
    ]
    result = evaluate(SEEDS["C2"], {"depth": rows}, "m")
    assert result.verdict == "imitates"
    growth = next(s for s in result.stats if s.name == "growth")
    assert growth.value == pytest.approx(0.25)


# --- C3: print once ---------------------------------------------------------------------


def _trap(as_code):
    emitted = 3 if as_code else 1
    return row({"guard": "trap"}, correct=as_code, error_type="intent_over_semantics",
               metrics={"trap_expected": 3, "trap_emitted": emitted,
                        "intent_over_semantics": not as_code})  # fmt: skip


@pytest.mark.parametrize(("right", "expected"), [(30, "computes"), (27, "inconclusive")])
def test_c3_computes_when_the_trap_prints_as_often_as_the_code_says(right, expected):
    # The 3 wrong of 27 printed once, but the real guards are no better (all wrong).
    rows = many(right, 30, _trap) + [row({"guard": "flag"}, correct=False) for _ in range(30)]
    assert verdict("C3", {"guards": rows}) == expected


@pytest.mark.parametrize(("guards_right", "expected"), [(20, "imitates"), (0, "inconclusive")])
def test_c3_imitates_when_the_trap_prints_once_while_real_guards_are_right(guards_right, expected):
    rows = many(0, 20, _trap) + many(guards_right, 20, lambda ok: row({"guard": "flag"},
                                                                      correct=ok))  # fmt: skip
    assert verdict("C3", {"guards": rows}) == expected


# --- C4: training ----------------------------------------------------------------------


def _train(loss_err, skipped=0, trend=True, shape="guarded"):
    return row({"shape_print": shape}, correct=False, error_type="format", metrics={
        "epochs_skipped": skipped, "epoch_lines": 5 - skipped, "last_loss_rel_err": loss_err,
        "loss_trend_agrees": trend})  # fmt: skip


@pytest.mark.parametrize(("err", "expected"), [(0.09, "computes"), (0.11, "imitates")])
def test_c4_flips_from_computes_to_imitates_as_the_losses_move_away(err, expected):
    rows = [_train(err) for _ in range(30)]
    assert verdict("C4", {"train": rows}) == expected


def test_c4_imitates_when_it_skips_epochs_even_with_near_losses():
    rows = [_train(0.05, skipped=2) for _ in range(10)]
    assert verdict("C4", {"train": rows}) == "imitates"


def test_c4_is_inconclusive_on_far_losses_without_a_plausible_trend():
    rows = [_train(0.5, trend=False) for _ in range(30)]
    assert verdict("C4", {"train": rows}) == "inconclusive"


# --- C5: the stated machine -------------------------------------------------------------


@pytest.mark.parametrize(("acc", "expected"), [(0.83, "computes"), (0.77, "imitates")])
def test_c5_facts_follow_the_spec_or_drift(acc, expected):
    # 30 sessions about `acc` (+-0.029): the interval lies on one side of the 0.8 hold.
    rows = [row({}, metrics={"fact_acc": acc + 0.002 * (i - 14.5), "gpu_count_ok": True})
            for i in range(30)]  # fmt: skip
    assert verdict("C5", {"persona": rows}) == expected


# --- C6: terminal state -----------------------------------------------------------------


def _session(stateless_ok, state_ok):
    turns = [{"exact": stateless_ok, "back": None}, {"exact": stateless_ok, "back": None},
             {"exact": state_ok, "back": 1}, {"exact": state_ok, "back": 3}]  # fmt: skip
    return row({}, parsed=turns)


def test_c6_computes_when_state_turns_are_right_near_and_far():
    runs = {"true": [_session(True, True) for _ in range(20)],
            "own": [_session(True, True) for _ in range(5)]}  # fmt: skip
    assert verdict("C6", runs) == "computes"


def test_c6_imitates_when_only_the_stateless_turns_are_right():
    runs = {"true": [_session(True, False) for _ in range(20)],
            "own": [_session(True, False) for _ in range(5)]}  # fmt: skip
    result = evaluate(SEEDS["C6"], runs, "m")
    assert result.verdict == "imitates"
    drop = next(s for s in result.stats if s.name == "drop")
    assert (drop.value, drop.extra["paired"]) == (1.0, True)


def test_c6_needs_the_stateless_turns_right_to_call_it_imitation():
    # 10 sessions: Wilson's low bound over 10 of 10 cases is 0.72, under the 0.8 hold.
    runs = {"true": [_session(True, False) for _ in range(10)], "own": [_session(True, False)]}
    assert verdict("C6", runs) == "inconclusive"


def test_c6_is_inconclusive_when_everything_is_wrong():
    runs = {"true": [_session(False, False) for _ in range(10)], "own": [_session(False, False)]}
    assert verdict("C6", runs) == "inconclusive"


# --- C7: session rebuild ----------------------------------------------------------------


def _rebuilt(true_turns, k=4):
    turns = [{"exact": t < true_turns, "own": t >= true_turns, "first": False} for t in range(k)]
    return row({}, parsed=turns)


@pytest.mark.parametrize(("true_turns", "expected"),
                         [(4, "computes"), (0, "imitates"), (3, "inconclusive")])  # fmt: skip
def test_c7_rebuilt_outputs_true_own_or_in_between(true_turns, expected):
    result = evaluate(SEEDS["C7"], {"rebuild": [_rebuilt(true_turns) for _ in range(20)]}, "m")
    assert result.verdict == expected
    own = next(s for s in result.stats if s.name == "own")
    assert own.value == pytest.approx((4 - true_turns) / 4)


def test_c7_inconclusive_says_how_many_more_sessions():
    # 3 sessions, 3 of 4 turns right in each but one: 0.75 of the turns, near the 0.8 hold.
    rows = [_rebuilt(3), _rebuilt(4), _rebuilt(2)]
    result = evaluate(SEEDS["C7"], {"rebuild": rows}, "m")
    assert result.verdict == "inconclusive"
    assert result.more_cases is not None and result.more_cases > 0


# --- C8: Markov chain -------------------------------------------------------------------


def _rows(chain, counts, gpt):
    return row({}, metrics={"tv_chain_seen": chain, "tv_counts_seen": counts,
                            "tv_gpt_seen": gpt})  # fmt: skip


def test_c8_computes_nearer_the_chain_imitates_nearer_the_counts():
    near_chain = [_rows(0.1 + 0.01 * i, 0.3, 0.4) for i in range(10)]
    near_counts = [_rows(0.4, 0.1 + 0.01 * i, 0.5) for i in range(10)]
    assert verdict("C8", {"chains": near_chain}) == "computes"
    result = evaluate(SEEDS["C8"], {"chains": near_counts}, "m")
    assert result.verdict == "imitates"
    rows = result.stats[0]
    assert (rows.extra["nearest"], rows.extra["other"]) == ("counts", "counts")
    assert rows.value == pytest.approx(0.4 - 0.145)
