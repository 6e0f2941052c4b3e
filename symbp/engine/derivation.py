"""A network's derivation: its graphs, its simplified gradients, checked numerically.

Contract: :func:`derive_graph` takes a validated :class:`~symbp.spec.Network`
and returns a :class:`GraphDerivation`: the training graph (batch statistics,
dropout masks, the objective with weight decay), the evaluation graph (running
statistics, no dropout), the sizes of every width symbol, the gradient of
every tensor between the parameters and the loss in backward order
(:func:`~symbp.engine.backward.backward` then
:func:`~symbp.engine.simplify.simplify`), and each op family's general
VJPs. Before it is returned it passes :func:`self_check`: the gradients,
evaluated by the NumPy reading of index notation at random points on a small
network of the same structure, agree with central finite differences of the
training objective (the whole batch's, so batch norm is checked as it couples
rows); a mismatch raises :class:`~symbp.errors.InternalError`. Results are
cached per spec content.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from symbp.engine.backward import backward
from symbp.engine.numeric import run
from symbp.engine.simplify import simplify
from symbp.errors import InternalError, SpecError
from symbp.ops.base import BATCH
from symbp.ops.network import build_graph

CHECK_BATCH = 5
CHECK_STEP = 1e-6
CHECK_TOLERANCE = 1e-6


@dataclass
class GraphDerivation:
    network: object
    train: object  # Builder: .graph, .sizes
    eval: object
    gradients: list

    @property
    def graph(self):
        return self.train.graph

    @property
    def sizes(self) -> dict:
        return self.train.sizes

    def gradient_of(self, name: str):
        return next((g for g in self.gradients if g.of.name == name), None)

    def _repr_latex_(self) -> str:
        """Jupyter shows a derivation as its formulas."""
        from symbp.printing import repr_latex

        return repr_latex(self)


_DERIVED: dict = {}


def derive_graph(network, check: bool = True) -> GraphDerivation:
    key = (repr(network.to_dict()), check)
    if key not in _DERIVED:
        train = build_graph(network, "train")
        derivation = GraphDerivation(network, train, build_graph(network, "eval"),
                                     simplify(train.graph, backward(train.graph)))
        if check:
            self_check(derivation)
        _DERIVED[key] = derivation
    return _DERIVED[key]


# ------------------------------------------------------------------ self-check
def small_sizes(sizes: dict) -> dict:
    """Small stand-ins for the widths, equal where the spec's are (a residual needs that)."""
    distinct = sorted(set(sizes.values()))
    stand_in = {value: 2 + position for position, value in enumerate(distinct)}
    return {**{symbol: stand_in[value] for symbol, value in sizes.items()}, BATCH: CHECK_BATCH}


def random_point(graph, sizes: dict, rng, loss, scale: float = 1.0) -> dict:
    """Inputs, parameters, masks, state and valid targets; parameters ``N(0, scale²)``."""
    arrays = {}
    for tensor in graph.tensors.values():
        shape = tuple(int(sp.sympify(d).xreplace(sizes)) for d in tensor.shape)
        if tensor.role == "input":
            arrays[tensor.name] = rng.normal(0.0, 1.0, shape)
        elif tensor.role == "parameter":
            arrays[tensor.name] = rng.normal(0.0, scale, shape)
        elif tensor.role == "mask":
            arrays[tensor.name] = (rng.random(shape) > 0.3).astype(float)
        elif tensor.role == "state":
            arrays[tensor.name] = rng.uniform(0.5, 1.5, shape)
        elif tensor.role == "target":
            arrays[tensor.name] = _targets(loss, shape, rng)
    return arrays


def _targets(loss, shape, rng):
    if loss.targets_sum_to_one:
        return rng.dirichlet(np.ones(shape[-1]), shape[0])
    if loss.output_activation == "sigmoid":
        return (rng.random(shape) > 0.5).astype(float)
    return rng.normal(0.0, 1.0, shape)


POINT_SCALES = (1.0, 0.3, 0.1)


def self_check(derivation: GraphDerivation, seed: int = 0) -> None:
    """The derived gradients against a central difference of the objective along a
    random direction of all parameters: ``(L(p + hv) - L(p - hv)) / 2h = <dL/dp, v>``,
    which a wrong entry anywhere fails (with probability one); on a mismatch each
    parameter is checked alone, to name it. A point where
    the forward definition itself is inaccurate (a saturated sigmoid's ``log(1 - a)``,
    a kink within the step) can fail too, so a mismatch is checked again at new points
    with smaller parameters; a wrong derivation fails at every one of them."""
    rng = np.random.default_rng(seed)
    for attempt, scale in enumerate(POINT_SCALES):
        failure, values = _check_at_point(derivation, rng, scale)
        if failure is None:
            return
        if attempt == len(POINT_SCALES) - 1:
            raise _users_expression(derivation, values) or InternalError(failure)


def _check_at_point(derivation: GraphDerivation, rng, scale: float):
    """``(the first mismatch or None, the values at the point)``."""
    graph = derivation.graph
    sizes = small_sizes(derivation.sizes)
    point = random_point(graph, sizes, rng, derivation.network.loss_definition, scale)
    with np.errstate(all="ignore"):
        try:
            values = run(graph, point, sizes, derivation.gradients)
        except (ValueError, IndexError, KeyError) as exc:  # e.g. a gradient of the wrong shape
            return (f"self-check failed: the derived gradients cannot be evaluated "
                    f"({exc.__class__.__name__}: {exc})"), None
        derived = {g.of.name: values[g.adjoint.name] for g in derivation.gradients
                   if g.of.role == "parameter"}
        if _check_direction(graph, sizes, point, derived, rng) is None:
            return None, values  # all parameters at once along one direction: O(depth)
        for name, gradient in derived.items():  # name the parameter that fails
            failure = _check_direction(graph, sizes, point, {name: gradient}, rng)
            if failure is not None:
                return failure, values
        return _check_direction(graph, sizes, point, derived, rng), values


HUGE = 1e12  # a loss this large leaves finite differences nothing but rounding


def _users_expression(derivation: GraphDerivation, values) -> SpecError | None:
    """A mismatch that the spec's own expressions explain, as the user's error naming
    them: the first tensor (forward, then backward) that is NaN (outside the
    expression's domain) or inf (overflow) while everything it reads is finite, or a
    loss so large that float64 rounding is all finite differences can see."""
    if values is None:
        return None
    steps = [(e.out.name, e, "") for e in derivation.graph.equations]
    steps += [(g.adjoint.name, _consumer_of(derivation, g), "its derivative is ")
              for g in derivation.gradients]
    for name, equation, quantity in steps:
        problem = _non_finite(values[name])
        if problem and equation is not None:
            return SpecError(f"{_field(derivation.network, equation)}: {quantity}{problem} at "
                             "the self-check's sample points")
    loss = abs(float(values["L"]))
    if loss >= HUGE:
        return SpecError(f"{_field(derivation.network, derivation.graph.definition('L'))}: the "
                         f"objective reaches {loss:.3g} at the self-check's sample points, too "
                         "large to check its gradients in float64; scale the expressions down")
    return None


def _consumer_of(derivation: GraphDerivation, gradient):
    """The equation whose derivative a gradient applies (its first path's consumer)."""
    return gradient.paths[0][0] if gradient.paths else None


def _non_finite(array) -> str | None:
    array = np.asarray(array, dtype=float)
    if np.all(np.isfinite(array)):
        return None
    if np.any(np.isnan(array)):
        return "not defined on the real numbers"
    return "too large for float64 (overflow)"


def _field(network, equation) -> str:
    """The spec field behind an equation: a custom activation or loss, or the layer."""
    if equation.op == "objective":
        loss = network.loss_definition
        return f"losses.{loss.name}" if not loss.builtin else f"loss '{loss.name}'"
    if equation.op in network.activations:
        return f"activations.{equation.op}"
    return f"layers[{equation.layer}]"


def _check_direction(graph, sizes, point, derived: dict, rng) -> str | None:
    """``<dL/dp, v>`` against a central difference along a random ``v`` over the
    parameters ``derived`` names (one or all)."""
    direction = {name: rng.normal(0.0, 1.0, gradient.shape) for name, gradient in derived.items()}
    expected = float(sum(np.sum(derived[name] * v) for name, v in direction.items()))
    losses = []
    for sign in (1, -1):
        shifted = {**point, **{name: point[name] + sign * CHECK_STEP * v
                               for name, v in direction.items()}}
        losses.append(float(run(graph, shifted, sizes)["L"]))
    estimate = (losses[0] - losses[1]) / (2 * CHECK_STEP)
    scale = max(abs(estimate), abs(expected), 1e-3)
    if abs(estimate - expected) <= CHECK_TOLERANCE * scale:
        return None
    names = ", ".join(direction)
    return (f"self-check failed: the derived dL/d{names} gives {expected:.10g} along a random "
            f"direction, finite differences {estimate:.10g}")
