"""task=rebuild: a dropped session, rebuilt by sending every earlier command at once.

The founding case: a chat service lost a terminal session and, to rebuild the
context, sent every earlier request again in one message; the model then "ran" them
all again. Here the session is first asked turn by turn as task=session asks it
(history=model), on the same seeded home and commands. Then one more request says
the session was restored and lists all k commands; the model replies with the whole
session. Its re-emitted outputs are scored three ways:

- rebuilt_true: the share of turns whose rebuilt output is the true one;
- rebuilt_own: the share equal to the model's own first output of that turn;
- rebuilt_consistent: where the same command ran twice with the same true output,
  the share of such pairs whose rebuilt outputs agree (None when there is no pair).

first_true, the first pass's share of true outputs, is the baseline. A model that
computes rebuilds the true outputs; one that imitates repeats its own earlier ones,
or writes neither. Nothing the model returns is executed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from emulate.case import Answer, Case, Mode, Prompt, Score
from emulate.extract import fences, without_reasoning
from emulate.probe import Ask, Probe
from emulate.scoring import lines

from . import terminal
from .terminal import PS1_HOST, SYSTEM, Commands, Outputs, Task, terminal_output

RESTORED = (
    "{The session was lost and has been restored. Here are the commands typed so far, in "
    "order. Reply with the whole session as the terminal shows it: each command on its "
    "prompt line, then its output, in one code block.}"
)
# A prompt line as a terminal shows it (user@host:cwd$ COMMAND), or a bare "$ COMMAND".
# A line starting with "#" is output (the seeded README.md starts "# project").
_PROMPT = re.compile(r"^\s*[^\s@]+@[^\s:]+:[^$#\n]*[$#] ?(.*)$")
_BARE = re.compile(r"^\s*\$ (.*)$")
REBUILD_BUDGET = 2048  # at most; each turn adds what a turn of task=session may write


def rebuild_budget(outputs: list[str]) -> int:
    return min(REBUILD_BUDGET, sum(min(1024, len(o) + 48) for o in outputs))


def rebuild_prompt(mode: Mode, commands: list[str], machine: str) -> Prompt:
    """The one request that rebuilds the session: every command, no output."""
    listed = "\n".join(commands)
    if mode == "chat":
        return (
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"{machine}\n{RESTORED}\n{listed}"},
        )
    # A base model continues a transcript: the banner, the same words in braces with
    # the commands listed on one line, then the first command's prompt line.
    banner = machine.strip("{}")
    listed = "; ".join(f"`{c}`" for c in commands)
    return (
        f"{banner}\nLast login: Mon Jan 15 10:00:00 2024 from 10.0.0.2\n"
        f"{RESTORED[:-1]} The commands: {listed}}}\n{PS1_HOST}~$ {commands[0]}\n"
    )


def split_rebuild(text: str, commands: list[str], completion: bool) -> list[str | None]:
    """Each command's output in the rebuilt session, found after its echoed prompt line
    (in order); None for a command the reply never reaches. A completion prompt ends
    with the first command's prompt line, so its reply starts with that output."""
    out: list[list[str] | None] = [None] * len(commands)
    last, collecting = (0, True) if completion else (-1, False)
    if completion:
        out[0] = []
    for line in _session_text(text).split("\n"):
        full = _PROMPT.match(line)
        echoed = full or _BARE.match(line)
        said = echoed.group(1).strip() if echoed else None
        nxt = last + 1
        if said is not None and nxt < len(commands) and said == commands[nxt].strip():
            last, collecting, out[nxt] = nxt, True, []
        elif full:
            collecting = False  # another prompt line ends the output before it
        elif collecting and (seg := out[last]) is not None:
            seg.append(line)
    return [None if seg is None else terminal_output("\n".join(seg), "") for seg in out]


def _session_text(text: str) -> str:
    """The reply's code blocks, joined (a model may give each output its own block), or
    the whole reply when it has none."""
    text = without_reasoning(text)
    blocks = fences(text)
    return "\n".join(f.body for f in blocks) if blocks else text


class Rebuild(Task):
    """The session of task=session, then the rebuild request (see the module's text)."""

    Inputs, Truth = Commands, Outputs
    error_types = ("empty", "unparseable", "repeats_own", "wrong_output")

    def __init__(self, session: Task):
        self.session = session  # draws the same seeded home, commands and true outputs

    def case(
        self, probe: Probe, cell: Mapping[str, Any], seed: int, cid: str,
        rng: np.random.Generator, mode: Mode,
    ) -> Case:  # fmt: skip
        return self.session.case(probe, cell, seed, cid, rng, mode)

    async def converse(self, case: Case, ask: Ask) -> Answer:
        first = await terminal.converse(case, ask, show_truth=False)
        if first.error:
            return first
        commands = case.inputs.commands
        prompt = rebuild_prompt(case.mode, commands, case.inputs.machine)
        budget = rebuild_budget(case.truth.outputs)
        # No stop: a base model's reply runs past the next prompt line, which is the point.
        got = await ask(prompt, max_tokens=budget)
        turns = (*(first.turns or ()), got.text)
        return Answer(
            text=got.text,
            error=got.error,
            turns=turns,
            prompt_tokens=(first.prompt_tokens or 0) + (got.prompt_tokens or 0),
            completion_tokens=(first.completion_tokens or 0) + (got.completion_tokens or 0),
            latency_s=(first.latency_s or 0.0) + (got.latency_s or 0.0),
        )

    def requests(self, case: Case) -> list[tuple[Prompt, str]]:
        prompt = rebuild_prompt(case.mode, case.inputs.commands, case.inputs.machine)
        return [*terminal.requests(case), (prompt, "\n".join(case.truth.outputs))]

    def score(self, case: Case, replies: tuple[str, ...], metrics: dict[str, Any]) -> Score:
        return score_rebuild(case, replies, metrics)


def score_rebuild(case: Case, replies: tuple[str, ...], metrics: dict[str, Any]) -> Score:
    commands, depends = case.inputs.commands, case.inputs.depends_on
    k = len(commands)
    first = [terminal_output(r, c) for r, c in zip(replies[:k], commands, strict=False)]
    rebuilt = split_rebuild(replies[k] if len(replies) > k else "", commands,
                            completion=case.mode == "completion")  # fmt: skip
    want = [lines(t) for t in case.truth.outputs]
    own = [lines(f) for f in first] + [None] * (k - len(first))
    got = [None if r is None else lines(r) for r in rebuilt]
    per_turn: list[dict[str, Any]] = [
        {"exact": got[t] == want[t], "own": got[t] is not None and got[t] == own[t],
         "first": own[t] == want[t], "rebuilt": got[t] is not None,
         "back": None if depends[t] is None else t - depends[t]}
        for t in range(k)
    ]  # fmt: skip
    metrics["rebuilt_true"] = sum(p["exact"] for p in per_turn) / k
    metrics["rebuilt_own"] = sum(p["own"] for p in per_turn) / k
    metrics["first_true"] = sum(p["first"] for p in per_turn) / k
    metrics["rebuilt_consistent"] = _consistent(commands, want, got)
    if all(p["exact"] for p in per_turn):
        return Score(True, metrics, None, None, per_turn)
    text = replies[k] if len(replies) > k else ""
    if not text.strip():
        return Score(False, metrics, "empty", "the rebuild request got no output", per_turn)
    found = sum(p["rebuilt"] for p in per_turn)
    if not found:
        return Score(False, metrics, "unparseable", "no command's prompt line in the reply",
                     per_turn)  # fmt: skip
    exact = sum(p["exact"] for p in per_turn)
    wrong_own = [p for p in per_turn if p["rebuilt"] and not p["exact"]]
    if wrong_own and all(p["own"] for p in wrong_own):
        return Score(False, metrics, "repeats_own",
                     f"{len(wrong_own)} wrong turns repeat the model's first outputs",
                     per_turn)  # fmt: skip
    return Score(False, metrics, "wrong_output", f"{exact} of {k} rebuilt turns true", per_turn)


def _consistent(commands: list[str], want: list[list[str]],
                got: list[list[str] | None]) -> float | None:  # fmt: skip
    pairs = [
        (i, j) for i in range(len(commands)) for j in range(i + 1, len(commands))
        if commands[i] == commands[j] and want[i] == want[j]
    ]  # fmt: skip
    scored = [(i, j) for i, j in pairs if got[i] is not None and got[j] is not None]
    if not scored:
        return None
    return sum(got[i] == got[j] for i, j in scored) / len(scored)
