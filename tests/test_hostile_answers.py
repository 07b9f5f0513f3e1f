"""Hostile answers: every probe's scorer, fed what a broken or adversarial model could
send (long runs of one character, huge numbers, deep nesting, binary, extreme
logprobs), answers in linear time and never raises: a scorer_error is a bug in
emulate, so fuzzing must never reach one.

Measured on this 2-core machine, no scorer takes more than 0.8 s on any megabyte here;
the budget per call is 2 s so that a loaded CI machine does not fail it, and the
quadratic parsers it guards against took 15-60 s."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import emulate
from emulate.case import Answer, TokenLogprob

from .test_styles import SUBJECTS, Subject

# Pieces a hostile answer repeats: whitespace, digits and signs, the words and marks
# that parsers look for (fences, labels, prompts, epochs, brackets), and binary.
UNITS = [
    " ", "\t", "\n", "1       ", "9", "-9", "1e9", "1.", "1,", "Epoch 1 ", "loss: 1",
    "[", "(", "{", "]", "```\n", "```", "$$", "the answer is ", "Output:", "**",
    "user@ubuntu:~$ ", "<think>", "[ANSWER]", "\x00", "\xff", "\u202e", "'", '"', "x", "|",
    "&", "\\\\", "\\begin{bmatrix}", "MiB / ", "GPU 0: ", "accuracy: ", "torch.Size(",
    "@:",  # a shell prompt's pattern backtracked cubically on these (hypothesis found it)
]  # fmt: skip
MB = 1_000_000
BUDGET_S = 2.0


def _subjects(tmp: Path) -> dict[str, Subject]:
    out = {}
    for name, make in SUBJECTS.items():
        if not emulate.get_probe(name.split()[0]).missing():
            out[name] = make(tmp)
    return out


@pytest.fixture(scope="module")
def subjects(tmp_path_factory) -> dict[str, Subject]:
    return _subjects(tmp_path_factory.mktemp("hostile"))


def _grade(sub: Subject, text: str):
    answer = [text] * len(sub.truth) if sub.case.probe == "shell" else text
    if sub.case.probe == "shell":
        # The whole answer is the megabyte: split it across the turns.
        answer = [text[: max(1, len(text) // len(sub.truth))]] * len(sub.truth)
    start = time.perf_counter()
    score = emulate.grade(sub.case, answer)
    return score, time.perf_counter() - start


def _check(sub: Subject, name: str, text: str, budget: float = BUDGET_S) -> None:
    score, took = _grade(sub, text)
    assert score.error_type != "scorer_error", f"{name}: {score.reason} on {text[:60]!r}…"
    assert took < budget, f"{name}: {took:.2f}s on {len(text):,} chars of {text[:30]!r}…"


def _one_piece(subjects: dict[str, Subject], unit: str, size: int, budget: float) -> None:
    """The worst shapes for a backtracking parser: one piece repeated to `size`, alone,
    before an `x`, and inside brackets."""
    text = (unit * (size // len(unit) + 1))[:size]
    for name, sub in subjects.items():
        for variant in (text, text + "x", "[" + text[:-2] + "]"):
            _check(sub, name, variant, budget)


@pytest.mark.parametrize("unit", UNITS)
def test_a_hundred_kilobytes_of_one_piece_is_scored_fast(subjects, unit):
    # Linear scorers take under 0.15 s here; the quadratic ones took 0.75-70 s. The
    # budget is the module's 2 s: 0.5 s once failed a CI run at 0.51 s, on a scorer
    # that takes 0.03-0.08 s; the megabyte test (faults) catches the milder quadratics.
    _one_piece(subjects, unit, MB // 10, budget=BUDGET_S)


@pytest.mark.faults
@pytest.mark.parametrize("unit", UNITS)
def test_a_megabyte_of_one_piece_is_scored_fast(subjects, unit):
    _one_piece(subjects, unit, MB, BUDGET_S)


@pytest.mark.parametrize(
    "text",
    [
        "9" * 5000, "-" + "9" * 100_000, "1e999", "-1e999", "[" + "9" * 5000 + "]",
        "[[" + ", ".join(["1e308"] * 50) + "]]", "[" * 100_000 + "]" * 100_000,
        "(" * 50_000, "nan", "[nan, inf]", "Depth: " + "9" * 10_000, "0x" + "f" * 10_000,
        "Epoch 1/3, loss: " + "9" * 10_000, "nproc\n" + "9" * 10_000,
    ],
)  # fmt: skip
def test_huge_numbers_and_deep_nesting_are_wrong_answers(subjects, text):
    for name, sub in subjects.items():
        score, _ = _grade(sub, text)
        assert score.error_type != "scorer_error", f"{name}: {score.reason}"
        assert not score.correct


pieces = st.sampled_from(UNITS) | st.text(min_size=1, max_size=8)
hostile = st.lists(st.tuples(pieces, st.integers(1, 3000)), min_size=1, max_size=6).map(
    lambda parts: "".join(p * k for p, k in parts)
)


def _fuzz(examples: int, binary_size: int):
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(text=hostile | st.binary(max_size=binary_size).map(lambda b: b.decode("latin-1")))
    def fuzz(subjects, text):
        for name, sub in subjects.items():
            _check(sub, name, text)

    return fuzz


test_fuzzed_answers_never_reach_scorer_error = _fuzz(150, 2000)
test_long_fuzz_never_reaches_scorer_error = pytest.mark.faults(_fuzz(2000, 20_000))


def _next_token_case():
    return emulate.cases("brackets", {"task": "next_token", "length": 10, "depth": 3}, n=1)[0]


finite_or_not = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [1e308, -1e308, 710.0, -745.2, 0.0, 5e-324, math.inf, -math.inf, math.nan]
)
tokens = st.sampled_from([")", "]", "}", ">", " )", "(", "x", "", "\x00", "))"])


@settings(max_examples=500, deadline=None)
@given(
    top=st.lists(st.tuples(tokens, finite_or_not), max_size=8),
    first=st.tuples(tokens, finite_or_not),
)
def test_extreme_logprobs_are_a_wrong_answer_not_a_crash(top, first):
    case = _next_token_case()
    answer = Answer("", logprobs=(TokenLogprob(first[0], first[1], tuple(top)),))
    score = emulate.grade(case, answer)
    assert score.error_type != "scorer_error", score.reason
    valid = [lp for _, lp in (top or [first])]
    if any(math.isnan(lp) or lp > 1e-6 for lp in valid):
        assert not score.correct and score.error_type == "bad_logprobs"
