"""Python values in answers: read as literals (nothing runs), compared as CRUXEval does.

CRUXEval scores an output prediction by executing `assert f(input) == answer`: Python
`==` at every depth, so `2.0` equals `2`, `True` equals `1`, and `(1, 2)` does not
equal `[1, 2]`. emulate never executes an answer; it reads it with `ast.literal_eval`
and applies the same `==`, so its figures compare with CRUXEval's leaderboard.
`same_type` is the stricter reading beside it: equal, and of the same type at every
depth.
"""

from __future__ import annotations

import ast
from typing import Any


def read_literal(text: str) -> Any:
    """A Python literal, or the right side of `assert f(...) == X` or `f(...) == X`.

    Raises ValueError (or SyntaxError) for anything else; never runs anything.
    """
    tree = ast.parse(text.strip(), mode="exec")
    if len(tree.body) != 1:
        raise ValueError("not one expression")
    node = tree.body[0]
    if isinstance(node, ast.Assert):
        expr = node.test
    elif isinstance(node, ast.Expr):
        expr = node.value
    else:
        raise ValueError("not an expression")
    if (
        isinstance(expr, ast.Compare)
        and len(expr.ops) == 1
        and isinstance(expr.ops[0], ast.Eq)
        and (isinstance(node, ast.Assert) or isinstance(expr.left, ast.Call))
    ):
        expr = expr.comparators[0]
    return ast.literal_eval(expr)


def literal(text: str | None) -> tuple[bool, Any]:
    """(True, value) when `text` reads as a literal, else (False, None)."""
    if text is None:
        return False, None
    try:
        return True, read_literal(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def equal(a: Any, b: Any) -> bool:
    """Python's `==`, as CRUXEval's assert applies it; a comparison that raises is False."""
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - exotic comparisons fail as unequal
        return False


def same_type(a: Any, b: Any) -> bool:
    """Equal, with the same type at every depth (`2` is not `2.0`, `True` not `1`)."""
    if type(a) is not type(b) or not equal(a, b):
        return False
    if isinstance(a, list | tuple):
        return all(same_type(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        keys = {repr(k): k for k in b}
        return all(
            repr(k) in keys and same_type(k, keys[repr(k)]) and same_type(v, b[keys[repr(k)]])
            for k, v in a.items()
        )
    if isinstance(a, set | frozenset):
        return all(any(same_type(x, y) for y in b) for x in a)
    return True


def normalised(text: str) -> str:
    """Text compared where a value is not a literal (an object's repr): spaces collapsed."""
    return " ".join(text.split())
