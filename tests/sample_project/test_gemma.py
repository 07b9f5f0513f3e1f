"""Does Gemma 3 270M still close brackets? Recorded once against the embedded model
(`pytest --emulate-record-mode=once`), then replayed offline, network blocked."""

from pathlib import Path

import pytest

from emulate.testing import assert_accuracy, assert_no_regression

HERE = Path(__file__).parent
NEXT_BRACKET = {"task": "next_token", "types": 4, "depth": [2, 4], "length": [8, 16, 24]}


def test_it_closes_brackets(emulate_run):
    result = emulate_run("brackets", NEXT_BRACKET, n=4)
    assert_accuracy(result, at_least=0.5)  # the 95% Wilson lower bound, not the point


@pytest.mark.emulate(cassette="cassettes/test_gemma/test_it_closes_brackets.json")
def test_it_closes_them_as_well_as_last_month(emulate_run):
    result = emulate_run("brackets", NEXT_BRACKET, n=4)
    assert_no_regression(HERE / "baselines" / "next-bracket", result)  # exact McNemar
