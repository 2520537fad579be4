"""``calculator``: arithmetic the model should not do in its head, evaluated safely.

The expression is parsed with :mod:`ast` and only numbers and arithmetic operators are walked; there is
no ``eval``, no names, no calls, no attribute access. Exponents and result sizes are bounded so that
``9**9**9`` fails fast instead of eating the CPU.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

from pydantic import BaseModel, Field

from agent_runtime.errors import ToolError
from agent_runtime.tools.base import ToolContext

MAX_EXPONENT = 1000
MAX_INT_BITS = 4096

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class CalculatorArgs(BaseModel):
    expression: str = Field(
        min_length=1,
        max_length=256,
        description="Arithmetic with + - * / // % ** and parentheses, e.g. '(2 + 3) * 4 ** 2'.",
    )


def evaluate(expression: str) -> int | float:
    """The value of ``expression``; :class:`ValueError` for anything but bounded arithmetic."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
        return _value(tree.body)
    except SyntaxError as error:
        raise ValueError("not an arithmetic expression") from error
    except ZeroDivisionError as error:
        raise ValueError("division by zero") from error
    except (OverflowError, RecursionError) as error:
        raise ValueError("the result is too large") from error


def _value(node: ast.expr) -> int | float:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return _bounded(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _bounded(_BINARY[type(node.op)](left, right))
    raise ValueError(f"'{type(node).__name__}' is not allowed; use numbers and + - * / // % ** ( )")


def _check_power(base: float, exponent: float) -> None:
    """Refuse powers whose result would be huge before computing them."""
    if abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"exponents are limited to ±{MAX_EXPONENT}")
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and base.bit_length() * exponent > MAX_INT_BITS
    ):
        raise OverflowError


def _bounded(value: float) -> int | float:
    if isinstance(value, complex):
        raise ValueError("the result is not a real number")  # noqa: TRY004 - an input error, as for the others
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise OverflowError
    if isinstance(value, float) and not math.isfinite(value):
        raise OverflowError
    return value


async def calculator(args: CalculatorArgs, ctx: ToolContext) -> str:
    """Evaluate an arithmetic expression exactly (integers) or in floating point."""
    try:
        return str(evaluate(args.expression))
    except ValueError as error:
        raise ToolError(str(error)) from error
