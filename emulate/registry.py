"""Where probes come from: the built-in table, installed plugins, and probes a script
hands to `emulate.run` directly.

A plugin is a package that declares its probes in the entry-point group
`emulate.probes` (name = "module:Class"); `emulate probes` lists them with their
package. A probe object passed to the Python API (`emulate.run(MyProbe(), ...)`) is
registered for the process under its name, so reports, comparisons and rescoring in
the same script find it. Two sources claiming one name is an error naming both.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

from .errors import EmulateError
from .probe import Probe

GROUP = "emulate.probes"

# name -> "module:class"; imported on first use so `emulate --help` stays fast.
PROBES: dict[str, str] = {
    "conv": "probes.conv:ConvProbe",
    "brackets": "probes.brackets:BracketsProbe",
    "program": "probes.program:ProgramProbe",
    "training": "probes.training:TrainingProbe",
    "shell": "probes.shell:ShellProbe",
    "markov": "probes.markov:MarkovProbe",
}

_registered: dict[str, Probe] = {}


@dataclass(frozen=True)
class Source:
    name: str
    target: str  # "module:Class"
    package: str  # "emulate" for the built-in probes


@cache
def plugins() -> dict[str, Source]:
    """Probes that installed packages declare in the entry-point group."""
    found: dict[str, Source] = {}
    for ep in entry_points(group=GROUP):
        package = ep.dist.name if ep.dist is not None else "an unknown package"
        source = Source(ep.name, ep.value, package)
        if ep.name in PROBES:
            raise EmulateError(
                f"probe {ep.name!r} of {package} ({ep.value}) clashes with emulate's own "
                f"({PROBES[ep.name]}): uninstall {package} or rename its probe"
            )
        if (other := found.get(ep.name)) is not None and other.target != ep.value:
            raise EmulateError(
                f"probe {ep.name!r} is declared by two packages: {other.package} "
                f"({other.target}) and {package} ({ep.value}); uninstall one"
            )
        found[ep.name] = source
    return found


def sources() -> dict[str, Source]:
    """Every probe by name: built-in, then plugins."""
    builtin = {n: Source(n, t, "emulate") for n, t in PROBES.items()}
    return builtin | plugins()


def names() -> list[str]:
    installed = sources()
    return [*installed, *(n for n in _registered if n not in installed)]


def known(name: str) -> bool:
    return name in _registered or name in sources()


def register(probe: Probe) -> str:
    """Make a probe object findable by its name in this process; returns the name.
    Registering another object of the same class again replaces it."""
    name = getattr(probe, "name", None)
    if not isinstance(name, str) or not name:
        raise EmulateError(f"{type(probe).__name__}: a probe needs a `name` (a short text)")
    if (src := sources().get(name)) is not None and not _is(probe, src.target):
        raise EmulateError(
            f"probe {name!r} ({type(probe).__module__}.{type(probe).__qualname__}) clashes "
            f"with {src.package}'s ({src.target}): give yours another name"
        )
    held = _registered.get(name)
    if held is not None and type(held) is not type(probe):
        raise EmulateError(
            f"probe {name!r} is already {type(held).__module__}.{type(held).__qualname__}; "
            f"{type(probe).__module__}.{type(probe).__qualname__} needs another name"
        )
    _registered[name] = probe
    return name


def _is(probe: Probe, target: str) -> bool:
    module, _, cls = target.partition(":")
    return type(probe).__module__ == module and type(probe).__qualname__ == cls


def get_probe(name: str | Probe) -> Probe:
    if isinstance(name, Probe):
        register(name)
        return name
    if name in _registered:
        return _registered[name]
    src = sources().get(name)
    if src is None:
        raise EmulateError(
            f"unknown probe {name!r}; known probes: {', '.join(names())} (see `emulate probes`)"
        )
    module, _, cls = src.target.partition(":")
    try:
        return getattr(importlib.import_module(module), cls)()
    except (ImportError, AttributeError) as err:
        raise EmulateError(f"probe {name!r} of {src.package} ({src.target}): {err}") from None


def all_probes() -> list[Probe]:
    return [get_probe(name) for name in names()]
