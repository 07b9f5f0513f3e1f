"""Prompts in chat or completion form, with worked examples, from one description.

A base model continues documents, so a completion prompt is one: an introduction,
each worked example as its question, a cue and its answer, then the question and the
cue, in blocks separated by blank lines. A chat model gets a system message, each
worked example as a user turn and an assistant turn, and the question as the last
user turn (the introduction goes before the first question). Every probe renders its
prompts here, so the two forms of a case always show the same examples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .case import Prompt
from .errors import EmulateError

MODES = ("chat", "completion")


@dataclass(frozen=True)
class Example:
    """A worked example: what the model is shown, and the answer it is shown with."""

    input: str
    output: str


def _same(text: str) -> str:
    return text


def render(
    mode: str,
    question: str,
    *,
    examples: Sequence[Example] = (),
    intro: str = "",
    system: str = "",
    cue: str = "",
    cue_space: str = " ",
    completion_answer: Callable[[str], str] = _same,
    chat_answer: Callable[[str], str] = _same,
) -> Prompt:
    """The prompt for `question` in `mode`.

    completion: intro, then each example as `input + cue + cue_space + answer`, then
    `question + cue`, blocks joined by blank lines. The cue ("Output:") asks a base
    model for the answer; chat has no cue, the assistant's turn asks.
    chat: `system` (if any), then each example as a user turn (`input`) and an assistant
    turn (`chat_answer(output)`), then `question`; `intro` and a blank line lead the
    first user turn.
    """
    if mode == "completion":
        blocks = [intro] if intro else []
        blocks += [f"{e.input}{cue}{cue_space}{completion_answer(e.output)}" for e in examples]
        return "\n\n".join([*blocks, f"{question}{cue}"])
    if mode != "chat":
        raise EmulateError(f"mode {mode!r} is not valid; use one of {', '.join(MODES)}")
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    lead = f"{intro}\n\n" if intro else ""
    for e in examples:
        messages.append({"role": "user", "content": lead + e.input})
        messages.append({"role": "assistant", "content": chat_answer(e.output)})
        lead = ""
    messages.append({"role": "user", "content": lead + question})
    return tuple(messages)


def example_seed(seed: int, i: int) -> int:
    """The seed of a case's i-th worked example: derived from the case's own seed, and
    far above the seeds a run gives its cases (seed, seed + 1, ...)."""
    digest = hashlib.sha256(f"example:{seed}:{i}".encode()).digest()
    return 2**62 + int.from_bytes(digest[:7], "big")


def seeded_examples(draw: Callable[[int], tuple[str, str]], seed: int, k: int) -> list[Example]:
    """`k` worked examples from a probe's own generator, `draw(seed) -> (input,
    output)`, at seeds of their own (`example_seed`): the same examples for the same
    case on every machine, never drawn at a case's seed."""
    return [Example(*draw(example_seed(seed, i))) for i in range(k)]


def mode_of(prompt: Prompt) -> str:
    return "completion" if isinstance(prompt, str) else "chat"
