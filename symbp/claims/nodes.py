"""The claims' AST: its nodes, the parsed claim, and walking and rewriting trees.

Contract: every node is a frozen dataclass whose ``span`` (the characters of the claim it
was read from; not compared) locates it for error messages; :func:`children`,
:func:`map_children`, :func:`walk` and :func:`replace_at` visit and rebuild trees.
:class:`ClaimParseError` is every refusal of a claim, with its 1-based column.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction

from symbp.errors import SymbpError


class ClaimParseError(SymbpError):
    """A claim that is not in the accepted LaTeX subset; ``column`` is 1-based."""

    def __init__(self, message: str, column: int, expected=(), text: str = ""):
        super().__init__(f"column {column}: {message}")
        self.reason = message
        self.column = column
        self.expected = list(expected)
        self.text = text


def printable(text: str) -> str:
    """``text`` safe to echo on a terminal, one character for each (so that a caret
    still points at its column): whitespace becomes a space, and control, format,
    surrogate and unassigned characters become ``?``."""
    return "".join(" " if char.isspace() else "?" if unicodedata.category(char)[0] == "C"
                   else char for char in text)


# ---------------------------------------------------------------------- AST
@dataclass(frozen=True)
class LayerRef:
    """A layer index: ``var`` is ``'l'``, ``'L'`` or None (a concrete layer), plus ``offset``."""

    var: str | None
    offset: int = 0

    def shifted(self, by: int) -> "LayerRef":
        return LayerRef(self.var, self.offset + by)

    def resolve(self, l_value: int | None, depth: int) -> int:
        if self.var is None:
            return self.offset
        if self.var == "L":
            return depth + self.offset
        if l_value is None:
            raise ValueError("layer l is not bound")
        return l_value + self.offset

    @property
    def label(self) -> str:
        if self.var is None:
            return str(self.offset)
        if self.offset == 0:
            return self.var
        return f"{self.var}{'+' if self.offset > 0 else '-'}{abs(self.offset)}"

    def width(self) -> str:
        """The LaTeX width ``n_l``, ``n_{l+1}``."""
        label = self.label
        return f"n_{label}" if len(label) == 1 else f"n_{{{label}}}"


@dataclass(frozen=True)
class Node:
    span: tuple = field(default=(0, 0), compare=False, kw_only=True)


@dataclass(frozen=True)
class Num(Node):
    value: Fraction


@dataclass(frozen=True)
class Ones(Node):
    """``\\mathbf{1}``: a vector of ones whose length fits where it stands."""


@dataclass(frozen=True)
class Leaf(Node):
    """``name`` is W, b, z, a, x, y, delta or B; ``batch`` for X, Y, A, Z, \\Delta."""

    name: str
    layer: LayerRef | None = None
    batch: bool = False


@dataclass(frozen=True)
class Grad(Node):
    """``\\partial loss / \\partial target`` (target a Leaf W, b, z, a or x)."""

    loss: str
    target: Leaf


@dataclass(frozen=True)
class Neg(Node):
    arg: Node


@dataclass(frozen=True)
class Add(Node):
    left: Node
    right: Node


@dataclass(frozen=True)
class Sub(Node):
    left: Node
    right: Node


@dataclass(frozen=True)
class Hadamard(Node):
    left: Node
    right: Node


@dataclass(frozen=True)
class Star(Node):
    """``u * v``: Ng's (and NumPy's) elementwise product, or a convolution: the convention
    and the network decide (:mod:`symbp.verify.conventions`)."""

    left: Node
    right: Node


@dataclass(frozen=True)
class MatMul(Node):
    """Juxtaposition or ``\\cdot``: a matrix product, or scaling when one side is a scalar."""

    left: Node
    right: Node


@dataclass(frozen=True)
class Div(Node):
    num: Node
    den: Node


@dataclass(frozen=True)
class Transpose(Node):
    arg: Node


@dataclass(frozen=True)
class Power(Node):
    arg: Node
    exponent: int


@dataclass(frozen=True)
class Func:
    """A function: ``name`` (sigmoid, tanh, ..., or 'generic' for f, the layer's own)."""

    name: str
    order: int = 0  # number of primes
    power: int | None = None  # \tanh^2
    layer: LayerRef | None = None  # f_l
    letter: str = field(default="f", compare=False)  # as written: f, or \phi (a density too)

    @property
    def latex(self) -> str:
        known = {"sigmoid": r"\sigma", "tanh": r"\tanh", "exp": r"\exp", "log": r"\log",
                 "sqrt": r"\sqrt", "cosh": r"\cosh", "sinh": r"\sinh", "sin": r"\sin",
                 "cos": r"\cos"}
        if self.name == "generic":
            text = "f" + (f"_{{{self.layer.label}}}" if self.layer else "")
        else:
            text = known.get(self.name, rf"\operatorname{{{self.name}}}".replace("_", r"\_"))
        if self.power is not None:
            text += f"^{{{self.power}}}"
        return text + "'" * self.order


@dataclass(frozen=True)
class Apply(Node):
    func: Func
    arg: Node


@dataclass(frozen=True)
class Deriv(Node):
    """``\\frac{d}{d var} arg``."""

    var: str
    arg: Node


@dataclass(frozen=True)
class Indexed(Node):
    """An entry ``arg_{jk}`` of a vector or matrix (``arg`` a Leaf or a Grad); ``indices``
    are the index letters (or digits) as written, ``('s', 'i')`` for ``_{s,i}``."""

    arg: Node
    indices: tuple


@dataclass(frozen=True)
class Example(Node):
    """Ng's ``X^{[l](i)}``: the column (example) ``index`` of the batch quantity ``arg``."""

    arg: Node
    index: str


@dataclass(frozen=True)
class Sum(Node):
    """``\\sum_{index} body``: ``index`` None when the sum names none; ``lower`` the
    first value (0 or 1) when written; ``upper`` the upper limit's text when written."""

    index: str | None
    body: Node
    lower: int | None = None
    upper: str | None = None


@dataclass(frozen=True)
class Compare(Node):
    """``left op right``, ``op`` one of ``> < >= <=``: a condition, 1 where it holds."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Cases(Node):
    """``\\begin{cases} v_1 & c_1 \\\\ v_2 & \\text{otherwise} \\end{cases}``: ``rows`` of
    ``(value, Compare or None)``, the first row whose condition holds (elementwise)."""

    rows: tuple


@dataclass(frozen=True)
class Max(Node):
    """``\\max(left, right)``, elementwise."""

    left: Node
    right: Node


@dataclass(frozen=True)
class Indicator(Node):
    """``\\mathbb{1}[condition]``."""

    condition: Compare


@dataclass(frozen=True)
class Claim:
    """``sides[0] = sides[1] (= sides[2] ...)``; ``text`` is the claim as given (a trailing
    ``\\quad (a = f(z))``, as the printer writes, is substituted into the sides)."""

    sides: tuple
    text: str

    @property
    def lhs(self) -> Node:
        return self.sides[0]

    @property
    def rhs(self) -> Node:
        return self.sides[1]

    def source(self, node: Node) -> str:
        """The user's own text of ``node`` (whitespace normalised), or its LaTeX."""
        start, end = node.span
        if end > start:
            return " ".join(self.text[start:end].split())
        from symbp.claims.latex import to_latex

        return to_latex(node)


def children(node: Node) -> list[tuple[str, Node]]:
    """The child nodes of ``node`` as ``(field name, child)`` (a gradient's target is
    part of its name, not a subexpression)."""
    if isinstance(node, Grad):
        return []
    if isinstance(node, Cases):
        return [(f"rows.{n}.{k}", part) for n, row in enumerate(node.rows)
                for k, part in enumerate(row) if part is not None]
    return [(f.name, getattr(node, f.name)) for f in fields(node)
            if isinstance(getattr(node, f.name), Node) and f.name != "span"]


def map_children(node: Node, fn) -> Node:
    """``node`` with ``fn`` applied to each child node (a case's value and condition too)."""
    if isinstance(node, Cases):
        rows = tuple(tuple(None if part is None else fn(part) for part in row)
                     for row in node.rows)
        return replace(node, rows=rows)
    changes = {name: fn(child) for name, child in children(node)}
    return replace(node, **changes) if changes else node


def walk(node: Node):
    """Every node of a tree, parents first, with its path (a tuple of field names)."""
    stack = [((), node)]
    while stack:
        path, current = stack.pop()
        yield path, current
        for name, child in reversed(children(current)):
            stack.append((path + (name,), child))


def replace_at(node: Node, path: tuple, new: Node) -> Node:
    """A copy of ``node`` with the subtree at ``path`` replaced by ``new``."""
    if not path:
        return new
    child = getattr(node, path[0])
    return replace(node, **{path[0]: replace_at(child, path[1:], new)})


