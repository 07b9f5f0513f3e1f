import json
from dataclasses import replace
from pathlib import Path

import pytest

import emulate
from emulate.case import Answer
from emulate.errors import EmulateError
from emulate.values import equal, literal, read_literal
from probes.cruxeval import Item, ItemTruth, disagreement, load_items, may_vary
from probes.program import ProgramProbe

from .conftest import PUBLISHED

PROBE = ProgramProbe()
CRUX = PUBLISHED / "cruxeval" / "cruxeval.jsonl"


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
    assert case.truth.ok
    assert len(case.truth.stdout.splitlines()) == lines


def test_cache_and_seen_guards_print_once_per_distinct_shape():
    for guard in ("cache", "seen"):
        case = _cases(guard=guard, loops=5)[0]
        # Four full batches and a smaller last one: two distinct lengths.
        assert len(case.truth.stdout.splitlines()) == 2


def test_every_generated_program_runs_cleanly():
    cases = emulate.cases("program", {"guard": ["mixed", "trap"], "nesting": [1, 2]}, n=2)
    assert all(c.truth.ok for c in cases)
    trap = next(c for c in cases if c.params["guard"] == "trap" and c.params["loops"] > 1)
    assert "# print the shape of the input once" in trap.inputs.program
    assert len(trap.foils["intent"].splitlines()) < len(trap.truth.stdout.splitlines())


def _trap_case():
    return _cases(guard="trap", loops=3)[0]


def test_scores_exact_and_fenced_output():
    case = _trap_case()
    out = case.truth.stdout
    assert PROBE.score(case, Answer(out)).correct
    assert PROBE.score(case, Answer(f"Here you go:\n```text\n{out}```\n")).correct


def test_following_the_comment_is_flagged():
    case = _trap_case()
    score = PROBE.score(case, Answer(case.foils["intent"]))
    assert score.error_type == "intent_over_semantics"
    assert score.metrics["trap_emitted"] == 1 and case.covariates["trap_expected"] == 3
    # Printed once, but with the text changed, as in the seed: still the comment's intent.
    changed = case.foils["intent"].replace(case.inputs.literals[0], "Input shape:")
    s = PROBE.score(case, Answer(changed))
    assert s.metrics["intent_over_semantics"] and s.metrics["literal_fidelity"] == 0


def test_other_error_types():
    case = _trap_case()
    lines = case.truth.stdout.splitlines()
    assert PROBE.score(case, Answer("")).error_type == "empty"
    s = PROBE.score(case, Answer("\n".join(lines + lines)))
    assert s.error_type == "extra_lines" and s.metrics["line_recall"] == 1
    case = _cases(guard="none", loops=3, prints=2)[0]
    lines = case.truth.stdout.splitlines()
    s = PROBE.score(case, Answer("\n".join(lines[:-1])))
    assert s.error_type == "missing_lines" and s.metrics["line_precision"] == 1
    literal = case.inputs.literals[0]
    s = PROBE.score(case, Answer(case.truth.stdout.replace(literal, literal.upper() + "!")))
    assert s.error_type == "literal_changed" and s.metrics["literal_fidelity"] < 1


def test_every_cruxeval_item_executes_to_its_published_output():
    published = [json.loads(line) for line in CRUX.read_text().splitlines()]
    cases = emulate.cases("program", {"items": str(CRUX)}, n=1, mode="completion")
    assert len(cases) == len(published) == 800
    for case, item in zip(cases, published, strict=True):
        assert case.truth.ok, item["id"]
        assert equal(literal(case.truth.value)[1], literal(item["output"])[1]), item["id"]
        assert case.covariates["published_agrees"] is True, item["id"]
        # The published output, given as an answer, scores correct.
        assert PROBE.score(case, Answer(f" {item['output']}\n")).correct, item["id"]


def test_answers_are_parsed_never_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    with pytest.raises(ValueError):
        read_literal(evil)
    assert not marker.exists()
    assert read_literal("assert f(1) == [1, 'a']") == [1, "a"]
    assert read_literal("assert f('a==b') == 'x'") == "x"
    assert read_literal("'a'") == read_literal('"a"')


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
    assert case.truth.status == "cpu"
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


# --- items as chat models answer them, and items as strangers write them ------------------


def _item_case(tmp_path, code, input, output=None, **grid):
    record = {"id": "it", "code": code, "input": input}
    if output is not None:
        record["output"] = output
    return emulate.cases("program", {"items": _items(tmp_path, record), **grid}, n=1)[0]


@pytest.mark.parametrize(
    "text",
    [
        "```python\nTrue\n```",
        "```\nTrue\n```",
        "```python\nTrue",
        "assert f('a==b') == True",
        "[ANSWER]\nassert f('a==b') == True\n[/ANSWER]",
        "The function compares the halves.\n\nSo the answer is **True**.",
        "True\n\nThe two halves are equal, so f returns True.",
    ],
)
def test_item_answers_in_chat_styles_score_correct(tmp_path, text):
    case = _item_case(tmp_path, "def f(s):\n    a, b = s.split('==')\n    return a == b", "'a==a'")
    assert PROBE.score(case, Answer(text)).correct
    near = text.replace("True", "False")
    assert PROBE.score(case, Answer(near)).error_type == "wrong_value"


def test_multi_line_answers_and_inputs_are_read_whole(tmp_path):
    code = "def f(d):\n    return {k: v * 2 for k, v in d.items()}"
    case = _item_case(tmp_path, code, "{\n  'a': 1,\n  'b': 2,\n}")
    assert case.truth.value == "{'a': 2, 'b': 4}"
    assert PROBE.score(case, Answer("```python\n{\n    'a': 2,\n    'b': 4,\n}\n```")).correct


def test_one_equality_rule_at_every_depth_with_a_type_exact_metric(tmp_path):
    case = _item_case(tmp_path, "def f(x):\n    return [x, x + 1]", "2")
    for text, exact_type in (("[2, 3]", True), ("[2.0, 3.0]", False)):
        s = PROBE.score(case, Answer(text))
        assert s.correct and s.metrics["exact_type"] is exact_type
    top = _item_case(tmp_path, "def f(x):\n    return x", "2")
    s = PROBE.score(top, Answer("2.0"))
    assert s.correct and s.metrics["exact_type"] is False  # as CRUXEval's == has it
    assert not PROBE.score(top, Answer("(2,)")).correct


def test_what_a_function_prints_is_kept_apart_from_what_it_returns(tmp_path):
    code = "def f(n):\n    print('working on', n)\n    return n * 2"
    case = _item_case(tmp_path, code, "3")
    assert case.truth.value == "6" and case.truth.stdout == "working on 3\n"
    assert PROBE.score(case, Answer("6")).correct


def test_an_item_without_the_function_to_call_is_named(tmp_path):
    other = {"id": "HumanEval/3", "code": "def below_zero(xs):\n    return 0", "input": "[]"}
    path = _items(tmp_path, {"id": "ok", "code": "def f(x):\n    return x", "input": "1"}, other)
    with pytest.raises(EmulateError, match=r"line 2 \(HumanEval/3\): the code defines no 'f'"):
        emulate.cases("program", {"items": path}, n=1)
    one = _items(tmp_path, {"id": "h", "code": "def below_zero(xs):\n    return 0", "input": "[]"})
    case = emulate.cases("program", {"items": one, "entry": "below_zero"}, n=1)[0]
    assert case.truth.value == "0" and case.prompt.endswith("assert below_zero([]) ==")
    with pytest.raises(EmulateError, match="entry='1x' is not valid"):
        emulate.cases("program", {"items": one, "entry": "1x"}, n=1)


def test_a_published_output_that_execution_contradicts_is_flagged_and_counted(tmp_path, capsys):
    case = _item_case(tmp_path, "def f(x):\n    return x + 1", "1", output="3")
    assert case.covariates["published_agrees"] is False
    assert "1 of 1 items' published outputs disagree" in capsys.readouterr().err
    assert PROBE.score(case, Answer("2")).correct  # scored against execution
    assert PROBE.notes([{"published_agrees": False}, {"published_agrees": True}]) == [
        disagreement(1, 2)
    ]
    assert _item_case(tmp_path, "def f(x):\n    return x", "1", output="1.0").covariates[
        "published_agrees"
    ]


def test_truths_do_not_depend_on_the_hash_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("EMULATE_CACHE", "")  # every run executes afresh
    code = "def f(s):\n    return list(set(s.split()))"
    words = "'alpha beta gamma delta epsilon zeta eta theta iota kappa'"
    values = {_item_case(tmp_path, code, words).truth.value for _ in range(4)}
    assert len(values) == 1
    case = _item_case(tmp_path, code, words)
    assert case.covariates["hash_dependent"] is True
    plain = _item_case(tmp_path, "def f(s):\n    return sorted(set(s.split()))", words)
    assert plain.covariates["hash_dependent"] is False


def test_printing_a_set_of_strings_is_hash_dependent_and_plain_code_is_not(tmp_path, monkeypatch):
    monkeypatch.setenv("EMULATE_CACHE", "")
    words = "'alpha beta gamma delta epsilon zeta eta theta iota kappa'"
    printed = _item_case(tmp_path, "def f(s):\n    print(set(s.split()))\n    return 0", words)
    assert printed.truth.value == "0" and printed.covariates["hash_dependent"] is True
    plain = _item_case(tmp_path, "def f(s):\n    return s.upper().split()[::-1]", words)
    assert plain.covariates["hash_dependent"] is False


def _varies(code: str, input: str = "'a b'", value: str = "0", stdout: str = "") -> bool:
    return may_vary(Item("it", code, input, None), ItemTruth(stdout, "ok", "", value))


@pytest.mark.parametrize(
    "code,input",
    [
        ("def f(s):\n    return {c for c in s}", "'ab'"),  # a set comprehension
        ("def f(s):\n    return sorted({'x', s})", "'ab'"),  # a set literal
        ("def f(s):\n    return list(frozenset(s))", "'ab'"),
        ("def f(s):\n    return hash(s) % 7", "'ab'"),
        ("def f(s):\n    return s.__hash__()", "'ab'"),
        ("def f(a, b):\n    return list(a.keys() - b.keys())", "{'x': 1}, {'y': 2}"),
        ("def f(a, b):\n    k = a.items()\n    k ^= b.items()\n    return k", "{}, {}"),
        ("def f(s):\n    return getattr(s, 'upper')()", "'ab'"),
        ("import random\ndef f(s):\n    return s", "'ab'"),
        ("def f(s):\n    return sorted(s)", "{'a', 'b'}"),  # the set is in the input
        ("def f(g):\n    return g.gi_frame.f_builtins", "(x for x in ())"),
        # set() reached through __builtins__, no builtin named
        ("def f(s):\n    b = __builtins__\n    return ''.join(b.set(s))", "'abcdefgh'"),
        # the operator in the code, the dict views in the call
        ("def f(a, b):\n    return list(a | b)", "{'ab': 1}.keys(), {'cd': 2}.keys()"),
    ],
)
def test_code_that_could_reach_hashing_runs_under_a_second_seed(code, input):
    assert _varies(code, input)


def test_only_a_few_cruxeval_items_and_no_plain_code_run_twice():
    assert not _varies("def f(s):\n    return sorted(s.split(), key=len)[::-1]")
    assert not _varies("def f(d):\n    return list(d.items())", "{'b': 1, 'a': 2}")
    # An address (a default repr) differs from run to run, as the hash seed's check sees.
    assert _varies("def f():\n    return f", "", value="<function f at 0x7f3a2c>")
    assert not may_vary(Item("it", "def f():\n    return {1}", "", None), ItemTruth("", "cpu"))
    items = load_items(CRUX)
    assert sum(_varies(item.code, item.input) for item in items) <= len(items) // 50


def test_case_ids_come_from_the_items_content_not_the_files_name(tmp_path):
    record = {"id": "a", "code": "def f(x):\n    return x", "input": "1", "output": "1"}
    first = Path(_items(tmp_path, record))
    renamed = first.rename(tmp_path / "another-name.jsonl")
    a = emulate.cases("program", {"items": str(renamed)}, n=1)[0]
    b = emulate.cases("program", {"items": _items(tmp_path, record | {"id": "b"})}, n=1)[0]
    assert a.id == b.id
