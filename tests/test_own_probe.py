"""A researcher's own probe, written here and registered nowhere, goes through run,
cases, report, compare and rescore like a built-in one (issue 15, part 1).

The server is a loopback double: the test is about the harness, not a model."""

from dataclasses import dataclass

import pytest

import emulate
from emulate.case import Score, case_id, case_rng
from emulate.errors import EmulateError
from emulate.extract import Policy, find
from emulate.probe import Param, Probe, covariate, metric
from emulate.prompt import render
from emulate.registry import register


@dataclass(frozen=True)
class Pair:
    a: int
    b: int


@dataclass(frozen=True)
class Total:
    total: int


# The shared extraction reads "the answer is 12." and friends; the probe's own label
# makes "the sum is 12." an answer marker too.
SUM = Policy(labels=("sum",))


class AddProbe(Probe):
    name = "add-test"
    version = 1
    Inputs = Pair
    Truth = Total
    summary = "add two integers"
    params = (Param("digits", (1, 3), "digits per number", lo=1, hi=9),)
    columns = (metric("abs_err"), covariate("carries"))
    summary_axes = ("carries",)

    def make_case(self, cell, seed, mode):
        cid = case_id(self.name, self.version, cell, seed)
        rng = case_rng(cid)
        a, b = (int(rng.integers(10 ** (cell["digits"] - 1), 10 ** cell["digits"])) for _ in "ab")
        carries = sum(
            int(x) + int(y) >= 10 for x, y in zip(str(a)[::-1], str(b)[::-1], strict=False)
        )
        return self.new_case(
            cid, dict(cell), seed, inputs=Pair(a, b), truth=Total(a + b),
            prompt=render(mode, f"{a} + {b} =", system="Reply with the number only."),
            covariates={"carries": carries}, max_tokens=16,
        )  # fmt: skip

    def score(self, case, answer):
        found = find(answer.text, int, SUM)
        if found is None:
            return Score(False, {"abs_err": None}, "unparseable", "no integer in the answer")
        err = abs(found.value - case.truth.total)
        return Score(err == 0, {"abs_err": err}, None if err == 0 else "wrong", None, found.value)


@pytest.mark.enable_socket
def test_a_script_probe_runs_through_run_report_compare_and_rescore(fake_server, tmp_path):
    probe = AddProbe()
    cases = emulate.cases(probe, n=2, mode="completion")
    assert len(cases) == 4 and all(c.truth.total == c.inputs.a + c.inputs.b for c in cases)
    fake_server.completion(" 12")
    common = dict(n=2, model="fake", base_url=fake_server.url, mode="completion", progress=False)
    a = emulate.run(probe, out=tmp_path / "a", **common)
    assert a.done == 4 and a.correct == sum(c.truth.total == 12 for c in cases)
    right = str(cases[0].truth.total)
    fake_server.script.clear()
    fake_server.completion(f"The sum is {right}.")
    b = emulate.run(probe, out=tmp_path / "b", **common)
    assert b.correct == sum(c.truth.total == int(right) for c in cases)
    rep = emulate.report([tmp_path / "a", tmp_path / "b"], tmp_path / "report")
    assert {p.name for p in rep.plots} == {"add-test-digits.png", "add-test-carries.png"}
    diff = emulate.compare(tmp_path / "a", tmp_path / "b")
    assert diff.describe()  # paired on the same four case ids
    again = emulate.rescore([tmp_path / "b"], tmp_path / "b2")
    assert [r.changed_rows for r in again] == [0]


def test_a_script_probe_may_not_take_a_built_in_name():
    class Imposter(AddProbe):
        name = "conv"

    with pytest.raises(EmulateError, match="clashes with emulate's"):
        register(Imposter())
    with pytest.raises(EmulateError, match="needs a `name`"):
        register(type("Nameless", (AddProbe,), {"name": ""})())
