"""Evaluating a claim's right-hand side: values, shapes and entries at one instance.

Contract: ``Evaluation(check, instance, l_value, symbolic).run(node)`` is the
:class:`~symbp.verify.shapes.Val` of a sub-expression of the claim at one
random instance, with the generic layer ``l`` bound to ``l_value``: the
array (per sample: columns; batch: rows), its shape in the claim's terms and,
when ``symbolic``, its ``(i, j)`` entry. Shapes are checked at every
operation (:class:`~symbp.verify.shapes.ShapeError`); a layer that does not
exist is a :class:`~symbp.verify.shapes.LayerError`; a claim that mixes
per-sample and batch quantities or leaves a layer out is a
:class:`~symbp.claims.ClaimParseError` at its column. A loss gradient on the
right-hand side is the truth's own value; a function is its forward
definition or its derivative (:mod:`symbp.verify.functions`), softmax the
engine's op and its Jacobian.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from symbp import claims as C
from symbp.verify import truth as T
from symbp.verify.context import OBJECTIVES
from symbp.verify.entries import forms_entry, product_entry, tensor_entry
from symbp.verify.functions import MATH_FUNCTIONS, function_derivative, numeric, x_symbol
from symbp.verify.shapes import (
    B_SYMBOL,
    ONE,
    PER_ROW,
    Dim,
    I,
    J,
    LayerError,
    ShapeError,
    Val,
    count,
    quantity_dims,
)

SCALARS = ("lambda", "p", "eps", "n", "pi")  # weight decay, dropout rate, eps; widths; \pi
_TENSOR_LETTERS = ("W", "b", "z", "a", "x", "y", "delta")  # read entrywise by SymPy

if TYPE_CHECKING:
    from symbp.verify.context import Instance
    from symbp.verify.decide import NetworkCheck


class Evaluation:
    """Evaluates a claim's AST at one instance and one binding of ``l``: values, shapes, entries."""

    def __init__(self, check: "NetworkCheck", inst: Instance, l_value: int | None,
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
            raise LayerError(f"{self.text(node)} is layer {layer}{at}, which does not exist "
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
        if name in SCALARS:
            value = self._scalar(node)
            return Val(np.array([[float(value)]]), ONE, ONE, self.text(node), scalar=True,
                       entry=value)
        if node.batch != self.inst.batch and name in PER_ROW:
            kind = "batch (capital)" if node.batch else "per-sample (lower-case)"
            raise C.ClaimParseError(
                f"{self.text(node)} is a {kind} quantity, but the claim is "
                f"{'a batch' if self.inst.batch else 'a per-sample'} formula",
                node.span[0] + 1, text=self.claim.text)
        if name in ("x", "y"):
            layer = 0 if name == "x" else self.depth
            ref = C.LayerRef(None, 0) if name == "x" else C.LayerRef("L", 0)
            code, letter = ("a0", "a") if name == "x" else ("Y", "y")
        else:
            if node.layer is None:
                letter = C.leaf_latex(node)
                raise C.ClaimParseError(f"{letter} needs a layer index, e.g. {letter}^{{(l)}}",
                                        node.span[1] + 1, ["'^{(l)}'"], self.claim.text)
            ref, letter = node.layer, name
            layer = self.layer_of(node, ref, 0 if name == "a" else 1)
            code = f"{'sigma2' if name == 'sigma' else name}{layer}"
        if code not in self.inst.values:
            raise LayerError(f"{self.text(node)}: layer {layer} is a "
                             f"{self.ctx.layer_type(layer)} layer, which has no {name}")
        array = self.inst.values[code]
        if name == "sigma":
            array = np.sqrt(array)
        rows, cols, vector = quantity_dims(letter, ref, layer, self.inst)
        entry = None
        if self.symbolic and name in _TENSOR_LETTERS:
            entry = tensor_entry(code, rows, cols, name == "W" or (
                self.inst.batch and name != "b"))
        return Val(array, rows, cols, self.text(node), scalar=rows.one and cols.one,
                   entry=entry, vector=vector)

    def _scalar(self, node) -> sp.Expr:
        """λ, p, ε (exact, from the spec), the width n_l of a claim, and π."""
        name = node.name
        if name == "pi":
            return sp.pi
        if name == "lambda":
            return _exact(self.ctx.network.training["weight_decay"])
        if name == "n":
            if node.layer is None:
                raise C.ClaimParseError("n needs a layer, e.g. n_l", node.span[1] + 1,
                                        ["'_l'"], self.claim.text)
            return sp.Integer(self.inst.widths[self.layer_of(node, node.layer, 0)])
        option, types = {"p": ("rate", ("dropout",)),
                         "eps": ("eps", ("layer_norm", "batch_norm"))}[name]
        layers = [m for m in range(1, self.depth + 1) if self.ctx.layer_type(m) in types]
        if node.layer is not None:
            layer = self.layer_of(node, node.layer, 1)
            if layer not in layers:
                raise LayerError(f"{self.text(node)}: layer {layer} is a "
                                 f"{self.ctx.layer_type(layer)} layer, which has no {option}")
            layers = [layer]
        values = {self.ctx.network.layers[m - 1].options[option] for m in layers}
        if len(values) != 1:
            what = "no" if not values else "several"
            raise C.ClaimParseError(f"{self.text(node)}: the network has {what} "
                                    f"{' or '.join(types)} layers; name the layer, "
                                    f"e.g. {name}^{{(l)}}", node.span[0] + 1,
                                    text=self.claim.text)
        return _exact(values.pop())

    def e_Grad(self, node):
        target = node.target
        kind = T.KIND_OF[target.name]
        layer = self.layer_of(target, target.layer, 0 if kind == "da" else 1)
        if ("truth", kind, layer) not in self.inst.values:
            raise LayerError(f"{self.text(node)}: layer {layer} is a "
                             f"{self.ctx.layer_type(layer)} layer, which has no {target.name}")
        objective = node.loss in OBJECTIVES
        array = self.inst.truth(kind, layer, objective)
        rows, cols, vector = quantity_dims(target.name, target.layer, layer, self.inst)
        entry = None
        if self.symbolic and self.ctx.truth.dense_only:
            tree = self.ctx.truth_tree(kind, layer, self.inst.batch, objective)
            entry = forms_entry(tree, self.ctx, self.inst.batch, self.check.sums)[0]
        return Val(array, rows, cols, self.text(node), entry=entry, vector=vector)

    # ----- arithmetic
    def e_Neg(self, node):
        value = self.run(node.arg)
        return self._like(value, -value.array, self.text(node),
                          None if value.entry is None else -value.entry)

    def _like(self, value: Val, array, text, entry) -> Val:
        return Val(array, value.rows, value.cols, text, value.scalar, value.ones, entry,
                   value.vector)

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
            return Val(combine(left.array, right.array), big.rows, big.cols, text, entry=entry,
                       vector=big.vector)
        if self.inst.batch:
            shape = _broadcast(left, right)
            if shape is not None:
                (left_array, right_array), (rows, cols) = shape
                return Val(combine(left_array, right_array), rows, cols, text, entry=entry)
        if left.rows.value != right.rows.value:
            raise ShapeError(f"{right.text} has {count(right.rows, 'row')}, {left.text} has "
                              f"{left.rows.label}, so they cannot be {verb}")
        if left.cols.value != right.cols.value:
            raise ShapeError(f"{right.text} has {count(right.cols, 'column')}, {left.text} "
                              f"has {left.cols.label}, so they cannot be {verb}")
        return Val(combine(left.array, right.array), left.rows, left.cols, text, entry=entry,
                   vector=left.vector and right.vector)

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
        matrix = not (den.rows.one or den.cols.one) and not (self.inst.batch and den.rows.key
                                                             == "B")
        if num.scalar and matrix:  # 1/M: elementwise only for vectors and a batch's rows
            raise ShapeError(f"{self.text(node)} divides by the matrix {den.text}")
        return self._elementwise(node, num, den, "divided elementwise", np.divide,
                                 lambda u, v: u / v)

    def e_MatMul(self, node):
        left, right = self.run(node.left), self.run(node.right)
        text = self.text(node)
        if right.ones == "col" and not left.scalar:  # M 1 (or M (c 1)): ones that fit M
            right = Val(np.ones((left.array.shape[1], 1)) * right.array, left.cols, ONE,
                        right.text, entry=right.entry)
        if left.ones == "row" and not right.scalar:  # 1^T M (or c 1^T M)
            left = Val(np.ones((1, right.array.shape[0])) * left.array, ONE, right.rows,
                       left.text, entry=left.entry)
        if left.ones and right.ones:  # 1 1^T, 1^T 1: no operand says how long the ones are
            raise C.ClaimParseError(f"{text}: the length of \\mathbf{{1}} cannot be told here; "
                                    "write it next to the vector or matrix it sums",
                                    node.span[0] + 1, text=self.claim.text)
        if left.scalar or right.scalar:
            value = self._elementwise(node, left, right, "multiplied", np.multiply,
                                      lambda u, v: u * v)
            if left.scalar and right.scalar:  # c 1^T stays a row of ones, to fit what follows
                value.ones = left.ones or right.ones
            return value
        if left.cols.value != right.rows.value:
            raise ShapeError(f"{left.text} has {count(left.cols, 'column')}, {right.text} has "
                              f"{count(right.rows, 'row')}, so they cannot be multiplied")
        entry = None
        if self.symbolic:
            latex = C.to_latex(node, self.l_value, self.depth)
            entry = product_entry(left.entry, right.entry, left.cols, self.check.sums, latex)
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
                raise ShapeError(f"{text}: diag takes a column vector, {arg.text} is "
                                  f"{arg.shape_text}")
            return Val(np.diagflat(arg.array), arg.rows, arg.rows, text)
        activation, layer = self.check.function_of(node, self.l_value, self.inst)
        if activation is not None and activation.is_softmax:
            return self._softmax(node, func, arg, text)
        forward = activation.expr if activation is not None else MATH_FUNCTIONS[func.name](
            x_symbol())
        expr = function_derivative(func.name if activation is None else activation.name, forward,
                           func.order)
        if func.power is not None:
            expr = expr ** func.power
        array = np.asarray(numeric((x_symbol(),), expr)(arg.array), dtype=float)
        array = array * np.ones_like(arg.array)
        entry = None
        if self.symbolic and arg.entry is not None:
            entry = self._function_entry(node, func, forward, expr, arg)
        return Val(array, arg.rows, arg.cols, text, arg.scalar, None, entry, arg.vector)

    def _function_entry(self, node, func, forward, expr, arg):
        """Entry of f(arg); f^{(m)}(z^{(m)}) is read as a^{(m)} (and f' in terms of a)."""
        from symbp.engine.activation import activation_derivative

        own = self.check.own_layer(node.arg, forward, self.l_value)
        if own is None or func.order > 1:
            return expr.subs(x_symbol(), arg.entry)
        a_entry = arg.entry.replace(
            lambda e: isinstance(e, sp.Indexed) and e.base.label == sp.Symbol(f"z{own}"),
            lambda e: sp.IndexedBase(sp.Symbol(f"a{own}"))[e.indices])
        if func.order == 0:
            value = a_entry
        else:
            derivative = activation_derivative(self.ctx.activation(own).name, forward)
            from symbp.registry import A

            value = derivative.best.subs({A: a_entry, x_symbol(): arg.entry})
        return value ** func.power if func.power is not None else value

    def _softmax(self, node, func, arg, text):
        if arg.scalar or (not self.inst.batch and not arg.cols.one):
            raise ShapeError(f"softmax takes a vector, {arg.text} is {arg.shape_text}")
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
            raise ShapeError(f"{text}: the derivative of softmax is a Jacobian matrix per "
                              "sample, not an elementwise factor")
        return Val(T.softmax_jacobian(s), arg.rows, arg.rows, text)


def _broadcast(left: Val, right: Val):
    """NumPy's broadcasting in a batch claim: a vector (``b``, ``\\gamma``, batch norm's
    ``\\mu``) along the rows of a ``B x n`` matrix, and a ``1 x n`` row or ``B x 1`` column
    against a ``B x n`` matrix. ``((left array, right array), (rows, cols))``, or None
    where the shapes are not of these kinds (then they must agree exactly)."""
    arrays = []
    for value, other in ((left, right), (right, left)):
        if value.vector and not other.vector and other.cols.value == value.rows.value \
                and not other.cols.one:
            arrays.append((value.array.T, ONE, value.rows))
        else:
            arrays.append((value.array, value.rows, value.cols))
    (la, lr, lc), (ra, rr, rc) = arrays
    if (lr.value, lc.value) == (rr.value, rc.value) and left.vector == right.vector:
        return None
    rows = _broadcast_dim(lr, rr)
    cols = _broadcast_dim(lc, rc)
    if rows is None or cols is None:
        return None
    return (la, ra), (rows, cols)


def _broadcast_dim(a: Dim, b: Dim) -> Dim | None:
    if a.value == b.value:
        return a if not a.one else b
    if a.one:
        return b
    return a if b.one else None


def _exact(value) -> sp.Rational:
    """A spec's number as the rational it is written as (``1e-05`` is 1/100000)."""
    return sp.Rational(repr(float(value)))
