"""The emulated training run: "python3 train.py" in a terminal the model pretends to be.

The seed experiment: a chat model told it was an Ubuntu machine with PyTorch "ran"
a train.py and printed plausible losses, skipped epochs when asked for many, and
printed a shape line once although the code printed it on every call. Here the
probe writes a small PyTorch CPU training script (an MLP of `layers` hidden layers
on a seeded synthetic task, `epochs` epochs, a loss line per epoch, a final
accuracy, and optionally a shape print in forward() behind a real guard or behind
the seed's comment alone), runs it for real in the sandbox for the truth, and asks
the model to emulate the terminal, with the code shown or only described.

Loss values cannot be computed by reading code, so `correct` asks for the structure
only: every epoch line, in the script's format, the right number of shape lines with
the right text, and the final accuracy line. The numbers are scored as errors
beside it: loss trend, relative error of first and last loss and of the accuracy.

Needs PyTorch (`pip install -e '.[torch]'`) for the truth.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emulate.case import Answer, Case, Mode, Score, case_id
from emulate.extract import BLOCK, region
from emulate.probe import HARNESS_ERRORS, Param, Probe, covariate, metric
from emulate.prompt import Rendered, render
from emulate.sandbox import Execution, Limits, Program, run_cached

# --- the script ------------------------------------------------------------------------

HEADER = """\
import torch
import torch.nn as nn

torch.manual_seed({seed})
torch.set_num_threads(1)

# A seeded synthetic task: labels from a random linear map of Gaussian inputs.
N, D, C = 256, 8, 3
X = torch.randn(N, D)
y = (X @ torch.randn(D, C)).argmax(dim=1)

"""

FORWARD = {
    "none": "",
    # The seed's line: a comment that promises "once" over a print that runs every call.
    "comment": '        # Print the shape of input once\n        print("Input shape:", x.shape)\n',
    "guarded": (
        '        if not self.printed:\n            print("Input shape:", x.shape)\n'
        "            self.printed = True\n"
    ),
}

BODY = """\
class MLP(nn.Module):
    def __init__(self, hidden=16, layers={layers}):
        super().__init__()
        dims = [D] + [hidden] * layers
        blocks = []
        for a, b in zip(dims, dims[1:]):
            blocks += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*blocks, nn.Linear(hidden, C))
        self.printed = False

    def forward(self, x):
{forward}        return self.net(x)


model = MLP()
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
loss_fn = nn.CrossEntropyLoss()

for epoch in range({epochs}):
    for i in range(0, N, 64):
        optimizer.zero_grad()
        loss = loss_fn(model(X[i : i + 64]), y[i : i + 64])
        loss.backward()
        optimizer.step()
    print(f"Epoch {{epoch + 1}}/{epochs}, loss: {{loss.item():.4f}}")

with torch.no_grad():
    accuracy = (model(X).argmax(dim=1) == y).float().mean().item()
print(f"Final accuracy: {{accuracy:.4f}}")
"""


def script(cell: Mapping[str, Any], seed: int) -> str:
    return HEADER.format(seed=seed) + BODY.format(
        layers=cell["layers"], epochs=cell["epochs"], forward=FORWARD[cell["shape_print"]]
    )


def description(cell: Mapping[str, Any]) -> str:
    shape = {
        "none": "",
        "comment": ' Its forward() has the comment "Print the shape of input once" above '
        'print("Input shape:", x.shape).',
        "guarded": ' Its forward() prints "Input shape:" and the input\'s shape the first '
        "time it is called.",
    }[cell["shape_print"]]
    return (
        f"train.py trains a PyTorch MLP with {cell['layers']} hidden layers of width 16 on "
        "256 random 8-dimensional points in 3 classes, in batches of 64, with SGD at "
        f"learning rate 0.5 for {cell['epochs']} epochs. After each epoch it prints "
        f'"Epoch k/{cell["epochs"]}, loss: L" with L to 4 decimals, and at the end '
        f'"Final accuracy: A".{shape}'
    )


# --- the truth ---------------------------------------------------------------------------

LIMITS = Limits(cpu_s=120, wall_s=300, memory_mb=8192, file_mb=8)
# A loss printed to 4 decimals moves its error metric by about 1e-4 / loss when a CPU of
# another kind rounds it the other way; losses here stay well above 0.01.
TRAINED = 1e-2
# Bounded gaps: an unbounded `.*?` between "Epoch" and "loss" rescans the rest of the
# line from every "Epoch", quadratic on a line that repeats it (60 s at 100k chars).
_EPOCH = re.compile(
    r"Epoch\s{0,8}\[?\s{0,8}(\d{1,9})\s{0,8}(?:/\s{0,8}\d{1,9})?\]?[^\n]{0,200}?"
    r"loss\s{0,8}[:=]?\s{0,8}(-?\d{1,30}(?:\.\d{1,30})?)",
    re.I,
)


def _epoch(line: str) -> re.Match[str] | None:
    """An epoch line's match, looked for around the line's first "loss" only: a line that
    repeats "Epoch" a hundred thousand times costs one short search, not one per word."""
    at = line.lower().find("loss")
    return None if at < 0 else _EPOCH.search(line, max(0, at - 260), at + 80)


_ACC = re.compile(r"accuracy\s{0,8}[:=]?\s{0,8}(\d{1,30}(?:\.\d{1,30})?)\s{0,8}(%?)", re.I)
_SHAPE = re.compile(r"^\s*input shape|torch\.Size\(", re.I)


def _torch_version() -> str:
    import torch

    return torch.__version__


def parse_run(text: str) -> dict[str, Any]:
    """Epoch numbers and losses, the final accuracy, and the shape lines of an output."""
    epochs, losses, shapes = [], [], []
    accuracy = None
    for line in text.splitlines():
        if m := _epoch(line):
            epochs.append(int(m.group(1)))
            losses.append(float(m.group(2)))
        elif m := _ACC.search(line):
            accuracy = float(m.group(1)) / (100 if m.group(2) else 1)
        elif _SHAPE.search(line):
            shapes.append(line.rstrip())
    return {"epochs": epochs, "losses": losses, "accuracy": accuracy, "shapes": shapes}


# --- cases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    script: str  # train.py, shown when code=shown
    description: str  # what the prompt says of it when code=described


PARAMS = (
    Param("layers", (2, 4), "hidden layers of the MLP", lo=1, hi=8),
    Param("epochs", (3, 10), "training epochs, one loss line each", lo=1, hi=100),
    Param(
        "shape_print",
        ("guarded", "comment"),
        "a shape print in forward(): none, behind a real guard, or under the comment alone",
        choices=tuple(FORWARD),
    ),
    Param(
        "code",
        ("shown",),
        "the model sees the script, or only a description",
        choices=("shown", "described"),
    ),
)

PERSONA = (
    "You are a Linux terminal on an Ubuntu 18.04 machine with Python 3.9, PyTorch 1.8 "
    "and CUDA 11.3. Reply only with what the terminal prints, inside one code block, "
    "and nothing else. Do not write explanations."
)
PROMPT_LINE = "user@ubuntu:~$ "
_LINE = re.compile(r"^Epoch \d+/\d+, loss: \d+\.\d{4}$")


class TrainingProbe(Probe):
    name = "training"
    version = 1
    Inputs = Inputs
    Truth = Execution  # the script's real stdout
    summary = "emulate `python3 train.py`: epochs, losses, accuracy, the print-once line"
    params = PARAMS
    columns = (
        covariate("epochs_expected"),
        metric("epoch_lines", int),
        metric("epochs_skipped", int),
        metric("format_fidelity"),
        metric("loss_trend_agrees", bool),
        # Against figures the script printed to 4 decimals after training, which a CPU
        # of another kind can round the other way: reproduced within TRAINED.
        metric("first_loss_rel_err", tolerance=TRAINED),
        metric("last_loss_rel_err", tolerance=TRAINED),
        metric("accuracy_abs_err", tolerance=TRAINED),
        covariate("shape_lines_expected"),
        metric("shape_lines", int),
        metric("shape_text_right", bool),
        covariate("truth_status", str),
    )
    error_types = (
        *HARNESS_ERRORS,
        "no_truth",  # train.py itself failed
        "empty",
        # The first of an answer's problems (score_run).
        "skipped_epochs",
        "shape_once",
        "shape_count",
        "shape_text",
        "format",
        "no_accuracy",
    )
    summary_means = ("epochs_skipped", "format_fidelity", "last_loss_rel_err")
    default_mode = "chat"

    def missing(self) -> str | None:
        if importlib.util.find_spec("torch") is None:
            return "it runs PyTorch for its truth: pip install -e '.[torch]'"
        return None

    def build(self, cells: list[dict[str, Any]], n: int, seed: int, mode: Mode) -> list[Case]:
        salt = f"torch {_torch_version()}"
        plans = [
            (cell, seed + i, case_id(self.name, self.version, cell, seed + i))
            for cell in cells
            for i in range(n)
        ]
        sources = [script(cell, s) for cell, s, _ in plans]
        results = run_cached([Program(src, limits=LIMITS) for src in sources], salt)
        return [
            self._case(cell, s, cid, src, result, mode)
            for (cell, s, cid), src, result in zip(plans, sources, results, strict=True)
        ]

    def _case(self, cell, seed, cid, source, result, mode) -> Case:
        truth = result.as_truth()
        status = truth.status
        parsed = parse_run(result.stdout)
        shown = source if cell["code"] == "shown" else None
        return self.new_case(
            cid,
            dict(cell),
            seed,
            inputs=Inputs(source, description(cell)),
            truth=truth,
            # Room for every line the script prints, plus framing.
            prompt=_prompt(
                mode, cell, shown, min(4096, 16 * len(result.stdout.splitlines()) + 128)
            ),
            covariates={
                "epochs_expected": cell["epochs"],
                "shape_lines_expected": len(parsed["shapes"]),
                "truth_status": status,
            },
        )

    def answer_text(self, case: Case) -> str:
        return case.truth.stdout

    def score(self, case: Case, answer: Answer) -> Score:
        metrics = self.blank_metrics(case)
        if not case.truth.ok:
            return Score(False, metrics, "no_truth", f"train.py failed: {case.truth.status}")
        return score_run(case, answer, metrics)


def _prompt(mode: Mode, cell: Mapping[str, Any], source: str | None, budget: int) -> Rendered:
    if source is not None:
        session = f"{PROMPT_LINE}cat train.py\n{source}{PROMPT_LINE}python3 train.py\n"
    else:
        session = f"{PROMPT_LINE}# {description(cell)}\n{PROMPT_LINE}python3 train.py\n"
    # A base model would go on to the next command's prompt.
    return render(
        mode, session, system=PERSONA, budget=budget, completion_stop=(PROMPT_LINE.strip(),)
    )


def score_run(case: Case[Inputs, Execution], answer: Answer, metrics: dict[str, Any]) -> Score:
    # What the terminal showed, found by the shared rules (emulate/extract.py).
    said = region(answer.text, BLOCK)
    got, want = parse_run(said), parse_run(case.truth.stdout)
    e = case.params["epochs"]
    epoch_lines = [ln.strip() for ln in said.splitlines() if _epoch(ln)]
    metrics["epoch_lines"] = len(epoch_lines)
    metrics["epochs_skipped"] = e - len({k for k in got["epochs"] if 1 <= k <= e})
    if epoch_lines:
        metrics["format_fidelity"] = sum(1 for ln in epoch_lines if _LINE.match(ln)) / len(
            epoch_lines
        )
    if len(got["losses"]) >= 2:
        metrics["loss_trend_agrees"] = (got["losses"][-1] < got["losses"][0]) == (
            want["losses"][-1] < want["losses"][0]
        )
    if got["losses"]:
        metrics["first_loss_rel_err"] = _rel(got["losses"][0], want["losses"][0])
        metrics["last_loss_rel_err"] = _rel(got["losses"][-1], want["losses"][-1])
    if got["accuracy"] is not None:
        metrics["accuracy_abs_err"] = abs(got["accuracy"] - want["accuracy"])
    metrics["shape_lines"] = len(got["shapes"])
    if want["shapes"]:
        metrics["shape_text_right"] = (
            bool(got["shapes"]) and got["shapes"][0].strip() == want["shapes"][0].strip()
        )
    problems = []
    if not said.strip():
        return Score(False, metrics, "empty", "no output")
    if metrics["epochs_skipped"] > 0:
        problems.append(("skipped_epochs", f"{metrics['epochs_skipped']} of {e} epochs missing"))
    if len(got["shapes"]) != len(want["shapes"]):
        kind = (
            "shape_once" if len(got["shapes"]) == 1 and len(want["shapes"]) > 1 else "shape_count"
        )
        problems.append(
            (kind, f"{len(got['shapes'])} shape lines, the script prints {len(want['shapes'])}")
        )
    elif want["shapes"] and not metrics["shape_text_right"]:
        problems.append(
            (
                "shape_text",
                f"shape line {got['shapes'][0]!r}, the script prints {want['shapes'][0]!r}",
            )
        )
    if epoch_lines and metrics["format_fidelity"] < 1:
        problems.append(("format", "epoch lines not in the script's format"))
    if got["accuracy"] is None:
        problems.append(("no_accuracy", "no final accuracy line"))
    if problems:
        return Score(False, metrics, problems[0][0], "; ".join(why for _, why in problems))
    return Score(True, metrics, None, None)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else math.inf
