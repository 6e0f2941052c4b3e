"""Registry of forward definitions: activations, losses and the dense layer.

Contract: this module holds *forward* definitions only, as SymPy expressions.
No derivative is written here; every derivative symbp prints or emits comes
from ``sympy.diff`` applied to these definitions (see :mod:`symbp.derive`).

- An elementwise activation is an expression in the scalar ``X``.
- ``softmax`` is the one vector activation; it is defined in index notation
  by :func:`softmax_forward`.
- A loss is a per-output term in ``A`` (prediction) and ``Y`` (target); the
  loss of one sample is its sum over the outputs, a batch's loss the mean over
  samples.
- The dense layer is defined in index notation by :func:`dense_forward`.

Custom activations and losses come from expression strings through the safe
parser of :mod:`symbp.expressions`; an activation must depend on ``x`` and a
loss on ``a`` (a constant has no gradient to derive). Asking for a name that is not registered
raises a :class:`~symbp.errors.SpecError` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symbp.errors import SpecError
from symbp.expressions import parse_expression

X = sp.Symbol("x", real=True)
A = sp.Symbol("a", real=True)
Y = sp.Symbol("y", real=True)


@dataclass(frozen=True)
class Activation:
    """A forward definition ``a = f(x)``; ``expr`` is None for the vector softmax."""

    name: str
    expr: sp.Expr | None
    builtin: bool = True

    @property
    def is_softmax(self) -> bool:
        return self.expr is None


@dataclass(frozen=True)
class Loss:
    """A per-output loss term ``expr(A, Y)``, summed over the outputs of a sample."""

    name: str
    expr: sp.Expr
    output_activation: str | None = None  # the output activation the loss requires
    targets_sum_to_one: bool = False  # an assumption the derivation may use
    builtin: bool = True


def _piecewise_linear(negative_part: sp.Expr) -> sp.Expr:
    return sp.Piecewise((X, X > 0), (negative_part, True))


BUILTIN_ACTIVATIONS: dict[str, Activation] = {
    act.name: act
    for act in [
        Activation("identity", X),
        Activation("sigmoid", 1 / (1 + sp.exp(-X))),
        Activation("tanh", sp.tanh(X)),
        Activation("relu", _piecewise_linear(sp.Integer(0))),
        Activation("leaky_relu", _piecewise_linear(X / 100)),
        Activation("elu", _piecewise_linear(sp.exp(X) - 1)),
        Activation("softplus", sp.log(1 + sp.exp(X))),
        Activation("silu", X / (1 + sp.exp(-X))),
        Activation("gelu", X * (1 + sp.erf(X / sp.sqrt(2))) / 2),
        Activation("softmax", None),
    ]
}

BUILTIN_LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in [
        Loss("mse", (A - Y) ** 2 / 2),
        Loss("cross_entropy", -Y * sp.log(A), "softmax", targets_sum_to_one=True),
        Loss("bce", -(Y * sp.log(A) + (1 - Y) * sp.log(1 - A)), "sigmoid"),
    ]
}


def custom_activation(name: str, text: str) -> Activation:
    """An activation from an expression string in ``x``."""
    expr = parse_expression(text, {"x": X}, where=f"activations.{name}")
    if X not in expr.free_symbols:
        raise SpecError(f"activations.{name}: the activation does not depend on 'x'")
    return Activation(name, expr, builtin=False)


def custom_loss(name: str, text: str) -> Loss:
    """A loss from an expression string in ``a`` and ``y`` (one output's term)."""
    expr = parse_expression(text, {"a": A, "y": Y}, where=f"losses.{name}")
    if A not in expr.free_symbols:
        raise SpecError(f"losses.{name}: the loss does not depend on the prediction 'a'")
    return Loss(name, expr, builtin=False)


def softmax_forward(z: sp.IndexedBase, k: sp.Symbol, m: sp.Symbol, n: sp.Expr) -> sp.Expr:
    """``a_k = exp(z_k) / sum_m exp(z_m)`` in index notation, ``n`` outputs."""
    return sp.exp(z[k]) / sp.Sum(sp.exp(z[m]), (m, 0, n - 1))


def dense_forward(W, b, a_prev, i, j, n_prev, sample=None) -> sp.Expr:
    """``z_i = sum_j W_ij a_j + b_i``; with ``sample`` the batch row ``s`` of ``A``."""
    a_j = a_prev[j] if sample is None else a_prev[sample, j]
    return sp.Sum(W[i, j] * a_j, (j, 0, n_prev - 1)) + b[i]
