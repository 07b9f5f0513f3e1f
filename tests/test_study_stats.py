"""The study's statistics, expressions, power estimate and file, against hand-worked
values and published ones."""

import math
import re

import numpy as np
import pytest

from emulate.case import Answer, Case, Row, Score
from emulate.errors import EmulateError
from emulate.studies import statistics as st
from emulate.studies.chance import conv_lookalike
from emulate.studies.expr import parse
from emulate.studies.spec import StatSpec, load_study
from emulate.studies.verdict import POWER_WIDTH, evaluate, power_factor


def row(params=None, *, correct=False, metrics=None, parsed=None, inputs=None, error_type=None):
    case = Case("c", "p", 1, params or {}, 0, inputs, [0], "q")
    score = Score(correct, metrics or {}, error_type or (None if correct else "wrong"), None,
                  parsed)  # fmt: skip
    return Row("r", "m", "s", "chat", case, Answer("x"), score)


def spec(kind, **fields):
    return StatSpec("s", kind, fields, "test")


def test_newcombe_matches_his_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873, Table II, example (a): 56/70 - 48/80,
    # method 10 (hybrid score): 0.0524 to 0.3339.
    low, high = st.newcombe(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_a_rate_is_wilsons_interval_as_scipy_computes_it():
    from scipy.stats import binomtest

    rows = [row(inputs=i, correct=i < 7) for i in range(20)]
    s = st.rate(spec("rate"), rows)
    ci = binomtest(7, 20).proportion_ci(method="wilson")
    assert (s.value, s.n) == (0.35, 20)
    assert (s.low, s.high) == pytest.approx((ci.low, ci.high))


def test_harness_errors_count_nowhere():
    rows = [row(inputs=i, correct=True) for i in range(3)]
    rows += [row(inputs=9, error_type="api_error"), row(inputs=8, error_type="scorer_error")]
    assert st.rate(spec("rate"), rows).n == 3


def test_a_turn_rate_pools_turns_and_is_no_narrower_than_the_cases_allow():
    turns = [[{"exact": True}, {"exact": True}, {"exact": False}]] * 4  # 8 of 12 turns
    rows = [row(inputs=i, parsed=t) for i, t in enumerate(turns)]
    s = st.rate(spec("rate", of="exact", per="turn"), rows)
    assert (s.value, s.n, s.extra["cases"]) == (8 / 12, 12, 4)
    # Every case alike: the bootstrap is a point, Wilson's over 4 cases (3 of 4) is not.
    assert (s.low, s.high) == pytest.approx(st.wilson(3, 4))


def test_where_top_and_bottom_choose_rows():
    rows = [row({"size": s}, inputs=(s, i), correct=s < 5) for s in (3, 4, 5) for i in range(4)]
    assert st.rate(spec("rate", top="size"), rows).value == 0
    assert st.rate(spec("rate", bottom="size"), rows).value == 1
    assert st.rate(spec("rate", where="size >= 4"), rows).value == 0.5


def test_a_where_that_names_nothing_is_the_study_files_error():
    with pytest.raises(EmulateError, match="names sise, which these rows do not have"):
        st.rate(spec("rate", where="sise > 2"), [row({"size": 3})])


def test_a_difference_pairs_runs_that_share_cases_and_not_others():
    a = [row(inputs=i, correct=i < 8) for i in range(10)]
    b_same = [row(inputs=i, correct=i < 3) for i in range(10)]
    b_other = [row(inputs=100 + i, correct=i < 3) for i in range(10)]
    done = {"a": st.rate(spec("rate"), a)}
    paired = st.difference(spec("difference", a="a", b="b"),
                           {**done, "b": st.rate(spec("rate"), b_same)})  # fmt: skip
    unpaired = st.difference(spec("difference", a="a", b="b"),
                             {**done, "b": st.rate(spec("rate"), b_other)})  # fmt: skip
    assert (paired.extra["paired"], unpaired.extra["paired"]) == (True, False)
    assert paired.value == unpaired.value == pytest.approx(0.5)
    assert (unpaired.low, unpaired.high) == pytest.approx(st.newcombe(8, 10, 3, 10))
    # Paired differences: 5 of 10 cases differ by 1, 5 by 0: a bootstrap over pairs.
    assert paired.low == pytest.approx(st.bootstrap_ci([1.0] * 5 + [0.0] * 5)[0])


def test_unpaired_means_take_welchs_interval():
    from scipy.stats import ttest_ind

    xa, xb = [0.1, 0.4, 0.3, 0.5, 0.2], [0.6, 0.9, 0.7, 0.8]
    done = {
        "a": st.mean(spec("mean", of="v"), [row(inputs=i, metrics={"v": v}) for i, v in
                                             enumerate(xa)]),
        "b": st.mean(spec("mean", of="v"), [row(inputs=10 + i, metrics={"v": v}) for i, v in
                                             enumerate(xb)]),
    }  # fmt: skip
    d = st.difference(spec("difference", a="a", b="b"), done)
    ci = ttest_ind(xa, xb, equal_var=False).confidence_interval(0.95)
    assert (d.value, d.low, d.high) == pytest.approx((0.3 - 0.75, ci.low, ci.high))


def test_hoeffding_half_width():
    # sqrt(ln(2 / 0.05) / (2 * 20)) = 0.3037 for values in [0, 1]; twice that over [-1, 1].
    assert st.hoeffding(0.5, 20, 1.0) == pytest.approx((0.5 - 0.3037, 0.5 + 0.3037), abs=1e-4)
    assert st.hoeffding(0.0, 20, 2.0) == pytest.approx((-0.6074, 0.6074), abs=1e-4)


def test_an_error_share_against_a_chance_function():
    rows = [row(inputs=i, error_type="flipped_kernel" if i < 3 else "wrong_values")
            for i in range(10)]  # fmt: skip
    s = st.error_share(spec("error_share", types=["flipped_kernel"],
                            chance="emulate.studies.chance:conv_lookalike"), [])  # fmt: skip
    assert math.isnan(s.value)
    s = st.error_share(spec("error_share", types=["flipped_kernel"], chance=0.1), rows)
    assert (s.value, s.n, s.extra["chance"]) == (0.3, 10, 0.1)


def test_conv_lookalike_chance_by_hand():
    # 1-D, kernel 2, entries 0..1: a cell takes 3 values; 3 cells: 27 arrays, 26 wrong.
    # The flipped result differs from the truth; one example output has the shape and
    # differs, one equals the truth, one has another shape: 2 lookalikes -> 2/26.
    params = {"dims": 1, "kernel": 2, "values": 1, "size": 4}
    case = Case(
        "c",
        "conv",
        1,
        params,
        0,
        None,
        {"output": [1, 2, 1]},
        "q",
        foils={"flipped_kernel": [2, 1, 1], "copied_example": [[0, 0, 1], [1, 2, 1], [1, 1]]},
    )
    wrong = Row("r", "m", "s", "chat", case, Answer("x"), Score(False, {}, "wrong_values"))
    assert conv_lookalike([wrong]) == pytest.approx(2 / 26)


def test_a_distance_is_to_the_target_minus_the_nearest_other_paired_per_row():
    rows = [row(inputs=i, metrics={"a": 0.2 + 0.01 * i, "b": 0.5, "c": 0.3}) for i in range(10)]
    s = st.distance(spec("distance", to="a", metrics={"a": "a", "b": "b", "c": "c"}), rows)
    assert (s.extra["other"], s.extra["nearest"], s.extra["paired"]) == ("c", "a", True)
    assert s.value == pytest.approx(0.245 - 0.3)


def test_expressions_allow_no_calls_but_abs_min_max_and_no_dunder_reach():
    for text in ("__import__('os')", "open('x')", "(lambda: 1)()", "[x for x in y]"):
        with pytest.raises(EmulateError):
            parse(text, "t")
    assert parse("max(a, 2) - abs(-b) < 3", "t")({"a": 1, "b": 1}) is True
    with pytest.raises(LookupError):
        parse("a.__class__", "t")({"a": 3})


def test_the_power_estimate_matches_the_sample_size_formula():
    # A rate of 0.7 over 10 cases; computes if its low bound clears 0.5. The low bound
    # moves to v - (v - low) * w / sqrt(m): it clears 0.5 once m >= ((v - low) w / 0.2)^2.
    claim = load_study(None, "quick").claims[0]
    s = st.Stat("acc_top", "rate", 0.7, *st.wilson(7, 10), 10)
    from dataclasses import replace

    from emulate.studies.expr import parse as p

    rules = {"computes": p("acc_top.low >= 0.5", "t"), "imitates": p("acc_top.high < 0", "t")}
    claim = replace(claim, thresholds={}, **rules)
    m = power_factor(claim, {"acc_top": s}, "t")
    # w = (z_0.975 + z_0.8) / z_0.975 = (1.95996 + 0.84162) / 1.95996 = 1.4294
    assert pytest.approx(1.4294, abs=1e-4) == POWER_WIDTH
    need = ((0.7 - s.low) * 1.4294 / 0.2) ** 2
    assert need <= m < need * 2 ** (1 / 8)


def test_an_inconclusive_claim_gets_its_more_cases_from_the_factor():
    claim = load_study(None, "quick").claims[6]  # C7: rebuilt.low >= 0.8 / rebuilt.high < 0.8
    rows = [row(inputs=i, parsed=[{"exact": j < 3, "own": False, "first": False} for j in range(4)])
            for i in range(3)]  # fmt: skip
    result = evaluate(claim, {"rebuild": rows}, "m")
    done = {s.name: s for s in result.stats}
    m = power_factor(claim, done, "t")
    assert result.verdict == "inconclusive"
    assert result.more_cases == math.ceil(3 * (m - 1))


@pytest.mark.parametrize(("text", "message"), [
    ('[[claim]]\nid = "X"\n', "no [[claim.run]]"),
    ('[[claim]]\nid="X"\nquestion="q"\ncomputes="a > 1"\nimitates="b"\n[[claim.run]]\nname="r"\n'
     'probe="conv"\n[[claim.stat]]\nname="a"\nkind="rate"\nrun="r"\n', "'b' is neither"),
    ('[[claim]]\nid="X"\nbogus=1\n', "unknown key 'bogus'"),
    ('[[claim]]\nid="X"\nquestion="q"\ncomputes="a"\nimitates="a"\n[[claim.run]]\nname="r"\n'
     'probe="conv"\n[[claim.stat]]\nname="a"\nkind="rate"\nrun="nope"\n', "run 'nope'"),
    ("claim = [", "not valid TOML"),
])  # fmt: skip
def test_a_bad_study_file_is_named_with_what_to_fix(tmp_path, text, message):
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(EmulateError, match=re.escape(message)):
        load_study(f)


def test_budgets_take_their_own_value_or_the_nearest_smaller():
    from emulate.studies.spec import at_budget

    v = {"quick": 1, "full": 3}
    assert [at_budget(v, b, "t") for b in ("quick", "standard", "full")] == [1, 1, 3]
    assert at_budget({"standard": 2}, "quick", "t") == 2
    assert at_budget([1, 2], "full", "t") == [1, 2]


def test_every_seeds_statistic_computes_on_an_empty_run():
    # No rows: every statistic is NaN with n 0, and no verdict is claimed.
    for claim in load_study(None, "quick").claims:
        result = evaluate(claim, {r.name: [] for r in claim.runs}, "m")
        assert result.verdict == "inconclusive", claim.id
        assert all(np.isnan(s.value) for s in result.stats), claim.id


def test_missing_evidence_holds_no_rule_whatever_the_logic_around_it():
    nan = st.Stat("x", "rate", math.nan, math.nan, math.nan, 0)
    some = st.Stat("y", "rate", 0.9, 0.85, 0.95, 40)
    env = {"x": nan, "y": some, "t": 0.5}
    for text in ("x.low > t", "not (x.low > t)", "x.low > t and y.low > t", "not x",
                 "max(x.high, y.high) < 1", "x"):  # fmt: skip
        assert parse(text, "t").holds(env) is False, text
    assert parse("x.low > t or y.low > t", "t").holds(env) is True  # decided without x
    assert parse("x.low > t and y.low > 0.99", "t").holds(env) is False  # a false conjunct


def test_arithmetic_is_on_numbers_only():
    with pytest.raises(TypeError):
        parse("'a' * 1000000000000", "t")({})
    assert parse("-a + 2 * b", "t")({"a": 1, "b": 3}) == 5


@pytest.mark.parametrize(("stat", "message"), [
    ('name="a"\nkind="rate"\nrun="r"\n[[claim.stat]]\nname="a"\nkind="rate"\nrun="r"',
     "statistic 'a' is defined twice"),
    ('name="a"\nkind="difference"\na="b"\nb="a"', "`a` must name a statistic listed before"),
    ('name="a"\nkind="breaking_point"\nrun="r"', "a breaking_point needs `axis`"),
    ('name="a"\nkind="rates"\nrun="r"', "kind 'rates'; use rate"),
    ('name="a"\nkind="rate"\nrun="r"\nwhere="size >"', "is not an expression"),
    ('name="hold"\nkind="rate"\nrun="r"', "'hold' names a statistic and a threshold"),
    ('name="../x"\nkind="rate"\nrun="r"', "use letters, digits, _ and . only"),
])  # fmt: skip
def test_a_statistic_is_checked_before_anything_runs(tmp_path, stat, message):
    f = tmp_path / "s.toml"
    f.write_text('[[claim]]\nid="X"\nquestion="q"\ncomputes="1 > 2"\nimitates="1 > 2"\n'
                 'thresholds = { hold = 0.8 }\n[[claim.run]]\nname="r"\nprobe="conv"\n'
                 f"[[claim.stat]]\n{stat}\n")  # fmt: skip
    with pytest.raises(EmulateError, match=re.escape(message)):
        load_study(f)
