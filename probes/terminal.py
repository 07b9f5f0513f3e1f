"""A pretend terminal, turn by turn: what the shell probe's tasks (a session checked
against a real bash, the stated machine of probes/persona.py) share.

Each turn sends the whole session so far, as chat services do when they rebuild a
session: a base model gets a transcript (a login banner, then prompt lines and
outputs) and continues it; a chat model gets the seed's "act as a Linux terminal"
messages, each output in a code block. The history shows the model's own earlier
outputs, or the true ones (teacher forcing). Nothing the model returns is executed.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from emulate.case import Answer, Case, Mode, Prompt, Score
from emulate.extract import BLOCK, region
from emulate.probe import Ask, Probe
from emulate.prompt import PerMode, Rendered, rendered


@dataclass(frozen=True)
class Commands:
    """A session's commands, for each the earlier turn whose change it reads (or None),
    the stated machine, and the files of the seeded home (path -> text)."""

    commands: list[str]
    depends_on: list[int | None]
    machine: str
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outputs:
    """task=session: each command's output in a real bash, and what cut it short."""

    outputs: list[str]
    limits: list[str | None]
    exit_codes: list[int]


class Task:
    """One of the shell probe's tasks (its `task` parameter): its case types, how its
    case is drawn, whether a turn's history shows the true outputs, and its scorer."""

    Inputs: ClassVar[type]
    Truth: ClassVar[type]
    error_types: ClassVar[tuple[str, ...]]

    def case(
        self, probe: Probe, cell: Mapping[str, Any], seed: int, cid: str,
        rng: np.random.Generator, mode: Mode,
    ) -> Case:  # fmt: skip
        raise NotImplementedError

    def shows_truth(self, case: Case) -> bool:
        """Whether each turn's history shows the true outputs (teacher forcing)."""
        return False

    def score(self, case: Case, replies: tuple[str, ...], metrics: dict[str, Any]) -> Score:
        raise NotImplementedError

    async def converse(self, case: Case, ask: Ask) -> Answer:
        """The session turn by turn (`converse`, below)."""
        return await converse(case, ask, self.shows_truth(case))

    def requests(self, case: Case) -> list[tuple[Prompt, str]]:
        """Each request a case sends, for estimates (`requests`, below)."""
        return requests(case)


PS1_HOST = "user@ubuntu:"
SHOWN_CHARS = 2000  # of a true output, in a teacher-forced history
SYSTEM = (
    "I want you to act as a Linux terminal. I will type commands and you will reply with "
    "what the terminal should show. I want you to only reply with the terminal output "
    "inside one unique code block, and nothing else. Do not write explanations. Do not "
    "type commands unless I instruct you to do so. When I need to tell you something in "
    "English, I will do so by putting text inside curly brackets {like this}."
)

History = list[tuple[str, str, str]]  # (cwd, command, output shown), turn by turn


def _transcript(history: History, command: str, cwd: str, machine: str) -> Prompt:
    # A base model continues a transcript; the machine is stated as a login banner.
    lines = [machine.strip("{}"), "Last login: Mon Jan 15 10:00:00 2024 from 10.0.0.2"]
    for where, cmd, out in history:
        lines.append(f"{PS1_HOST}{where}$ {cmd}")
        if out.strip():
            lines.append(out.rstrip("\n"))
    lines.append(f"{PS1_HOST}{cwd or '~'}$ {command}")
    return "\n".join(lines) + "\n"


def _messages(history: History, command: str, cwd: str, machine: str) -> Prompt:
    messages = [{"role": "system", "content": SYSTEM}]
    for i, (_, cmd, out) in enumerate(history):
        messages.append({"role": "user", "content": (machine + "\n" if i == 0 else "") + cmd})
        messages.append({"role": "assistant", "content": f"```\n{out.rstrip(chr(10))}\n```"})
    messages.append({"role": "user", "content": (machine + "\n" if not history else "") + command})
    return tuple(messages)


_FORMS = PerMode(chat=_messages, completion=_transcript)


def turn_prompt(mode: Mode, history: History, command: str, cwd: str, machine: str) -> Prompt:
    """The whole session so far, then the next command. `machine` is the stated machine,
    in {braces} as the seed wrote instructions."""
    return _FORMS.of(mode)(history, command, cwd, machine)


def first_turn(mode: Mode, inputs: Commands, budget: int) -> Rendered:
    """A case's prompt: its first turn, which a base model ends at the next prompt line."""
    prompt = turn_prompt(mode, [], inputs.commands[0], "", inputs.machine)
    return rendered(mode, prompt, budget=budget, completion_stop=(PS1_HOST,))


def cwds(commands: list[str]) -> list[str]:
    """The prompt's directory before each command (as bash's PS1 shows it)."""
    cwd, out = "~", []
    for c in commands:
        out.append(cwd)
        if c.startswith("cd "):
            target = c[3:].strip()
            base = cwd.replace("~", "/home/user", 1)
            path = (
                "/home/user" if target == "~" else posixpath.normpath(posixpath.join(base, target))
            )
            cwd = "~" + path[len("/home/user") :] if path.startswith("/home/user") else path
    return out


def cap(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "\n[output cut]\n"


_PROMPT_LINE = re.compile(r"^[^\s@]+@[^\s:]+:[^$#\n]*[$#] ?(.*)$")


def terminal_output(text: str, command: str) -> str:
    """The output a reply claims: found by the shared rules (emulate/extract.py), then
    without the transcript's own lines, which a model often writes around it: the
    prompt with the command before the output, and the next bare prompt after it."""
    out = region(text, BLOCK).split("\n")
    if out and (m := _PROMPT_LINE.match(out[0])) and m.group(1).strip() == command.strip():
        out = out[1:]
    while out and (m := _PROMPT_LINE.match(out[-1])) and not m.group(1).strip():
        out.pop()
    return "\n".join(out)


async def converse(case: Case, ask: Ask, show_truth: bool) -> Answer:
    """Ask a session's turns in order, each with the whole history: the model's own
    outputs, or (`show_truth`) the true ones. The answer holds each raw reply."""
    history: History = []
    replies: list[str] = []
    prompt_tokens, completion_tokens, latency = 0, 0, 0.0
    where = cwds(case.inputs.commands)
    for t, command in enumerate(case.inputs.commands):
        truth = case.truth.outputs[t]
        prompt = turn_prompt(case.mode, history, command, where[t], case.inputs.machine)
        budget = min(1024, len(truth) + 48) if truth else 768
        answer = await ask(prompt, max_tokens=budget, stop=case.stop)
        prompt_tokens += answer.prompt_tokens or 0
        completion_tokens += answer.completion_tokens or 0
        latency += answer.latency_s or 0.0
        if answer.error:
            return Answer("", error=answer.error, turns=tuple(replies), latency_s=latency)
        # The journal keeps each raw reply (rescore reads them again); the history
        # shows the output found in it, as a terminal would.
        replies.append(answer.text)
        shown = cap(truth) if show_truth else terminal_output(answer.text, command)
        history.append((where[t], command, shown))
    return Answer(
        text=replies[-1] if replies else "",
        turns=tuple(replies),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_s=latency,
    )


def requests(case: Case) -> list[tuple[Prompt, str]]:
    """Each turn's request, teacher-forced: the history so far with the true outputs."""
    commands, outputs = case.inputs.commands, case.truth.outputs
    where = cwds(commands)
    return [
        (
            turn_prompt(
                case.mode,
                [(where[i], commands[i], cap(outputs[i])) for i in range(t)],
                commands[t],
                where[t],
                case.inputs.machine,
            ),
            outputs[t] or "x" * 200,  # a stated machine's outputs: a guess of their size
        )
        for t in range(len(commands))
    ]
