"""The shared answer-extraction rules (emulate/extract.py), rule by rule."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulate.extract import BLOCK, VALUE, Policy, candidates, fences, find, region


def _int(text: str) -> int:
    if not text.strip().lstrip("-").isdigit():
        raise ValueError(text)
    return int(text)


def test_fences_any_tag_closed_or_not_and_on_one_line():
    assert [(f.lang, f.body, f.closed) for f in fences("a\n```python\nx = 1\n```\nb")] == [
        ("python", "x = 1", True)
    ]
    assert [(f.body, f.closed) for f in fences("~~~\n1\n2")] == [("1\n2", False)]
    assert fences("```[1, 2]```")[0].body == "[1, 2]"
    assert fences("```[[1, 2],\n [3, 4]]```")[0].body == "[[1, 2],\n [3, 4]]"
    assert [f.body for f in fences("```\na\n```\ntext\n```\nb\n```")] == ["a", "b"]


def test_the_policy_picks_the_first_or_the_last_fence():
    text = "```\n1\n```\nthen\n```\n2\n```"
    assert find(text, _int).value == 2
    assert find(text, _int, Policy(fence="first")).value == 1


@pytest.mark.parametrize(
    "text,want",
    [
        ("5", 5),
        ("The answer is 5.", 5),
        ("So the final answer is: **5**", 5),
        ("Final Answer: 5", 5),
        ("Step 1: 2 + 2 = 4\nThe result is 5", 5),
        ("[ANSWER]5[/ANSWER] but maybe 6", 5),
        ("<answer>5</answer>", 5),
        ("<think>it is 6</think>\n5", 5),
        ("5<|im_end|>\n<|im_start|>user\n6", 5),
        ("5<end_of_turn>\n6", 5),
        ("$\\boxed{5}$", 5),
        ("`5`", 5),
        ("x = 5", 5),
        ("5\n\nBecause 2 + 3 is 5, and 6 is too many.", 5),
        ("I count the pairs one by one.\n\n5", 5),
        ("The answer is 7? No.\n\nThe answer is 5.", 5),
    ],
)
def test_a_value_is_found_where_chat_models_put_it(text, want):
    assert find(text, _int).value == want


def test_a_marker_inside_a_fence_does_not_count():
    text = "```\nthe answer is 9\n```\nThe answer is 5"
    assert find(text, _int).value == 5


def test_tags_are_final_nothing_outside_them_counts():
    assert find("[ANSWER]five[/ANSWER]\n5", _int) is None


def test_a_block_is_the_fence_or_what_a_marker_introduces():
    assert region("Tracing it:\n\nThe output is:\n```text\nA\nB\n```\nDone.", BLOCK) == "A\nB"
    assert region("The program prints:\nA\nB", BLOCK) == "A\nB"
    assert region("Output:\n\nA", BLOCK) == "A"
    # A program may print "Result: 5": for a block, a marker must end its line.
    assert region("Result: 5\nanswer is 6", BLOCK) == "Result: 5\nanswer is 6"
    assert region("\nfirst line empty\n", BLOCK) == "\nfirst line empty\n"


def test_a_probes_label_reads_as_a_label_and_as_a_sentence():
    policy = Policy(labels=("depth",))
    assert find("Depth: 4", _int, policy).value == 4
    assert find("So the depth is 4.", _int, policy).value == 4
    assert find("So the depth is 4.", _int, VALUE) is None  # a sentence needs its noun declared


def test_wrappers_peel_only_a_few_layers_deep():
    assert find("**`5`**.", _int).value == 5
    # A reply of ten thousand asterisks or backticks yields a handful of candidates.
    assert len(candidates("**" * 5000)) < 40
    assert len(candidates("```\n" * 2500)) < 40


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("`*_$[]<>/ANSWERthink\n :.5-x|im_end"), max_size=300))
def test_any_text_is_read_or_refused_never_raised(text):
    find(text, _int)
    region(text, BLOCK)
