"""Safe parsing of user expressions into SymPy.

Contract: :func:`parse_expression` turns a string such as
``"x*tanh(log(1 + exp(x)))"`` into a SymPy expression without ever calling
``eval`` (``sympify`` and ``parse_expr`` do). The string is parsed by Python's
``ast`` module, which only builds a syntax tree, and the tree is walked against
a whitelist: numbers, the allowed variable names, ``+ - * / **``, unary minus
and calls of the whitelisted functions below. Anything else (attribute access,
subscripts, lambdas, comprehensions, keywords, unknown names) raises
:class:`~symbp.errors.ExpressionError` naming the column; nothing is executed.

Size is bounded before SymPy sees the expression: at most :data:`MAX_LENGTH`
characters, nesting at most :data:`MAX_DEPTH` deep (a chain such as
``x + y - z`` or ``x*y/z`` is one level, as in SymPy's flattened ``Add`` and
``Mul``; every call, power and unary sign is one more), constant exponents of
at most :data:`MAX_CONSTANT_EXPONENT` (also after SymPy combines
``(x**64)**64``) and constants of at most :data:`MAX_CONSTANT_BITS` bits. So
nothing downstream (``sympy.diff``, printing, code generation) recurses or
works without bound on a user's expression.
"""

from __future__ import annotations

import ast
import math

import sympy as sp

from symbp.errors import ExpressionError

MAX_LENGTH = 500
MAX_CONSTANT_EXPONENT = 64
MAX_CONSTANT_BITS = 256  # constants beyond 2**256 are a mistake (or an attack)
MAX_DEPTH = 24  # the built-in activations nest 6 deep; SymPy's recursion stays far away

FUNCTIONS = {
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "tanh": sp.tanh,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "sin": sp.sin,
    "cos": sp.cos,
    "atan": sp.atan,
    "asinh": sp.asinh,
    "erf": sp.erf,
    "abs": sp.Abs,
    "max": sp.Max,
    "min": sp.Min,
}
CONSTANTS = {"pi": sp.pi, "E": sp.E}

# operators that SymPy flattens into one Add or Mul: a chain of them is one level
_CHAINS = {ast.Add: "additive", ast.Sub: "additive", ast.Mult: "multiplicative",
           ast.Div: "multiplicative"}

_BINARY = {
    ast.Add: lambda u, v: u + v,
    ast.Sub: lambda u, v: u - v,
    ast.Mult: lambda u, v: u * v,
    ast.Div: lambda u, v: u / v,
    ast.Pow: lambda u, v: u**v,
}


def parse_expression(text: str, variables: dict[str, sp.Symbol], where: str) -> sp.Expr:
    """Parse ``text`` with the given free ``variables``; ``where`` names the spec field."""
    if not isinstance(text, str):
        raise ExpressionError(f"{where}: expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"{where}: expression longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise ExpressionError(f"{where}: empty expression")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        column = (exc.offset or 1)
        raise ExpressionError(f"{where}: syntax error at column {column}: {exc.msg}") from None
    if nesting_depth(tree.body) > MAX_DEPTH:
        raise ExpressionError(f"{where}: expression nested deeper than {MAX_DEPTH} levels")
    return _Converter(variables, where).convert(tree.body)


def _chain(node: ast.BinOp):
    """``x + y - z`` (parsed as ``(x + y) - z``) as its first operand and the steps
    ``[(node, operand), ...]`` after it: the left spine of one group of operators."""
    group, steps = _CHAINS.get(type(node.op)), []
    while isinstance(node, ast.BinOp) and group and _CHAINS.get(type(node.op)) == group:
        steps.append((node, node.right))
        node = node.left
    return node, steps[::-1]


def nesting_depth(root: ast.AST) -> int:
    """How deep ``root`` nests, a chain of one group of operators counting once
    (computed without recursion, so any tree the parser builds can be measured)."""
    deepest, pending = 0, [(root, 1)]
    while pending:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        if isinstance(node, ast.BinOp) and type(node.op) in _CHAINS:
            first, steps = _chain(node)
            children = [first] + [operand for _, operand in steps]
        else:
            children = [child for child in ast.iter_child_nodes(node)
                        if isinstance(child, ast.expr)]
        pending.extend((child, depth + 1) for child in children)
    return deepest


class _Converter:
    """Walks a Python expression tree, building SymPy objects from whitelisted nodes only."""

    def __init__(self, variables: dict[str, sp.Symbol], where: str):
        self.variables = variables
        self.where = where

    def fail(self, node: ast.AST, message: str) -> ExpressionError:
        column = getattr(node, "col_offset", 0) + 1
        return ExpressionError(f"{self.where}: {message} at column {column}")

    def convert(self, node: ast.AST) -> sp.Expr:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp) and type(node.op) in _CHAINS:
            return self.chain(node)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return self.binary(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.convert(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.fail(node, f"'{type(node).__name__}' is not allowed in an expression")

    def constant(self, node: ast.Constant) -> sp.Expr:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(node, f"only numbers are allowed as constants, not {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(node, f"the constant {value!r} is not a finite number")
        number = sp.Integer(value) if isinstance(value, int) else sp.Rational(repr(value))
        return self.bounded(node, number)

    def bounded(self, node: ast.AST, value: sp.Expr) -> sp.Expr:
        """Reject infinite, undefined and astronomically large constants and exponents."""
        if any(power.exp.is_Number and abs(power.exp) > MAX_CONSTANT_EXPONENT
               for power in value.atoms(sp.Pow)):
            raise self.fail(node, f"constant exponent larger than {MAX_CONSTANT_EXPONENT}")
        if value.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
            raise self.fail(node, "the expression is undefined (division by zero or infinity)")
        if value.has(sp.I):
            raise self.fail(node, "the expression has an imaginary constant")
        if value.is_Rational and max(abs(value.p), value.q).bit_length() > MAX_CONSTANT_BITS:
            raise self.fail(node, "constant too large")
        return value

    def name(self, node: ast.Name) -> sp.Expr:
        if node.id in self.variables:
            return self.variables[node.id]
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        allowed = ", ".join(sorted(self.variables))
        raise self.fail(node, f"unknown name '{node.id}' (the variables are: {allowed})")

    def chain(self, node: ast.BinOp) -> sp.Expr:
        """A chain ``u + v - w`` or ``u*v/w`` left to right, without recursing along it."""
        first, steps = _chain(node)
        value = self.convert(first)
        for step, operand in steps:
            value = self.combine(step, value, self.convert(operand))
        return value

    def binary(self, node: ast.BinOp) -> sp.Expr:
        return self.combine(node, self.convert(node.left), self.convert(node.right))

    def combine(self, node: ast.BinOp, left: sp.Expr, right: sp.Expr) -> sp.Expr:
        if isinstance(node.op, ast.Pow) and right.is_Number:
            if abs(right) > MAX_CONSTANT_EXPONENT:
                raise self.fail(node, f"constant exponent larger than {MAX_CONSTANT_EXPONENT}")
            if left.is_Number and left != 0 and (
                    abs(right) * math.log2(abs(float(left)) + 1) > MAX_CONSTANT_BITS):
                raise self.fail(node, "constant too large")
        if isinstance(node.op, ast.Div) and right == 0:
            raise self.fail(node, "division by zero")
        return self.bounded(node, _BINARY[type(node.op)](left, right))

    def call(self, node: ast.Call) -> sp.Expr:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node, "only calls of plain function names are allowed")
        function = FUNCTIONS.get(node.func.id)
        if function is None:
            allowed = ", ".join(sorted(FUNCTIONS))
            raise self.fail(node, f"unknown function '{node.func.id}' (allowed: {allowed})")
        if node.keywords:
            raise self.fail(node, "keyword arguments are not allowed")
        arity = 2 if node.func.id in ("max", "min") else 1
        if len(node.args) != arity:
            raise self.fail(node, f"'{node.func.id}' takes {arity} argument(s)")
        return self.bounded(node, function(*[self.convert(arg) for arg in node.args]))
