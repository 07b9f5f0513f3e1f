"""Convolution: can the model compute a small cross-correlation by hand?

Read top to bottom: the truth (numpy), case generation, the prompt, the parser,
the scorer.

"Convolution" in deep learning (PyTorch's conv1d/conv2d) is cross-correlation: the
kernel slides over the input *without* being flipped. The prompt says so. An answer
equal to the flipped-kernel result (the textbook convolution, scipy.signal.convolve)
is scored as its own error type: the model computed, but the other operation.
So is an answer that repeats a worked example's output: it looks right because it
was seen, not computed.

Error types (`ConvProbe.error_types`): api_error, scorer_error, empty, unparseable,
wrong_shape, flipped_kernel, copied_example, wrong_values (None when correct).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from emulate.case import Answer, Case, Mode, Score, case_id, case_rng
from emulate.extract import find
from emulate.probe import HARNESS_ERRORS, Param, Probe, covariate, metric
from emulate.prompt import Example, PerMode, Rendered, render

# --- the truth -------------------------------------------------------------------


def cross_correlate(
    x: np.ndarray, w: np.ndarray, stride: int = 1, padding: int = 0, dilation: int = 1
) -> np.ndarray:
    """N-d cross-correlation as torch.nn.functional.convNd computes it.

    x: (cin, *spatial); w: (cout, cin, *kernel) -> (cout, *out_spatial).
    """
    return correlate_batch(x[None], w[None], stride, padding, dilation)[0]


def correlate_batch(
    x: np.ndarray, w: np.ndarray, stride: int = 1, padding: int = 0, dilation: int = 1
) -> np.ndarray:
    """`cross_correlate` of B pairs at once: x (B, cin, *spatial), w (B, cout, cin,
    *kernel) -> (B, cout, *out_spatial). One contraction for a case's worked examples
    and question together: on arrays this small numpy's per-call cost is the cost."""
    dims = x.ndim - 2
    if padding:
        x = np.pad(x, [(0, 0), (0, 0)] + [(padding, padding)] * dims)
    spatial = tuple(range(2, dims + 2))
    span = tuple(dilation * (k - 1) + 1 for k in w.shape[3:])
    # Every window at once, (B, cin, *all_positions, *span); then every stride-th
    # position and every dilation-th tap.
    windows = np.lib.stride_tricks.sliding_window_view(x, span, axis=spatial)
    windows = windows[
        (slice(None),) * 2
        + (slice(None, None, stride),) * dims
        + (slice(None, None, dilation),) * dims
    ]
    letters = "defghijklmnop"
    out, taps = letters[:dims], letters[dims : 2 * dims]
    return np.einsum(f"boc{taps},bc{out}{taps}->bo{out}", w, windows).astype(np.int64)


def flipped(w: np.ndarray, dims: int | None = None) -> np.ndarray:
    """The kernel a true convolution uses: reversed along every spatial axis (the
    last `dims`, by default all but the out and in channel axes)."""
    dims = w.ndim - 2 if dims is None else dims
    return w[(Ellipsis,) + (slice(None, None, -1),) * dims].copy()


# --- cases -------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    input: list  # (size,) or (size, size), with a leading channel axis when cin > 1
    kernel: list  # (k,) or (k, k), with (cout, cin) axes in front when either exceeds 1


@dataclass(frozen=True)
class Truth:
    output: list  # what PyTorch's conv1d/conv2d gives, channel axes as in the input


PARAMS = (
    # The default sweep (`emulate run conv` on the embedded model):
    # one axis, size, with enough values for a breaking point with an interval, on
    # the entries (0/1) and kernels (1, 2) where a small model answers some right.
    Param("dims", (1,), "1 for a sequence, 2 for a matrix", lo=1, hi=2),
    Param("size", (2, 3, 4, 5, 6, 7, 8, 9), "input length (1-D) or side (2-D)", lo=2, hi=16),
    Param("kernel", (1, 2), "kernel length or side", lo=1, hi=7),
    Param("stride", (1,), "step between windows", lo=1, hi=4),
    Param("padding", (0,), "zeros added on every side", lo=0, hi=3),
    Param("dilation", (1,), "gap between kernel taps (1 = none)", lo=1, hi=3),
    Param("cin", (1,), "input channels", lo=1, hi=4),
    Param("cout", (1,), "output channels", lo=1, hi=4),
    Param("values", (1,), "entries drawn from 0..values (or -values..values)", lo=1, hi=99),
    Param("signed", (0,), "1 draws negative entries too", lo=0, hi=1),
    Param("shots", (2,), "worked examples before the question", lo=0, hi=4),
)

ConvCase = Case[Inputs, Truth]


class ConvProbe(Probe):
    name = "conv"
    version = 1
    Inputs = Inputs
    Truth = Truth
    summary = "1-D/2-D cross-correlation of small integer arrays (no kernel flip)"
    params = PARAMS
    columns = (
        metric("exact", bool),
        metric("shape_ok", bool),
        metric("cell_acc"),
        metric("mae"),
        metric("flipped", bool),
        metric("copied", bool),
        covariate("n_cells"),
        covariate("macs_per_cell"),
    )
    error_types = (
        *HARNESS_ERRORS,
        "empty",
        "unparseable",
        "wrong_shape",
        "flipped_kernel",
        "copied_example",
        "wrong_values",
    )
    default_mode = "chat"
    summary_means = ("cell_acc",)
    pure_build = True  # numpy alone: built on another core in a large run
    default_n = 4  # 64 cases: the default sweep's breaking point has an interval

    def check_cell(self, cell: Mapping[str, Any]) -> str | None:
        span = cell["dilation"] * (cell["kernel"] - 1) + 1
        padded = cell["size"] + 2 * cell["padding"]
        if span > padded:
            return f"the kernel spans {span} cells but the padded input has {padded}"
        if cell["padding"] >= span:
            # PyTorch allows it, but whole outputs of zeros teach nothing.
            return f"padding {cell['padding']} is not smaller than the kernel span {span}"
        return None

    def make_case(self, cell: Mapping[str, Any], seed: int, mode: Mode) -> ConvCase:
        cid = case_id(self.name, self.version, cell, seed)
        rng = case_rng(cid)
        *shots, drawn = _draws(cell, rng, cell["shots"] + 1)
        truth, flip = drawn["truth"], drawn["flipped_truth"]
        return self.new_case(
            cid,
            dict(cell),
            seed,
            inputs=Inputs(drawn["input"], drawn["kernel"]),
            truth=Truth(truth),
            prompt=_prompt(mode, cell, shots, drawn, len(_fmt(truth))),
            foils={"flipped_kernel": flip, "copied_example": [s["truth"] for s in shots]},
            covariates={
                "n_cells": int(np.asarray(truth).size),
                "macs_per_cell": cell["cin"] * cell["kernel"] ** cell["dims"],
            },
        )

    def answer_text(self, case: Case) -> str:
        return _fmt(case.truth.output)

    def migrate(self, case: Case) -> Case:
        # Journals before typed truths held the output array itself.
        return replace(case, truth={"output": case.truth}) if isinstance(case.truth, list) else case

    def blank_metrics(self, case: Case) -> dict[str, Any]:
        # Flags start false, not unknown: no answer is no exact match.
        flags = {"exact": False, "shape_ok": False, "flipped": False, "copied": False}
        return super().blank_metrics(case) | flags

    def score(self, case: Case, answer: Answer) -> Score:
        return score(case, answer)


def _draws(cell: Mapping[str, Any], rng: np.random.Generator, count: int) -> list[dict[str, Any]]:
    """`count` inputs, kernels and truths (and the flipped kernels'), shown without
    channel axes when there is one channel. Drawn one pair after another, so the
    random stream (and so every case) is the same as when each was computed alone."""
    d, lo, hi = cell["dims"], -cell["values"] if cell["signed"] else 0, cell["values"]
    xs, ws = [], []
    for _ in range(count):
        xs.append(rng.integers(lo, hi + 1, size=(cell["cin"],) + (cell["size"],) * d))
        ws.append(
            rng.integers(lo, hi + 1, size=(cell["cout"], cell["cin"]) + (cell["kernel"],) * d)
        )
    x, w = np.stack(xs), np.stack(ws)
    # Both kernels in one call: the flipped ones as extra output channels.
    both = correlate_batch(
        x,
        np.concatenate([w, flipped(w, d)], axis=1),
        stride=cell["stride"],
        padding=cell["padding"],
        dilation=cell["dilation"],
    )
    y, y_flip = both[:, : cell["cout"]], both[:, cell["cout"] :]
    if cell["cin"] == 1 and cell["cout"] == 1:
        x, w, y, y_flip = x[:, 0], w[:, 0, 0], y[:, 0], y_flip[:, 0]
    elif cell["cout"] == 1:
        y, y_flip = y[:, 0], y_flip[:, 0]
    return [
        {"input": a, "kernel": b, "flipped_truth": c, "truth": e}
        for a, b, c, e in zip(x.tolist(), w.tolist(), y_flip.tolist(), y.tolist(), strict=True)
    ]


# --- the prompt ----------------------------------------------------------------------


_ENCODE = json.JSONEncoder(separators=(", ", ": ")).encode  # one encoder, not one per call


def _fmt(a: Any) -> str:
    return _ENCODE(a)


def _describe(cell: Mapping[str, Any]) -> str:
    op = "1-D" if cell["dims"] == 1 else "2-D"
    torch_fn = "conv1d" if cell["dims"] == 1 else "conv2d"
    text = (
        f"{op} cross-correlation, as PyTorch's {torch_fn} computes it: the kernel is NOT "
        f"flipped. Stride {cell['stride']}, padding {cell['padding']} (zeros), "
        f"dilation {cell['dilation']}. Each output value is the sum of the input window "
        "times the kernel, element by element."
    )
    axes = "length" if cell["dims"] == 1 else "height, width"
    if cell["cin"] > 1 or cell["cout"] > 1:
        text += (
            f" The input has shape (in channels, {axes}); the kernel has shape "
            f"(out channels, in channels, {axes}); each output channel sums over all "
            "input channels."
        )
        if cell["cout"] > 1:
            text += f" The output has shape (out channels, {axes})."
    return text


SYSTEM = (
    "You compute exactly. Reply with the output array only, as a JSON array, with no explanation."
)


def _prompt(
    mode: Mode,
    cell: Mapping[str, Any],
    shots: list[dict],
    inputs: Mapping[str, Any],
    answer_chars: int,
) -> Rendered:
    def question(x: Mapping[str, Any]) -> str:
        return f"Input: {_fmt(x['input'])}\nKernel: {_fmt(x['kernel'])}"

    return render(
        mode,
        question(inputs),
        examples=[Example(question(s), _fmt(s["truth"])) for s in shots],
        intro=_describe(cell),
        system=SYSTEM,
        cue="\nOutput:",
        # Room for the answer in any tokenizer (a token is rarely under one
        # character), plus some for a chat model's framing.
        budget=PerMode(chat=answer_chars + 256, completion=answer_chars + 32),
        # A base model would go on to the next example's input.
        completion_stop=("\n\n", "\nInput"),
    )


# --- the parser ----------------------------------------------------------------------

_NUM = re.compile(r"[-+−]?\d+(?:\.\d+)?")
_SEPARATOR_ROW = re.compile(r"^\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?$")
_LATEX = re.compile(
    r"^(?:\\left.?\s*)?\\begin\{(\w*matrix|array)\}(?:\{[^}]*\})?(.*?)\\end\{\1\}"
    r"(?:\s*\\right.?)?$",
    re.S,
)


def parse_array(text: str) -> tuple[np.ndarray, None] | tuple[None, str]:
    """The answer's numeric array, or (None, why not), found by the shared extraction
    rules (emulate/extract.py): fences, "the output is", tags, an answer first or last.

    An answer is read as a JSON array, numpy's print ("[[1 2]\\n [3 4]]"), rows of
    plain numbers ("6 8" or "6, 8" a line), a markdown table, or a LaTeX matrix
    (bmatrix, pmatrix, array).
    """
    if not text.strip():
        return None, "empty answer"
    found = find(text, read_array)
    if found is None:
        return None, "no numeric array found in the answer"
    return np.asarray(found.value), None


def read_array(text: str) -> np.ndarray:
    """One array written in any of the forms above, and nothing else (else ValueError)."""
    text = text.strip().replace("−", "-")
    if m := _LATEX.match(text):
        rows = [r for r in re.split(r"\\\\(?:\[[^]]*\])?", m.group(2)) if r.strip()]
        return _rows([r.replace("&", " ").replace("{", " ").replace("}", " ") for r in rows])
    if text.startswith("[") and text.endswith("]"):
        return _bracketed(text)
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if lines and all(ln.strip().startswith("|") for ln in lines):
        # A markdown table: its rule row goes, and a header row above the rule.
        rule = next((i for i, ln in enumerate(lines) if _SEPARATOR_ROW.match(ln.strip())), None)
        if rule is not None:
            lines = (
                lines[rule + 1 :]
                if rule == 1 and not _is_row(lines[0])
                else (lines[:rule] + lines[rule + 1 :])
            )
    return _rows(lines)


def _is_row(line: str) -> bool:
    cells = [c for c in re.split(r"[\s,;|]+", line) if c]
    return bool(cells) and all(_NUM.fullmatch(c) for c in cells)


def _bracketed(span: str) -> np.ndarray:
    # numpy prints "[[1 2]\n [3 4]]": put the commas JSON needs between items.
    span = re.sub(r"(?<=[\d\]])\s+(?=[-+\d\[])", ", ", span)
    span = re.sub(r",\s*\]", "]", span)  # trailing commas
    return _finite(np.array(json.loads(span), dtype=float))


def _rows(lines: list[str]) -> np.ndarray:
    """Lines of numbers separated by spaces, commas, semicolons or table pipes."""
    parsed = []
    for line in lines:
        if not _is_row(line):
            raise ValueError(f"not a row of numbers: {line[:40]!r}")
        parsed.append([float(c) for c in re.split(r"[\s,;|]+", line) if c])
    if len({len(r) for r in parsed}) != 1:
        raise ValueError("rows of different lengths")
    return _finite(np.array(parsed[0] if len(parsed) == 1 else parsed))


def _finite(array: np.ndarray) -> np.ndarray:
    if not array.size or not np.isfinite(array).all():
        raise ValueError("empty or not finite")
    return array


# --- the scorer ----------------------------------------------------------------------


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _fit_shape(parsed: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Forgive extra or missing length-1 axes ("5" for [[5]]); nothing else."""
    if parsed.shape != truth.shape and parsed.squeeze().shape == truth.squeeze().shape:
        return parsed.reshape(truth.shape)
    return parsed


def score(case: ConvCase, answer: Answer) -> Score:
    truth = np.asarray(case.truth.output, dtype=float)
    metrics = ConvProbe().blank_metrics(case)
    parsed, why = parse_array(answer.text)
    if parsed is None:
        if answer.finish_reason == "length":
            why = f"{why} (the answer was cut off at the token limit)"
        return Score(False, metrics, "empty" if answer.text.strip() == "" else "unparseable", why)
    parsed = _fit_shape(parsed, truth)
    shown = parsed.tolist()
    if parsed.shape != truth.shape:
        reason = f"shape {list(parsed.shape)}, expected {list(truth.shape)}"
        return Score(False, metrics, "wrong_shape", reason, shown)
    metrics["shape_ok"] = True
    metrics["cell_acc"] = float(np.mean(parsed == truth))
    metrics["mae"] = float(np.mean(np.abs(parsed - truth)))
    if _same(parsed, truth):
        metrics["exact"] = True
        return Score(True, metrics, None, None, shown)
    # Only a real confusion when the two operations disagree on this case.
    if _same(parsed, np.asarray(case.foils["flipped_kernel"], dtype=float)):
        metrics["flipped"] = True
        reason = "equals the flipped-kernel (true convolution) result"
        return Score(False, metrics, "flipped_kernel", reason, shown)
    # Output that looks right because it was seen, not computed.
    if any(_same(parsed, np.asarray(t, dtype=float)) for t in case.foils["copied_example"]):
        metrics["copied"] = True
        return Score(False, metrics, "copied_example", "repeats a worked example's answer", shown)
    wrong = int(np.sum(parsed != truth))
    return Score(False, metrics, "wrong_values", f"{wrong} of {truth.size} cells wrong", shown)
