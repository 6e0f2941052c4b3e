"""The claims' AST: its nodes, the parsed claim, and walking and rewriting trees.

Contract: every node is a frozen dataclass whose ``span`` (the characters of the claim it
was read from; not compared) locates it for error messages; :func:`children`,
:func:`map_children`, :func:`walk` and :func:`replace_at` visit and rebuild trees.
:class:`ClaimParseError` is every refusal of a claim, with its 1-based column.

Index expressions (the items of a comma subscript ``i + p - 1``, a sum's ``limit``, the
operands of :class:`Between` and :class:`Member`, a function's ``params``, a correlation's
``stride``) are made of :class:`Num`, :class:`Letter`, the width ``Leaf("n", ref)``,
:class:`Add`, :class:`Sub`, :class:`Neg`, :class:`MatMul` (a product, ``2i``), :class:`Div`,
:class:`Floor` and :class:`Mod`. They are positions, not subexpressions: :func:`children`
does not visit them (:func:`index_expressions` does), so that what walks the values of a
claim never meets an index.
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


_INDEX = {"index": True}  # the metadata of a field that holds an index expression


@dataclass(frozen=True)
class Letter(Node):
    """An index letter in an index expression, as written (``i``, ``c'``), or a layer's
    geometry letter ``K S P H W H' W' L L'``; a plain letter item of a subscript stays a
    ``str``."""

    name: str


@dataclass(frozen=True)
class Floor(Node):
    """``\\lfloor arg \\rfloor`` in an index expression."""

    arg: Node


@dataclass(frozen=True)
class Mod(Node):
    """``arg \\bmod modulus`` in an index expression."""

    arg: Node
    modulus: Node


@dataclass(frozen=True)
class Num(Node):
    value: Fraction


@dataclass(frozen=True)
class Ones(Node):
    """``\\mathbf{1}``: a vector of ones whose length fits where it stands."""


@dataclass(frozen=True)
class Leaf(Node):
    """``name`` is W, b, z, a, x, y, delta or B; ``batch`` for X, Y, A, Z, \\Delta; chi for
    ``\\chi^{(l)}`` (a max pooling's window argmax indicator), deltatilde for
    ``\\widetilde{\\delta}^{(l)}`` (``\\widetilde{\\Delta}``: δ dilated by the stride and
    zero-padded by K − 1 − P); n for a width ``n_l`` (``layer`` its layer)."""

    name: str
    layer: LayerRef | None = None
    batch: bool = False


@dataclass(frozen=True)
class Grad(Node):
    """``\\partial loss / \\partial target`` (target a Leaf W, b, z, a or x, or
    ``Apply(Func("vec"), leaf)`` for ``\\partial \\operatorname{vec}(a^{(l)})``)."""

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
    params: tuple = ()  # index expressions: pad_{1}, pad_{(1,0)}, dil_{S}

    @property
    def latex(self) -> str:
        known = {"sigmoid": r"\sigma", "tanh": r"\tanh", "exp": r"\exp", "log": r"\log",
                 "sqrt": r"\sqrt", "cosh": r"\cosh", "sinh": r"\sinh", "sin": r"\sin",
                 "cos": r"\cos", "normal_cdf": r"\Phi", "normal_pdf": r"\phi"}
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
    """An entry ``arg_{jk}`` of a vector, matrix or tensor (``arg`` a Leaf, a Grad, or the
    Apply of vec, pad, dil or rot180); ``indices`` are the index letters (or digits) as
    written, ``('s', 'i')`` for ``_{s,i}`` and ``('j', 'k')`` for ``_{jk}``; an item of a
    comma subscript that is not a plain letter or digit string is an index expression
    (``("s", "c'", Add(...))`` for ``_{s,c',i + p}``). Fewer indices than axes read a slice."""

    arg: Node
    indices: tuple


@dataclass(frozen=True)
class Example(Node):
    """Ng's ``X^{[l](i)}``: the column (example) ``index`` of the batch quantity ``arg``."""

    arg: Node
    index: str


@dataclass(frozen=True)
class Sum(Node):
    """``\\sum_{index} body``: ``index`` None when the sum names none (possibly primed,
    ``c'``); ``lower`` the first value (0 or 1) when written; ``upper`` the upper limit's
    text and ``limit`` it as an index expression (``n_{3} - 1``, ``H' - 1``) when written
    (not compared: ``upper`` says the same). Without limits the sum runs over the whole
    range of the axis its index reads."""

    index: str | None
    body: Node
    lower: int | None = None
    upper: str | None = None
    limit: Node | None = field(default=None, compare=False, metadata=_INDEX)  # upper's node


@dataclass(frozen=True)
class Compare(Node):
    """``left op right``, ``op`` one of ``> < >= <=``: a condition, 1 where it holds. Where
    a side holds an index letter both are index expressions (``[i + p - 1 \\ge 0]``)."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Cases(Node):
    """``\\begin{cases} v_1 & c_1 \\\\ v_2 & \\text{otherwise} \\end{cases}``: ``rows`` of
    ``(value, Compare, Prose or None)``, the first row whose condition holds (elementwise);
    a :class:`Prose` condition (``\\text{if } j \\text{ is an output neuron,}``) names the
    case in words."""

    rows: tuple


@dataclass(frozen=True)
class Max(Node):
    """``\\max(left, right)``, elementwise."""

    left: Node
    right: Node


@dataclass(frozen=True)
class Between(Node):
    """``low low_op middle high_op high`` (``0 \\le i + p - 1 \\le 7``), the operands
    index expressions, the ops ``"<="`` or ``"<"`` (a descending chain is turned around)."""

    low: Node = field(metadata=_INDEX)
    low_op: str
    middle: Node = field(metadata=_INDEX)
    high_op: str
    high: Node = field(metadata=_INDEX)


@dataclass(frozen=True)
class Member(Node):
    """``expr \\in \\{low, \\dots, high\\}`` (the integers from low to high), index
    expressions: it holds where ``expr`` is one of them (an integer)."""

    expr: Node = field(metadata=_INDEX)
    low: Node = field(metadata=_INDEX)
    high: Node = field(metadata=_INDEX)


@dataclass(frozen=True)
class Equal(Node):
    """``left = right`` in an indicator (CS231n's ``\\mathbb{1}(y_i = k)``): 1 where the two
    are equal. A side holding an index letter is an index expression (``Letter("k")``)."""

    left: Node
    right: Node


@dataclass(frozen=True)
class Prose(Node):
    """A case's condition in words (``\\text{if } j \\text{ is an output neuron,}``),
    ``text`` normalised: it names no comparison that can be checked."""

    text: str


@dataclass(frozen=True)
class Indicator(Node):
    """The Iverson bracket ``\\left[condition\\right]`` (also ``\\mathbb{1}[condition]``):
    1 where ``condition`` (a Compare, Between, Member or Equal) holds, else 0."""

    condition: Node


@dataclass(frozen=True)
class Correlate(Node):
    """``left \\star_{stride} right``: the valid cross-correlation of ``left`` with the kernel
    ``right`` over their trailing (spatial) axes; ``stride`` an index expression or None
    (``\\star``, stride 1)."""

    left: Node
    right: Node
    stride: Node | None = field(default=None, metadata=_INDEX)


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
            if isinstance(getattr(node, f.name), Node) and f.name != "span"
            and not f.metadata.get("index")]


def index_expressions(node: Node) -> list[Node]:
    """The index expressions that ``node`` itself holds (not its children's): the
    expression items of an Indexed, a sum's limit, a function's parameters, a stride, the
    operands of Between and Member."""
    if isinstance(node, Indexed):
        return [item for item in node.indices if isinstance(item, Node)]
    if isinstance(node, Apply):
        return list(node.func.params)
    return [getattr(node, f.name) for f in fields(node) if f.metadata.get("index")
            and isinstance(getattr(node, f.name), Node)]


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


