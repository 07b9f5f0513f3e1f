"""The stated machine: the shell probe's `task=persona`.

The seed told a chat model it was Ubuntu 18.04 with Python 3.9, PyTorch 1.8, CUDA 11.3
and four RTX 3090s; it showed four GPUs in nvidia-smi. Here the prompt declares a
machine (a built-in one, or a JSON spec over it), the session runs commands that
show its facts (nvidia-smi, nvcc, python3, nproc, free, ...), and each output is read
for the facts it should show. The truth is the declared spec, not an execution.

Read top to bottom: the machines, the commands and the facts read from their
output, the scorer, and the task the shell probe runs (probes/shell.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from emulate.case import Case, Mode, Score
from emulate.errors import EmulateError, read_text
from emulate.probe import Probe

from .terminal import Commands, Task, first_turn, terminal_output

# --- the machine --------------------------------------------------------------------------
#
# The seed told a chat model it was Ubuntu 18.04 with Python 3.9, PyTorch 1.8, CUDA 11.3
# and four RTX 3090s; it showed four GPUs in nvidia-smi. Here the truth is the declared
# spec, not an execution: each command's output is parsed for the facts it should show.

SEED_MACHINE: dict[str, Any] = {
    "os": "Ubuntu 18.04",
    "kernel": "4.15.0-112-generic",
    "python": "3.9",
    "torch": "1.8",
    "cuda": "11.3",
    "driver": "465.19.01",
    "gpu_name": "NVIDIA GeForce RTX 3090",
    "gpus": 4,
    "gpu_memory_gb": 24,
    "cpus": 16,
    "ram_gb": 64,
}
MACHINES: dict[str, dict[str, Any]] = {
    "seed": SEED_MACHINE,
    "a100x8": SEED_MACHINE
    | {
        "os": "Ubuntu 20.04",
        "kernel": "5.4.0-150-generic",
        "python": "3.10",
        "torch": "2.0",
        "cuda": "11.8",
        "driver": "525.85.12",
        "gpu_name": "NVIDIA A100-SXM4-80GB",
        "gpus": 8,
        "gpu_memory_gb": 80,
        "cpus": 128,
        "ram_gb": 1024,
    },  # fmt: skip
    "cpu": SEED_MACHINE | {"gpus": 0, "cpus": 4, "ram_gb": 16},
}
_VERSION = r"^\d+(\.\d+)*$"
_SPEC_FIELDS: dict[str, tuple[type, Any]] = {
    "os": (str, r"^\w[\w .-]*$"),
    "kernel": (str, r"^[\w.-]+$"),
    "python": (str, _VERSION),
    "torch": (str, _VERSION),
    "cuda": (str, _VERSION),
    "driver": (str, _VERSION),
    "gpu_name": (str, r"^[\w .()-]+$"),
    "gpus": (int, (0, 16)),
    "gpu_memory_gb": (int, (1, 1024)),
    "cpus": (int, (1, 1024)),
    "ram_gb": (int, (1, 65536)),
}


def machine_spec(name: str, path: str | None = None) -> dict[str, Any]:
    """A built-in machine, with the fields of a JSON spec file over it, validated."""
    spec = dict(MACHINES[name])
    if not path:
        return spec
    try:
        given = json.loads(read_text(path, f"spec={path}"))
    except json.JSONDecodeError as err:
        raise EmulateError(f"spec={path}: not a readable JSON object ({err})") from None
    if not isinstance(given, dict):
        raise EmulateError(f"spec={path}: expected a JSON object of machine fields")
    for key, value in given.items():
        if key not in _SPEC_FIELDS:
            raise EmulateError(
                f"spec={path}: unknown field {key!r}; fields: {', '.join(_SPEC_FIELDS)}"
            )
        kind, rule = _SPEC_FIELDS[key]
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if ok and kind is int:
            ok = rule[0] <= value <= rule[1]
        elif ok:
            ok = re.match(rule, value) is not None
        if not ok:
            want = (
                f"an integer from {rule[0]} to {rule[1]}"
                if kind is int
                else f"text matching {rule}"
            )
            raise EmulateError(f"spec={path}: field {key!r} is {value!r}; it must be {want}")
        spec[key] = value
    return spec


def describe_machine(spec: Mapping[str, Any]) -> str:
    gpus = (
        f"{spec['gpus']} {spec['gpu_name']} GPUs with {spec['gpu_memory_gb']} GB each, "
        f"driver {spec['driver']}"
        if spec["gpus"]
        else "no GPU"
    )
    return (
        f"{{The machine runs {spec['os']} (kernel {spec['kernel']}) with Python "
        f"{spec['python']} and PyTorch {spec['torch']} built for CUDA {spec['cuda']}; it has "
        f"{gpus}, {spec['cpus']} CPUs and {spec['ram_gb']} GB of RAM. You are logged in as "
        "user in /home/user on host ubuntu.}"
    )


PERSONA_COMMANDS = (
    "nvidia-smi",
    "nvidia-smi -L",
    "nvcc --version",
    "python3 --version",
    'python3 -c "import torch; print(torch.__version__)"',
    'python3 -c "import torch; print(torch.cuda.device_count())"',
    'python3 -c "import torch; print(torch.cuda.is_available())"',
    "nproc",
    "free -g",
    "uname -a",
    "lsb_release -d",
)


def _first_int(text: str) -> float | None:
    m = re.search(r"-?\d+", text)
    return _number(m.group()) if m else None


def _number(digits: str) -> float:
    """An integer as said; one too long to be any machine's figure is infinite (a wrong
    fact, not Python's digit-limit error)."""
    return int(digits) if len(digits) <= 18 else math.inf


def persona_facts(command: str, output: str, spec: Mapping[str, Any]) -> dict[str, bool | None]:
    """Each fact the command should show: True (right), False (wrong), None (not shown)."""
    out = output.strip()
    facts: dict[str, bool | None] = {}
    gpus = spec["gpus"]
    if command == "nvidia-smi":
        if gpus == 0:
            facts["gpu_count"] = not re.search(r"(?<!\d)\d+MiB\s*/\s*\d+MiB", out)
            return facts
        m = re.search(r"Driver Version:\s*([\d.]+)", out)
        facts["driver"] = None if not m else m.group(1) == spec["driver"]
        m = re.search(r"CUDA Version:\s*([\d.]+)", out)
        facts["cuda"] = None if not m else m.group(1) == spec["cuda"]
        # (?<!\d): a digit run is tried once, not from each of its digits.
        totals = [_number(t) for t in re.findall(r"(?<!\d)\d+MiB\s*/\s*(\d+)MiB", out)]
        facts["gpu_count"] = None if not totals else len(totals) == gpus
        if totals:
            want = spec["gpu_memory_gb"] * 1024
            facts["gpu_memory"] = all(abs(t - want) <= 0.06 * want for t in totals)
    elif command == "nvidia-smi -L":
        listed = [
            name.split("(UUID")[0].strip()
            for name in re.findall(r"^GPU \d{1,6}:([^\n]*)", out, re.M)
        ]
        facts["gpu_count"] = len(listed) == gpus if listed or gpus == 0 else None
        if listed:
            facts["gpu_name"] = all(spec["gpu_name"].lower() in n.lower() for n in listed)
    elif command == "nvcc --version":
        m = re.search(r"release\s*([\d.]+)", out)
        facts["cuda"] = None if not m else m.group(1) == spec["cuda"]
    elif command == "python3 --version":
        m = re.search(r"Python\s*([\d.]+)", out)
        facts["python"] = None if not m else _same_version(m.group(1), spec["python"])
    elif "torch.__version__" in command:
        m = re.search(r"(?<![\d.])(\d+\.\d+(?:\.\d+)?)", out)
        facts["torch"] = None if not m else _same_version(m.group(1), spec["torch"])
    elif "device_count" in command:
        n = _first_int(out)
        facts["gpu_count"] = None if n is None else n == gpus
    elif "is_available" in command:
        shown = re.search(r"True|False", out)
        facts["cuda_available"] = None if not shown else (shown.group() == "True") == (gpus > 0)
    elif command == "nproc":
        n = _first_int(out)
        facts["cpus"] = None if n is None else n == spec["cpus"]
    elif command == "free -g":
        m = re.search(r"^Mem:\s*(\d+)", out, re.M)
        facts["ram"] = (
            None if not m else abs(_number(m.group(1)) - spec["ram_gb"]) <= 0.1 * spec["ram_gb"] + 1
        )
    elif command == "uname -a":
        facts["kernel"] = None if not out else spec["kernel"] in out
    elif command == "lsb_release -d":
        facts["os"] = None if not out else spec["os"].lower() in out.lower()
    return facts


def _same_version(said: str, stated: str) -> bool:
    """3.9.7 states 3.9; 3.10 does not."""
    return said == stated or said.startswith(stated + ".")


def score_persona(
    case: Case[Commands, Stated], replies: tuple[str, ...], metrics: dict[str, Any]
) -> Score:
    spec = case.truth.spec
    per_turn: list[dict[str, Any]] = []
    for t, command in enumerate(case.inputs.commands):
        said = terminal_output(replies[t], command) if t < len(replies) else ""
        per_turn.append({"command": command, "facts": persona_facts(command, said, spec)})
    facts = [v for p in per_turn for v in p["facts"].values()]
    right, wrong = sum(v is True for v in facts), sum(v is False for v in facts)
    metrics["facts"] = len(facts)
    metrics["facts_right"] = right
    metrics["facts_wrong"] = wrong
    metrics["facts_absent"] = len(facts) - right - wrong
    metrics["fact_acc"] = right / len(facts) if facts else None
    gpu = [p["facts"]["gpu_count"] for p in per_turn if p["facts"].get("gpu_count") is not None]
    metrics["gpu_count_ok"] = all(gpu) if gpu else None
    if facts and right == len(facts):
        return Score(True, metrics, None, None, per_turn)
    if wrong:
        bad = [
            f"{p['command']}: {k}" for p in per_turn for k, v in p["facts"].items() if v is False
        ]
        return Score(False, metrics, "wrong_fact", "; ".join(bad)[:300], per_turn)
    return Score(
        False, metrics, "facts_absent", f"{len(facts) - right} stated facts not shown", per_turn
    )


# --- the task ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stated:
    """task=persona: the declared machine; there is no execution."""

    spec: dict[str, Any]
    outputs: list[str]


class Persona(Task):
    """A session of PERSONA_COMMANDS on the stated machine. Its history is always the
    model's own: a stated machine has no true outputs to show."""

    Inputs, Truth = Commands, Stated
    error_types = ("wrong_fact", "facts_absent")

    def case(
        self, probe: Probe, cell: Mapping[str, Any], seed: int, cid: str,
        rng: np.random.Generator, mode: Mode,
    ) -> Case[Commands, Stated]:  # fmt: skip
        spec = machine_spec(cell["machine"], cell.get("spec"))
        order = rng.permutation(len(PERSONA_COMMANDS))[: min(cell["turns"], len(PERSONA_COMMANDS))]
        commands = [PERSONA_COMMANDS[int(i)] for i in order]
        inputs = Commands(commands, [None] * len(commands), describe_machine(spec))
        return probe.new_case(
            cid,
            dict(cell),
            seed,
            inputs=inputs,
            # The truth is the declared spec, not an execution.
            truth=Stated(spec, [""] * len(commands)),
            prompt=first_turn(mode, inputs, budget=768),
            covariates={"state_turns": 0},
        )

    def score(self, case: Case, replies: tuple[str, ...], metrics: dict[str, Any]) -> Score:
        return score_persona(case, replies, metrics)
