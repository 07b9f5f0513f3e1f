"""Prompts in chat or completion form, with worked examples, from one description.

A base model continues documents, so a completion prompt is one: an introduction,
each worked example as its question, a cue and its answer, then the question and the
cue, in blocks separated by blank lines. A chat model gets a system message, each
worked example as a user turn and an assistant turn, and the question as the last
user turn (the introduction goes before the first question). Every probe renders its
prompts here, so the two forms of a case always show the same examples.

What differs by mode is said here too, once: a prompt comes back `Rendered`, with the
stop sequences that end its answer (a base model's, which would otherwise write the
next worked example; a chat model ends its own turn) and its answer budget. A text or
budget that differs by mode is given as `PerMode(chat=..., completion=...)`, so a
probe never branches on the mode itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, get_args

from .case import Mode, Prompt
from .errors import EmulateError

MODES: tuple[Mode, ...] = get_args(Mode)
DEFAULT_BUDGET = 256  # answer tokens where a probe names none (Case.max_tokens' default)

T = TypeVar("T")


@dataclass(frozen=True)
class PerMode(Generic[T]):
    """A value that differs by mode: a budget, an introduction, a whole question."""

    chat: T
    completion: T

    def of(self, mode: Mode) -> T:
        return self.completion if check_mode(mode) == "completion" else self.chat


def per_mode(value: T | PerMode[T], mode: Mode) -> T:
    """`value` itself, or its form for `mode` when it is a PerMode."""
    return value.of(mode) if isinstance(value, PerMode) else value


def check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise EmulateError(f"mode {mode!r} is not valid; use one of {', '.join(MODES)}")
    return mode


@dataclass(frozen=True)
class Rendered:
    """A prompt with what a request of it needs: the stop sequences that end its answer
    and the answer's token budget. `Probe.new_case(prompt=...)` takes it whole."""

    prompt: Prompt
    stop: tuple[str, ...] = ()
    max_tokens: int = DEFAULT_BUDGET


@dataclass(frozen=True)
class Example:
    """A worked example: what the model is shown, and the answer it is shown with."""

    input: str
    output: str


def _same(text: str) -> str:
    return text


def rendered(
    mode: Mode,
    prompt: Prompt,
    *,
    budget: int | PerMode[int] = DEFAULT_BUDGET,
    completion_stop: tuple[str, ...] = (),
) -> Rendered:
    """A prompt (rendered here, or a transcript a probe writes itself) with its stop
    sequences, `completion_stop` in completion mode and none in chat, and its budget."""
    stop = completion_stop if check_mode(mode) == "completion" else ()
    return Rendered(prompt, stop, per_mode(budget, mode))


def render(
    mode: Mode,
    question: str | PerMode[str],
    *,
    examples: Sequence[Example] = (),
    intro: str | PerMode[str] = "",
    system: str = "",
    cue: str = "",
    cue_space: str = " ",
    completion_answer: Callable[[str], str] = _same,
    chat_answer: Callable[[str], str] = _same,
    budget: int | PerMode[int] = DEFAULT_BUDGET,
    completion_stop: tuple[str, ...] = (),
) -> Rendered:
    """The prompt for `question` in `mode`, with its stop sequences and budget.

    completion: intro, then each example as `input + cue + cue_space + answer`, then
    `question + cue`, blocks joined by blank lines. The cue ("Output:") asks a base
    model for the answer; chat has no cue, the assistant's turn asks.
    chat: `system` (if any), then each example as a user turn (`input`) and an assistant
    turn (`chat_answer(output)`), then `question`; `intro` and a blank line lead the
    first user turn.
    `budget` is the answer's tokens (a PerMode where a chat model needs room for its
    framing); `completion_stop` ends a base model's answer (chat has no stop).
    """
    text, lead = per_mode(question, mode), per_mode(intro, mode)
    if check_mode(mode) == "completion":
        blocks = [lead] if lead else []
        blocks += [f"{e.input}{cue}{cue_space}{completion_answer(e.output)}" for e in examples]
        prompt: Prompt = "\n\n".join([*blocks, f"{text}{cue}"])
    else:
        messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
        lead = f"{lead}\n\n" if lead else ""
        for e in examples:
            messages.append({"role": "user", "content": lead + e.input})
            messages.append({"role": "assistant", "content": chat_answer(e.output)})
            lead = ""
        messages.append({"role": "user", "content": lead + text})
        prompt = tuple(messages)
    return rendered(mode, prompt, budget=budget, completion_stop=completion_stop)


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


def mode_of(prompt: Prompt) -> Mode:
    return "completion" if isinstance(prompt, str) else "chat"
