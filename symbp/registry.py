"""Registry of scalar forward definitions: activations and losses.

Contract: this module holds *forward* definitions only, as SymPy expressions.
No derivative is written here; every derivative symbp prints or emits comes
from ``sympy.diff`` applied to these definitions (see :mod:`symbp.engine`).
The layers' definitions in index notation are the ops of :mod:`symbp.ops`.

- An elementwise activation is an expression in the scalar ``X``.
- ``softmax`` is the one vector activation; its index definition is the
  activation op's (:mod:`symbp.ops.elementwise`).
- A loss is a per-output term in ``A`` (prediction) and ``Y`` (target); the
  loss of one sample is its sum over the outputs, a batch's loss the mean over
  samples (:mod:`symbp.ops.objective`).

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
