"""Finding the answer in a reply, as chat models write it.

A chat model rarely replies with the bare answer. It fences it (```python, closed or
cut off at the token limit), reasons first and ends "So the answer is X", wraps it in
[ANSWER] tags or **bold**, labels it "Output:", writes it in LaTeX, or gives it first
and explains after. Every probe finds its answer here, through a `Policy` that says
what kind of answer it expects; the probe's own parser then reads the value. No probe
keeps fence or marker code of its own.

The rules, in order:

1. A reply ends at an end-of-turn token written out as text (`<|im_end|>`,
   `<end_of_turn>`, `<|eot_id|>`, `</s>`): what follows is the model inventing the
   next turns of the chat. Reasoning blocks (`<think>…</think>`) are dropped; a reply
   cut off inside one has no answer.
2. The last `[ANSWER]…[/ANSWER]` (or `<answer>…</answer>`; the closing tag may be
   missing) is the answer region, and nothing outside it counts.
3. Else, the text after the last final-answer marker ("the answer is", "final
   answer:", "the output is:", "so the answer is", "it prints:", a line-leading
   "Answer:" or the probe's own label) is the region. Markers inside fenced blocks do
   not count. For a block answer (a program's output, a terminal) a marker counts only
   where it introduces the block: it ends its line.
4. In the region, a fenced block (``` or ~~~, any language tag, closed or not) holds
   the answer: the first or the last, as the policy says.
5. A label line ("Output:", "**Answer:**") that leads the answer is dropped.

A *block* answer is then the region, as it stands. A *value* answer (one literal,
number, array or word) is looked for among candidates, in this order: the region, its
first paragraph and first line, its last paragraph and last line, then the same in the
whole reply, each also without markdown emphasis, LaTeX wrappers (`$…$`, `\\boxed{}`),
a leading `name =` or `label:` and a closing full stop. The first candidate that the
probe's strict parser accepts is the answer: so an answer followed by an explanation,
and reasoning that ends with a bare answer, are both read.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Policy:
    """What a probe's answer looks like, so the shared rules find it.

    kind:   "value" (one literal, number, array, word) or "block" (lines of output).
    fence:  which fenced block holds the answer when a reply has several.
    labels: the probe's own answer labels ("depth"), read like "Answer:" at the start
            of a line and like "the answer is" in a sentence ("the depth is 3").
    """

    kind: Literal["value", "block"] = "value"
    fence: Literal["first", "last"] = "last"
    labels: tuple[str, ...] = ()


VALUE = Policy()
BLOCK = Policy(kind="block")


# --- fenced blocks ---------------------------------------------------------------------


@dataclass(frozen=True)
class Fence:
    lang: str  # the info string's first word ("python"), or ""
    body: str
    closed: bool
    start: int  # character offsets of the whole block in the text
    end: int


_LANG = re.compile(r"^[\w+#.\-]*$")


def fences(text: str) -> list[Fence]:
    """Every fenced block in order, up to _MAX_FENCES. An unclosed fence runs to the end
    of the text; a fence on one line (```[1, 2]```) holds what lies between its marks."""
    found: list[Fence] = []
    pos, size = 0, len(text)
    # The pattern finds the next opening line; only lines inside a fence are walked.
    while len(found) < _MAX_FENCES and (m := _OPEN_LINE.search(text, pos)):
        start, line_end = m.start(), m.end()
        mark, info = m.group(1), m.group(2).strip()
        mark3, ch = mark[:3], mark[0]
        if info.endswith(mark3) and not _LANG.match(info):  # ```[1, 2]```
            body = info[: -len(mark3)].rstrip("`~").strip()
            found.append(Fence("", body, True, start, line_end))
            pos = line_end + 1
            continue
        lines: list[str] = []
        lang = info.split()[0] if info and _LANG.match(info.split()[0]) else ""
        if info and not lang:  # ```[[1, 2], on the opening line: part of the body
            lines.append(info)
        j, end, closed = line_end + 1, size, False
        while j <= size:
            k = text.find("\n", j)
            k = size if k < 0 else k
            line = text[j:k]
            bare = line.strip()
            if bare.startswith(mark3) and not bare.strip(ch):
                end, closed = k, True
                break
            if bare.endswith(mark3):  # [3, 4]``` closes on a body line
                lines.append(line.rstrip()[: -len(mark3)].rstrip(ch))
                end, closed = k, True
                break
            lines.append(line)
            j = k + 1
        found.append(Fence(lang, "\n".join(lines), closed, start, max(end, start)))
        pos = end + 1
    return found


_OPEN_LINE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([^\n]*)$", re.M)
# No reply holds more code blocks than this; a megabyte of fence marks would otherwise
# cost a second in objects alone. Past it, the text is read as unfenced.
_MAX_FENCES = 1000


def _masked(text: str, found: list[Fence]) -> str:
    """The text with fenced blocks blanked, offsets kept: markers in code do not count."""
    if not found:
        return text
    parts, at = [], 0
    for f in found:
        start, end = max(f.start, at), min(f.end, len(text))
        if end <= start:
            continue
        parts += [text[at:start], _BLANK.sub(" ", text[start:end])]
        at = end
    parts.append(text[at:])
    return "".join(parts)


_BLANK = re.compile(r"[^\n]")


def _pick(found: list[Fence], policy: Policy) -> Fence | None:
    if not found:
        return None
    return found[0] if policy.fence == "first" else found[-1]


# --- reasoning, tags, markers ----------------------------------------------------------

_THINK = re.compile(r"<(think|thinking|reasoning)>.*?(?:</\1>|\Z)", re.S | re.I)
_TAG = re.compile(r"(?:\[ANSWER\]|<answer>)(.*?)(?:\[/ANSWER\]|</answer>|\Z)", re.S | re.I)

_LEAD = r"\b(?:(?:so|thus|therefore|hence|then|and)\s*,?\s+)?"
_BE = r"(?:is|would\s+be|will\s+be|should\s+be|=)"
_SAY = r"(?:prints?|outputs?|returns?|shows?|gives?|displays?)"
# Sentences that announce the final answer, anywhere in a line.
_SENTENCE = (
    rf"{_LEAD}(?:my\s+|the\s+)?final\s+answer\s*(?:{_BE}|:)",
    rf"{_LEAD}the\s+(?:correct\s+|final\s+)?answer\s*(?:{_BE}|:)",
    rf"{_LEAD}the\s+(?:final\s+|expected\s+|printed\s+|exact\s+|terminal\s+|program(?:'s)?\s+)?"
    rf"(?:output|result|value|return\s+value)\s+{_BE}",
    rf"{_LEAD}(?:it|this|that|the\s+(?:program|code|function|call|script|command|terminal))"
    rf"\s+(?:would\s+|will\s+|should\s+)?{_SAY}",
)
# Labels that lead a line: "Answer:", "**Final Answer:**", "Output:".
_LABEL_WORDS = ("final answer", "answer", "output", "result")


def _words(text: str) -> str:
    return re.escape(text).replace(r"\ ", r"\s+")


def _label_re(words: tuple[str, ...]) -> str:
    names = "|".join(_words(w) for w in words)
    return rf"^[ \t>*_#-]*(?:{names})[ \t*_]*[:：][ \t*_]*"


def _markers(policy: Policy) -> re.Pattern[str]:
    labels = _label_re(_LABEL_WORDS + policy.labels)
    # A probe's own labels also make sentences: "the maximum depth is 3".
    own = tuple(rf"{_LEAD}the\s+{_words(label)}\s+{_BE}" for label in policy.labels)
    if policy.kind == "block":
        # Only where the marker ends its line: a program may well print "Result: 5".
        sentence = "|".join(_SENTENCE + own)
        return re.compile(rf"(?:{sentence}|{labels})[ \t:：*_]*(?=\n|$)", re.I | re.M)
    # Not past emphasis: "the answer is **3**" keeps its bold for the variants to peel.
    return re.compile(rf"(?:{'|'.join(_SENTENCE + own)})[ \t:：]*|{labels}", re.I | re.M)


_marker_re = functools.cache(_markers)

# A word every marker holds: searching only around these keeps a megabyte of text
# that holds none from costing the marker pattern's alternation at every position.
_TRIGGERS = ("answer", "output", "result", "value", "return", "print", "show", "give", "display")
_REACH = 200  # how far a marker extends around its word ("so, therefore, the final …")


def _find_markers(text: str, policy: Policy) -> list[re.Match[str]]:
    """The markers in `text`, in order: `_marker_re(policy).finditer(text)`, in time
    linear in the text whatever it holds."""
    low = text.lower()
    words = set(_TRIGGERS) | {label.split()[0].lower() for label in policy.labels}
    spans = []
    for word in words:
        i = low.find(word)
        while i != -1:
            spans.append((max(0, i - _REACH), min(len(text), i + len(word) + _REACH)))
            i = low.find(word, i + len(word))
    merged: list[list[int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    rx = _marker_re(policy)
    # A window's end is not the text's: a match cut there is no marker.
    return [
        m
        for a, b in merged
        for m in rx.finditer(text, a, b)
        if not (m.end() == b < len(text) and text[b] != "\n")
    ]


@functools.cache
def _label_line_re(policy: Policy) -> re.Pattern[str]:
    return re.compile(_label_re(_LABEL_WORDS + policy.labels) + r"$", re.I)


_END_OF_TURN = re.compile(
    r"<\|im_end\|>|<\|eot_id\|>|<\|end\|>|<\|endoftext\|>|<end_of_turn>|<\|end_of_turn\|>|</s>"
)


def without_reasoning(text: str) -> str:
    """The reply up to its end of turn, without its reasoning blocks."""
    return _THINK.sub("", _END_OF_TURN.split(text, 1)[0])


def region(text: str, policy: Policy = BLOCK) -> str:
    """Where the answer is (rules 1-5): for a block answer, the answer itself."""
    return _region(without_reasoning(text), policy)[0]


def _region(text: str, policy: Policy) -> tuple[str, bool]:
    """(region, whether an [ANSWER] tag chose it: then nothing outside it counts)."""
    tags = list(_TAG.finditer(text))
    if tags:
        part = tags[-1].group(1).strip("\n")
        in_part = fences(part)
    else:
        in_part = fences(text)
        marks = _find_markers(_masked(text, in_part), policy)
        part = text
        if marks:
            # After a marker, blank lines before the answer are layout, not output.
            part = text[marks[-1].end() :].lstrip(" \t").lstrip("\n")
            in_part = fences(part)
    fence = _pick(in_part, policy)
    if fence is not None and (policy.kind == "block" or fence.body.strip()):
        part = fence.body
    return _drop_label_line(part, policy), bool(tags)


def _drop_label_line(text: str, policy: Policy) -> str:
    """Without a leading "Output:" line (and the blank lines after it). Other leading
    blank lines stay: a program may print an empty first line."""
    lines = text.split("\n")
    if lines and _label_line_re(policy).match(lines[0]):
        lines.pop(0)
        while lines and not lines[0].strip():
            lines.pop(0)
    return "\n".join(lines)


# --- value answers ---------------------------------------------------------------------

_WRAPS = (
    re.compile(r"^\*\*(.+)\*\*$", re.S),
    re.compile(r"^__(.+)__$", re.S),
    re.compile(r"^\*(.+)\*$", re.S),
    re.compile(r"^\$\$(.+)\$\$$", re.S),
    re.compile(r"^\$(.+)\$$", re.S),
    re.compile(r"^\\\[(.+)\\\]$", re.S),
    re.compile(r"^\\\((.+)\\\)$", re.S),
    re.compile(r"^\\boxed\{(.+)\}$", re.S),
    re.compile(r"^\\text\{(.+)\}$", re.S),
)
_PREFIX = re.compile(r"^(?:[A-Za-z_][\w ]{0,30}[:：]|[A-Za-z_]\w{0,30}\s*=(?!=))\s*")


# Past this length a text is taken as it is, unpeeled: no value answer is that long, and
# each peel copies it (a megabyte of asterisks took two seconds).
_PEEL_LIMIT = 100_000


def _variants(text: str, depth: int = 4) -> Iterator[str]:
    """The text, then with its wrappers peeled, up to `depth` layers deep: "**`3`**."
    needs three; a reply of a thousand asterisks gets no more than four."""
    seen = set()
    layer = [text.strip()]
    if len(layer[0]) > _PEEL_LIMIT:
        yield layer[0]
        return
    for _ in range(depth + 1):
        peeled = []
        for t in layer:
            if not t or t in seen:
                continue
            seen.add(t)
            yield t
            peeled += _peel(t)
        layer = peeled


def _peel(t: str) -> list[str]:
    """Each way of taking one wrapper off `t`."""
    out = [m.group(1).strip() for w in _WRAPS if (m := w.match(t))]
    ticks = len(t) - len(t.lstrip("`"))
    if 0 < ticks <= 3 and t.endswith("`" * ticks) and len(t) > 2 * ticks:
        out.append(t[ticks:-ticks].strip())  # `x`, ``x``, ```x``` (one line)
    if t.strip("*_") != t:  # emphasis a marker left half-open: "True**"
        out.append(t.strip("*_").strip())
    if t[-1] in ".。" and not t.endswith(".."):
        out.append(t[:-1].strip())
    if m := _PREFIX.match(t):
        out.append(t[m.end() :].strip())
    return out


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _pieces(text: str) -> Iterator[str]:
    yield text
    paras = _paragraphs(text)
    # The first and last lines that hold anything, without splitting the whole text.
    bare = text.strip()
    first, last = bare.split("\n", 1)[0], bare.rsplit("\n", 1)[-1]
    if paras:
        yield paras[0]
    if bare:
        yield first
    if paras:
        yield paras[-1]
    if bare:
        yield last


def candidates(text: str, policy: Policy = VALUE) -> list[str]:
    """Every reading of a value answer, most likely first."""
    return list(_candidates(text, policy))


def _candidates(text: str, policy: Policy) -> Iterator[str]:
    # Lazily, so that `find` stops reading at the first one its parser accepts (most
    # answers: the first), which at research scale is most of a scorer's time.
    text = without_reasoning(text)
    part, tagged = _region(text, policy)
    sources = [part] if tagged else [part, text]
    seen: set[str] = set()  # a megabyte is hashed once, not compared
    for source in sources:
        for piece in dict.fromkeys(_pieces(source)):
            for v in _variants(piece):
                if v not in seen:
                    seen.add(v)
                    yield v


@dataclass(frozen=True)
class Found(Generic[T]):
    value: T  # what `parse` made of it
    said: str  # the text the value was read from


def find(text: str, parse: Callable[[str], T], policy: Policy = VALUE) -> Found[T] | None:
    """The first candidate `parse` accepts (it raises ValueError to refuse), or None."""
    for c in _candidates(text, policy):
        try:
            found = Found(parse(c), c)
        except (ValueError, TypeError, SyntaxError, OverflowError, RecursionError, MemoryError):
            continue
        if (seen := _SEEN.get()) is not None:
            seen.append(c)
        return found
    return None


# What `find` read its values from, while a report asks (recording()): the region of
# the raw answer the case browser highlights.
_SEEN: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("seen", default=None)


@contextlib.contextmanager
def recording() -> Iterator[list[str]]:
    """The text of each candidate `find` accepts inside the block, in order."""
    seen: list[str] = []
    token = _SEEN.set(seen)
    try:
        yield seen
    finally:
        _SEEN.reset(token)
