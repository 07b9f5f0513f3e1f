import asyncio

import pytest

import emulate
from emulate import sandbox
from emulate.case import Answer
from emulate.sandbox import Limits, Session, run_session
from emulate.scoring import line_f1
from probes.shell import ShellProbe, terminal_output

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
    assert all(not any(c.truth.limits) for c in first)


def test_state_dependencies_are_tracked():
    cases = emulate.cases("shell", {"family": "mixed", "turns": 12}, n=4)
    assert any(d is not None for c in cases for d in c.inputs.depends_on)
    for c in cases:
        for t, d in enumerate(c.inputs.depends_on):
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
    for i, command in enumerate(case.inputs.commands):
        assert command in last
        shown = replies[i] if history == "model" else case.truth.outputs[i]
        if i < 2 and shown.strip():
            assert shown.strip() in last


def test_true_outputs_score_correct_and_errors_are_located():
    case = emulate.cases("shell", {"turns": 6}, n=1, mode="completion")[0]
    truth = case.truth.outputs
    score = PROBE.score(case, Answer(truth[-1], turns=tuple(truth)))
    assert score.correct and score.metrics["turn_exact"] == 1
    wrong = list(truth)
    wrong[2] = "something else\n"
    score = PROBE.score(case, Answer(wrong[-1], turns=tuple(wrong)))
    assert not score.correct and score.metrics["first_divergence"] == 3
    assert score.metrics["turn_exact"] == pytest.approx(5 / 6)


def test_helpers():
    assert terminal_output("```\nfile.txt\n```", "ls") == "file.txt"
    assert terminal_output("```bash\nls\n```", "pwd") == "ls"
    assert terminal_output("plain", "ls") == "plain"
    transcript = "user@ubuntu:~/docs$ ls\nnotes.txt  todo.txt\nuser@ubuntu:~/docs$ "
    assert terminal_output(transcript, "ls") == "notes.txt  todo.txt"
    assert line_f1(["a", "b"], ["a", "c"]) == pytest.approx(0.5)
    assert line_f1([], []) == 1.0


def _persona(**cell):
    grid = {"task": "persona", "turns": 11} | cell
    return emulate.cases("shell", grid, n=1, mode="chat")[0]


SEED_REPLIES = {
    "nvidia-smi": "| NVIDIA-SMI 465.19.01   Driver Version: 465.19.01   CUDA Version: 11.3 |\n"
    + "| 30%  35C  P8  20W / 350W |  1MiB / 24268MiB |  0%  Default |\n" * 4,
    "nvidia-smi -L": "".join(
        f"GPU {i}: NVIDIA GeForce RTX 3090 (UUID: GPU-{i})\n" for i in range(4)
    ),
    "nvcc --version": "Cuda compilation tools, release 11.3, V11.3.109",
    "python3 --version": "Python 3.9.7",
    'python3 -c "import torch; print(torch.__version__)"': "1.8.1+cu111",
    'python3 -c "import torch; print(torch.cuda.device_count())"': "4",
    'python3 -c "import torch; print(torch.cuda.is_available())"': "True",
    "nproc": "16",
    "free -g": "       total  used\nMem:      62     1",
    "uname -a": "Linux ubuntu 4.15.0-112-generic #113-Ubuntu SMP x86_64 GNU/Linux",
    "lsb_release -d": "Description:\tUbuntu 18.04.5 LTS",
}


def test_persona_truth_is_the_stated_machine():
    case = _persona()
    assert "four" not in case.prompt[-1]["content"]  # stated with numbers, as a spec
    assert "4 NVIDIA GeForce RTX 3090 GPUs" in case.prompt[-1]["content"]
    turns = tuple(SEED_REPLIES[c] for c in case.inputs.commands)
    score = PROBE.score(case, Answer(turns[-1], turns=turns))
    assert score.correct and score.metrics["fact_acc"] == 1 and score.metrics["gpu_count_ok"]
    # The seed's model showed the four GPUs; one that shows two is caught.
    two = tuple(
        t.replace("4", "2") if "device_count" in c else t
        for c, t in zip(case.inputs.commands, turns, strict=True)
    )
    score = PROBE.score(case, Answer(two[-1], turns=two))
    assert score.error_type == "wrong_fact" and not score.metrics["gpu_count_ok"]
    silent = tuple("" for _ in turns)
    assert PROBE.score(case, Answer("", turns=silent)).error_type == "facts_absent"


def test_persona_spec_files_are_validated_by_field(tmp_path):
    path = tmp_path / "machine.json"
    path.write_text('{"gpus": 2, "gpu_name": "NVIDIA A40"}')
    case = _persona(spec=str(path))
    assert case.truth.spec["gpus"] == 2 and "2 NVIDIA A40 GPUs" in case.inputs.machine
    for body, message in [
        ('{"gpus": 99}', "field 'gpus' is 99; it must be an integer from 0 to 16"),
        ('{"gpu": 2}', "unknown field 'gpu'"),
        ('{"cuda": "eleven"}', "field 'cuda'"),
        ("[1, 2]", "expected a JSON object"),
    ]:
        path.write_text(body)
        with pytest.raises(emulate.EmulateError, match=message):
            _persona(spec=str(path))


def test_readback_sessions_read_earlier_changes_near_and_far():
    """family=readback: every odd turn reads what an earlier turn changed. Over 200
    sessions of 8 turns (seeded), 718 of the 800 odd turns depend on an earlier turn
    (the rest read a home that no file change reached) and 229 on one over 2 back."""
    import numpy as np

    from probes.shell import generate_session

    odd = dep = far = 0
    for s in range(200):
        _, _, depends = generate_session({"family": "readback", "turns": 8, "depth": 2},
                                         np.random.default_rng(s))  # fmt: skip
        for t in range(1, 8, 2):
            odd, dep = odd + 1, dep + (depends[t] is not None)
            far += depends[t] is not None and t - depends[t] > 2
        assert all(depends[t] is None or depends[t] < t for t in range(8))
    assert (odd, dep, far) == (800, 718, 229)
