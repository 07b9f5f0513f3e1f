"""Convolution: can the model compute a small cross-correlation by hand?

Read top to bottom: the truth (numpy), case generation, the prompt, the parser,
the scorer.

"Convolution" in deep learning (PyTorch's conv1d/conv2d) is cross-correlation: the
kernel slides over the input *without* being flipped. The prompt says so. An answer
equal to the flipped-kernel result (the textbook convolution, scipy.signal.convolve)
is scored as its own error type: the model computed, but the other operation.
So is an answer that repeats a worked example's output: it looks right because it
was seen, not computed.

Error types: api_error, empty, unparseable, wrong_shape, flipped_kernel,
copied_example, wrong_values (None when correct).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from emulate.case import Answer, Case, Score, case_id, case_rng
from emulate.probe import Param, Probe

# --- the truth -------------------------------------------------------------------


def cross_correlate(
    x: np.ndarray, w: np.ndarray, stride: int = 1, padding: int = 0, dilation: int = 1
) -> np.ndarray:
    """N-d cross-correlation as torch.nn.functional.convNd computes it.

    x: (cin, *spatial); w: (cout, cin, *kernel) -> (cout, *out_spatial).
    """
    dims = x.ndim - 1
    xp = np.pad(x, [(0, 0)] + [(padding, padding)] * dims)
    kernel = w.shape[2:]
    out_shape = tuple(
        (xp.shape[1 + i] - dilation * (kernel[i] - 1) - 1) // stride + 1 for i in range(dims)
    )
    out = np.zeros((w.shape[0], *out_shape), dtype=np.int64)
    for offsets in np.ndindex(*kernel):
        # The input cells that kernel position `offsets` touches, for every output cell.
        window = xp[
            (slice(None),)
            + tuple(
                slice(o * dilation, o * dilation + stride * (n - 1) + 1, stride)
                for o, n in zip(offsets, out_shape, strict=True)
            )
        ]
        out += np.tensordot(w[(slice(None), slice(None), *offsets)], window, axes=([1], [0]))
    return out


def flipped(w: np.ndarray) -> np.ndarray:
    """The kernel a true convolution uses: reversed along every spatial axis."""
    return np.flip(w, axis=tuple(range(2, w.ndim))).copy()


# --- cases -------------------------------------------------------------------------

PARAMS = (
    Param("dims", (1, 2), "1 for a sequence, 2 for a matrix", lo=1, hi=2),
    Param("size", (3, 5), "input length (1-D) or side (2-D)", lo=2, hi=16),
    Param("kernel", (1, 2, 3), "kernel length or side", lo=1, hi=7),
    Param("stride", (1,), "step between windows", lo=1, hi=4),
    Param("padding", (0,), "zeros added on every side", lo=0, hi=3),
    Param("dilation", (1,), "gap between kernel taps (1 = none)", lo=1, hi=3),
    Param("cin", (1,), "input channels", lo=1, hi=4),
    Param("cout", (1,), "output channels", lo=1, hi=4),
    Param("values", (1, 9), "entries drawn from 0..values (or -values..values)", lo=1, hi=99),
    Param("signed", (0,), "1 draws negative entries too", lo=0, hi=1),
    Param("shots", (2,), "worked examples before the question", lo=0, hi=4),
)


class ConvProbe(Probe):
    name = "conv"
    version = 1
    summary = "1-D/2-D cross-correlation of small integer arrays (no kernel flip)"
    params = PARAMS
    metrics = (
        "exact",
        "shape_ok",
        "cell_acc",
        "mae",
        "flipped",
        "copied",
        "n_cells",
        "macs_per_cell",
    )
    default_mode = "chat"
    summary_means = ("cell_acc",)

    def check_cell(self, cell: Mapping[str, Any]) -> str | None:
        span = cell["dilation"] * (cell["kernel"] - 1) + 1
        padded = cell["size"] + 2 * cell["padding"]
        if span > padded:
            return f"the kernel spans {span} cells but the padded input has {padded}"
        if cell["padding"] >= span:
            # PyTorch allows it, but whole outputs of zeros teach nothing.
            return f"padding {cell['padding']} is not smaller than the kernel span {span}"
        return None

    def make_case(self, cell: Mapping[str, Any], seed: int, mode: str) -> Case:
        cid = case_id(self.name, self.version, cell, seed)
        rng = case_rng(cid)
        shots = [_draw(cell, rng) for _ in range(cell["shots"])]
        inputs = _draw(cell, rng)
        truth, flip = inputs.pop("truth"), inputs.pop("flipped_truth")
        prompt = _chat(cell, shots, inputs) if mode == "chat" else _completion(cell, shots, inputs)
        answer_chars = len(_fmt(truth))
        return self.new_case(
            cid,
            dict(cell),
            seed,
            inputs=inputs,
            truth=truth,
            prompt=prompt,
            foils={"flipped_kernel": flip, "copied_example": [s["truth"] for s in shots]},
            covariates={
                "n_cells": int(np.asarray(truth).size),
                "macs_per_cell": cell["cin"] * cell["kernel"] ** cell["dims"],
            },
            # Room for the answer in any tokenizer (a token is rarely under one
            # character), plus some for a chat model's framing.
            max_tokens=answer_chars + (32 if mode == "completion" else 256),
            stop=("\n\n", "\nInput") if mode == "completion" else (),
        )

    def blank_metrics(self, case: Case) -> dict[str, Any]:
        # Flags start false, not unknown: no answer is no exact match.
        flags = {"exact": False, "shape_ok": False, "flipped": False, "copied": False}
        return super().blank_metrics(case) | flags

    def score(self, case: Case, answer: Answer) -> Score:
        return score(case, answer)


def _draw(cell: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """One input, kernel and truth, shown without channel axes when there is one channel."""
    d, lo, hi = cell["dims"], -cell["values"] if cell["signed"] else 0, cell["values"]
    x = rng.integers(lo, hi + 1, size=(cell["cin"],) + (cell["size"],) * d)
    w = rng.integers(lo, hi + 1, size=(cell["cout"], cell["cin"]) + (cell["kernel"],) * d)
    args = dict(stride=cell["stride"], padding=cell["padding"], dilation=cell["dilation"])
    y, y_flip = cross_correlate(x, w, **args), cross_correlate(x, flipped(w), **args)
    if cell["cin"] == 1 and cell["cout"] == 1:
        x, w, y, y_flip = x[0], w[0, 0], y[0], y_flip[0]
    elif cell["cout"] == 1:
        y, y_flip = y[0], y_flip[0]
    return {
        "input": x.tolist(),
        "kernel": w.tolist(),
        "flipped_truth": y_flip.tolist(),
        "truth": y.tolist(),
    }


# --- the prompt ----------------------------------------------------------------------


def _fmt(a: Any) -> str:
    return json.dumps(a, separators=(", ", ": "))


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


def _question(example: Mapping[str, Any]) -> str:
    return f"Input: {_fmt(example['input'])}\nKernel: {_fmt(example['kernel'])}\nOutput:"


def _completion(cell: Mapping[str, Any], shots: list[dict], inputs: Mapping[str, Any]) -> str:
    # A base model continues a document, so the prompt is one: header, examples, blank.
    blocks = [_describe(cell)]
    blocks += [f"{_question(s)} {_fmt(s['truth'])}" for s in shots]
    blocks.append(_question(inputs))
    return "\n\n".join(blocks)


def _chat(
    cell: Mapping[str, Any], shots: list[dict], inputs: Mapping[str, Any]
) -> tuple[dict, ...]:
    system = (
        "You compute exactly. Reply with the output array only, as a JSON array, "
        "with no explanation."
    )
    messages = [{"role": "system", "content": system}]
    for i, s in enumerate([*shots, inputs]):
        intro = _describe(cell) + "\n\n" if i == 0 else ""
        messages.append({"role": "user", "content": intro + _question(s).removesuffix("\nOutput:")})
        if s is not inputs:
            messages.append({"role": "assistant", "content": _fmt(s["truth"])})
    return tuple(messages)


# --- the parser ----------------------------------------------------------------------

_NUM = r"[-+−]?\d+(?:\.\d+)?"
# A row of plain numbers ("6 8", "6, 8", "| 6 | 8 |"), after an optional "Output:" label.
_ROW = re.compile(
    rf"^\s*(?:[A-Za-z][\w ]*:)?\s*\|?(?P<nums>\s*{_NUM}(?:\s*[,;|\s]\s*{_NUM})*)\s*\|?\s*[,;.]?\s*$"
)
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)


def parse_array(text: str) -> tuple[np.ndarray | None, str | None]:
    """The final numeric array in a model's answer, or (None, why not).

    Takes JSON arrays, numpy-style rows ("[[1 2]\\n [3 4]]"), plain whitespace or comma
    rows, and fenced blocks; when several arrays appear, the last one wins, since a
    model that shows its work ends with its answer.
    """
    if not text.strip():
        return None, "empty answer"
    fences = _FENCE.findall(text)
    for candidate in ([fences[-1]] if fences else []) + [text]:
        found = _last_bracketed(candidate)
        if found is None:
            found = _last_rows(candidate)
        if found is not None:
            return found, None
    return None, "no numeric array found in the answer"


def _last_bracketed(text: str) -> np.ndarray | None:
    spans, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "]" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    for span in reversed(spans):
        array = _to_array(span)
        if array is not None:
            return array
    return None


def _to_array(span: str) -> np.ndarray | None:
    span = span.replace("−", "-")
    # numpy prints "[[1 2]\n [3 4]]": put the commas JSON needs between items.
    span = re.sub(r"(?<=[\d\]])\s+(?=[-+\d\[])", ", ", span.strip())
    span = re.sub(r",\s*\]", "]", span)  # trailing commas
    try:
        value = json.loads(span)
        array = np.array(value, dtype=float)
    except (ValueError, TypeError, RecursionError):
        return None  # not JSON, ragged, or not numbers
    return array if array.size and np.isfinite(array).all() else None


def _last_rows(text: str) -> np.ndarray | None:
    """The last block of consecutive lines that are all numbers, as rows."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if m := _ROW.match(line):
            blocks[-1].append(m["nums"])
        elif blocks[-1]:
            blocks.append([])
    rows = next((b for b in reversed(blocks) if b), None)
    if rows is None:
        return None
    parsed = [[float(n.replace("−", "-")) for n in re.findall(_NUM, r)] for r in rows]
    if len({len(r) for r in parsed}) != 1:
        return None
    return np.array(parsed[0] if len(parsed) == 1 else parsed)


# --- the scorer ----------------------------------------------------------------------


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _fit_shape(parsed: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Forgive extra or missing length-1 axes ("5" for [[5]]); nothing else."""
    if parsed.shape != truth.shape and parsed.squeeze().shape == truth.squeeze().shape:
        return parsed.reshape(truth.shape)
    return parsed


def score(case: Case, answer: Answer) -> Score:
    truth = np.asarray(case.truth, dtype=float)
    metrics = ConvProbe().blank_metrics(case)
    parsed, why = parse_array(answer.text)
    if parsed is None:
        if answer.finish_reason == "length":
            why += " (the answer was cut off at the token limit)"
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
