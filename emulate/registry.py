"""The one table of probes. Adding a probe adds one line here."""

from __future__ import annotations

import importlib

from .errors import EmulateError
from .probe import Probe

# name -> "module:class"; imported on first use so `emulate --help` stays fast.
PROBES: dict[str, str] = {
    "conv": "probes.conv:ConvProbe",
    "brackets": "probes.brackets:BracketsProbe",
    "program": "probes.program:ProgramProbe",
    "training": "probes.training:TrainingProbe",
    "shell": "probes.shell:ShellProbe",
    "markov": "probes.markov:MarkovProbe",
}


def get_probe(name: str) -> Probe:
    try:
        target = PROBES[name]
    except KeyError:
        raise EmulateError(
            f"unknown probe {name!r}; known probes: {', '.join(PROBES)} (see `emulate probes`)"
        ) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)()


def all_probes() -> list[Probe]:
    return [get_probe(name) for name in PROBES]
