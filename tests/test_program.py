import json
from dataclasses import replace
from pathlib import Path

import pytest

import emulate
from emulate.case import Answer
from emulate.errors import EmulateError
from probes.program import ProgramProbe, load_items, parse_literal, same_value

from .conftest import SHARED_DATA

PROBE = ProgramProbe()
CRUX = SHARED_DATA / "cruxeval.jsonl"


def _cases(**cell):
    grid = {"loops": 4, "prints": 1, "distractors": 0, "shots": 0} | cell
    return emulate.cases("program", grid, n=1, mode="chat")


@pytest.mark.parametrize(
    "guard,nesting,lines",
    [
        ("none", 1, 4),
        ("flag", 1, 1),
        ("hasattr", 1, 1),
        ("first_iter", 1, 1),
        ("first_iter", 2, 2),  # `if i == 0` fires once per epoch
        ("counter", 1, 2),
        ("never", 1, 0),
        ("trap", 1, 4),
    ],
)
def test_executed_truth_follows_the_code(guard, nesting, lines):
    case = _cases(guard=guard, nesting=nesting)[0]
    assert case.truth["status"] == "ok"
    assert len(case.truth["stdout"].splitlines()) == lines


def test_cache_and_seen_guards_print_once_per_distinct_shape():
    for guard in ("cache", "seen"):
        case = _cases(guard=guard, loops=5)[0]
        # Four full batches and a smaller last one: two distinct lengths.
        assert len(case.truth["stdout"].splitlines()) == 2


def test_every_generated_program_runs_cleanly():
    cases = emulate.cases("program", {"guard": ["mixed", "trap"], "nesting": [1, 2]}, n=2)
    assert all(c.truth["status"] == "ok" for c in cases)
    trap = next(c for c in cases if c.params["guard"] == "trap" and c.params["loops"] > 1)
    assert "# print the shape of the input once" in trap.inputs["program"]
    assert len(trap.foils["intent"].splitlines()) < len(trap.truth["stdout"].splitlines())


def _trap_case():
    return _cases(guard="trap", loops=3)[0]


def test_scores_exact_and_fenced_output():
    case = _trap_case()
    out = case.truth["stdout"]
    assert PROBE.score(case, Answer(out)).correct
    assert PROBE.score(case, Answer(f"Here you go:\n```text\n{out}```\n")).correct


def test_following_the_comment_is_flagged():
    case = _trap_case()
    score = PROBE.score(case, Answer(case.foils["intent"]))
    assert score.error_type == "intent_over_semantics"
    assert score.metrics["trap_emitted"] == 1 and score.metrics["trap_expected"] == 3
    # Printed once, but with the text changed, as in the seed: still the comment's intent.
    changed = case.foils["intent"].replace(case.inputs["literals"][0], "Input shape:")
    s = PROBE.score(case, Answer(changed))
    assert s.metrics["intent_over_semantics"] and s.metrics["literal_fidelity"] == 0


def test_other_error_types():
    case = _trap_case()
    lines = case.truth["stdout"].splitlines()
    assert PROBE.score(case, Answer("")).error_type == "empty"
    s = PROBE.score(case, Answer("\n".join(lines + lines)))
    assert s.error_type == "extra_lines" and s.metrics["line_recall"] == 1
    case = _cases(guard="none", loops=3, prints=2)[0]
    lines = case.truth["stdout"].splitlines()
    s = PROBE.score(case, Answer("\n".join(lines[:-1])))
    assert s.error_type == "missing_lines" and s.metrics["line_precision"] == 1
    literal = case.inputs["literals"][0]
    s = PROBE.score(case, Answer(case.truth["stdout"].replace(literal, literal.upper() + "!")))
    assert s.error_type == "literal_changed" and s.metrics["literal_fidelity"] < 1


@pytest.mark.skipif(not CRUX.exists(), reason="needs ../shared/data")
def test_every_cruxeval_item_executes_to_its_published_output():
    published = [json.loads(line) for line in CRUX.read_text().splitlines()]
    cases = emulate.cases("program", {"items": str(CRUX)}, n=1, mode="completion")
    assert len(cases) == len(published) == 800
    for case, item in zip(cases, published, strict=True):
        assert case.truth["status"] == "ok", item["id"]
        assert same_value(case.truth["value"], item["output"]), item["id"]
        # The published output, given as an answer, scores correct.
        assert PROBE.score(case, Answer(f" {item['output']}\n")).correct, item["id"]


def test_answers_are_parsed_never_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    value, why = parse_literal(evil)
    assert value is None and "not a Python literal" in why
    assert not marker.exists()
    assert parse_literal("assert f(1) == [1, 'a']")[0] == [1, "a"]
    assert same_value("'a'", '"a"') and not same_value("1", "True")


def _items(tmp_path: Path, *records) -> str:
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return str(path)


def test_item_with_a_syntax_error_is_named(tmp_path):
    path = _items(tmp_path, {"id": "ok", "code": "def f(x):\n    return x", "input": "1"},
                  {"id": "broken", "code": "def f(x) return x", "input": "1"})  # fmt: skip
    with pytest.raises(EmulateError, match=r"line 2 \(broken\): code has a syntax error"):
        load_items(path)


def test_a_program_that_hangs_yields_a_marked_truth_not_a_hung_run(tmp_path):
    path = _items(
        tmp_path, {"id": "spin", "code": "def f():\n    while True:\n        pass", "input": ""}
    )
    case = emulate.cases("program", {"items": path}, n=1)[0]
    assert case.truth["status"] == "cpu"
    score = PROBE.score(case, Answer("None"))
    assert not score.correct and score.error_type == "no_truth"


def test_item_ids_do_not_depend_on_where_the_file_lies(tmp_path):
    record = {"id": "a", "code": "def f(x):\n    return x", "input": "1", "output": "1"}
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    a = emulate.cases("program", {"items": _items(tmp_path / "one", record)}, n=1)[0]
    b = emulate.cases("program", {"items": _items(tmp_path / "two", record)}, n=1)[0]
    assert a.id == b.id
    assert replace(a, prompt=b.prompt) == b
