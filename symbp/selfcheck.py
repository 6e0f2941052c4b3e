"""Numeric self-check of derived formulas, run before anything is printed.

Contract: :func:`self_check` evaluates every concrete formula of a
:class:`~symbp.derive.Derivation` (the very matrix trees that get printed)
in float64 on a small network with unequal widths and the spec's
activations and loss, per sample and for a batch, and compares the
gradients with central finite differences of the directly composed forward
loss (built from the registry's forward definitions, not from the
derivation). A mismatch raises :class:`~symbp.errors.InternalError` naming
the quantity and layer; nothing wrong is ever returned. A custom activation
or loss that is not finite at the sample points (outside its domain: NaN;
overflow: inf), or so large that rounding alone explains the mismatch, is the
user's error: :class:`~symbp.errors.SpecError` naming it and the quantity. The numeric network
helpers here are also used by the tests.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from symbp import forms
from symbp.errors import InternalError, SpecError
from symbp.registry import A, X, Y

TOLERANCE = 1e-6
STEP = 1e-6
ENTRIES_PER_PARAMETER = 6  # random entries checked per parameter array
SMALL_WIDTHS = (3, 4, 2, 5)


# ------------------------------------------------------ direct forward model
def activate(activation, z: np.ndarray, axis: int) -> np.ndarray:
    """The forward definition of ``activation`` applied to ``z`` (softmax along ``axis``)."""
    if activation.is_softmax:
        shifted = np.exp(z - z.max(axis=axis, keepdims=True))
        return shifted / shifted.sum(axis=axis, keepdims=True)
    with np.errstate(all="ignore"):
        value = np.asarray(forms.numeric_function((X,), activation.expr)(z), dtype=float)
    return value if value.shape == z.shape else np.broadcast_to(value, z.shape).copy()


def loss_terms(loss, a: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.asarray(forms.numeric_function((A, Y), loss.expr)(a, y), dtype=float) * np.ones_like(a)


def small_widths(network) -> list[int]:
    """Unequal small widths with the spec's depth (a transposition cannot hide)."""
    hidden = [SMALL_WIDTHS[(n + 1) % len(SMALL_WIDTHS)] for n in range(network.depth - 1)]
    return [SMALL_WIDTHS[0]] + hidden + [min(network.widths[-1], 3)]


def random_instance(network, widths, batch: int, rng):
    """Random parameters, inputs (rows) and valid targets for the spec's loss."""
    params = {}
    for layer in range(1, len(widths)):
        params[f"W{layer}"] = rng.normal(0, 0.7, (widths[layer], widths[layer - 1]))
        params[f"b{layer}"] = rng.normal(0, 0.3, widths[layer])
    inputs = rng.normal(0, 1, (batch, widths[0]))
    return params, inputs, random_targets(network, widths[-1], batch, rng)


def random_targets(network, outputs, batch, rng):
    loss = network.loss_definition
    if loss.targets_sum_to_one:
        raw = rng.uniform(0.1, 1.0, (batch, outputs))
        return raw / raw.sum(axis=1, keepdims=True)
    if network.task == "binary" or loss.name == "bce":
        return rng.uniform(0.05, 0.95, (batch, outputs))
    return rng.normal(0, 1, (batch, outputs))


def forward_rows(network, params, inputs, first_layer: int = 1) -> dict:
    """``z{l}`` and ``a{l}`` for a batch of rows, from the forward definitions;
    ``inputs`` is ``a{first_layer - 1}`` (the network's input when ``first_layer`` is 1).

    Arrays may carry leading axes (a stack of variants of the network): rows
    and units are always the last two axes.
    """
    values = {f"a{first_layer - 1}": inputs}
    for layer in range(first_layer, network.depth + 1):
        z = values[f"a{layer - 1}"] @ np.swapaxes(params[f"W{layer}"], -1, -2) \
            + params[f"b{layer}"][..., None, :]
        values[f"z{layer}"] = z
        values[f"a{layer}"] = activate(network.activation_of(layer), z, axis=-1)
    return values


def batch_loss(network, params, inputs, targets, first_layer: int = 1):
    """The mean over rows of the per-sample loss (one per variant, for a stack)."""
    output = forward_rows(network, params, inputs, first_layer)[f"a{network.depth}"]
    losses = loss_terms(network.loss_definition, output, targets).sum(axis=-1).mean(axis=-1)
    return float(losses) if np.ndim(losses) == 0 else losses


def finite_difference_gradients(network, params, inputs, targets, step=STEP,
                                entries=None, rng=None) -> dict:
    """Central differences of the batch loss: every entry, or ``entries`` random ones.

    Entries not differenced are NaN. A parameter of layer ``l`` changes nothing
    before it, so the network runs from layer ``l`` only, once for a stack of
    all the shifted copies of that parameter.
    """
    rows = forward_rows(network, params, inputs)
    gradients = {}
    for name, value in params.items():
        layer = int(name[1:])
        grad = np.full(value.shape, np.nan)
        positions = list(np.ndindex(value.shape))
        if entries is not None and len(positions) > entries:
            chosen = rng.choice(len(positions), entries, replace=False)
            positions = [positions[i] for i in chosen]
        shifted = np.repeat(value[None], 2 * len(positions), axis=0)
        for number, position in enumerate(positions):
            shifted[(2 * number, *position)] = value[position] + step
            shifted[(2 * number + 1, *position)] = value[position] - step
        losses = batch_loss(network, {**params, name: shifted}, rows[f"a{layer - 1}"],
                            targets, layer)
        for number, position in enumerate(positions):
            grad[position] = (losses[2 * number] - losses[2 * number + 1]) / (2 * step)
        gradients[name] = grad
    return gradients


# ------------------------------------------------------ derived formulas
def formula_gradients(derivation, params, inputs, targets, batch: bool) -> dict:
    """Evaluate the derived concrete formulas (per sample: summed over rows, then averaged)."""
    if batch:
        return _evaluate_layers(derivation, params, inputs, targets, batch=True)
    total = None
    for row in range(inputs.shape[0]):
        grads = _evaluate_layers(derivation, params, inputs[row:row + 1],
                                 targets[row:row + 1], batch=False)
        total = grads if total is None else {n: total[n] + grads[n] for n in grads}
    return {name: value / inputs.shape[0] for name, value in total.items()}


def _evaluate_layers(derivation, params, inputs, targets, batch: bool) -> dict:
    network = derivation.network
    rows = forward_rows(network, params, inputs)
    values = dict(params)
    for name, value in rows.items():
        values[name] = value if batch else value.T  # per sample: column vectors
    values["Y"] = targets if batch else targets.T
    for layer in range(1, network.depth + 1):  # bias vectors as columns
        values[f"b{layer}"] = params[f"b{layer}"][:, None]
    widths = [inputs.shape[1]] + [params[f"b{n}"].shape[0] for n in range(1, network.depth + 1)]
    values["__ones__"] = {"B": inputs.shape[0], "n_{L}": widths[-1],
                          **{f"n_{{{n}}}": w for n, w in enumerate(widths)}}
    values["__scalars__"] = {sp.Symbol("B", integer=True, positive=True): inputs.shape[0]}
    prefix = "batch_" if batch else ""
    gradients = {}
    for formulas in reversed(derivation.layers):
        layer = formulas.layer
        values[f"delta{layer}"] = _evaluate(getattr(formulas, prefix + "delta"), values)
        gradients[f"W{layer}"] = _evaluate(getattr(formulas, prefix + "dW"), values)
        gradients[f"b{layer}"] = _evaluate(getattr(formulas, prefix + "db"), values)[:, 0]
    return gradients


def _evaluate(formula, values):
    try:
        return forms.evaluate(formula.matrix, values)
    except (KeyError, ValueError, TypeError) as exc:
        raise InternalError(f"self-check could not evaluate {formula.name} of layer "
                            f"{formula.layer}: {exc}") from exc


# ------------------------------------------------ values float64 cannot hold
HUGE = 1e6  # a loss this large at the sample points is no longer an ordinary value
ROUNDING_MARGIN = 64  # rounding error of a loss, in units of eps times its magnitude


def _field(activation) -> str:
    return f"activations.{activation.name}" if not activation.builtin else \
        f"activation '{activation.name}'"


def _loss_field(loss) -> str:
    return f"losses.{loss.name}" if not loss.builtin else f"loss '{loss.name}'"


def _non_finite(values: np.ndarray) -> str | None:
    """None, or why ``values`` are not all finite (NaN: outside the domain; inf: overflow)."""
    values = np.asarray(values, dtype=float)
    if np.all(np.isfinite(values)):
        return None
    if np.any(np.isnan(values)):
        return "not defined on the real numbers"
    return "too large for float64 (overflow)"


def _value_range(values: np.ndarray) -> str:
    return f"[{np.min(values):.3g}, {np.max(values):.3g}]"


def _require_finite(derivation, params, inputs, targets) -> None:
    """A custom activation or loss that is undefined (NaN) or overflows (inf) at the
    self-check's sample points is the user's error: each forward value and each
    derivative the formulas use is checked in turn, and the first one named."""
    network = derivation.network
    rows = forward_rows(network, params, inputs)
    for layer in range(1, network.depth + 1):
        activation, z = network.activation_of(layer), rows[f"z{layer}"]
        at = f"at the self-check's sample points (pre-activations z in {_value_range(z)})"
        problem = _non_finite(rows[f"a{layer}"])
        if problem:
            raise SpecError(f"{_field(activation)}: {problem} {at}; an activation must be "
                            "finite on all real numbers")
        derivative = derivation.layers[layer - 1].derivative
        if derivative is not None:
            problem = _non_finite(forms.numeric_function((X,), derivative.in_input)(z))
            if problem:
                raise SpecError(f"{_field(activation)}: its derivative is {problem} {at}")
    loss, a = network.loss_definition, rows[f"a{network.depth}"]
    at = f"at the self-check's sample predictions (a in {_value_range(a)}) and targets"
    for quantity, expr in (("", loss.expr), ("its derivative is ", sp.diff(loss.expr, A))):
        values = forms.numeric_function((A, Y), expr)(a, targets)
        problem = _non_finite(values)
        if problem:
            raise SpecError(f"{_loss_field(loss)}: {quantity}{problem} {at}")


def _too_large_for_float64(derivation, params, inputs, targets, name, error) -> SpecError | None:
    """A mismatch that rounding explains: the loss is so large that a finite-difference
    step is below its float64 resolution (``2**64*x``). Names the first activation
    whose values are huge, or the loss."""
    network = derivation.network
    rows = forward_rows(network, params, inputs)
    terms = loss_terms(network.loss_definition, rows[f"a{network.depth}"], targets)
    magnitude = float(np.max(np.sum(np.abs(terms), axis=-1)))
    rounding = ROUNDING_MARGIN * np.finfo(float).eps * magnitude / STEP
    if magnitude < HUGE or error > rounding:
        return None
    culprit = _loss_field(network.loss_definition)
    for layer in range(1, network.depth + 1):
        largest = float(np.max(np.abs(rows[f"a{layer}"])))
        if largest >= HUGE:
            culprit = f"{_field(network.activation_of(layer))}: values up to {largest:.2g}"
            break
    return SpecError(
        f"{culprit} at the self-check's sample points make the loss (up to {magnitude:.2g}) "
        f"too large to check the gradient of {name} in float64 (a finite-difference step "
        f"of {STEP:g} is below its rounding error); scale the expression down")


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """Max difference over the entries of ``expected`` that are not NaN, relative."""
    known = ~np.isnan(expected)
    got, expected = got[known], expected[known]
    scale = max(np.max(np.abs(expected)), np.max(np.abs(got)), 1e-3)
    return float(np.max(np.abs(got - expected)) / scale)


def self_check(derivation, seed: int = 1234, batch: int = 3) -> None:
    """Raise InternalError unless every derived gradient matches finite differences;
    SpecError when the spec's own expressions are not finite or too large for float64
    at the sample points. Floating-point warnings are diagnosed here, never printed."""
    with np.errstate(all="ignore"):
        _self_check(derivation, seed, batch)


def _self_check(derivation, seed: int, batch: int) -> None:
    network = derivation.network
    rng = np.random.default_rng(seed)
    widths = small_widths(network)
    params, inputs, targets = random_instance(network, widths, batch, rng)
    _require_finite(derivation, params, inputs, targets)
    expected = finite_difference_gradients(network, params, inputs, targets,
                                           entries=ENTRIES_PER_PARAMETER, rng=rng)
    for in_batch in (False, True):
        form = "batch" if in_batch else "per-sample"
        got = formula_gradients(derivation, params, inputs, targets, batch=in_batch)
        for name, value in expected.items():
            if got[name].shape != value.shape:
                raise InternalError(
                    f"derived {form} gradient of {name} has shape {got[name].shape}, the "
                    f"parameter has {value.shape}; refusing to print it")
            error = relative_error(got[name], value)
            if error < TOLERANCE:
                continue
            known = ~np.isnan(value)
            if not np.all(np.isfinite(got[name][known])) and np.any(np.isinf(got[name])):
                raise SpecError(f"the gradient of {name} overflows float64 at the "
                                "self-check's sample points; scale the spec's expressions down")
            absolute = float(np.max(np.abs(got[name][known] - value[known])))
            too_large = _too_large_for_float64(derivation, params, inputs, targets, name,
                                               absolute)
            if too_large is not None:
                raise too_large
            raise InternalError(
                f"derived {form} gradient of {name} fails the finite-difference "
                f"self-check (relative error {error:.2e}); refusing to print it")
