"""Deciding one claim: is a gradient formula right, and where does it go wrong?

Contract: :func:`verify` takes one claim in the LaTeX of :mod:`symbp.claims`
(``lhs = rhs``, per sample, column vectors, CONVENTIONS §1) and, for claims
about a network, the network (a :class:`~symbp.spec.Network` or a spec
path). It returns a :class:`Verdict` whose ``verdict`` is ``correct``,
``incorrect`` or ``cannot parse``; it never raises for a malformed claim.
It raises :class:`~symbp.errors.SymbpError` only for bad usage (a network
claim without a network, a generic-layer claim on a network without the
layers it speaks about) and for a network whose claims are not mapped yet
(a layer that is not dense, weight decay: :mod:`symbp.verify.truth`).

The truth always comes from the graph engine (its self-checked gradients,
read in the notation of claims by :mod:`symbp.verify.truth`), never from
formulas written here. A claim is decided in this order:

1. **Layers.** A claim about the generic layer ``l`` must hold at every
   layer it applies to: every hidden layer for ``\\delta^{(l)}``,
   ``\\partial L/\\partial z^{(l)}`` and ``\\partial L/\\partial a^{(l)}``; every
   layer for ``\\partial L/\\partial W^{(l)}`` and ``\\partial L/\\partial b^{(l)}``.
2. **Shapes.** The right-hand side is evaluated on column vectors with the
   spec's widths and with two sets of pairwise different widths, so that a
   missing transpose or a bias of the wrong layer cannot hide behind square
   matrices. The first mismatch is reported in the claim's own terms, e.g.
   ``b^{(l+1)} has n_{l+1} rows, (W^{(l+1)})^T \\delta^{(l+1)} has n_l``.
3. **Symbols.** Both sides are read entrywise as SymPy expressions (matrix
   products become sums); where SymPy simplifies the difference to zero the
   claim is symbolically equal, otherwise the simplified difference is what
   the verdict shows.
4. **Numbers.** float64 values at three random points for each of the three
   width sets (nine points per layer). A claim is called correct only when
   every point of every layer agrees; never on a single point.

For an incorrect claim the verdict names the likely mistake by testing the
usual variants of the claim against the truth (a bias term in the
recursion, a missing or extra transpose, a wrong layer index, a flipped
sign, a factor 2 or ``1/B``, the derivative of the wrong activation,
``f'`` taken at ``a`` instead of ``z``, a missing or extra factor) and
reports which variant matches, plus a concrete counterexample and the
correct formula in LaTeX.

Without a network a claim between scalar expressions of one variable, such
as ``\\frac{d}{dz}\\sigma(z) = \\sigma(z)(1-\\sigma(z))``, is checked on its
own (symbolically and at several points).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import sympy as sp
from sympy.printing.latex import LatexPrinter

from symbp import claims as C
from symbp import forms
from symbp.errors import SymbpError
from symbp.files import read_user_text
from symbp.verify import truth as T
from symbp.verify.claim_files import read_claims
from symbp.verify.verdict import Verdict, unparsed

SEEDS = (11, 23, 37)
RTOL = 1e-7
PER_SAMPLE_B = 7  # the value of B where a per-sample claim mentions it
BATCH_ROWS = 4
SCALAR_POINTS = (0.5, -1.3, 2.1, -0.4, 1.7, -2.6, 0.9, 3.1)
I, J = sp.Symbol("i", integer=True), sp.Symbol("j", integer=True)  # noqa: E741 (entry indices)
B_SYMBOL = sp.Symbol("B", integer=True, positive=True)
SYMBOLIC_NODES, SYMBOLIC_POWER, SYMBOLIC_NESTING = 80, 12, 3  # beyond: numbers only
MAX_VARIANTS = 100  # usual mistakes tried per claim (a claim of the tests has at most ~20)
_MATH_FUNCTIONS = {"exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "cosh": sp.cosh,
                   "sinh": sp.sinh, "sech": sp.sech, "sin": sp.sin, "cos": sp.cos}
_ACTIVATION_LATEX = {"sigmoid": r"\sigma", "tanh": r"\tanh"}


# ----------------------------------------------------------------- entry points
def verify(claim: str, network=None) -> Verdict:
    """Decide one claim; ``network`` is a Network, a spec path, or None for scalar claims."""
    network = _as_network(network)
    try:
        parsed = C.parse_claim(claim)
    except C.ClaimParseError as error:
        return unparsed(claim if isinstance(claim, str) else repr(claim), error)
    try:
        target = _target_of(parsed.lhs)
        if target is None:
            return _verify_scalar(parsed, network)
        if network is None:
            raise SymbpError(
                f"the claim is about {parsed.source(parsed.lhs)}, a quantity of a network: "
                "give the network spec (symbp verify SPEC --claim ...)")
        return _NetworkCheck(parsed, target, _Context.of(network)).run()
    except C.ClaimParseError as error:
        return unparsed(claim, error)


def verify_many(claims, network=None) -> list[Verdict]:
    """Verify ``(line, claim)`` pairs (as :func:`read_claims` returns them)."""
    network = _as_network(network)
    verdicts = []
    for line, text in claims:
        verdict = verify(text, network)
        verdict.line = line
        verdicts.append(verdict)
    return verdicts


def verify_file(path, network=None) -> list[Verdict]:
    """Verify every claim of a ``.tex`` or text file (see :func:`read_claims`)."""
    text = read_user_text(path)
    try:
        claims = read_claims(text)
    except SymbpError as error:
        raise SymbpError(f"{path}: {error}") from None
    if not claims:
        raise SymbpError(f"{path}: no claims found (one claim per line, or align rows)")
    return verify_many(claims, network)


def _as_network(network):
    if network is None or hasattr(network, "depth"):
        return network
    if isinstance(network, (str, Path)):
        from symbp.spec import load_spec

        return load_spec(network)
    raise SymbpError(f"network: expected a Network or a spec path, got {type(network).__name__}")


# ---------------------------------------------------------------- the target
@dataclass(frozen=True)
class _Target:
    """The quantity on the left: delta, dW, db or da at ``layer``."""

    kind: str
    layer: C.LayerRef
    batch: bool
    node: C.Node

    def latex(self, l_value=None, depth=None) -> str:
        if self.kind == "delta":
            leaf = C.Leaf("delta", self.layer, self.batch)
            return C.leaf_latex(leaf, l_value, depth)
        letter = {"dW": "W", "db": "b", "da": "a"}[self.kind]
        loss = "L" if self.batch else r"\ell"
        target = C.leaf_latex(C.Leaf(letter, self.layer), l_value, depth)
        return rf"\frac{{\partial {loss}}}{{\partial {target}}}"


def _target_of(lhs: C.Node) -> _Target | None:
    if isinstance(lhs, C.Leaf) and lhs.name == "delta" and lhs.layer is not None:
        return _Target("delta", lhs.layer, lhs.batch, lhs)
    if isinstance(lhs, C.Grad):
        kind = {"W": "dW", "b": "db", "z": "delta", "a": "da"}[lhs.target.name]
        return _Target(kind, lhs.target.layer, False, lhs)
    return None


# ------------------------------------------------------------- the network
class _Context:
    """A network with its derivation, widths and random instances (cached)."""

    _cache: dict = {}

    @classmethod
    def of(cls, network) -> "_Context":
        key = repr(sorted(network.to_dict().items(), key=lambda kv: kv[0]))
        if key not in cls._cache:
            cls._cache[key] = cls(network, T.Truth.of(network))
        return cls._cache[key]

    def __init__(self, network, truth: T.Truth):
        self.network = network
        self.truth = truth
        self.depth = network.depth
        depth = self.depth
        self.width_sets = [("the spec's widths", list(network.widths)),
                           ("unequal widths", list(range(2, depth + 3))),
                           ("unequal widths", list(range(depth + 2, 1, -1)))]
        self._instances = {}
        self._trees = {}

    def activation(self, layer: int):
        return self.network.activation_of(layer)

    def instance(self, set_index: int, seed: int, batch: bool) -> "_Instance":
        key = (set_index, seed, batch)
        if key not in self._instances:
            label, widths = self.width_sets[set_index]
            self._instances[key] = _Instance(self, label, widths, seed, batch)
        return self._instances[key]

    def instances(self, batch: bool, quick: bool = False) -> list:
        """Smallest widths first, so that the first failing point is a readable one."""
        order = (1, 2, 0)
        seeds = SEEDS[:1] if quick else SEEDS
        return [self.instance(s, seed, batch) for s in order for seed in seeds]

    def truth_tree(self, kind: str, layer: int, batch: bool):
        """The engine's matrix tree for ``kind`` at a concrete layer."""
        key = (kind, layer, batch)
        if key not in self._trees:
            self._trees[key] = self._make_tree(kind, layer, batch)
        return self._trees[key]

    def _make_tree(self, kind, layer, batch):
        _no_batch_da(kind, batch)
        try:
            return self.truth.tree(kind, layer, batch)
        except T.NotMapped as error:
            raise SymbpError(f"symbp verify cannot read the derived {kind} of layer {layer} "
                             f"in the notation of claims: {error}") from None

    def general_tree(self, target: _Target, layer: int):
        """The engine's formula at ``layer`` for the target's own layer expression
        (``l``, ``l+1``, ``L``)."""
        ref = target.layer
        base = (T.LAYER if ref.var == "l" else T.OUTPUT) + ref.offset
        try:
            return self.truth.general_tree(target.kind, layer, target.batch, base)
        except T.NotMapped:
            return self.truth_tree(target.kind, layer, target.batch)


def _no_batch_da(kind: str, batch: bool) -> None:
    if batch and kind == "da":
        raise C.ClaimParseError("the batch form covers \\Delta^{(l)}, dL/dW and dL/db only", 1)


class _Instance:
    """One random network instance: parameters, the forward pass and the truth (the
    engine's gradients evaluated there)."""

    def __init__(self, ctx: _Context, label: str, widths: list, seed: int, batch: bool):
        self.ctx, self.label, self.widths, self.seed, self.batch = ctx, label, widths, seed, batch
        rows = BATCH_ROWS if batch else 1
        self.values = ctx.truth.instance(widths, seed, rows)
        self.B = rows if batch else PER_SAMPLE_B

    def truth(self, kind: str, layer: int) -> np.ndarray:
        _no_batch_da(kind, self.batch)
        return self.values["truth", kind, layer]

    def describe(self) -> str:
        widths = ", ".join(str(w) for w in self.widths)
        return f"{self.label} n_0..n_{len(self.widths) - 1} = {widths}"


# ------------------------------------------------------------ evaluation
@dataclass(frozen=True)
class Dim:
    """A dimension: its ``value`` in this instance, its ``label`` in the claim's terms."""

    value: int
    label: str
    key: str  # 'n3', 'B' or '1' (a structural one)

    @property
    def one(self) -> bool:
        return self.key == "1"


ONE = Dim(1, "1", "1")


@dataclass
class Val:
    array: np.ndarray
    rows: Dim
    cols: Dim
    text: str
    scalar: bool = False
    ones: str | None = None  # 'col' or 'row' for \mathbf{1}
    entry: sp.Expr | None = None

    @property
    def shape_text(self) -> str:
        if self.scalar:
            return "a scalar"
        return f"{self.rows.label} \\times {self.cols.label}"


def _count(dim: Dim, noun: str) -> str:
    return f"{dim.label} {noun}" + ("" if dim.one else "s")


class _ShapeError(Exception):
    pass


class _LayerError(Exception):
    pass


class _NoSymbolic(Exception):
    pass


def _dim(ref: C.LayerRef, layer: int, widths) -> Dim:
    return Dim(widths[layer], ref.width(), f"n{layer}")


def _limit(key: str) -> sp.Expr:
    if key == "B":
        return B_SYMBOL
    return sp.Symbol(f"n_{key[1:]}", integer=True, positive=True)


def _dummy_level(*exprs) -> int:
    level = 0
    for expr in exprs:
        if expr is None:
            continue
        for symbol in expr.atoms(sp.Symbol):
            if symbol.name.startswith("k_") and symbol.name[2:].isdigit():
                level = max(level, int(symbol.name[2:]))
    return level + 1


def _product_entry(left, right, inner: Dim, registry: dict | None, latex: str | None):
    """Entry ``(i, j)`` of a matrix product from the entries of its factors."""
    if left is None or right is None:
        return None
    if inner.one:
        return left.xreplace({J: sp.Integer(0)}) * right.xreplace({I: sp.Integer(0)})
    k = sp.Symbol(f"k_{_dummy_level(left, right)}", integer=True)
    total = _sum(left.xreplace({J: k}) * right.xreplace({I: k}), k, _limit(inner.key))
    if registry is not None and latex is not None and isinstance(total, sp.Sum):
        registry.setdefault(total, latex)  # only a bare sum is exactly the printed product
    return total


def _sum(summand: sp.Expr, k: sp.Symbol, length: sp.Expr) -> sp.Expr:
    """``sum_k summand`` in a canonical form: over each term, constants pulled out."""
    terms = []
    for term in sp.Add.make_args(sp.expand(summand)):
        constant = sp.Mul(*[f for f in sp.Mul.make_args(term) if not f.has(k)])
        varying = sp.Mul(*[f for f in sp.Mul.make_args(term) if f.has(k)])
        terms.append(constant * (length if varying == 1 else sp.Sum(varying, (k, 0, length - 1))))
    return sp.Add(*terms)


def _tensor_entry(code: str, rows: Dim, cols: Dim, matrix: bool) -> sp.Expr:
    base = sp.IndexedBase(sp.Symbol(code))
    if matrix:
        return base[I, J]
    return base[I] if cols.one else base[J]


class _Eval:
    """Evaluates a claim's AST at one instance and one binding of ``l``: values, shapes, entries."""

    def __init__(self, check: "_NetworkCheck", inst: _Instance, l_value: int | None,
                 symbolic: bool = False):
        self.check, self.inst, self.l_value = check, inst, l_value
        self.ctx, self.claim = check.ctx, check.claim
        self.symbolic = symbolic
        self.depth = self.ctx.depth

    def text(self, node) -> str:
        return self.claim.source(node)

    def run(self, node) -> Val:
        with np.errstate(all="ignore"):
            return getattr(self, "e_" + type(node).__name__)(node)

    # ----- leaves
    def layer_of(self, node, ref: C.LayerRef, low: int) -> int:
        try:
            layer = ref.resolve(self.l_value, self.depth)
        except ValueError:
            raise C.ClaimParseError(
                "the right-hand side uses the layer l but the left-hand side names a fixed "
                "layer", node.span[0] + 1, text=self.claim.text) from None
        if not low <= layer <= self.depth:
            at = f" at l = {self.l_value}" if ref.var == "l" else ""
            raise _LayerError(f"{self.text(node)} is layer {layer}{at}, which does not exist "
                              f"(the network has layers 1..{self.depth})")
        return layer

    def e_Num(self, node):
        try:
            value = float(node.value)
        except OverflowError:
            value = float("inf")
        entry = sp.Rational(node.value.numerator, node.value.denominator)
        return Val(np.array([[value]]), ONE, ONE, self.text(node), scalar=True, entry=entry)

    def e_Ones(self, node):
        return Val(np.ones((1, 1)), ONE, ONE, self.text(node), scalar=True, ones="col",
                   entry=sp.Integer(1))

    def e_Leaf(self, node):
        name = node.name
        if name == "B":
            return Val(np.array([[float(self.inst.B)]]), ONE, ONE, "B", scalar=True,
                       entry=B_SYMBOL)
        if node.batch != self.inst.batch and name != "W" and name != "b":
            kind = "batch (capital)" if node.batch else "per-sample (lower-case)"
            raise C.ClaimParseError(
                f"{self.text(node)} is a {kind} quantity, but the claim is "
                f"{'a batch' if self.inst.batch else 'a per-sample'} formula",
                node.span[0] + 1, text=self.claim.text)
        widths = self.inst.widths
        if name in ("x", "y"):
            layer = 0 if name == "x" else self.depth
            ref = C.LayerRef(None, 0) if name == "x" else C.LayerRef("L", 0)
            code = "a0" if name == "x" else "Y"
        else:
            if node.layer is None:
                letter = C.leaf_latex(node)
                raise C.ClaimParseError(f"{letter} needs a layer index, e.g. {letter}^{{(l)}}",
                                        node.span[1] + 1, ["'^{(l)}'"], self.claim.text)
            ref = node.layer
            layer = self.layer_of(node, ref, 0 if name == "a" else 1)
            code = f"{name}{layer}"
        array = self.inst.values[code]
        if name == "W":
            rows, cols = _dim(ref, layer, widths), _dim(ref.shifted(-1), layer - 1, widths)
        elif name == "b" or not self.inst.batch:
            rows, cols = _dim(ref, layer, widths), ONE
        else:
            rows, cols = Dim(self.inst.B, "B", "B"), _dim(ref, layer, widths)
        entry = _tensor_entry(code, rows, cols, name == "W" or (
            self.inst.batch and name != "b")) if self.symbolic else None
        return Val(array, rows, cols, self.text(node), entry=entry)

    def e_Grad(self, node):
        target = node.target
        kind = {"W": "dW", "b": "db", "z": "delta", "a": "da"}[target.name]
        layer = self.layer_of(target, target.layer, 0 if kind == "da" else 1)
        array = self.inst.truth(kind, layer)
        rows, cols = _target_dims(kind, target.layer, layer, self.inst)
        entry = None
        if self.symbolic:
            tree = self.ctx.truth_tree(kind, layer, self.inst.batch)
            entry = _forms_entry(tree, self.ctx, self.inst.batch, self.check.sums)[0]
        return Val(array, rows, cols, self.text(node), entry=entry)

    # ----- arithmetic
    def e_Neg(self, node):
        value = self.run(node.arg)
        return self._like(value, -value.array, self.text(node),
                          None if value.entry is None else -value.entry)

    def _like(self, value: Val, array, text, entry) -> Val:
        return Val(array, value.rows, value.cols, text, value.scalar, value.ones, entry)

    def _elementwise(self, node, left: Val, right: Val, verb: str, combine, symbolic):
        text = self.text(node)
        entry = None
        if self.symbolic and left.entry is not None and right.entry is not None:
            entry = symbolic(left.entry, right.entry)
        if left.scalar and right.scalar:
            return Val(combine(left.array, right.array), ONE, ONE, text, scalar=True,
                       entry=entry)
        if left.scalar or right.scalar:
            big = right if left.scalar else left
            return Val(combine(left.array, right.array), big.rows, big.cols, text, entry=entry)
        if left.rows.value != right.rows.value:
            raise _ShapeError(f"{right.text} has {_count(right.rows, 'row')}, {left.text} has "
                              f"{left.rows.label}, so they cannot be {verb}")
        if left.cols.value != right.cols.value:
            raise _ShapeError(f"{right.text} has {_count(right.cols, 'column')}, {left.text} "
                              f"has {left.cols.label}, so they cannot be {verb}")
        return Val(combine(left.array, right.array), left.rows, left.cols, text, entry=entry)

    def e_Add(self, node):
        return self._elementwise(node, self.run(node.left), self.run(node.right), "added",
                                 np.add, lambda u, v: u + v)

    def e_Sub(self, node):
        return self._elementwise(node, self.run(node.left), self.run(node.right), "subtracted",
                                 np.subtract, lambda u, v: u - v)

    def e_Hadamard(self, node):
        return self._elementwise(node, self.run(node.left), self.run(node.right),
                                 "multiplied elementwise", np.multiply, lambda u, v: u * v)

    def e_Div(self, node):
        num, den = self.run(node.num), self.run(node.den)
        if not den.scalar and num.scalar:
            raise _ShapeError(f"{self.text(node)} divides by the non-scalar {den.text}")
        return self._elementwise(node, num, den, "divided elementwise", np.divide,
                                 lambda u, v: u / v)

    def e_MatMul(self, node):
        left, right = self.run(node.left), self.run(node.right)
        text = self.text(node)
        if right.ones == "col" and not left.scalar:  # M 1: a column of ones that fits M
            right = Val(np.ones((left.array.shape[1], 1)), left.cols, ONE, right.text,
                        entry=sp.Integer(1))
        if left.ones == "row" and not right.scalar:  # 1^T M
            left = Val(np.ones((1, right.array.shape[0])), ONE, right.rows, left.text,
                       entry=sp.Integer(1))
        if left.ones and right.ones:  # 1 1^T, 1^T 1: no operand says how long the ones are
            raise C.ClaimParseError(f"{text}: the length of \\mathbf{{1}} cannot be told here; "
                                    "write it next to the vector or matrix it sums",
                                    node.span[0] + 1, text=self.claim.text)
        if left.scalar or right.scalar:
            return self._elementwise(node, left, right, "multiplied", np.multiply,
                                     lambda u, v: u * v)
        if left.cols.value != right.rows.value:
            raise _ShapeError(f"{left.text} has {_count(left.cols, 'column')}, {right.text} has "
                              f"{_count(right.rows, 'row')}, so they cannot be multiplied")
        entry = None
        if self.symbolic:
            latex = C.to_latex(node, self.l_value, self.depth)
            entry = _product_entry(left.entry, right.entry, left.cols, self.check.sums, latex)
        scalar = left.rows.one and right.cols.one
        return Val(left.array @ right.array, left.rows, right.cols, text, scalar=scalar,
                   entry=entry)

    def e_Transpose(self, node):
        value = self.run(node.arg)
        entry = None if value.entry is None else value.entry.xreplace({I: J, J: I})
        ones = {"col": "row", "row": "col"}.get(value.ones)
        return Val(value.array.T, value.cols, value.rows, self.text(node), value.scalar, ones,
                   entry)

    def e_Power(self, node):
        value = self.run(node.arg)
        entry = None if value.entry is None else value.entry ** node.exponent
        return self._like(value, np.power(value.array, float(node.exponent)), self.text(node),
                          entry)

    def e_Deriv(self, node):
        raise C.ClaimParseError("d/dz belongs in a scalar claim; in a claim about a network "
                                "write f'(z^{(l)})", node.span[0] + 1, text=self.claim.text)

    # ----- functions
    def e_Apply(self, node):
        func = node.func
        arg = self.run(node.arg)
        text = self.text(node)
        if func.name == "diag":
            if not arg.cols.one or arg.scalar:
                raise _ShapeError(f"{text}: diag takes a column vector, {arg.text} is "
                                  f"{arg.shape_text}")
            return Val(np.diagflat(arg.array), arg.rows, arg.rows, text)
        activation, layer = self.check.function_of(node, self.l_value, self.inst)
        if activation is not None and activation.is_softmax:
            return self._softmax(node, func, arg, text)
        forward = activation.expr if activation is not None else _MATH_FUNCTIONS[func.name](
            _x())
        expr = _derivative(func.name if activation is None else activation.name, forward,
                           func.order)
        if func.power is not None:
            expr = expr ** func.power
        array = np.asarray(_numeric((_x(),), expr)(arg.array), dtype=float)
        array = array * np.ones_like(arg.array)
        entry = None
        if self.symbolic and arg.entry is not None:
            entry = self._function_entry(node, func, forward, expr, arg)
        return Val(array, arg.rows, arg.cols, text, arg.scalar, None, entry)

    def _function_entry(self, node, func, forward, expr, arg):
        """Entry of f(arg); f^{(m)}(z^{(m)}) is read as a^{(m)} (and f' in terms of a)."""
        from symbp.engine.activation import activation_derivative

        own = self.check.own_layer(node.arg, forward, self.l_value)
        if own is None or func.order > 1:
            return expr.subs(_x(), arg.entry)
        a_entry = arg.entry.replace(
            lambda e: isinstance(e, sp.Indexed) and e.base.label == sp.Symbol(f"z{own}"),
            lambda e: sp.IndexedBase(sp.Symbol(f"a{own}"))[e.indices])
        if func.order == 0:
            value = a_entry
        else:
            derivative = activation_derivative(self.ctx.activation(own).name, forward)
            from symbp.registry import A

            value = derivative.best.subs({A: a_entry, _x(): arg.entry})
        return value ** func.power if func.power is not None else value

    def _softmax(self, node, func, arg, text):
        if arg.scalar or (not self.inst.batch and not arg.cols.one):
            raise _ShapeError(f"softmax takes a vector, {arg.text} is {arg.shape_text}")
        s = T.softmax(arg.array, axis=1 if self.inst.batch else 0)
        if func.order == 0:
            entry = None
            own = self.check.own_layer(node.arg, None, self.l_value)
            if self.symbolic and own is not None:
                entry = sp.IndexedBase(sp.Symbol(f"a{own}"))[I]
            if func.power is not None:
                s = s ** func.power
                entry = None if entry is None else entry ** func.power
            return Val(s, arg.rows, arg.cols, text, entry=entry)
        if self.inst.batch or func.order > 1 or func.power is not None:
            raise _ShapeError(f"{text}: the derivative of softmax is a Jacobian matrix per "
                              "sample, not an elementwise factor")
        return Val(T.softmax_jacobian(s), arg.rows, arg.rows, text)


@lru_cache(maxsize=None)
def _numeric(variables: tuple, expr: sp.Expr):
    """A cached float64 NumPy function of ``expr``."""
    from symbp.engine.numeric import MODULES

    return sp.lambdify(variables, expr, modules=MODULES)


def _latex(tree) -> str:
    """The LaTeX of a matrix tree, as symbp prints it."""
    from symbp.printing.matrix import matrix_latex

    return matrix_latex(tree)


@lru_cache(maxsize=None)
def _custom_activation(name: str, text: str):
    from symbp.registry import custom_activation

    return custom_activation(name, text)


def _x():
    from symbp.registry import X

    return X


@lru_cache(maxsize=None)
def _derivative(name: str, forward: sp.Expr, order: int) -> sp.Expr:
    """``f``, ``f'`` (from the engine's :func:`activation_derivative`) or ``f''``."""
    from symbp.engine.activation import activation_derivative

    if order == 0:
        return forward
    first = activation_derivative(name, forward).in_input
    return first if order == 1 else sp.diff(first, _x())


def _target_dims(kind: str, ref: C.LayerRef, layer: int, inst: _Instance):
    widths = inst.widths
    if kind == "dW":
        return _dim(ref, layer, widths), _dim(ref.shifted(-1), layer - 1, widths)
    if inst.batch and kind == "delta":
        return Dim(inst.B, "B", "B"), _dim(ref, layer, widths)
    return _dim(ref, layer, widths), ONE


# --------------------------------------------------- entries of engine trees
def _forms_entry(node, ctx: _Context, batch: bool, registry: dict):
    """``(entry, rows key, cols key)`` of a :mod:`symbp.forms` tree at a concrete layer."""
    if isinstance(node, forms.Leaf):
        tensor = node.tensor
        rows, cols = _tensor_keys(tensor, ctx.depth, batch)
        matrix = tensor.letter == "W" or (batch and tensor.letter != "b")
        return _tensor_entry(tensor.code, Dim(0, "", rows), Dim(0, "", cols), matrix), rows, cols
    if isinstance(node, forms.Ones):
        length = node.length
        key = "B" if length == "B" else (f"n{ctx.depth}" if length == "n_{L}"
                                         else "n" + length.strip("n_{}"))
        return sp.Integer(1), key, "1"
    if isinstance(node, forms.Transpose):
        entry, rows, cols = _forms_entry(node.arg, ctx, batch, registry)
        return entry.xreplace({I: J, J: I}), cols, rows
    if isinstance(node, forms.Scale):
        entry, rows, cols = _forms_entry(node.arg, ctx, batch, registry)
        return node.factor.subs(sp.Symbol("B", integer=True, positive=True), B_SYMBOL) * entry, \
            rows, cols
    if isinstance(node, forms.MatMul):
        left, rows, inner = _forms_entry(node.left, ctx, batch, registry)
        right, _, cols = _forms_entry(node.right, ctx, batch, registry)
        entry = _product_entry(left, right, Dim(0, "", inner), registry, _latex(node))
        return entry, rows, cols
    if isinstance(node, (forms.Hadamard, forms.Add)):
        parts = [_forms_entry(arg, ctx, batch, registry) for arg in node.args]
        shaped = [p for p in parts if not (p[1] == "1" and p[2] == "1")] or parts
        combine = sp.Mul if isinstance(node, forms.Hadamard) else sp.Add
        return combine(*[p[0] for p in parts]), shaped[0][1], shaped[0][2]
    if isinstance(node, forms.Elementwise):
        mapping, shape = {}, ("1", "1")
        for symbol, tensor in node.tensors:
            rows, cols = _tensor_keys(tensor, ctx.depth, batch)
            matrix = batch and tensor.letter != "b"
            mapping[symbol] = _tensor_entry(tensor.code, Dim(0, "", rows), Dim(0, "", cols),
                                            matrix)
            shape = (rows, cols)
        return node.expr.xreplace(mapping), shape[0], shape[1]
    raise _NoSymbolic(type(node).__name__)


def _tensor_keys(tensor, depth: int, batch: bool):
    layer = depth if tensor.letter == "y" else int(tensor.layer)
    if tensor.letter == "W":
        return f"n{layer}", f"n{layer - 1}"
    if batch and tensor.letter != "b":
        return "B", f"n{layer}"
    return f"n{layer}", "1"


# -------------------------------------------------------- simplification
_SLOW_TO_SIMPLIFY = (sp.tanh, sp.cosh, sp.sinh, sp.sech, sp.sin, sp.cos, sp.Piecewise, sp.erf)


def _simplify_difference(expr: sp.Expr, ctx: _Context | None = None):
    """``(is zero, simplified expression)``; Sums are kept opaque while simplifying.

    With ``ctx`` a difference that is not plainly zero is tried once more with
    each ``a^{(m)}`` written as ``f_m(z^{(m)})`` (slower; used to confirm)."""
    expr = sp.expand(expr)
    if expr == 0:
        return True, expr
    sums = {s: sp.Dummy(f"S{n}") for n, s in enumerate(expr.atoms(sp.Sum))}
    opaque = expr.xreplace(sums)
    back = {v: k for k, v in sums.items()}
    candidates = [opaque]
    size = sp.count_ops(opaque)
    if size < 150:
        candidates.append(sp.factor(opaque))
    if size < 40 and not opaque.has(*_SLOW_TO_SIMPLIFY):
        candidates.append(sp.simplify(opaque))
    simplified = min(candidates, key=sp.count_ops)
    if simplified == 0:
        return True, sp.Integer(0)
    if ctx is not None:
        in_z = _in_terms_of_z(opaque, ctx)
        if in_z is not None and sp.count_ops(in_z) < 80 and sp.simplify(in_z) == 0:
            return True, sp.Integer(0)
    return False, simplified.xreplace(back)


def _in_terms_of_z(expr, ctx: _Context):
    """Replace each ``a^{(m)}`` of an elementwise layer by ``f_m(z^{(m)})``."""
    mapping = {}
    for layer in range(1, ctx.depth + 1):
        activation = ctx.activation(layer)
        if not activation.is_softmax:
            mapping[sp.Symbol(f"a{layer}")] = (layer, activation.expr)
    if not mapping:
        return None

    def substitute(e):
        layer, forward = mapping[e.base.label]
        z = sp.IndexedBase(sp.Symbol(f"z{layer}"))[e.indices]
        return forward.subs(_x(), z)

    return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base.label in mapping,
                        substitute)


class _OdotLatex(LatexPrinter):
    """Entrywise expressions of vectors, printed with ``\\odot`` for products of vectors."""

    def __init__(self, names: dict):
        super().__init__({"symbol_names": names})
        self.names = names

    def _print_Mul(self, expr):
        coefficient, factors = expr.as_coeff_mul()
        if len(factors) < 2 or any(f.is_number for f in factors):
            return super()._print_Mul(expr)
        numerator, denominator = sp.fraction(expr)
        if denominator != 1:
            return rf"\frac{{{self._print(numerator)}}}{{{self._print(denominator)}}}"
        parts = [rf"\left({self._print(f)}\right)" if isinstance(f, sp.Add) else self._print(f)
                 for f in factors]
        body = r" \odot ".join(parts)
        if coefficient == 1:
            return body
        if coefficient == -1:
            return "-" + body
        return f"{self._print(coefficient)} {body}"


def _entry_latex(expr: sp.Expr, registry: dict, ctx: _Context, batch: bool) -> str:
    """LaTeX of an entry expression: vector notation, or index notation for matrices."""
    matrix = J in expr.free_symbols
    names, mapping = {}, {}
    for total in expr.atoms(sp.Sum):
        if total in registry and not matrix:
            symbol = sp.Symbol(f"S{len(mapping)}")
            mapping[total] = symbol
            names[symbol] = rf"\left({registry[total]}\right)"
    for item in expr.atoms(sp.Indexed):
        code = str(item.base.label)
        latex = _code_latex(code, batch)
        symbol = sp.Symbol(f"T{len(mapping)}")
        mapping[item] = symbol
        if matrix:
            latex += "_{" + "".join(str(index) for index in item.indices) + "}"
        names[symbol] = latex
    expr = expr.xreplace(mapping)
    names[B_SYMBOL] = "B"
    if matrix:
        return sp.latex(expr, symbol_names=names)
    return _OdotLatex(names).doprint(expr)


def _code_latex(code: str, batch: bool) -> str:
    match = re.fullmatch(r"([A-Za-z]+?)(\d+)", code)
    if code == "Y":
        return forms.Tensor("y", None, batch).latex
    if match is None:
        return code
    return forms.Tensor(match.group(1), int(match.group(2)), batch).latex


# ------------------------------------------------------------ network claims
@dataclass
class _Point:
    inst: _Instance
    l_value: int | None
    layer: int
    claim: np.ndarray | None = None
    truth: np.ndarray | None = None


@dataclass
class _Outcome:
    shape: str | None = None  # a shape or layer problem, with where it happened
    shape_point: _Point | None = None
    failures: list = field(default_factory=list)  # _Point where values differ
    points: list = field(default_factory=list)  # every compared _Point

    @property
    def ok(self) -> bool:
        return self.shape is None and not self.failures


class _NetworkCheck:
    """Decides one network claim (the steps in the module docstring)."""

    def __init__(self, claim: C.Claim, target: _Target, ctx: _Context):
        self.claim, self.target, self.ctx = claim, target, ctx
        self.depth = ctx.depth
        self.sums: dict = {}
        rhs_batch = any(isinstance(n, C.Leaf) and n.batch for side in claim.sides[1:]
                        for _, n in C.walk(side))
        if target.kind in ("dW", "db") and rhs_batch:
            self.target = target = _Target(target.kind, target.layer, True, target.node)
        self.batch = target.batch
        self.bindings = self._bindings()

    # ----- which layers
    def _bindings(self) -> list[tuple[int | None, int]]:
        """``(value of l, concrete layer)`` pairs the claim must hold for."""
        target, depth = self.target, self.depth
        ref = target.layer
        hidden = list(range(1, depth))
        if target.kind in ("delta", "da") and ref.var == "l":
            layers = hidden
        else:
            layers = list(range(1, depth + 1))
        if ref.var != "l":
            layer = ref.resolve(None, depth)
            low = 0 if target.kind == "da" else 1
            if not low <= layer <= depth:
                raise C.ClaimParseError(
                    f"the network has layers 1..{depth}; {self.claim.source(target.node)} "
                    f"is layer {layer}", target.node.span[0] + 1, text=self.claim.text)
            return [(None, layer)]
        pairs = [(layer - ref.offset, layer) for layer in layers]
        if not pairs:
            raise SymbpError(f"the network has no hidden layer, so the claim about "
                             f"{self.claim.source(target.node)} for a generic layer l "
                             "applies to no layer")
        return pairs

    def function_of(self, node: C.Apply, l_value, inst):
        """``(activation or None, layer)`` for a function application."""
        func = node.func
        name = func.name
        if func.name == "generic":
            layer = self._function_layer(node, l_value)
            return self.ctx.activation(layer), layer
        from symbp.registry import BUILTIN_ACTIVATIONS

        network = self.ctx.network
        if name in BUILTIN_ACTIVATIONS:
            activation = BUILTIN_ACTIVATIONS[name]
        elif name in network.activations:
            activation = _custom_activation(name, network.activations[name])
        elif name in _MATH_FUNCTIONS:
            return None, None
        else:
            known = sorted(set(BUILTIN_ACTIVATIONS) | set(network.activations)
                           | set(_MATH_FUNCTIONS))
            raise C.ClaimParseError(f"unknown function '{name}'", node.span[0] + 1,
                                    [f"\\operatorname{{{k}}}" for k in known], self.claim.text)
        layer = None
        if activation.is_softmax:
            layer = self._leaf_layer(node.arg, l_value)
        return activation, layer

    def _function_layer(self, node: C.Apply, l_value) -> int:
        func = node.func
        if func.layer is not None:
            try:
                layer = func.layer.resolve(l_value, self.depth)
            except ValueError:
                raise C.ClaimParseError("f_l uses the layer l but the left-hand side names "
                                        "a fixed layer", node.span[0] + 1,
                                        text=self.claim.text) from None
        else:
            layer = self._leaf_layer(node.arg, l_value)
            if layer is None:
                layer = self.target.layer.resolve(l_value, self.depth)
        if not 1 <= layer <= self.depth:
            raise _LayerError(f"{self.claim.source(node)} is the activation of layer {layer}, "
                              f"which does not exist (the network has layers 1..{self.depth})")
        return layer

    def _leaf_layer(self, node, l_value) -> int | None:
        """The layer an argument lives in: its z, W, b (or else a) leaves' common layer."""
        found = {"zWb": set(), "a": set()}
        for _, item in C.walk(node):
            if isinstance(item, C.Leaf) and item.layer is not None:
                try:
                    layer = item.layer.resolve(l_value, self.depth)
                except ValueError:
                    continue
                found["a" if item.name == "a" else "zWb"].add(layer)
        for group in ("zWb", "a"):
            if len(found[group]) == 1:
                return found[group].pop()
            if len(found[group]) > 1:
                raise C.ClaimParseError(
                    "cannot tell which layer's activation this is; write f_l'",
                    node.span[0] + 1, text=self.claim.text)
        return None

    def own_layer(self, arg: C.Node, forward, l_value) -> int | None:
        """The layer m when ``arg`` is ``z^{(m)}`` and ``forward`` is layer m's activation."""
        if not (isinstance(arg, C.Leaf) and arg.name == "z" and arg.layer is not None):
            return None
        try:
            layer = arg.layer.resolve(l_value, self.depth)
        except ValueError:
            return None
        if not 1 <= layer <= self.depth:
            return None
        activation = self.ctx.activation(layer)
        if forward is None:
            return layer if activation.is_softmax else None
        return layer if activation.expr is not None and activation.expr == forward else None

    # ----- checking
    def evaluate(self, rhs, quick=False, stop_early=False) -> _Outcome:
        """Shapes first (spec widths, then unequal widths), then values at every point."""
        outcome = _Outcome()
        instances = self.ctx.instances(self.batch, quick)
        shape_order = sorted(instances, key=lambda inst: inst.label != "the spec's widths")
        results = {}
        for inst in shape_order:
            for l_value, layer in self.bindings:
                point = _Point(inst, l_value, layer)
                try:
                    value = _Eval(self, inst, l_value).run(rhs)
                    self._final_shape(value, point)
                except (_ShapeError, _LayerError) as error:
                    outcome.shape = self._where(str(error), point)
                    outcome.shape_point = point
                    return outcome
                point.claim = value.array
                point.truth = inst.truth(self.target.kind, layer)
                results[(id(inst), layer)] = point
        for inst in instances:
            for _, layer in self.bindings:
                point = results[(id(inst), layer)]
                outcome.points.append(point)
                if not _close(point.claim, point.truth):
                    outcome.failures.append(point)
                    if stop_early:
                        return outcome
        return outcome

    def _final_shape(self, value: Val, point: _Point) -> None:
        rows, cols = _target_dims(self.target.kind, self.target.layer, point.layer, point.inst)
        lhs = self.target.latex()
        truth_shape = f"{rows.label} \\times {cols.label}"
        if value.scalar and not (rows.one and cols.one):
            raise _ShapeError(f"{lhs} is {truth_shape}, but the right-hand side "
                              f"{value.text} is a scalar")
        if (value.rows.value, value.cols.value) != (rows.value, cols.value):
            raise _ShapeError(f"{lhs} is {truth_shape}, but the right-hand side "
                              f"{value.text} is {value.shape_text}")

    def _where(self, message: str, point: _Point) -> str:
        at = f"layer l = {point.l_value}" if point.l_value is not None else \
            f"layer {point.layer}"
        return f"{message} (at {at}, {point.inst.describe()})"

    def run(self) -> Verdict:
        claim = self.claim
        verdicts = []
        for rhs in claim.sides[1:]:
            verdicts.append(self._run_one(rhs))
        bad = next((v for v in verdicts if not v.ok), None)
        return bad if bad is not None else verdicts[0]

    def _run_one(self, rhs) -> Verdict:
        outcome = self.evaluate(rhs)
        layers = sorted({layer for _, layer in self.bindings})
        lhs_latex = self.target.latex()
        verdict = Verdict("incorrect", self.claim.text, lhs=lhs_latex, layers=layers)
        verdict.correct = f"{lhs_latex} = {self._general_latex()}"
        if outcome.ok:
            verdict.verdict = "correct"
            verdict.evidence = self._evidence(rhs, outcome, layers)
            verdict.summary = verdict.evidence[0]
            return verdict
        point = outcome.shape_point or outcome.failures[0]
        verdict.correct_at_layer = (f"{self.target.latex(point.l_value, self.depth)} = "
                                    f"{self._concrete_latex(point.layer)}")
        if outcome.shape:
            verdict.shape = outcome.shape
            verdict.summary = f"shape mismatch: {outcome.shape}"
        else:
            failing = sorted({p.layer for p in outcome.failures})
            verdict.summary = self._value_summary(outcome, failing, layers)
            verdict.counterexample = self._counterexample(rhs, point)
            verdict.difference = self._difference(rhs, point)
        verdict.mistakes = self._mistakes(rhs, outcome)
        return verdict

    def _value_summary(self, outcome, failing, layers) -> str:
        wrong = ", ".join(str(layer) for layer in failing)
        right = [layer for layer in layers if layer not in failing]
        text = f"the values differ from the truth at layer {wrong}"
        if len(failing) > 1:
            text = f"the values differ from the truth at layers {wrong}"
        if right:
            text += f" (they agree at layer {', '.join(str(r) for r in right)})"
        return text

    def _evidence(self, rhs, outcome, layers) -> list[str]:
        kind = {"delta": "every hidden layer", "da": "every hidden layer",
                "dW": "every layer", "db": "every layer"}[self.target.kind]
        scope = f"layer{'s' if len(layers) > 1 else ''} {', '.join(map(str, layers))}"
        if self.target.layer.var == "l":
            scope += f" ({kind})"
        per_layer = len(outcome.points) // max(len(layers), 1)
        sets = "; ".join(f"{label} {'-'.join(map(str, widths))}"
                         for label, widths in self.ctx.width_sets)
        lines = [f"holds at {scope}: shapes agree and the values agree at {per_layer} random "
                 f"points per layer (float64; {sets})"]
        symbolic = self._symbolic_all(rhs)
        if symbolic:
            lines.append("symbolically equal: SymPy reduces claim - truth to 0 entrywise")
        else:
            lines.append("SymPy could not reduce claim - truth to 0 entrywise; the verdict rests "
                         f"on {len(outcome.points)} numeric points")
        return lines

    def _symbolic_all(self, rhs) -> bool:
        if not _symbolic_ok(rhs):
            return False
        for l_value, layer in self.bindings:
            result = self._symbolic(rhs, l_value, layer, confirm=True)
            if result is None or not result[0]:
                return False
        return True

    def _symbolic(self, rhs, l_value, layer, confirm=False):
        """``(is zero, difference)`` at one layer, or None if SymPy cannot say."""
        inst = self.ctx.instances(self.batch, quick=True)[0]
        try:
            value = _Eval(self, inst, l_value, symbolic=True).run(rhs)
            truth_tree = self.ctx.truth_tree(self.target.kind, layer, self.batch)
            truth = _forms_entry(truth_tree, self.ctx, self.batch, self.sums)[0]
            if value.entry is None:
                return None
            return _simplify_difference(value.entry - truth, self.ctx if confirm else None)
        except (_NoSymbolic, _ShapeError, _LayerError, C.ClaimParseError):
            return None
        except (TypeError, ValueError, AttributeError, RecursionError, ZeroDivisionError,
                NotImplementedError):
            return None

    def _difference(self, rhs, point: _Point) -> str | None:
        if not _symbolic_ok(rhs):
            return None
        result = self._symbolic(rhs, point.l_value, point.layer)
        if result is None or result[0]:
            return None
        try:
            return _entry_latex(result[1], self.sums, self.ctx, self.batch)
        except Exception:  # printing is best effort; the verdict does not depend on it
            return None

    def _general_latex(self) -> str:
        if self.target.layer.var is None:
            return self._concrete_latex(self.target.layer.offset)
        return _latex(self.ctx.general_tree(self.target, self.bindings[0][1]))

    def _concrete_latex(self, layer: int) -> str:
        return _latex(self.ctx.truth_tree(self.target.kind, layer, self.batch))

    def _counterexample(self, rhs, point: _Point) -> dict:
        inst = point.inst
        used = {}
        for _, node in C.walk(rhs):
            if isinstance(node, C.Leaf) and node.name not in ("B",):
                try:
                    value = _Eval(self, inst, point.l_value).run(node)
                except Exception:
                    continue
                name = C.leaf_latex(node, point.l_value, self.depth)
                if value.array.size <= 40:
                    used.setdefault(name, value.array.tolist())
        where = (f"layer l = {point.l_value}" if point.l_value is not None
                 else f"layer {point.layer}")
        where += f", {inst.describe()}, random seed {inst.seed}"
        return {"layer": point.layer, "where": where, "widths": inst.widths,
                "point": used, "claim": np.asarray(point.claim).tolist(),
                "truth": np.asarray(point.truth).tolist()}

    # ----- the usual mistakes
    def _mistakes(self, rhs, outcome: _Outcome) -> list[str]:
        found = []
        ratio = self._ratio(outcome)
        if ratio is not None:
            found.append(ratio)
        for description, variant in itertools.islice(_variants(rhs, self), MAX_VARIANTS):
            if description in found:
                continue
            try:
                result = self.evaluate(variant, quick=True, stop_early=True)
            except (C.ClaimParseError, SymbpError):
                continue
            if result.ok:
                found.append(description)
            if len(found) >= 3:
                break
        return found

    def _ratio(self, outcome: _Outcome) -> str | None:
        """``claim = c * truth`` with one constant c at every point: a sign or a factor."""
        if outcome.shape or not outcome.points:
            return None
        ratios = []
        for point in outcome.points:
            truth, claim = np.ravel(point.truth), np.ravel(point.claim)
            norm = float(truth @ truth)
            if norm < 1e-20 or not np.all(np.isfinite(claim)):
                return None
            c = float(claim @ truth) / norm
            if not np.allclose(claim, c * truth, rtol=1e-6, atol=1e-9 * np.sqrt(norm)):
                return None
            ratios.append(c)
        c = ratios[0]
        if not np.allclose(ratios, c, rtol=1e-6):
            return None
        B = outcome.points[0].inst.B
        known = {-1.0: "sign flipped: the claim is -1 times the truth",
                 2.0: "a factor 2 too many (e.g. from differentiating (a - y)^2 without the "
                      "1/2 of the mse loss)",
                 0.5: "a factor 2 missing: the claim is 1/2 times the truth",
                 -2.0: "sign flipped and a factor 2 too many",
                 -0.5: "sign flipped and a factor 2 missing"}
        for value, text in known.items():
            if abs(c - value) < 1e-6:
                return text
        if abs(c - 1.0 / B) < 1e-9:
            return ("an extra 1/B: the per-sample gradient has no 1/B" if not self.batch
                    else "1/B applied twice")
        if abs(c - B) < 1e-6 * B:
            return "the 1/B of the batch mean is missing (L is the mean over the B samples)"
        return f"the claim is {sp.nsimplify(c, tolerance=1e-6, rational=True)} times the truth"


def _close(claim, truth) -> bool:
    claim, truth = np.asarray(claim, dtype=float), np.asarray(truth, dtype=float)
    if claim.shape != truth.shape or not np.all(np.isfinite(claim)):
        return False
    scale = max(float(np.max(np.abs(truth))) if truth.size else 0.0, 1e-12)
    return bool(np.allclose(claim, truth, rtol=RTOL, atol=RTOL * scale))


def _symbolic_ok(node) -> bool:
    """Is SymPy worth trying on this side of a claim? Its time grows fast with nested
    powers, with constants inside functions (its polynomial algorithms read ``e^{999}``
    and ``\\exp(999 z)`` as the 999th power of ``e`` or ``e^z``) and with nested functions
    (rewriting ``tanh(tanh(...))`` in ``exp`` quadruples the expression per level); a
    larger side is decided on the numbers alone."""
    if sum(1 for _ in C.walk(node)) > SYMBOLIC_NODES:
        return False
    power, nesting = _growth(node)
    return power <= SYMBOLIC_POWER and nesting <= SYMBOLIC_NESTING


def _growth(node) -> tuple[int, int]:
    """``(the degree SymPy's polynomials may see: nested exponents times the constants
    inside functions, depth of nested function applications)``."""
    inner = [_growth(child) for _, child in C.children(node)] or [(1, 0)]
    power, nesting = max(p for p, _ in inner), max(n for _, n in inner)
    if isinstance(node, C.Power):
        power *= abs(node.exponent)
    if isinstance(node, C.Apply):
        power *= (node.func.power or 1) * _scale(node.arg)
        nesting += 1
    return min(power, SYMBOLIC_POWER + 1), nesting


def _scale(node) -> int:
    """How large the constants of ``node`` get as multipliers (``9 \\cdot 9 z`` -> 81,
    ``z/2`` -> 2), capped just above :data:`SYMBOLIC_POWER`."""
    if isinstance(node, C.Num):
        value = max(abs(node.value.numerator), node.value.denominator)
    elif isinstance(node, C.Apply):
        value = 1  # a function's own constants count where it is applied
    else:
        scales = [_scale(child) for _, child in C.children(node)] or [1]
        if isinstance(node, (C.Add, C.Sub)):
            value = max(scales)
        elif isinstance(node, C.Power):
            value = scales[0] ** min(abs(node.exponent), SYMBOLIC_POWER + 1)
        else:
            value = math.prod(scales)
    return min(value, SYMBOLIC_POWER + 1)


# ------------------------------------------------------------ variants
def _variants(rhs, check: _NetworkCheck):
    """``(description, variant)`` for the usual mistakes, most telling first."""
    claim = check.claim
    target = check.target
    nodes = list(C.walk(rhs))
    recursion = target.kind in ("delta", "da")

    for path, node in nodes:  # terms that should not be there
        if isinstance(node, (C.Add, C.Sub)):
            for keep, drop in ((node.left, node.right), (node.right, node.left)):
                if isinstance(node, C.Sub) and keep is node.right:
                    keep = C.Neg(keep, span=keep.span)
                text = claim.source(drop)
                if _is_bias(drop) and recursion:
                    bias = drop.arg if isinstance(drop, C.Neg) else drop
                    m, before = bias.layer.label, bias.layer.shifted(-1).label
                    why = (f"bias term in the recursion: remove {text}. The bias enters "
                           f"z^{{({m})}} = W^{{({m})}} a^{{({before})}} + b^{{({m})}} as a "
                           f"constant, so it drops out of the derivative with respect to "
                           f"a^{{({before})}}")
                else:
                    why = f"an extra term: without {text} the claim is correct"
                yield why, C.replace_at(rhs, path, keep)
    for path, node in nodes:  # transposes
        if isinstance(node, C.Transpose):
            yield (f"an extra transpose: {claim.source(node)} should be "
                   f"{claim.source(node.arg)}", C.replace_at(rhs, path, node.arg))
        elif isinstance(node, C.Leaf) and node.name != "B":
            parent = _parent(rhs, path)
            if node.name == "W" or isinstance(parent, C.MatMul):
                yield (f"missing transpose: {claim.source(node)} should be "
                       f"({claim.source(node)})^T", C.replace_at(rhs, path, C.Transpose(node)))
    if target.kind == "dW":
        yield ("transposed outer product: dL/dW^{(l)} has the shape of W^{(l)} "
               "(n_l x n_{l-1}), so it is \\delta^{(l)} (a^{(l-1)})^T, not its transpose",
               C.Transpose(rhs))
    else:
        yield "the result is transposed", C.Transpose(rhs)
    for path, node in nodes:  # layer indices
        if isinstance(node, C.Leaf) and node.layer is not None:
            for step in (1, -1):
                moved = C.Leaf(node.name, node.layer.shifted(step), node.batch)
                yield (f"wrong layer index: {claim.source(node)} should be "
                       f"{C.leaf_latex(moved)}", C.replace_at(rhs, path, moved))
        if isinstance(node, C.Apply) and node.func.name == "generic" and node.func.layer:
            for step in (1, -1):
                func = C.Func("generic", node.func.order, node.func.power,
                              node.func.layer.shifted(step))
                yield (f"wrong layer index: {node.func.latex} should be {func.latex}",
                       C.replace_at(rhs, path, C.Apply(func, node.arg)))
    for path, node in nodes:  # activation derivatives
        if isinstance(node, C.Apply) and node.func.order >= 1:
            layer_text = _layer_text(node.arg)
            if node.func.name != "generic":
                generic = C.Apply(C.Func("generic", node.func.order, node.func.power), node.arg)
                yield (f"derivative of the wrong activation: {claim.source(node)} is the "
                       f"derivative of {node.func.name}, but "
                       f"{_activations_text(check, node.arg, node.func.name)}; use "
                       f"f_{{{layer_text}}}'", C.replace_at(rhs, path, generic))
            if isinstance(node.arg, C.Leaf) and node.arg.name == "a" and node.arg.layer:
                at_z = C.Apply(node.func, C.Leaf("z", node.arg.layer, node.arg.batch))
                yield (f"f' taken at a^{{({node.arg.layer.label})}} instead of "
                       f"z^{{({node.arg.layer.label})}}", C.replace_at(rhs, path, at_z))
    for path, node in nodes:  # derivatives written out by hand, e.g. a (1 - a)
        if isinstance(node, C.Hadamard) and not isinstance(_parent(rhs, path), C.Hadamard):
            yield from _hand_variants(rhs, path, node, check)
    if target.kind == "delta":  # a missing f'
        ref = target.layer
        generic = C.Apply(C.Func("generic", 1), C.Leaf("z", ref, target.batch))
        yield (f"missing the factor f_{{{ref.label}}}'(z^{{({ref.label})}}): "
               f"\\delta^{{({ref.label})}} = \\partial\\ell/\\partial z^{{({ref.label})}} needs "
               f"the derivative of the activation", C.Hadamard(rhs, generic))
    for path, node in nodes:  # extra factors
        if isinstance(node, C.Hadamard):
            for keep, drop in ((node.left, node.right), (node.right, node.left)):
                extra = f"an extra factor {_factor_text(claim, drop)}"
                if target.kind == "delta" and target.layer.var == "L" and isinstance(
                        drop, C.Apply) and drop.func.order:
                    extra += (f": with {check.ctx.network.loss} and a "
                              f"{check.ctx.network.layers[-1].activation} output, "
                              "\\partial\\ell/\\partial z^{(L)} already includes the "
                              "activation's derivative")
                yield extra, C.replace_at(rhs, path, keep)
    for path, node in nodes:  # operand order
        if isinstance(node, C.MatMul):
            yield (f"the factors of {claim.source(node)} are in the wrong order",
                   C.replace_at(rhs, path, C.MatMul(node.right, node.left)))


def _parent(root, path):
    if not path:
        return None
    node = root
    for name in path[:-1]:
        node = getattr(node, name)
    return node


def _is_bias(node) -> bool:
    if isinstance(node, C.Neg):
        node = node.arg
    return isinstance(node, C.Leaf) and node.name == "b"


def _layer_text(arg) -> str:
    for _, node in C.walk(arg):
        if isinstance(node, C.Leaf) and node.layer is not None:
            return node.layer.label
    return "l"


def _activations_text(check: _NetworkCheck, arg: C.Node, exclude: str | None = None) -> str:
    """'layer 1 is tanh' for the layers whose activation f applied to ``arg`` is."""
    names = {}
    for l_value, _ in check.bindings:
        try:
            activation, layer = check.function_of(
                C.Apply(C.Func("generic", 1), arg, span=arg.span), l_value, None)
        except (C.ClaimParseError, _LayerError):
            continue
        if activation.name != exclude:
            names.setdefault(activation.name, []).append(layer)
    if not names:
        return "that is not this layer's activation"
    parts = [f"layer {layers[0]} is {name}" if len(layers) == 1 else
             f"layers {', '.join(map(str, layers))} are {name}" for name, layers in names.items()]
    return "; ".join(parts)


def _factor_text(claim: C.Claim, node) -> str:
    text = claim.source(node)
    return f"({text})" if isinstance(node, (C.Add, C.Sub, C.Neg)) else text


def _hadamard_factors(node) -> list:
    if isinstance(node, C.Hadamard):
        return _hadamard_factors(node.left) + _hadamard_factors(node.right)
    return [node]


def _hand_ref(node):
    """``(layer, batch)`` when ``node`` is built only from z^{(m)} / a^{(m)} of one layer."""
    refs = set()
    for _, item in C.walk(node):
        if isinstance(item, C.Leaf):
            if item.name not in ("a", "z") or item.layer is None:
                return None
            refs.add((item.layer, item.batch))
        elif isinstance(item, (C.Grad, C.Ones, C.Transpose, C.MatMul, C.Deriv)) or (
                isinstance(item, C.Apply) and (item.func.order or item.func.name in
                                               ("softmax", "diag", "generic"))):
            return None
    return next(iter(refs)) if len(refs) == 1 else None


def _hand_variants(rhs, path, node, check: _NetworkCheck):
    """Replace the factors of an elementwise product that only involve a^{(m)}, z^{(m)}
    by f_m'(z^{(m)}): a derivative written out by hand for the wrong activation."""
    claim = check.claim
    factors = _hadamard_factors(node)
    groups = {}
    for factor in factors:
        found = _hand_ref(factor)
        if found is not None:
            groups.setdefault(found, []).append(factor)
    for (ref, batch), hand in groups.items():
        rest = [f for f in factors if all(f is not h for h in hand)]
        if not rest:
            continue
        generic = C.Apply(C.Func("generic", 1), C.Leaf("z", ref, batch))
        product = rest[0]
        for factor in rest[1:] + [generic]:
            product = C.Hadamard(product, factor)
        text = " \\odot ".join(_factor_text(claim, h) for h in hand)
        which = _which_derivative(hand)
        layers = _activations_text(check, C.Leaf("z", ref, batch), which)
        if which is not None:
            what = f"{text} is the derivative of {which} (written with a = {which}(z))"
        else:
            what = f"{text} is not the derivative of the layer's activation"
        yield (f"derivative of the wrong activation: {what}, but {layers}; use "
               f"f_{{{ref.label}}}'(z^{{({ref.label})}})", C.replace_at(rhs, path, product))


def _which_derivative(hand: list) -> str | None:
    """The built-in activation g for which the product ``hand`` equals g'(z), a = g(z)."""
    from symbp.registry import BUILTIN_ACTIVATIONS

    points = np.array([-1.3, -0.4, 0.5, 1.7])
    for name, activation in BUILTIN_ACTIVATIONS.items():
        if activation.is_softmax or name == "identity":
            continue
        try:
            expr = sp.Mul(*[_hand_sympy(factor, activation.expr) for factor in hand])
            with np.errstate(all="ignore"):
                got = _numeric((_x(),), expr)(points) * np.ones_like(points)
                want = _numeric((_x(),), _derivative(
                    name, activation.expr, 1))(points) * np.ones_like(points)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            continue
        if np.allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=1e-9):
            return name
    return None


def _hand_sympy(node, forward: sp.Expr) -> sp.Expr:
    """A hand-written factor as a function of z, with a = forward(z)."""
    from symbp.registry import BUILTIN_ACTIVATIONS

    x = _x()
    if isinstance(node, C.Leaf):
        return forward if node.name == "a" else x
    if isinstance(node, C.Num):
        return sp.Rational(node.value.numerator, node.value.denominator)
    if isinstance(node, C.Neg):
        return -_hand_sympy(node.arg, forward)
    if isinstance(node, C.Power):
        return _hand_sympy(node.arg, forward) ** node.exponent
    if isinstance(node, C.Apply):
        function = BUILTIN_ACTIVATIONS.get(node.func.name)
        expr = function.expr if function is not None else _MATH_FUNCTIONS[node.func.name](x)
        expr = expr.subs(x, _hand_sympy(node.arg, forward))
        return expr ** node.func.power if node.func.power else expr
    if isinstance(node, C.Div):
        return _hand_sympy(node.num, forward) / _hand_sympy(node.den, forward)
    left, right = _hand_sympy(node.left, forward), _hand_sympy(node.right, forward)
    if isinstance(node, C.Add):
        return left + right
    if isinstance(node, C.Sub):
        return left - right
    return left * right


# ------------------------------------------------------------- scalar claims
def _verify_scalar(claim: C.Claim, network) -> Verdict:
    variable = _scalar_variable(claim)
    symbol = sp.Symbol(variable, real=True)
    converter = _ScalarConverter(claim, symbol, network)
    sides = [converter.convert(side) for side in claim.sides]
    lhs = sides[0]
    symbolic = all(_symbolic_ok(side) for side in claim.sides)
    verdict = None
    for rhs in sides[1:]:
        verdict = _decide_scalar(claim, lhs, rhs, symbol, network, symbolic)
        if not verdict.ok:
            return verdict
    return verdict


def _scalar_variable(claim: C.Claim) -> str:
    names = set()
    for side in claim.sides:
        for _, node in C.walk(side):
            if isinstance(node, C.Deriv):
                names.add(node.var)
            if isinstance(node, C.Leaf) and node.layer is None and node.name in ("z", "x", "a") \
                    and not node.batch:
                names.add(node.name)
    if len(names) > 1:
        raise C.ClaimParseError(f"a scalar claim has one variable, this one uses "
                                f"{', '.join(sorted(names))}", 1, text=claim.text)
    return names.pop() if names else "z"


class _ScalarConverter:
    """AST -> SymPy for claims between scalar expressions of one variable."""

    def __init__(self, claim: C.Claim, symbol: sp.Symbol, network):
        self.claim, self.symbol, self.network = claim, symbol, network

    def fail(self, node, message, expected=()):
        raise C.ClaimParseError(message, node.span[0] + 1, expected, self.claim.text)

    def convert(self, node) -> sp.Expr:
        return getattr(self, "c_" + type(node).__name__)(node)

    def c_Num(self, node):
        return sp.Rational(node.value.numerator, node.value.denominator)

    def c_Ones(self, node):
        return sp.Integer(1)

    def c_Leaf(self, node):
        if node.layer is None and node.name in ("z", "x", "a") and not node.batch:
            return self.symbol
        self.fail(node, "the left-hand side must be \\delta^{(l)}, \\frac{\\partial L}"
                        "{\\partial W^{(l)}}, ...{b, z, a}, or a scalar expression in z",
                  ["\\delta^{(l)}", "\\frac{\\partial L}{\\partial W^{(l)}}",
                   "\\frac{d}{dz}\\sigma(z)"])

    def c_Grad(self, node):
        self.fail(node, "a loss gradient belongs in a claim about a network")

    def c_Neg(self, node):
        return -self.convert(node.arg)

    def c_Add(self, node):
        return self.convert(node.left) + self.convert(node.right)

    def c_Sub(self, node):
        return self.convert(node.left) - self.convert(node.right)

    def c_Hadamard(self, node):
        return self.convert(node.left) * self.convert(node.right)

    c_MatMul = c_Hadamard

    def c_Div(self, node):
        return self.convert(node.num) / self.convert(node.den)

    def c_Transpose(self, node):
        return self.convert(node.arg)

    def c_Power(self, node):
        return self.convert(node.arg) ** node.exponent

    def c_Deriv(self, node):
        if node.var != self.symbol.name:
            self.fail(node, f"differentiates with respect to {node.var}, but the claim's "
                            f"variable is {self.symbol.name}")
        return sp.diff(self.convert(node.arg), self.symbol)

    def c_Apply(self, node):
        func = node.func
        from symbp.registry import BUILTIN_ACTIVATIONS

        if func.name == "generic":
            self.fail(node, "f, g or \\phi name a layer's activation; in a scalar claim write "
                            "the function (\\sigma, \\tanh, \\operatorname{softplus}, ...)",
                      ["\\sigma", "\\tanh", "\\exp", "\\log"])
        activation = BUILTIN_ACTIVATIONS.get(func.name)
        if activation is None and self.network is not None and func.name in \
                self.network.activations:
            activation = _custom_activation(func.name, self.network.activations[func.name])
        if activation is not None and activation.is_softmax or func.name == "diag":
            self.fail(node, f"{func.name} is a vector function; it needs a network claim")
        if activation is not None:
            forward, name = activation.expr, activation.name
        elif func.name in _MATH_FUNCTIONS:
            forward, name = _MATH_FUNCTIONS[func.name](_x()), func.name
        else:
            self.fail(node, f"unknown function '{func.name}'",
                      sorted(set(BUILTIN_ACTIVATIONS) - {"softmax"} | set(_MATH_FUNCTIONS)))
        expr = _derivative(name, forward, func.order)
        if func.power is not None:
            expr = expr ** func.power
        return expr.subs(_x(), self.convert(node.arg))


def _decide_scalar(claim, lhs, rhs, symbol, network, try_symbolic: bool) -> Verdict:
    """Numbers decide; SymPy, when ``try_symbolic``, adds evidence and the difference."""
    verdict = Verdict("incorrect", claim.text, lhs=C.to_latex(claim.lhs))
    truth_latex = _scalar_truth_latex(claim.lhs, lhs, symbol, network, try_symbolic)
    verdict.correct = f"{C.to_latex(claim.lhs)} = {truth_latex}"
    points, failures = _scalar_points(lhs, rhs, symbol)
    symbolic = None
    difference = None
    try:
        diff = (rhs - lhs).rewrite(sp.exp) if try_symbolic else None
        if diff is not None and sp.count_ops(diff) < 120:
            simplified = sp.simplify(diff)
            symbolic = simplified == 0
            difference = simplified
    except Exception:  # SymPy gives up on some inputs; the numbers still decide
        symbolic = None
    if not failures and len(points) >= 3:
        verdict.verdict = "correct"
        evidence = [f"equal at {len(points)} points "
                    f"({', '.join(f'{symbol}={p:g}' for p, _, _ in points)})"]
        if symbolic:
            evidence.insert(0, "symbolically equal: SymPy simplifies the difference to 0")
        else:
            evidence.append("SymPy could not simplify the difference to 0; the verdict rests "
                            "on the numeric points")
        verdict.evidence = evidence
        verdict.summary = evidence[0]
        return verdict
    if not failures:
        verdict.summary = ("fewer than 3 points where both sides are defined; "
                           "cannot confirm the claim")
        return verdict
    point, left, right = failures[0]
    verdict.summary = f"the two sides differ at {symbol} = {point:g}"
    verdict.counterexample = {"where": f"{symbol} = {point:g}", "point": {},
                              "claim": right, "truth": left}
    if difference is not None and difference != 0:
        verdict.difference = sp.latex(difference)
    evaluated = points + failures
    ratios = [r / t for _, t, r in evaluated if abs(t) > 1e-12 and np.isfinite(r)]
    if len(ratios) == len(evaluated) and len(ratios) >= 3 and np.allclose(ratios, ratios[0],
                                                                          rtol=1e-8):
        c = ratios[0]
        if abs(c + 1) < 1e-8:
            verdict.mistakes.append("sign flipped: the claim is -1 times the truth")
        else:
            verdict.mistakes.append(
                f"a constant factor: the claim is {sp.nsimplify(c, tolerance=1e-8)} "
                "times the truth")
    return verdict


def _scalar_points(lhs, rhs, symbol):
    """``(points where both are defined, failures)`` as ``(x, truth, claim)`` triples."""
    points, failures = [], []
    try:
        f = _numeric((symbol,), lhs)
        g = _numeric((symbol,), rhs)
    except Exception:
        return points, [(SCALAR_POINTS[0], float("nan"), float("nan"))]
    for x in SCALAR_POINTS + (0.3, 0.7, 1.2, 2.5):
        with np.errstate(all="ignore"):
            try:
                truth = complex(np.asarray(f(x)).item())
                value = complex(np.asarray(g(x)).item())
            except (TypeError, ValueError, ZeroDivisionError, OverflowError):
                continue
        if not np.isfinite(truth) or abs(truth.imag) > 1e-12:
            continue
        truth = truth.real
        ok = np.isfinite(value) and abs(value.imag) < 1e-12 and abs(value.real - truth) <= \
            RTOL * max(1.0, abs(truth))
        triple = (x, truth, value.real if np.isfinite(value) else float("nan"))
        (points if ok else failures).append(triple)
        if ok and len(points) >= 7 and not failures:
            break
    return points, failures


def _scalar_truth_latex(lhs_node, lhs, symbol, network, try_symbolic: bool) -> str:
    """The left-hand side simplified; for an activation's derivative also in terms of f."""
    from symbp.engine.activation import activation_derivative
    from symbp.registry import BUILTIN_ACTIVATIONS, A

    applied = None
    if isinstance(lhs_node, C.Apply) and lhs_node.func.order == 1 and not lhs_node.func.power:
        applied = lhs_node
    elif isinstance(lhs_node, C.Deriv) and isinstance(lhs_node.arg, C.Apply) \
            and lhs_node.arg.func.order == 0 and not lhs_node.arg.func.power:
        applied = lhs_node.arg
    try:
        plain = sp.simplify(lhs) if try_symbolic and sp.count_ops(lhs) < 120 else lhs
    except Exception:
        plain = lhs
    text = sp.latex(plain)
    if applied is None or not isinstance(applied.arg, C.Leaf):
        return text
    activation = BUILTIN_ACTIVATIONS.get(applied.func.name)
    if activation is None or activation.is_softmax:
        return text
    derivative = activation_derivative(activation.name, activation.expr)
    if not derivative.uses_output:
        return text
    name = _ACTIVATION_LATEX.get(activation.name,
                                 rf"\operatorname{{{activation.name}}}".replace("_", r"\_"))
    in_f = sp.latex(derivative.in_output, symbol_names={A: rf"{name}({symbol})"})
    return f"{in_f} = {text}"
