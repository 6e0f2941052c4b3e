"""Matrix forms: a tiny expression tree for vector/matrix formulas.

Contract: the derivation engine works in index notation (SymPy ``Indexed``
objects and ``Sum``); :func:`to_matrix` turns an index expression whose
Kronecker deltas have been summed away into this tree (transposes, matrix
products, Hadamard products, elementwise functions), by reading which
indices each factor carries and which index a ``Sum`` contracts. It raises
:class:`NotMatrixForm` when an expression has no such reading.

The same tree is what symbp prints (LaTeX, :mod:`symbp.printing`), evaluates
numerically for its self-check (:func:`evaluate`) and turns into NumPy code
(:mod:`symbp.codegen`), so a printed formula is exactly the checked one.

Leaves are :class:`Tensor` objects naming a quantity of the notation
(``W``, ``b``, ``z``, ``a``, ``delta``, ``y``, ``fprime``) at a layer; the
layer is a SymPy expression (``l``, ``l+1``, ``L``) or an integer. Any other
hashable object with a ``latex`` name and a ``code`` (or ``name``) may stand
for a leaf too (the graph engine's tensors, the printer's quantities):
:func:`code_of` is the name values are looked up by.

Broadcasting follows NumPy: a vector read along the rows of a matrix (a
bias ``b_i`` in ``Z_{s,i}``, a per-feature statistic ``μ_i``) is an
:class:`AsRow` leaf (shape ``(1, n)``), a vector read along its columns (a
per-row statistic ``μ_s``) stays a column ``(B, 1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache

import numpy as np
import sympy as sp

ONE = sp.Symbol("ONE")

def _heaviside(x, at_zero=0.5):
    return np.heaviside(x, at_zero)


# lambdify's modules: NumPy has no erf, the standard library's is exact to float64;
# Heaviside (from max/min/abs) as np.heaviside, not a Piecewise whose conditions
# lambdify would simplify (seconds for a Huber loss).
# The module object rather than "numpy": lambdify then reads its namespace instead
# of running ``from numpy import *``, which imports numpy.f2py (~90 ms).
NUMPY_MODULES = [{"erf": np.vectorize(math.erf, otypes=[float]), "Heaviside": _heaviside}, np]


@lru_cache(maxsize=None)
def numeric_function(variables: tuple, expr: sp.Expr):
    """A cached NumPy function of ``expr`` (float64)."""
    return sp.lambdify(variables, expr, modules=NUMPY_MODULES)


class NotMatrixForm(Exception):
    """An index expression that this module cannot read as a matrix formula."""


# --------------------------------------------------------------------- leaves
_LATEX_LETTER = {  # (per sample, batch)
    "W": ("W", "W"), "b": ("b", "b"), "z": ("z", "Z"), "a": ("a", "A"),
    "delta": (r"\delta", r"\Delta"), "y": ("y", "Y"),
}


@dataclass(frozen=True)
class Tensor:
    """A named quantity: ``letter`` at ``layer``; ``batch`` for the stacked rows of a batch."""

    letter: str
    layer: object = None
    batch: bool = False

    @property
    def is_input(self) -> bool:
        return self.letter == "a" and self.layer == 0

    @cached_property
    def latex(self) -> str:
        if self.is_input or self.letter == "y":
            return "X" if (self.batch and self.is_input) else (
                "x" if self.is_input else ("Y" if self.batch else "y"))
        if self.letter == "fprime":
            z = Tensor("z", self.layer, self.batch).latex
            return f"f_{{{sp.latex(self.layer)}}}'\\left({z}\\right)"
        letter = _LATEX_LETTER[self.letter][1 if self.batch else 0]
        return f"{letter}^{{({sp.latex(self.layer)})}}"

    @cached_property
    def code(self) -> str:
        """The name this quantity has in generated code (``W2``, ``delta1``, ``Y``)."""
        if self.letter == "y":
            return "Y"
        if self.letter == "fprime":
            return f"fprime{self.layer}"
        return f"{self.letter}{self.layer}"

    @property
    def is_matrix(self) -> bool:
        return self.letter == "W" or (self.batch and self.letter != "b")

    def at_layer(self, value) -> "Tensor":
        if isinstance(self.layer, sp.Basic):
            return replace(self, layer=sp.sympify(self.layer).subs(LAYER, value))
        return self


LAYER = sp.Symbol("l", integer=True, positive=True)


def code_of(tensor) -> str:
    """The name a leaf's value is looked up by: ``tensor.code``, else ``tensor.name``."""
    code = getattr(tensor, "code", None)
    return code if code is not None else tensor.name


@dataclass(frozen=True)
class AsRow:
    """A vector laid along the rows of a matrix (a row ``(1, n)`` that NumPy broadcasts)."""

    tensor: object

    @property
    def latex(self) -> str:
        return self.tensor.latex

    @property
    def code(self) -> str:
        return code_of(self.tensor) + "_row"


# ---------------------------------------------------------------------- nodes
@dataclass(frozen=True)
class Leaf:
    tensor: Tensor


@dataclass(frozen=True)
class Ones:
    """A column of ones (sums over the batch or over an index)."""

    length: str = "B"


@dataclass(frozen=True)
class Transpose:
    arg: object


@dataclass(frozen=True)
class MatMul:
    left: object
    right: object


@dataclass(frozen=True)
class Hadamard:
    args: tuple


@dataclass(frozen=True)
class Add:
    args: tuple


@dataclass(frozen=True)
class Scale:
    factor: sp.Expr
    arg: object


@dataclass(frozen=True)
class Elementwise:
    """``expr`` in scalar symbols; ``tensors`` maps each symbol to the quantity it stands for."""

    expr: sp.Expr
    tensors: tuple = field(default=())  # ((Symbol, Tensor), ...)

    @cached_property
    def symbol_map(self) -> dict:
        return dict(self.tensors)


def leaves(node):
    """Every Tensor in a tree."""
    if isinstance(node, Leaf):
        yield node.tensor
    elif isinstance(node, Elementwise):
        yield from (t for _, t in node.tensors)
    elif isinstance(node, (Transpose, Scale)):
        yield from leaves(node.arg)
    elif isinstance(node, MatMul):
        yield from leaves(node.left)
        yield from leaves(node.right)
    elif isinstance(node, (Hadamard, Add)):
        for arg in node.args:
            yield from leaves(arg)


def map_tensors(node, function):
    """A copy of ``node`` with each Tensor leaf replaced by ``function(tensor)`` (a node)."""
    if isinstance(node, Leaf):
        return function(node.tensor)
    if isinstance(node, Ones):
        return node
    if isinstance(node, Elementwise):
        return _map_elementwise(node, function)
    if isinstance(node, Transpose):
        return Transpose(map_tensors(node.arg, function))
    if isinstance(node, Scale):
        return Scale(node.factor, map_tensors(node.arg, function))
    if isinstance(node, MatMul):
        return MatMul(map_tensors(node.left, function), map_tensors(node.right, function))
    args = tuple(map_tensors(arg, function) for arg in node.args)
    if isinstance(node, Hadamard):  # an identity's f' = 1 drops out of a product
        args = tuple(a for a in args if not (isinstance(a, Elementwise) and a.expr == 1))
        if len(args) == 1:
            return args[0]
    return type(node)(args)


def _map_elementwise(node: Elementwise, function):
    """Elementwise leaves may only be renamed (Leaf) or inlined (Elementwise)."""
    expr, tensors = node.expr, []
    for symbol, tensor in node.tensors:
        new = function(tensor)
        if isinstance(new, Leaf):
            tensors.append((symbol, new.tensor))
        elif isinstance(new, Elementwise):
            inner = {s: sp.Dummy(s.name) for s, _ in new.tensors}
            expr = expr.subs(symbol, new.expr.xreplace(inner))
            tensors.extend((inner[s], t) for s, t in new.tensors)
        else:
            raise NotMatrixForm("an elementwise operand must stay elementwise")
    return canonical_elementwise(expr, tensors)


def canonical_elementwise(expr: sp.Expr, tensors) -> Elementwise:
    """Name each scalar symbol after its tensor's code name (deterministic output)."""
    by_tensor = {}
    for symbol, tensor in tensors:
        by_tensor.setdefault(tensor, []).append(symbol)
    mapping, pairs = {}, []
    for tensor in sorted(by_tensor, key=code_of):
        symbol = sp.Symbol(code_of(tensor), real=True)
        for old in by_tensor[tensor]:
            mapping[old] = symbol
        pairs.append((symbol, tensor))
    expr = expr.xreplace(mapping)
    used = [(s, t) for s, t in pairs if s in expr.free_symbols]
    # a constant keeps one tensor, whose shape it takes (delta^(L) = 1 for the loss a)
    return Elementwise(expr, tuple(used or pairs[:1]))


# ---------------------------------------------------- index -> matrix reading
def to_matrix(expr: sp.Expr, free: tuple, tensors: dict, like: Tensor | None = None) -> object:
    """Read an index expression with ``free`` indices as a matrix tree.

    ``tensors`` maps each IndexedBase label to its :class:`Tensor`. ``free``
    has one index (a column vector, or a batch row index is part of it) or two
    (a matrix, rows first). An expression without indices (a constant) is read
    as that constant in the shape of the tensor ``like``.
    """
    want = (free[0], free[1] if len(free) > 1 else ONE)
    if not expr.has(sp.Indexed) and like is not None:
        return canonical_elementwise(expr, [(sp.Dummy(real=True), like)])
    node, sig = _Reader(tensors).read(sp.expand(expr) if expr.is_Add else expr, want)
    return _orient(node, sig, want)


def _orient(node, sig, want):
    if tuple(sig) == tuple(want):
        return node
    if tuple(sig) == tuple(reversed(want)):
        return Transpose(node)
    raise NotMatrixForm(f"indices {sig} do not match {want}")


class _Reader:
    def __init__(self, tensors: dict):
        self.tensors = tensors

    def read(self, expr, want=None):
        """``(tree, (row index, column index))``; ``want`` is the preferred orientation."""
        if isinstance(expr, sp.Indexed):
            return self.indexed(expr)
        if not expr.has(sp.Sum) and _single_index_set(expr):
            return self.elementwise(expr)
        if isinstance(expr, sp.Add):
            return self.add(expr, want)
        if isinstance(expr, sp.Mul):
            return self.mul(expr, want)
        if isinstance(expr, sp.Sum):
            return self.sum(expr, want)
        return self.elementwise(expr)

    def indexed(self, expr):
        tensor = self.tensors[expr.base.label]
        indices = tuple(expr.indices)
        return Leaf(tensor), (indices if len(indices) == 2 else (indices[0], ONE))

    def add(self, expr, want=None):
        """Terms without a sum are read together (``a - y``, one elementwise node); a
        per-sample or per-row scalar (``a^T g``) broadcasts over the other terms."""
        plain = [term for term in expr.args if not term.has(sp.Sum)]
        terms = [term for term in expr.args if term.has(sp.Sum)]
        if len(plain) > 1 and _single_index_set(sp.Add(*plain)):
            terms.insert(0, sp.Add(*plain))
        else:
            terms = plain + terms
        parts = [self.read(term, want) for term in terms]
        sig = max((s for _, s in parts), key=lambda s: sum(i != ONE for i in s))
        return Add(tuple(_fit(node, s, sig) for node, s in parts)), sig

    def mul(self, expr, want=None):
        scalar = sp.Mul(*[f for f in expr.args if not f.has(sp.Indexed)])
        factors = [f for f in expr.args if f.has(sp.Indexed)]
        if not factors:
            raise NotMatrixForm("a scalar where a vector was expected")
        node, sig = self._product(factors, want)
        return (node if scalar == 1 else Scale(scalar, node)), sig

    def _product(self, factors, want=None):
        parts = [self.read(f, want) for f in factors]
        node, sig = parts[0]
        for other, other_sig in parts[1:]:
            if set(other_sig) == set(sig):
                node = _hadamard(node, _orient(other, other_sig, sig))
            elif _broadcasts(other_sig, sig):
                node = _hadamard(node, other)
            elif _broadcasts(sig, other_sig):
                node, sig = _hadamard(other, node), other_sig
            elif _along_rows(other_sig, sig):
                node = _hadamard(node, _as_row(other))
            elif _along_rows(sig, other_sig):
                node, sig = _hadamard(_as_row(node), other), other_sig
            elif sig[1] == ONE and other_sig[1] == ONE:
                node, sig = MatMul(node, Transpose(other)), (sig[0], other_sig[0])
            else:
                raise NotMatrixForm(f"cannot multiply indices {sig} and {other_sig}")
        return node, sig

    def sum(self, expr, want=None):
        if len(expr.limits) != 1:
            raise NotMatrixForm("nested sums")
        k = expr.limits[0][0]
        body = expr.function
        factors = list(body.args) if isinstance(body, sp.Mul) else [body]
        scalar = sp.Mul(*[f for f in factors if not f.has(k)])
        with_k = [f for f in factors if f.has(k)]
        if len(with_k) == 2 and _shared_free_index(with_k, k):
            with_k = [sp.Mul(*with_k)]  # a row-wise product: elementwise, then summed
        elif len(with_k) > 2:
            with_k = _quantity_and_rest(with_k, k)
        parts = [self.read(f) for f in with_k]
        if len(parts) == 1:
            parts.append((Ones(_ones_length(expr)), (k, ONE)))
        node, sig = min((self._contract(x, y, k) for x, y in (parts, parts[::-1])),
                        key=lambda c: (want is not None and tuple(c[1]) != tuple(want),
                                       _transposes(c[0]), not _transposes_a_leaf(c[0])))
        return (node if scalar == 1 else Scale(scalar, node)), sig

    @staticmethod
    def _contract(x_part, y_part, k):
        """``sum_k X[f, k] Y[k, g]`` as the product ``X Y`` with the needed transposes."""
        (x, xs), (y, ys) = x_part, y_part
        if k not in xs or k not in ys:
            raise NotMatrixForm("a sum whose index is not shared by two factors")
        fx = xs[0] if xs[1] == k else xs[1]
        fy = ys[0] if ys[1] == k else ys[1]
        node = MatMul(_orient(x, xs, (fx, k)), _orient(y, ys, (k, fy)))
        if fx == ONE and fy != ONE:  # a row times a matrix: read it as a column
            return Transpose(node), (fy, fx)
        return node, (fx, fy)

    def elementwise(self, expr):
        indexed = sorted(expr.atoms(sp.Indexed), key=sp.default_sort_key)
        if not indexed:
            raise NotMatrixForm("a scalar where a vector was expected")
        index_sets = {tuple(item.indices) for item in indexed}
        indices = max(index_sets, key=len)
        if len(indices) == 2 and not index_sets <= {indices, indices[:1], indices[1:]}:
            raise NotMatrixForm(f"an elementwise function of mixed indices {index_sets}")
        if len(indices) < 2 and len(index_sets) != 1:
            raise NotMatrixForm(f"an elementwise function of mixed indices {index_sets}")
        tensors, mapping = [], {}
        for item in indexed:
            symbol = sp.Dummy(real=True)  # real: a nest of functions is not re-analysed as complex
            mapping[item] = symbol
            tensor = self.tensors[item.base.label]
            if len(indices) == 2 and tuple(item.indices) == indices[1:]:
                tensor = AsRow(tensor)  # a per-column vector broadcast along the rows
            tensors.append((symbol, tensor))
        node = canonical_elementwise(expr.xreplace(mapping), tensors)
        return node, (indices if len(indices) == 2 else (indices[0], ONE))


def _quantity_and_rest(factors, k) -> list:
    """``a_k g_k h_k`` as ``[a_k, g_k h_k]`` (read as ``a^T (g ⊙ h)``) when that is one
    product of two factors, else one elementwise factor."""
    leaf = next((f for f in factors if isinstance(f, sp.Indexed)), None)
    rest = [f for f in factors if f is not leaf]
    if leaf is None or _shared_free_index([leaf, sp.Mul(*rest)], k) \
            or not _single_index_set(sp.Mul(*rest)):
        return [sp.Mul(*factors)]
    return [leaf, sp.Mul(*rest)]


def _shared_free_index(factors, k) -> bool:
    """Do two factors share an index besides the summed ``k`` (a batch row ``s``)?"""
    first, second = ({i for item in f.atoms(sp.Indexed) for i in item.indices} - {k}
                     for f in factors)
    return bool(first & second)


def _fit(node, sig, want):
    """``node`` (indices ``sig``) as a term of a sum with indices ``want``."""
    if _broadcasts(sig, want) and set(sig) != set(want):
        return node
    if _along_rows(sig, want):
        return _as_row(node)
    return _orient(node, sig, want)


def _along_rows(small, big) -> bool:
    """A vector indexed by a matrix's column index (a bias ``b_i`` in ``Z_{s,i}``)."""
    return small[1] == ONE and big[1] != ONE and small[0] == big[1]


def _as_row(node):
    """A column read along the rows: its leaves as :class:`AsRow` where it is elementwise."""
    if isinstance(node, Leaf):
        return Leaf(AsRow(node.tensor))
    if isinstance(node, Elementwise) and not any(isinstance(t, AsRow) for _, t in node.tensors):
        return canonical_elementwise(node.expr, [(s, AsRow(t)) for s, t in node.tensors])
    if isinstance(node, Scale):
        return Scale(node.factor, _as_row(node.arg))
    if isinstance(node, (Hadamard, Add)):
        return type(node)(tuple(_as_row(arg) for arg in node.args))
    return Transpose(node)


def _broadcasts(small, big) -> bool:
    """A per-row scalar (``(s, ONE)``) or a scalar (``(ONE, ONE)``) scales a matrix's rows."""
    return small[1] == ONE and small[0] in (big[0], ONE)


def _transposes(node) -> int:
    """How many transposes a tree has (the reading with fewest is the one printed)."""
    if isinstance(node, Transpose):
        return 1 + _transposes(node.arg)
    if isinstance(node, (Scale,)):
        return _transposes(node.arg)
    if isinstance(node, MatMul):
        return _transposes(node.left) + _transposes(node.right)
    if isinstance(node, (Hadamard, Add)):
        return sum(_transposes(arg) for arg in node.args)
    return 0


def _transposes_a_leaf(node) -> bool:
    """``a^T g`` reads better than ``g^T a``."""
    return isinstance(node, MatMul) and isinstance(node.left, Transpose) \
        and isinstance(node.left.arg, Leaf)


def _single_index_set(expr) -> bool:
    return len({tuple(i.indices) for i in expr.atoms(sp.Indexed)}) == 1


def _ones_length(expr: sp.Sum) -> str:
    upper = expr.limits[0][2] + 1
    return sp.latex(upper)


def _hadamard(left, right):
    items = (left.args if isinstance(left, Hadamard) else (left,)) + (
        right.args if isinstance(right, Hadamard) else (right,))
    # a matrix product first (``(Delta W) ⊙ f'``): code computes it into the result;
    # then plain quantities (``a ⊙ (g - a^T g)``)
    return Hadamard(tuple(sorted(items, key=lambda item: (not isinstance(item, MatMul),
                                                          not isinstance(item, Leaf)))))


# ------------------------------------------------------------- evaluation
def evaluate(node, values: dict) -> np.ndarray:
    """Evaluate a tree with ``values`` mapping Tensor code names to arrays.

    Per-sample vectors are columns ``(n, 1)``; batch quantities are ``(B, n)``.
    """
    if isinstance(node, Leaf):
        return _value(node.tensor, values)
    if isinstance(node, Ones):
        return np.ones((values["__ones__"][node.length], 1))
    if isinstance(node, Transpose):
        return evaluate(node.arg, values).T
    if isinstance(node, MatMul):
        return evaluate(node.left, values) @ evaluate(node.right, values)
    if isinstance(node, Hadamard):
        result = evaluate(node.args[0], values)
        for arg in node.args[1:]:
            result = result * evaluate(arg, values)
        return result
    if isinstance(node, Add):
        return sum(evaluate(arg, values) for arg in node.args)
    if isinstance(node, Scale):
        return float(node.factor.subs(values["__scalars__"])) * evaluate(node.arg, values)
    if isinstance(node, Elementwise):
        symbols = [s for s, _ in node.tensors]
        expr = node.expr.subs(values.get("__scalars__", {})) if node.expr.free_symbols - set(
            symbols) else node.expr  # a size such as 1/B inside the expression
        function = numeric_function(tuple(symbols), expr)
        args = [_value(t, values) for _, t in node.tensors]
        shape = np.broadcast_shapes(*[arg.shape for arg in args]) if args else (1, 1)
        return np.broadcast_to(np.asarray(function(*args), dtype=float), shape)
    raise TypeError(f"cannot evaluate {type(node).__name__}")


def _value(tensor, values: dict) -> np.ndarray:
    if isinstance(tensor, AsRow):
        return np.reshape(values[code_of(tensor.tensor)], (1, -1))
    return values[code_of(tensor)]
