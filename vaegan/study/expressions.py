"""``{expressions}`` in the study's overrides: arithmetic over a few named numbers.

So one arm definition serves every scale: ``gan_start={gan_start_frac*steps}`` is 250 at 500
steps and 5000 at 10000. Parsed with ``ast`` and evaluated node by node: numbers, + - * /,
and the given names; nothing else runs.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Mapping


class ExpressionError(ValueError):
    """An expression that uses anything but numbers, + - * / and the known names."""


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv}
_EXPR = re.compile(r"\{([^{}]+)\}")


def evaluate_expr(expr: str, names: Mapping[str, float]) -> float:
    """Arithmetic (+ - * /) over numbers and ``names``; nothing else is allowed."""

    def value_of(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return value_of(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Name) and node.id in names:
            return names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value_of(node.left), value_of(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value_of(node.operand)
        raise ExpressionError(f"{{{expr}}}: only numbers, + - * / and {sorted(names)}")

    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        raise ExpressionError(f"{{{expr}}}: not an arithmetic expression") from None
    return value_of(tree)


def expand(text: str, names: Mapping[str, float]) -> str:
    """Replace each ``{expr}`` in an override by its value; an expression over ``steps`` is a
    step count and is rounded to an integer (at least 1)."""

    def sub(match: re.Match) -> str:
        value = evaluate_expr(match.group(1), names)
        if re.search(r"\bsteps\b", match.group(1)):
            return str(max(1, int(round(value))))
        return f"{value:g}" if value == int(value) else repr(float(value))

    return _EXPR.sub(sub, text)
