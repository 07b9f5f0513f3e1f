"""The small expression language of a study file: its `where` and `of` over rows, and
its decision rules over statistics.

An expression is Python syntax, parsed with `ast` and evaluated by walking the tree:
names, numbers, strings, None/True/False, attributes (`acc.low`), comparisons
(including `in` and `is None`), `and`/`or`/`not`, + - * / and unary minus on numbers,
and the functions abs, min and max. Nothing else is accepted, so a study file cannot
run code through a rule; plain Python belongs in a function the file names
(`module:function`).

A statistic without a value (NaN) is missing evidence, and no rule may hold on it:
a comparison that reads NaN is unknown (None), and `and`, `or` and `not` follow
Kleene's three-valued logic, so `not (x.low > t)` is unknown too. An expression that
ends unknown holds nowhere (`holds`).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from emulate.errors import EmulateError

_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_ARITHMETIC: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: lambda a, b: a / b if b else math.nan,
}


def _nan_aware(pick: Callable[..., Any]) -> Callable[..., Any]:
    def f(*args: Any) -> Any:
        return math.nan if any(_is_nan(a) for a in args) else pick(*args)

    return f


def _is_nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "min": _nan_aware(min),
    "max": _nan_aware(max),
}


class Unknown(LookupError):
    """A name or attribute the expression reads is not there."""


class Attributes:
    """What an expression can read as `x.name` (a statistic's fields)."""

    def attribute(self, name: str) -> Any:
        raise Unknown(name)

    def scalar(self) -> Any:
        """The value this stands for in arithmetic and comparisons."""
        return self


@dataclass(frozen=True)
class Expression:
    text: str
    tree: ast.expr

    def names(self) -> set[str]:
        return {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name)} - set(_FUNCTIONS)

    def __call__(self, env: Mapping[str, Any]) -> Any:
        return _scalar(_eval(self.tree, env))

    def holds(self, env: Mapping[str, Any]) -> bool:
        """Whether the expression is true; unknown (missing evidence) is not."""
        value = self(env)
        return value is not None and not _is_nan(value) and bool(value)


def parse(text: str, where: str) -> Expression:
    """`text` as an expression; EmulateError naming `where` if it is not one we accept."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as err:
        raise EmulateError(f"{where}: {text!r} is not an expression ({err.msg})") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            kind = type(node).__name__
            raise EmulateError(
                f"{where}: {text!r} uses {kind}, which a study's expressions do not allow "
                "(names, numbers, comparisons, and/or/not, + - * /, abs/min/max)"
            )
        if isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and not node.keywords
        ):
            raise EmulateError(f"{where}: {text!r} calls a function other than abs, min or max")
    return Expression(text.strip(), tree)


_ALLOWED = (
    ast.Name, ast.Load, ast.Constant, ast.Attribute, ast.Compare, ast.BoolOp, ast.And, ast.Or,
    ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.BinOp, ast.Call, ast.Tuple, ast.List,
    *_COMPARE, *_ARITHMETIC,
)  # fmt: skip


def _number(value: Any) -> float:
    """Arithmetic is on numbers only (no 'a' * 10**12)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"arithmetic on {value!r}, which is not a number")
    return value


def _kleene(node: ast.BoolOp, env: Mapping[str, Any]) -> bool | None:
    """`and` / `or` with unknown (None, NaN) as Kleene's third value."""
    is_and = isinstance(node.op, ast.And)
    unknown = False
    for v in node.values:
        value = _scalar(_eval(v, env))
        if value is None or _is_nan(value):
            unknown = True
        elif bool(value) is not is_and:
            return not is_and  # a false conjunct, a true disjunct: decided
    return None if unknown else is_and


def _scalar(value: Any) -> Any:
    return value.scalar() if isinstance(value, Attributes) else value


def _eval(node: ast.expr, env: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in env:
            raise Unknown(node.id)
        return env[node.id]
    if isinstance(node, ast.Attribute):
        owner = _eval(node.value, env)
        if not isinstance(owner, Attributes):
            raise Unknown(f"{ast.unparse(node.value)}.{node.attr}")
        return owner.attribute(node.attr)
    if isinstance(node, ast.BoolOp):
        return _kleene(node, env)
    if isinstance(node, ast.UnaryOp):
        value = _scalar(_eval(node.operand, env))
        if isinstance(node.op, ast.Not):
            return None if value is None or _is_nan(value) else not value
        _number(value)
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp):
        left, right = _scalar(_eval(node.left, env)), _scalar(_eval(node.right, env))
        return _ARITHMETIC[type(node.op)](_number(left), _number(right))
    if isinstance(node, ast.Compare):
        left = _scalar(_eval(node.left, env))
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _scalar(_eval(right_node, env))
            if _is_nan(left) or _is_nan(right):
                return None
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_scalar(_eval(e, env)) for e in node.elts)
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)  # parse() allows no other call
        return _FUNCTIONS[node.func.id](*(_scalar(_eval(a, env)) for a in node.args))
    raise AssertionError(type(node).__name__)  # parse() allows no other node
