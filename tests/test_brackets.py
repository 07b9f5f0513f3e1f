import json
from collections import Counter

import numpy as np
import pytest
from scipy.stats import chisquare

import emulate
from emulate.case import Answer, TokenLogprob
from emulate.errors import EmulateError
from probes.bracket_scoring import Closers, Prefix, extract_closers
from probes.brackets import BracketsProbe, load_items
from probes.dyck import classify_token, closers, generate, scan

from .conftest import PUBLISHED

PROBE = BracketsProbe()
BBH = PUBLISHED / "bbh" / "dyck_languages.json"


def test_stack_machine():
    assert scan("( [ ] )").balanced and scan("([])").depth == 2
    assert scan("([)]").error == ") where ] closes (symbol 3)"
    assert scan("())").error.startswith("closer ) at depth 0")
    assert scan("< [ [").open == "<[[" and closers("< [ [") == "]]>"


def test_bbh_truth_equals_every_published_target_and_targets_score_correct():
    items = json.loads(BBH.read_text())["examples"]
    cases = emulate.cases("brackets", {"items": str(BBH)}, n=1, mode="completion")
    assert len(cases) == len(items) == 250
    for case, item in zip(cases, items, strict=True):
        assert case.truth.closers == item["target"]
        score = PROBE.score(case, Answer(item["target"]))
        assert score.correct and score.metrics["exact_strict"], item
        # BBH's chain-of-thought answers end "So the answer is ] ] >."
        lenient = PROBE.score(case, Answer(f"Let me think.\nSo the answer is {item['target']}."))
        assert lenient.correct and not lenient.metrics["exact_strict"]


@pytest.mark.parametrize("n,d", [(1, 1), (4, 1), (4, 4), (8, 2), (12, 5), (30, 3), (50, 50)])
def test_generator_hits_length_and_depth_exactly(n, d):
    rng = np.random.default_rng(0)
    for _ in range(20):
        seq = generate(n, d, 4, rng)
        state = scan(seq)
        assert len(seq) == 2 * n and state.balanced and state.depth == d


def _raw_pcfg(rng, pairs_left):
    """HELM's PCFG with one bracket type, sampled directly (S -> (S) p=0.5, S -> S S
    q=0.25, else empty), giving up (None) once it would exceed `pairs_left[0]` pairs."""
    r = rng.random()
    if r < 0.5:
        pairs_left[0] -= 1
        if pairs_left[0] < 0:
            return None
        inner = _raw_pcfg(rng, pairs_left)
        return None if inner is None else "(" + inner + ")"
    if r < 0.75:
        left = _raw_pcfg(rng, pairs_left)
        right = _raw_pcfg(rng, pairs_left) if left is not None else None
        return None if right is None else left + right
    return ""


def test_conditioned_sampler_matches_the_pcfg_by_rejection():
    # Shapes with 4 pairs and depth 2, drawn both ways. They are far from uniform
    # ("(())(())" takes over half), so a sampler that ignored the grammar would fail.
    rng = np.random.default_rng(1)
    raw = Counter()
    while sum(raw.values()) < 4000:
        s = _raw_pcfg(rng, [4])
        if s is not None and len(s) == 8 and scan(s).depth == 2:
            raw[s] += 1
    ours = Counter(generate(4, 2, 1, rng) for _ in range(4000))
    shapes = sorted(raw)
    assert set(ours) == set(raw) and len(raw) == 7
    stat = chisquare([ours[s] for s in shapes], [raw[s] for s in shapes])
    assert stat.pvalue > 1e-3, (raw, ours)


def test_impossible_cells_name_themselves():
    with pytest.raises(EmulateError, match=r"depth=5 length=8 \(depth 5 needs at least 10"):
        emulate.cases("brackets", {"depth": [2, 5], "length": 8})
    with pytest.raises(EmulateError, match="even length"):
        emulate.cases("brackets", {"depth": 2, "length": 9})


def test_classify_is_half_balanced_and_every_edit_unbalances():
    cases = emulate.cases("brackets", {"task": "classify", "types": [1, 4]}, n=8)
    assert Counter(c.truth.answer for c in cases) == {"Yes": len(cases) // 2, "No": len(cases) // 2}
    for c in cases:
        assert scan(c.inputs.sequence).balanced == (c.truth.answer == "Yes")
    edits = Counter(c.inputs.edit for c in cases if c.truth.answer == "No")
    assert set(edits) == {"wrong_type", "missing_closer", "extra_closer", "swapped"}


def test_depth_examples_do_not_give_the_answer_away():
    grid = {"task": "depth", "length": 24, "depth": 4}
    cases = emulate.cases("brackets", grid, n=10, mode="chat")
    shown = [[m["content"] for m in c.prompt if m["role"] == "assistant"] for c in cases]
    assert sum(str(c.truth.depth) in s for c, s in zip(cases, shown, strict=True)) < len(cases)


@pytest.mark.parametrize(
    "text,strict,lenient",
    [
        ("] ] >", "] ] >", "]]>"),
        ("]]>", "]]>", "]]>"),
        (" ] ] >\nInput: (", "] ] >", "]]>"),
        ("We close [ then [.\nSo the answer is ] ] >.", "We close [ then [.", "]]>"),
        ("", "", ""),
    ],
)
def test_strict_and_lenient_extraction(text, strict, lenient):
    assert extract_closers(text) == (strict, lenient)


def _complete(prefix="< [ ["):
    case = emulate.cases("brackets", {"length": 8, "depth": 2}, n=1)[0]
    from dataclasses import replace

    return replace(case, inputs=Prefix(prefix), truth=Closers(" ".join(closers(prefix))))


@pytest.mark.parametrize(
    "text,kind",
    [
        ("] ] >", None),
        ("> ] ]", "reversed"),
        ("] ]", "too_few"),
        ("] ] > )", "too_many"),
        ("] ) >", "wrong_closer"),
        ("( ) ] ] >", "not_shortest"),
        ("I am not sure.", "unparseable"),
        ("", "empty"),
    ],
)
def test_complete_error_types(text, kind):
    score = PROBE.score(_complete(), Answer(text))
    assert score.error_type == kind and score.correct == (kind is None)


@pytest.mark.parametrize(
    "token,open_,kind",
    [
        (" ]", "<[", "legal"),
        (" >", "<[", "wrong_closer"),
        (" (", "<[", "legal"),
        (")", "", "closer_at_zero"),
        ("\n", "<", "end_open"),
        ("\n", "", "legal"),
        ("<eos>", "(", "end_open"),
        (" ])", "([", "legal"),
        (" )]", "([", "wrong_closer"),
        (" =", "(", "other"),
        (" ", "(", "other"),
    ],
)
def test_next_token_legality(token, open_, kind):
    assert classify_token(token, open_) == kind


def test_next_token_mass_and_coverage():
    case = emulate.cases("brackets", {"task": "next_token"}, n=1, mode="completion")[0]
    due = case.truth.due
    wrong = next(c for c in ")]}>" if c != due)
    top = ((f" {due}", np.log(0.6)), (f" {wrong}", np.log(0.15)), (" x", np.log(0.05)))
    answer = Answer(" " + due, logprobs=(TokenLogprob(" " + due, np.log(0.6), top),))
    s = PROBE.score(case, answer)
    assert s.correct
    assert s.metrics["p_wrong_closer"] == pytest.approx(0.15)
    assert s.metrics["p_other"] == pytest.approx(0.05)
    assert s.metrics["top_mass"] == pytest.approx(0.8)


def test_items_file_errors_name_the_item(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"input": "Input: ( [", "target": "] )"}) + "\n")
    assert load_items(path)[0].prefix == "(["
    bad = [
        ({"input": "Input: ( a", "target": ")"}, "item 0: 'a' in the input is not a bracket"),
        ({"input": "Input: ( [", "target": ") ]"}, "does not close the input"),
        ({"input": "Input: (", "target": "( ) )"}, "not the shortest completion"),
        ({"input": "Input: ( )", "target": ""}, "already balanced"),
    ]
    for record, message in bad:
        path.write_text(json.dumps(record) + "\n")
        with pytest.raises(EmulateError, match=message):
            load_items(path)


def test_items_run_only_the_complete_task(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"input": "Input: ( [", "target": "] )"}) + "\n")
    with pytest.raises(EmulateError, match="task=complete"):
        emulate.cases("brackets", {"items": str(path), "task": "depth"})
    with pytest.raises(EmulateError, match="no such file"):
        emulate.cases("brackets", {"items": str(tmp_path / "nope.json")})


@pytest.mark.enable_socket
def test_a_server_without_logprobs_is_an_error_not_zeros(fake_server, tmp_path):
    fake_server.completion(" )")  # answers, but with "logprobs": null
    with pytest.raises(EmulateError, match="returned no logprobs"):
        emulate.run(
            "brackets",
            {"task": "next_token", "length": 8, "depth": 2},
            n=1,
            model="fake",
            base_url=fake_server.url,
            mode="completion",
            out=tmp_path / "o",
            progress=False,
        )
    assert not (tmp_path / "o").exists()


def test_item_case_ids_come_from_content_and_items_carry_their_depth(tmp_path):
    record = {"input": "Complete the rest of the sequence. Input: < [ [", "target": "] ] >"}
    other = {"input": "Input: ( (", "target": ") )"}
    (tmp_path / "a.jsonl").write_text(json.dumps(record) + "\n")
    (tmp_path / "renamed-and-reordered.jsonl").write_text(
        json.dumps(other) + "\n" + json.dumps(record) + "\n"
    )
    (a,) = emulate.cases("brackets", {"items": str(tmp_path / "a.jsonl")}, n=1)
    b = emulate.cases("brackets", {"items": str(tmp_path / "renamed-and-reordered.jsonl")}, n=1)
    assert a.id == b[1].id != b[0].id
    assert (a.params["depth"], a.params["length"]) == (3, 6)
