import asyncio

import pytest

import emulate
from emulate import sandbox
from emulate.case import Answer
from emulate.sandbox import Limits, Session, run_session
from probes.shell import ShellProbe, extract, line_f1

pytestmark = pytest.mark.skipif(
    sandbox.isolation() != "bwrap", reason="shell sessions need bubblewrap"
)
PROBE = ShellProbe()


def test_session_state_persists_and_runaways_are_cut():
    turns = run_session(
        Session(
            files={"a.txt": ("one\ntwo\n", 1705312800)},
            commands=[
                "mkdir d",
                "cd d",
                "pwd",
                "sleep 30",
                "yes",
                "echo after > x; cat x",
                "echo no > /etc/emulate-escape",
                "hostname",
            ],
            turn_wall_s=1,
            limits=Limits(cpu_s=30, wall_s=60, file_mb=1),
        )
    )
    out = [t.output for t in turns]
    assert out[2] == "/home/user/d\n"
    assert turns[3].limit == "wall"  # a hang is cut at its limit, and the session goes on
    assert turns[4].limit in ("wall", "file_size") and len(out[4]) <= Limits().output_chars
    assert out[5] == "after\n"
    assert "Read-only file system" in out[6] and turns[6].exit_code != 0
    assert out[7] == "ubuntu\n"


def test_truth_is_the_same_every_time():
    # Seeded files have fixed times, and long listings never show what changed "now".
    grid = {"family": ["fs", "state", "mixed"], "turns": 10}
    first = emulate.cases("shell", grid, n=2)
    again = emulate.cases("shell", grid, n=2)
    assert [c.truth for c in first] == [c.truth for c in again]
    assert all(not any(c.truth["limits"]) for c in first)


def test_state_dependencies_are_tracked():
    cases = emulate.cases("shell", {"family": "mixed", "turns": 12}, n=4)
    assert any(d is not None for c in cases for d in c.inputs["depends_on"])
    for c in cases:
        for t, d in enumerate(c.inputs["depends_on"]):
            assert d is None or d < t


def _replay(case, replies):
    """Drive converse() with a stand-in for the model that answers from a list."""
    prompts = []

    async def ask(prompt, *, max_tokens, stop=(), top_logprobs=0):
        prompts.append(prompt)
        return Answer(replies[len(prompts) - 1], prompt_tokens=1, completion_tokens=1)

    return asyncio.run(PROBE.converse(case, ask)), prompts


@pytest.mark.parametrize("history", ["model", "true"])
def test_each_turn_sends_the_whole_history(history):
    case = emulate.cases("shell", {"turns": 3, "history": history}, n=1, mode="completion")[0]
    replies = [f"reply {i}\n" for i in range(3)]
    answer, prompts = _replay(case, replies)
    assert answer.turns == tuple(replies) and answer.prompt_tokens == 3
    last = prompts[-1]
    for i, command in enumerate(case.inputs["commands"]):
        assert command in last
        shown = replies[i] if history == "model" else case.truth["outputs"][i]
        if i < 2 and shown.strip():
            assert shown.strip() in last


def test_true_outputs_score_correct_and_errors_are_located():
    case = emulate.cases("shell", {"turns": 6}, n=1, mode="completion")[0]
    truth = case.truth["outputs"]
    score = PROBE.score(case, Answer(truth[-1], turns=tuple(truth)))
    assert score.correct and score.metrics["turn_exact"] == 1
    wrong = list(truth)
    wrong[2] = "something else\n"
    score = PROBE.score(case, Answer(wrong[-1], turns=tuple(wrong)))
    assert not score.correct and score.metrics["first_divergence"] == 3
    assert score.metrics["turn_exact"] == pytest.approx(5 / 6)


def test_helpers():
    assert extract("```\nfile.txt\n```", "chat") == "file.txt\n"
    assert extract("```bash\nls\n```", "chat") == "ls\n"
    assert extract("plain", "completion") == "plain"
    assert line_f1(["a", "b"], ["a", "c"]) == pytest.approx(0.5)
    assert line_f1([], []) == 1.0
