"""BIG-Bench Hard's Dyck items for the brackets probe: published prefixes and the
closers that complete them, checked against the stack machine (probes/dyck.py)
before any case is built from them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from emulate.errors import EmulateError, read_text

from .dyck import BRACKETS, closers, scan, spaced


@dataclass(frozen=True)
class Item:
    index: int
    prefix: str  # brackets only, no spaces
    target: str


def load_items(path: str | Path) -> list[Item]:
    """BBH `{"examples": [{"input", "target"}]}` JSON, or JSONL of such objects."""
    path = Path(path)
    text = read_text(path, f"items={path}")
    try:
        data = json.loads(text)
        # BBH's file, a JSON list, or JSONL of a single object.
        records = data.get("examples", [data]) if isinstance(data, dict) else data
    except json.JSONDecodeError:
        try:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise EmulateError(f"{path}: neither JSON nor JSONL ({err})") from None
    if not isinstance(records, list):
        raise EmulateError(
            f'{path}: expected a list of items, as BBH\'s {{"examples": [...]}}, not '
            f"{type(records).__name__}"
        )
    items = []
    for i, rec in enumerate(records):
        where = f"{path}: item {i}"
        if not isinstance(rec, dict) or not isinstance(rec.get("input"), str):
            raise EmulateError(f"{where}: expected an object with an 'input' text (and 'target')")
        if not isinstance(rec.get("target", ""), str):
            raise EmulateError(f"{where}: 'target' must be text, such as \") ]\"")
        shown = rec["input"].rsplit("Input:", 1)[-1]
        bad = sorted({c for c in shown if not c.isspace() and c not in BRACKETS})
        if bad:
            raise EmulateError(f"{where}: {''.join(bad)!r} in the input is not a bracket")
        prefix = "".join(shown.split())
        state = scan(prefix)
        if state.error and state.error != "left open":
            raise EmulateError(
                f"{where}: the input is not a prefix of a balanced sequence: {state.error}"
            )
        if not state.open:
            raise EmulateError(f"{where}: the input is already balanced; nothing to complete")
        truth = closers(prefix)
        target = "".join(str(rec.get("target", spaced(truth))).split())
        if not scan(prefix + target).balanced:
            raise EmulateError(f"{where}: target {spaced(target)!r} does not close the input")
        if target != truth:
            raise EmulateError(
                f"{where}: target {spaced(target)!r} closes the input but is not the shortest "
                f"completion {spaced(truth)!r}, which emulate scores against"
            )
        items.append(Item(i, prefix, target))
    if not items:
        raise EmulateError(f"{path}: no items")
    return items
