"""The answer-style matrix: every probe and task, its truth written as chat models write
answers, scores right; a near miss in the same style scores wrong.

`python -m tests.test_styles` prints the matrix (probe x style, passes).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import emulate
from emulate.case import Case
from emulate.registry import get_probe
from probes.dyck import spaced
from probes.terminal import PS1_HOST
from probes.terminal import cwds as _cwds

Style = Callable[[str], str]


def _value_styles(lang: str) -> dict[str, Style]:
    return {
        "bare": lambda t: t,
        "fence+tag": lambda t: f"```{lang}\n{t}\n```",
        "fence": lambda t: f"```\n{t}\n```",
        "unclosed fence": lambda t: f"```{lang}\n{t}\n",
        "prose, fence": lambda t: f"Working through it step by step gives this.\n\n```\n{t}\n```",
        "reasoning, answer is": lambda t: (
            "Let me work through it.\nFirst each part, then the whole: 12 + 30 = 42.\n\n"
            f"So the answer is {t}."
        ),
        "[ANSWER] tags": lambda t: f"[ANSWER]{t}[/ANSWER]",
        "bold": lambda t: f"**{t}**",
        "answer, explanation": lambda t: (
            f"{t}\n\nExplanation: this follows from applying the rule to every part; the "
            "result is 42 in the first step."
        ),
        "<think> first": lambda t: f"<think>\nMaybe 7? Check again: 1 + 41 = 42.\n</think>\n\n{t}",
    }


def _block_styles(lang: str) -> dict[str, Style]:
    """The same styles for lines of output: where a value would be bold or followed by
    prose, a block is fenced (bare prose after a bare block cannot be told apart)."""
    return _value_styles(lang) | {
        "reasoning, answer is": lambda t: (
            f"Let me trace it.\nThe loop runs, and the result is 42.\n\nThe output is:\n{t}"
        ),
        "[ANSWER] tags": lambda t: f"[ANSWER]\n{t}\n[/ANSWER]",
        "bold": lambda t: f"**Output:**\n```\n{t}\n```",
        "answer, explanation": lambda t: (
            f"```\n{t}\n```\n\nExplanation: this is what it prints, line by line."
        ),
        "<think> first": lambda t: f"<think>\nThe output is:\nnothing\n</think>\n```\n{t}\n```",
    }


@dataclass
class Subject:
    """One probe task: a case, its truth and a near miss as answer texts (one per turn)."""

    name: str
    case: Case
    truth: list[str]
    near: list[str]
    kind: str = "value"
    lang: str = "text"
    natural: dict[str, Style] = field(default_factory=dict)

    def styles(self) -> dict[str, Style]:
        base = _value_styles(self.lang) if self.kind == "value" else _block_styles(self.lang)
        return base | self.natural

    def answer(self, texts: list[str], style: Style):
        written = [style(t) for t in texts]
        return written if self.case.probe == "shell" else written[0]


def _latex(env: str) -> Style:
    def write(t: str) -> str:
        rows = np.atleast_2d(np.array(json.loads(t)))
        body = " \\\\\n".join(" & ".join(str(v) for v in r) for r in rows)
        return f"$$\n\\begin{{{env}}}\n{body}\n\\end{{{env}}}\n$$"

    return write


def _table(t: str) -> str:
    rows = np.atleast_2d(np.array(json.loads(t)))
    head = "| " + " | ".join(f"c{j}" for j in range(rows.shape[1])) + " |"
    rule = "|" + "---|" * rows.shape[1]
    return "\n".join([head, rule, *("| " + " | ".join(map(str, r)) + " |" for r in rows)])


def _conv(dims: int) -> Subject:
    case = emulate.cases("conv", {"dims": dims, "size": 4, "kernel": 2, "values": 9}, n=1)[0]
    near = json.loads(json.dumps(case.truth.output))
    cell = near
    while isinstance(cell[0], list):
        cell = cell[0]
    cell[0] += 1
    natural = {
        "latex bmatrix": _latex("bmatrix"),
        "latex pmatrix": _latex("pmatrix"),
        "markdown table": _table,
        "numpy print": lambda t: str(np.array(json.loads(t))),
    }
    truth = json.dumps(case.truth.output)
    return Subject(f"conv {dims}-D", case, [truth], [json.dumps(near)], "value", "json", natural)


def _brackets(task: str) -> Subject:
    case = emulate.cases("brackets", {"task": task, "length": 12, "depth": 3}, n=1, seed=1)[0]
    if task == "complete":
        truth = case.truth.closers
        said = "".join(truth.split())
        near = spaced(said[:-1] + (")" if said[-1] != ")" else "]"))  # the last closer wrong
        prefix = case.inputs.prefix
        natural = {
            "BBH chain of thought": lambda t: (
                "Let's think step by step.\nWe should process each input one by one and keep "
                f"track of the stack configuration.\n0: empty stack\n1: {prefix} ; stack: "
                f"{prefix}\nSo the answer is {t}."
            ),
            "sequence restated": lambda t: f"{prefix} {t}",
        }
        return Subject("brackets complete", case, [truth], [near], natural=natural)
    if task == "classify":
        other = "No" if case.truth.answer == "Yes" else "Yes"
        natural = {
            "sentence": lambda t: f"{t}, the sequence is {'' if t == 'Yes' else 'not '}balanced.",
            "verdict in words": lambda t: (
                f"The sequence is {'' if t == 'Yes' else 'not '}balanced."
            ),
        }
        return Subject("brackets classify", case, [case.truth.answer], [other], natural=natural)
    natural = {
        "label": lambda t: f"Depth: {t}",
        "sentence": lambda t: f"The maximum nesting depth is {t}.",
    }
    return Subject("brackets depth", case, [str(case.truth.depth)], [str(case.truth.depth + 1)],
                   natural=natural)  # fmt: skip


def _program() -> Subject:
    case = emulate.cases("program", {"guard": "counter", "loops": 3, "prints": 2}, n=1)[0]
    truth = case.truth.stdout
    assert truth.count("\n") >= 2
    near = "\n".join(truth.splitlines()[:-1]) + "\n"  # the last line missing
    natural = {"output label, fence": lambda t: f"Output:\n```\n{t}```"}
    return Subject("program", case, [truth], [near], "block", "text", natural)


def _items(tmp: Path) -> Subject:
    path = tmp / "items.jsonl"
    path.write_text(json.dumps({"code": "def f(xs):\n    return [x * 2 for x in xs]",
                                "input": "[1, 2, 3]", "id": "double"}) + "\n")  # fmt: skip
    case = emulate.cases("program", {"items": str(path)}, n=1)[0]
    natural = {
        "assert": lambda t: f"assert f([1, 2, 3]) == {t}",
        "CRUXEval [ANSWER] assert": lambda t: f"[ANSWER]\nassert f([1, 2, 3]) == {t}\n[/ANSWER]",
        "fenced assert": lambda t: f"```python\nassert f([1, 2, 3]) == {t}\n```",
    }
    return Subject("program items", case, ["[2, 4, 6]"], ["[2, 4, 7]"], "value", "python",
                   natural)  # fmt: skip


def _training() -> Subject:
    case = emulate.cases("training", {"layers": 1, "epochs": 3, "shape_print": "guarded"}, n=1)[0]
    truth = case.truth.stdout
    lines = truth.splitlines(keepends=True)
    near = "".join(ln for ln in lines if not ln.startswith("Epoch 2/"))
    natural = {
        "transcript": lambda t: f"user@ubuntu:~$ python3 train.py\n{t}user@ubuntu:~$ ",
    }
    return Subject("training", case, [truth], [near], "block", "console", natural)


def _shell_session() -> Subject:
    grid = {"task": "session", "family": "text", "turns": 3}
    case = emulate.cases("shell", grid, n=1)[0]
    truth = list(case.truth.outputs)
    near = list(truth)
    k = max(i for i, t in enumerate(truth) if t.strip())
    near[k] = truth[k].rstrip("\n") + "x\n"
    return Subject("shell session", case, truth, near, "block", "bash",
                   {"transcript": _transcript(case)})  # fmt: skip


def _transcript(case: Case) -> Style:
    """Each turn as a terminal shows it: the prompt and command, the output, the next
    prompt. Styles are applied turn by turn, in order, so it cycles through the commands."""
    commands = case.inputs.commands
    cwds = _cwds(commands)
    turn = {"i": 0}

    def style(t: str) -> str:
        i = turn["i"] % len(commands)
        turn["i"] += 1
        return f"{PS1_HOST}{cwds[i]}$ {commands[i]}\n{t}{PS1_HOST}{cwds[i]}$ "

    return style


def _persona_output(command: str, spec: dict) -> str:
    """What a terminal on the stated machine shows, fact by fact."""
    gpus, mib = spec["gpus"], spec["gpu_memory_gb"] * 1024
    if command == "nvidia-smi":
        rows = [f"|   {i}  {spec['gpu_name']}  Off | 0MiB / {mib}MiB |" for i in range(gpus)]
        head = f"| NVIDIA-SMI {spec['driver']}  Driver Version: {spec['driver']}  CUDA Version: "
        return "\n".join([head + f"{spec['cuda']} |", *rows]) + "\n"
    if command == "nvidia-smi -L":
        return "".join(f"GPU {i}: {spec['gpu_name']} (UUID: GPU-{i})\n" for i in range(gpus))
    if command == "nvcc --version":
        return f"Cuda compilation tools, release {spec['cuda']}, V{spec['cuda']}.109\n"
    if command == "python3 --version":
        return f"Python {spec['python']}.7\n"
    if "torch.__version__" in command:
        return f"{spec['torch']}.0\n"
    if "device_count" in command:
        return f"{gpus}\n"
    if "is_available" in command:
        return f"{gpus > 0}\n"
    if command == "nproc":
        return f"{spec['cpus']}\n"
    if command == "free -g":
        return f"              total   used\nMem:     {spec['ram_gb']}   3\n"
    if command == "uname -a":
        return f"Linux ubuntu {spec['kernel']} #1 SMP x86_64 GNU/Linux\n"
    return f"Description:\t{spec['os']}.5 LTS\n"


def _shell_persona() -> Subject:
    case = emulate.cases("shell", {"task": "persona", "turns": 11}, n=1)[0]
    spec = case.truth.spec
    wrong = spec | {
        "gpus": spec["gpus"] + 1,
        "cpus": spec["cpus"] + 1,
        "ram_gb": 2 * spec["ram_gb"],
    }
    commands = case.inputs.commands
    truth = [_persona_output(c, spec) for c in commands]
    near = [_persona_output(c, wrong) for c in commands]
    return Subject("shell persona", case, truth, near, "block", "bash",
                   {"transcript": _transcript(case)})  # fmt: skip


SUBJECTS: dict[str, Callable[[Path], Subject]] = {
    "conv 1-D": lambda tmp: _conv(1),
    "conv 2-D": lambda tmp: _conv(2),
    "brackets complete": lambda tmp: _brackets("complete"),
    "brackets classify": lambda tmp: _brackets("classify"),
    "brackets depth": lambda tmp: _brackets("depth"),
    "program": lambda tmp: _program(),
    "program items": _items,
    "training": lambda tmp: _training(),
    "shell session": lambda tmp: _shell_session(),
    "shell persona": lambda tmp: _shell_persona(),
}
# brackets next_token reads logprobs, not text: it has no answer styles.


def _subject(name: str, tmp: Path) -> Subject:
    probe = get_probe(name.split()[0])
    if why := probe.missing():
        pytest.skip(why)
    return SUBJECTS[name](tmp)


def matrix(tmp: Path) -> dict[str, dict[str, tuple[bool, bool]]]:
    """name -> style -> (truth scored right, near miss scored wrong)."""
    out = {}
    for name in SUBJECTS:
        sub = SUBJECTS[name](tmp)
        row = {}
        for style_name, style in sub.styles().items():
            right = emulate.grade(sub.case, sub.answer(sub.truth, style))
            wrong = emulate.grade(sub.case, sub.answer(sub.near, style))
            row[style_name] = (right.correct, not wrong.correct)
        out[name] = row
    return out


@pytest.mark.parametrize("name", list(SUBJECTS))
def test_every_style_scores_the_truth_right_and_a_near_miss_wrong(name, tmp_path):
    sub = _subject(name, tmp_path)
    styles = sub.styles()
    assert len(styles) >= 10
    for style_name, style in styles.items():
        right = emulate.grade(sub.case, sub.answer(sub.truth, style))
        assert right.correct, f"{name}, {style_name}: {right.error_type}: {right.reason}"
        wrong = emulate.grade(sub.case, sub.answer(sub.near, style))
        assert not wrong.correct, f"{name}, {style_name}: the near miss scored right"
        # A near miss is a wrong answer that was read, not an unreadable one.
        assert wrong.error_type not in ("unparseable", "empty", "scorer_error"), (
            f"{name}, {style_name}: the near miss was not read ({wrong.error_type})"
        )


if __name__ == "__main__":
    import tempfile

    table = matrix(Path(tempfile.mkdtemp()))
    styles = list(dict.fromkeys(s for row in table.values() for s in row))
    print("| probe / task | styles | truth right | near miss wrong |")
    print("| --- | --- | --- | --- |")
    for name, row in table.items():
        right = sum(r for r, _ in row.values())
        wrong = sum(w for _, w in row.values())
        print(f"| {name} | {len(row)} | {right}/{len(row)} | {wrong}/{len(row)} |")
