"""Grids, case ids and the registry."""

import pytest

import emulate
from emulate.case import Answer, Case, Score, case_id
from emulate.errors import EmulateError
from emulate.probe import HARNESS_ERRORS, Probe, covariate, expand, metric, parse_grid, score_case
from emulate.prompt import PerMode, render
from emulate.registry import PROBES, get_probe


def test_case_ids_are_stable_across_machines_and_releases():
    # A changed id silently breaks resume and paired comparison: bump the probe's
    # version instead when its cases change.
    assert case_id("conv", 1, {"size": 3, "kernel": 2}, 0) == "26893b5e0c7c6ae9"
    assert case_id("conv", 1, {"kernel": 2, "size": 3}, 0) == "26893b5e0c7c6ae9"
    assert case_id("conv", 2, {"kernel": 2, "size": 3}, 0) != "26893b5e0c7c6ae9"


def test_cases_are_deterministic_and_independent_of_grid_order():
    a = emulate.cases("conv", {"size": [3, 4]}, n=2, seed=5)
    b = emulate.cases("conv", {"size": [4, 3]}, n=2, seed=5)
    assert {c.id: c.truth for c in a} == {c.id: c.truth for c in b}
    assert len({c.id for c in a}) == len(a)


def test_grid_values_form_a_product():
    probe = get_probe("conv")
    grid = parse_grid(probe, ["size=3,4", "kernel=1,2", "dims=1", "values=9"])
    assert len(expand(probe, grid)) == 4


def test_impossible_cells_are_an_error_or_skipped_with_a_note(capsys):
    probe = get_probe("conv")
    grid = {"size": [3, 6], "kernel": [5], "dims": [1], "values": [9]}
    with pytest.raises(EmulateError, match="size=3 kernel=5"):
        expand(probe, grid)
    cells = expand(probe, grid, skip_impossible=True)
    assert [c["size"] for c in cells] == [6]
    assert "skipped 1 of 2 grid cells" in capsys.readouterr().err


def test_api_grid_values_are_validated_too():
    with pytest.raises(EmulateError, match="stride=9 is out of range"):
        emulate.cases("conv", {"stride": 9})


def test_every_registered_probe_loads_and_declares_its_columns():
    for name in PROBES:
        probe = get_probe(name)
        assert probe.name == name and probe.version >= 1 and probe.summary
        names = [p.name for p in probe.params]
        columns = [c.name for c in probe.columns]
        assert len(columns) == len(set(columns)), "a column is declared twice"
        assert not set(names) & set(columns), "a parameter and a column share a name"
        assert {c.kind for c in probe.columns} <= {"metric", "covariate"}
        assert "chance" not in columns and "mode" not in columns  # fields of the case
        if probe.missing():
            continue  # e.g. torch or bubblewrap not here; their own tests skip too
        case = emulate.cases(name, n=1)[0]
        assert case.probe == name


@pytest.mark.parametrize("name", list(PROBES))
def test_cases_and_scores_keep_the_typed_contract(name):
    """Inputs and truth are the probe's dataclasses; covariates and metrics are the
    declared columns, each value of its declared type, in cases of every task and in
    scores of a right, a wrong and an empty answer."""
    probe = get_probe(name)
    if why := probe.missing():
        pytest.skip(why)
    declared = {c.name: c for c in probe.columns}
    grids = {"brackets": [{"task": t} for t in ("complete", "classify", "depth")],
             "shell": [{"task": "session"}, {"task": "persona"}]}.get(name, [{}])  # fmt: skip
    for grid in grids:
        case = emulate.cases(name, grid, n=1)[0]
        inputs, truth = probe.types(case.params)
        assert isinstance(case.inputs, inputs) and isinstance(case.truth, truth)
        assert set(case.covariates) == set(probe.covariates)
        for key, value in case.covariates.items():
            declared[key].check(value)
        right = probe.answer_text(case)
        texts = [right, right[:-1] + ("x" if right[-1:] != "x" else "y"), ""]
        turns = len(getattr(case.inputs, "commands", [None]))
        for text in texts:
            score = emulate.grade(case, [text] * turns if name == "shell" else text)
            assert score.error_type != "scorer_error", score.reason
            assert set(score.metrics) == set(probe.metrics)
            for key, value in score.metrics.items():
                declared[key].check(value)


def test_a_probe_this_machine_cannot_run_says_what_to_install(monkeypatch):
    probe = get_probe("training")
    monkeypatch.setattr(type(probe), "missing", lambda self: "needs X: pip install X")
    with pytest.raises(EmulateError, match="training: needs X: pip install X"):
        emulate.cases("training", n=1)


@pytest.mark.parametrize("n", [1, 5])
@pytest.mark.parametrize("name", ["conv", "brackets"])
def test_a_plan_built_in_chunks_is_the_run_built_at_once(name, n):
    # Runs stream their cases chunk by chunk; the chunks must be exactly the cases
    # Probe.build makes in one go (ids, inputs, truths, prompts), in the same order.
    from dataclasses import replace

    from emulate.probe import plan_cases

    probe = get_probe(name)
    grid = {"size": [3, 4]} if name == "conv" else {"depth": [2, 3], "length": [8, 10]}
    plan = replace(plan_cases(probe, grid, n, 7, "chat"), chunk=2)
    whole = probe.build(list(plan.cells), n, 7, "chat")
    assert len(plan) == len(whole) == len(plan.cells) * n
    assert [c.to_json() for c in plan] == [c.to_json() for c in whole]
    assert max(len(chunk) for chunk in plan.chunks()) == 2


# --- the checked contract: render's stop and budget, declared error types and metrics ---


def test_render_gives_each_mode_its_stop_and_budget():
    budget = PerMode(chat=40, completion=8)
    chat = render("chat", "1 + 1 =", budget=budget, completion_stop=("\n",))
    text = render("completion", "1 + 1 =", budget=budget, completion_stop=("\n",))
    assert (chat.stop, chat.max_tokens) == ((), 40)  # a chat model ends its own turn
    assert (text.stop, text.max_tokens) == (("\n",), 8)
    only = render("chat", "q", intro=PerMode(chat="Answer briefly.", completion=""))
    assert only.prompt == ({"role": "user", "content": "Answer briefly.\n\nq"},)
    assert (
        render("completion", "q", intro=PerMode(chat="Answer briefly.", completion="")).prompt
        == "q"
    )
    with pytest.raises(EmulateError, match="mode 'base'"):
        render("base", "q")  # type: ignore[arg-type]


class _Sum(Probe):
    name = "sum-contract-test"
    version = 1
    Inputs = dict
    Truth = dict
    summary = "a probe whose scorer says what it is told to"
    params = ()
    columns = (metric("abs_err"), metric("exact", bool), covariate("digits"))
    error_types = (*HARNESS_ERRORS, "wrong")

    def __init__(self, score: Score | None = None):
        self.given = score

    def score(self, case, answer):
        return self.given


def _case(probe: Probe, **fields) -> Case:
    rendered = render("completion", "1 + 1 =", budget=8, completion_stop=("\n",))
    return probe.new_case("c1", {}, 0, inputs={}, truth={}, prompt=rendered, **fields)


def test_new_case_takes_a_rendered_prompt_with_its_stop_and_budget():
    case = _case(_Sum())
    assert (case.prompt, case.stop, case.max_tokens, case.mode) == ("1 + 1 =", ("\n",), 8,
                                                                    "completion")  # fmt: skip
    # A probe written before render carried them passes its own, which win.
    assert _case(_Sum(), max_tokens=3, stop=()).max_tokens == 3


@pytest.mark.parametrize(
    "score, why",
    [
        (Score(False, {"abs_err": 1.0}, "wrong_thing"), "error type 'wrong_thing' is not declared"),
        (Score(False, {"abs_error": 1.0}, "wrong"), "metric 'abs_error' is not a declared column"),
        (Score(False, {"exact": "yes"}, "wrong"), "column exact is bool"),
        (Score(False, {"abs_err": "1"}, "wrong"), "column abs_err is float"),
    ],
)
def test_a_score_outside_the_declared_contract_is_a_scorer_error(score, why):
    probe = _Sum(score)
    case = _case(probe)
    with pytest.raises(TypeError, match=why):
        probe.grade(case, Answer("2"))
    row = score_case(probe, case, Answer("2"))  # the runner's: a bug is a row, not a crash
    assert row.error_type == "scorer_error" and why in row.reason


def test_declared_scores_and_failed_requests_pass():
    probe = _Sum(Score(False, {"abs_err": 1, "exact": False}, "wrong"))
    assert probe.grade(_case(probe), Answer("3")).error_type == "wrong"
    assert probe.grade(_case(probe), Answer("", error="timeout")).error_type == "api_error"


def test_a_probe_that_declares_no_error_types_has_only_its_metrics_checked():
    class Undeclared(_Sum):
        error_types = None

    probe = Undeclared(Score(False, {"abs_err": 1.0}, "anything_at_all"))
    assert probe.grade(_case(probe), Answer("3")).error_type == "anything_at_all"
    probe = Undeclared(Score(False, {"nope": 1.0}, "wrong"))
    with pytest.raises(TypeError, match="metric 'nope'"):
        probe.grade(_case(probe), Answer("3"))


@pytest.mark.parametrize("name", list(PROBES))
def test_every_builtin_probe_declares_its_error_types(name):
    kinds = get_probe(name).error_types
    assert kinds is not None and set(HARNESS_ERRORS) <= set(kinds)
    assert len(kinds) == len(set(kinds)) and all(isinstance(k, str) and k for k in kinds)


def test_a_builtin_scorer_giving_an_undeclared_error_type_is_caught(monkeypatch):
    probe = get_probe("conv")
    case = emulate.cases("conv", {"dims": 1, "size": 3, "kernel": 2}, n=1)[0]
    assert probe.grade(case, Answer("")).error_type == "empty"
    monkeypatch.setattr(
        type(probe), "error_types", tuple(k for k in probe.error_types if k != "empty")
    )
    with pytest.raises(TypeError, match="'empty' is not declared"):
        probe.grade(case, Answer(""))


@pytest.mark.parametrize(
    "probe,grid",
    [("conv", {"dims": 2}), ("brackets", {"task": "next_token"}), ("shell", {}),
     ("shell", {"task": "persona"}), ("program", {"guard": "trap"})],
)  # fmt: skip
def test_a_journal_line_is_the_rows_json_whatever_the_case_holds(probe, grid):
    """Row.to_line writes the case's typed inputs and truth through json's default hook
    instead of asdict(): the text must be exactly json.dumps(to_json())."""
    import json

    from emulate.case import Answer, Row, Score

    if why := get_probe(probe).missing():
        pytest.skip(why)
    for case in emulate.cases(probe, grid, n=2):
        answer = Answer("é [1, 2]", turns=("a", "b"), finish_reason="stop")
        row = Row("r", "m", "s", case.mode, case, answer, Score(True, {"x": 1.5}, None, "ok", [1]))
        assert row.to_line() == json.dumps(row.to_json(), ensure_ascii=False)
        assert Row.from_json(json.loads(row.to_line())).to_json() == row.to_json()
