"""The likely mistake of a wrong network claim, found by testing variants.

Contract: :func:`likely_mistakes` returns up to three descriptions of the
usual mistakes whose correction makes the claim agree with the truth at
every point: a constant factor (a sign, a 2, ``1/B``) read off the values,
then the variants of :data:`CATALOGUE`, each a rewritten claim decided like
the claim itself. A description names what is wrong only when its variant
matches; no mistake is named from the claim's form alone. The catalogue, most
telling first: an extra term (a bias in the recursion), a missing or extra
transpose, a wrong layer index, the derivative of the wrong activation,
``f'`` taken at ``a`` instead of ``z``, softmax's Jacobian treated as
diagonal, a derivative written out by hand for another activation or with
a wrong formula for the layer's own one, a missing ``f'``, an extra factor,
vectors multiplied side by side where ``\\odot`` was meant, a sign slip in
one term, factors in the wrong order.
"""
from __future__ import annotations

import itertools
from dataclasses import replace
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from symbp import claims as C
from symbp.errors import SymbpError
from symbp.verify.context import close
from symbp.verify.functions import (
    MATH_FUNCTIONS,
    derivative_latex,
    function_derivative,
    numeric,
    x_symbol,
)
from symbp.verify.shapes import LayerError
from symbp.verify.truth import LETTER_OF

if TYPE_CHECKING:
    from symbp.verify.decide import NetworkCheck, Outcome

MAX_VARIANTS = 100  # usual mistakes tried per claim (a claim of the tests has at most ~20)


def likely_mistakes(check: NetworkCheck, rhs, outcome: Outcome) -> list[str]:
    """Up to three descriptions of mistakes whose correction makes the claim true."""
    found = []
    ratio = _ratio(check, outcome)
    if ratio is not None:
        found.append(ratio)
    found += _missing_paths(check, outcome)
    for description, variant in itertools.islice(variants(rhs, check), MAX_VARIANTS):
        if description in found:
            continue
        try:
            result = check.evaluate(variant, quick=True, stop_early=True)
        except (C.ClaimParseError, SymbpError):
            continue
        if result.ok:
            found.append(description)
        if len(found) >= 3:
            break
    return found


def _ratio(check: NetworkCheck, outcome: Outcome) -> str | None:
    """``claim = c * truth`` with one constant c at every point: a sign or a factor."""
    c = _constant_ratio(outcome)
    if c is None:
        return None
    known = {-1.0: "sign flipped: the claim is -1 times the truth",
             2.0: "a factor 2 too many (e.g. from differentiating (a - y)^2 without the "
                  "1/2 of the mse loss)",
             0.5: "a factor 2 missing: the claim is 1/2 times the truth",
             -2.0: "sign flipped and a factor 2 too many",
             -0.5: "sign flipped and a factor 2 missing"}
    for value, text in known.items():
        if abs(c - value) < 1e-6:
            return text
    for layer, rate in _dropout_rates(check):
        if abs(c - (1 - rate)) < 1e-9:
            return (f"dropout's missing 1/(1-p): layer {layer} keeps each unit with "
                    f"probability 1 - p = {1 - rate:g} and divides by it "
                    f"(a^{{({layer})}} = m^{{({layer})}} \\odot a^{{({layer - 1})}} / (1-p)), so "
                    "its gradient is divided by 1 - p too")
        if abs(c - 1 / (1 - rate)) < 1e-9:
            return (f"an extra 1/(1-p): layer {layer}'s dropout divides by 1 - p once")
    B = outcome.points[0].inst.B
    if abs(c - 1.0 / B) < 1e-9:
        return _extra_one_over_b(check)
    if abs(c - B) < 1e-6 * B:
        return _extra_b(check)
    return f"the claim is {sp.nsimplify(c, tolerance=1e-6, rational=True)} times the truth"


def _constant_ratio(outcome: Outcome) -> float | None:
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
    return ratios[0] if np.allclose(ratios, ratios[0], rtol=1e-6) else None


def _dropout_rates(check: NetworkCheck) -> list:
    return [(number, layer.options["rate"]) for number, layer in
            enumerate(check.ctx.network.layers, 1) if layer.type == "dropout"]


def _missing_paths(check: NetworkCheck, outcome: Outcome) -> list[str]:
    """The claim is the truth without one (or two) of the engine's paths: the gradient of a
    tensor read by several equations (a layer's input into a norm's mean, variance and
    normalisation; a residual's skip) misses what flows back through one of them."""
    if outcome.shape or not outcome.points:
        return []
    kind = check.target.kind
    first = outcome.points[0]
    paths = first.inst.paths(kind, first.layer)
    if len(paths) < 2:
        return []
    for size in (1, 2):
        found = []
        for combo in itertools.combinations(range(len(paths)), size):
            if all(close(point.claim, point.truth - sum(
                    point.inst.paths(kind, point.layer)[i][1] for i in combo))
                   for point in outcome.points):
                found.append("; ".join(_path_text(check, paths[i][0], first.layer)
                                       for i in combo))
        if found:
            return found
    return []


def _path_text(check: NetworkCheck, consumer, layer: int) -> str:
    """What a missing path is, in the claim's terms."""
    letter = LETTER_OF[check.target.kind]
    source = C.leaf_latex(C.Leaf(letter, C.LayerRef(None, layer), check.batch))
    out, at = consumer.out, consumer.layer
    kind = check.ctx.layer_type(at)
    if consumer.op in ("layer_norm", "batch_norm"):
        what = "mean" if out.name.startswith("mu") else "variance"
        symbol = "μ" if what == "mean" else "σ²"
        return (f"a missing {symbol} path in the {kind}: {source} also enters the {what} "
                f"{out.latex} of layer {at}, and its gradient has a term through it")
    if consumer.op == "residual":
        return (f"a residual's missing identity path: layer {at} adds {source} to its "
                f"input, so \\partial\\ell/\\partial a^{{({at})}} flows back to {source} "
                "unchanged and is a term of its gradient")
    if consumer.op == "objective":
        return ("the weight-decay term is missing: the objective adds "
                "\\frac{\\lambda}{2} \\sum \\|W\\|^2, so \\partial L/\\partial W^{(l)} has a "
                "term \\lambda W^{(l)}")
    if consumer.op == "dense":
        return (f"the path through layer {at} is missing: {source} also feeds "
                f"z^{{({at})}} = W^{{({at})}} {source} + b^{{({at})}}")
    return f"the path through {out.latex} (layer {at}, {kind}) is missing"


_DELTA_MEAN = (r"symbp's \Delta^{(l)} is \partial L/\partial Z^{(l)} of the mean loss "
               r"L = \frac{1}{B} \sum_s \ell_s: its 1/B enters at \Delta^{(L)} and is carried "
               r"down the recursion")
_STACKED = (r"(the per-sample deltas stacked in rows, as Ng's dZ, are B \Delta^{(l)}, and "
            r"with them the 1/B moves to \partial L/\partial W^{(l)})")


def _extra_one_over_b(check: NetworkCheck) -> str:
    if not check.batch:
        return "an extra 1/B: the per-sample gradient has no 1/B"
    if check.target.kind == "delta":
        return (f"an extra 1/B: {_DELTA_MEAN}, so it appears once (in \\Delta^{{(L)}}), "
                "not again in this formula")
    return (f"an extra 1/B: {_DELTA_MEAN}, so \\partial L/\\partial W^{{(l)}} = "
            f"(\\Delta^{{(l)}})^T A^{{(l-1)}} has no 1/B of its own {_STACKED}")


def _extra_b(check: NetworkCheck) -> str:
    if check.batch:
        return f"the 1/B of the mean loss is missing: {_DELTA_MEAN} {_STACKED}"
    return "an extra factor B: the per-sample gradient has no B"


def variants(rhs, check: NetworkCheck):
    """``(description, variant)`` for the usual mistakes, most telling first."""
    nodes = list(C.walk(rhs))
    for family in CATALOGUE:
        yield from family(rhs, nodes, check)


def _extra_terms(rhs, nodes, check: NetworkCheck):
    """Terms that should not be there (a bias in the recursion)."""
    claim = check.claim
    recursion = check.target.kind in ("delta", "da")
    for path, node in nodes:
        if isinstance(node, (C.Add, C.Sub)):
            for keep, drop in ((node.left, node.right), (node.right, node.left)):
                if isinstance(node, C.Sub) and keep is node.right:
                    keep = C.Neg(keep, span=keep.span)
                text = claim.source(drop)
                if _is_bias(drop) and recursion:
                    bias = drop
                    while isinstance(bias, (C.Neg, C.Transpose)):
                        bias = bias.arg
                    m, before = bias.layer.label, bias.layer.shifted(-1).label
                    why = (f"bias term in the recursion: remove {text}. The bias enters "
                           f"z^{{({m})}} = W^{{({m})}} a^{{({before})}} + b^{{({m})}} as a "
                           f"constant, so it drops out of the derivative with respect to "
                           f"a^{{({before})}}")
                elif _has_leaf(drop, "lambda") and check.target.kind == "dW" and \
                        not check.batch and not check.objective:
                    why = (f"weight decay in a sample's loss: remove {text}. The weight "
                           "decay \\frac{\\lambda}{2} \\sum \\|W\\|^2 is part of the "
                           "objective (L or J), not of the sample's loss \\ell; it is in "
                           "\\partial L/\\partial W^{(l)} = (\\Delta^{(l)})^T A^{(l-1)} + "
                           "\\lambda W^{(l)}")
                elif _has_leaf(drop, "lambda") and check.target.kind in ("db", "dgamma",
                                                                          "dbeta"):
                    why = (f"weight decay on the biases: remove {text}. The weight decay "
                           "\\frac{\\lambda}{2} \\sum \\|W\\|^2 covers the weights of dense "
                           "layers only, not biases or gains")
                else:
                    why = f"an extra term: without {text} the claim is correct"
                yield why, C.replace_at(rhs, path, keep)


def _transposes(rhs, nodes, check: NetworkCheck):
    claim = check.claim
    for path, node in nodes:
        if isinstance(node, C.Transpose):
            yield (f"an extra transpose: {claim.source(node)} should be "
                   f"{claim.source(node.arg)}", C.replace_at(rhs, path, node.arg))
        elif isinstance(node, C.Leaf) and node.name != "B":
            parent = _parent(rhs, path)
            if node.name == "W" or isinstance(parent, C.MatMul):
                yield (f"missing transpose: {claim.source(node)} should be "
                       f"({claim.source(node)})^T", C.replace_at(rhs, path, C.Transpose(node)))
    if check.target.kind == "dW":
        yield ("transposed outer product: dL/dW^{(l)} has the shape of W^{(l)} "
               "(n_l x n_{l-1}), so it is \\delta^{(l)} (a^{(l-1)})^T, not its transpose",
               C.Transpose(rhs))
    else:
        yield "the result is transposed", C.Transpose(rhs)


def _layer_indices(rhs, nodes, check: NetworkCheck):
    claim = check.claim
    for path, node in nodes:
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


def _activation_derivatives(rhs, nodes, check: NetworkCheck):
    """A named f' of another activation; f' taken at a instead of z."""
    claim = check.claim
    for path, node in nodes:
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


def _softmax_diagonal(rhs, nodes, check: NetworkCheck):
    """An elementwise factor standing for a softmax layer's derivative: ``f'(z^{(L)})``,
    ``\\sigma'(z^{(L)})`` or ``a^{(L)} \\odot (1 - a^{(L)})`` replaced by the Jacobian."""
    claim = check.claim
    for path, node in nodes:
        if not isinstance(node, C.Hadamard) or isinstance(_parent(rhs, path), C.Hadamard):
            continue
        factors = _hadamard_factors(node)
        for ref, batch, stand_in in _softmax_factors(factors, check):
            rest = [f for f in factors if all(f is not s for s in stand_in)]
            if not rest:
                continue
            jacobian = C.Apply(C.Func("softmax", 1), C.Leaf("z", ref, batch))
            text = " \\odot ".join(_factor_text(claim, s) for s in stand_in)
            yield (f"softmax's Jacobian treated as diagonal: layer {ref.label} is softmax, "
                   f"whose derivative is a full Jacobian matrix (each output depends on every "
                   f"z^{{({ref.label})}}_j), not the elementwise factor {text}; the delta is "
                   f"the Jacobian (transposed) times the gradient",
                   C.replace_at(rhs, path, C.MatMul(jacobian, _product(rest))))


def _softmax_factors(factors, check: NetworkCheck):
    """``(layer ref, batch, factors)``: the factors of a softmax layer's z or a that
    stand for its derivative (an f' applied to z, or a hand-written function of a, z)."""
    groups = {}
    for factor in factors:
        if isinstance(factor, C.Apply) and factor.func.order >= 1 and isinstance(
                factor.arg, C.Leaf) and factor.arg.name == "z" and factor.arg.layer:
            found = (factor.arg.layer, factor.arg.batch)
        else:
            found = _hand_ref(factor)
        if found is not None and _is_softmax_layer(check, found[0]):
            groups.setdefault(found, []).append(factor)
    return [(ref, batch, group) for (ref, batch), group in groups.items()]


def _is_softmax_layer(check: NetworkCheck, ref: C.LayerRef) -> bool:
    for l_value, _ in check.bindings:
        try:
            layer = ref.resolve(l_value, check.depth)
        except ValueError:
            return False
        if not 1 <= layer <= check.depth or not check.ctx.has_activation(layer) or \
                not check.ctx.activation(layer).is_softmax:
            return False
    return True


def _hand_derivatives(rhs, nodes, check: NetworkCheck):
    for path, node in nodes:  # derivatives written out by hand, e.g. a (1 - a)
        if isinstance(node, C.Hadamard) and not isinstance(_parent(rhs, path), C.Hadamard):
            yield from _hand_variants(rhs, path, node, check)


def _missing_fprime(rhs, nodes, check: NetworkCheck):
    target = check.target
    if target.kind == "delta":
        ref = target.layer
        generic = C.Apply(C.Func("generic", 1), C.Leaf("z", ref, target.batch))
        yield (f"missing the factor f_{{{ref.label}}}'(z^{{({ref.label})}}): "
               f"\\delta^{{({ref.label})}} = \\partial\\ell/\\partial z^{{({ref.label})}} needs "
               f"the derivative of the activation", C.Hadamard(rhs, generic))


def _extra_factors(rhs, nodes, check: NetworkCheck):
    claim, target = check.claim, check.target
    for path, node in nodes:
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


def _side_by_side(rhs, nodes, check: NetworkCheck):
    """``u v`` (a matrix product of two vectors, or a scaling) where ``u \\odot v`` was meant."""
    claim = check.claim
    for path, node in nodes:
        if isinstance(node, C.MatMul):
            left, right = _factor_text(claim, node.left), _factor_text(claim, node.right)
            if isinstance(node.left, C.MatMul):
                left = f"({left})"
            yield (f"vectors multiplied side by side: {claim.source(node)} is a matrix "
                   f"product, but the elementwise product {left} \\odot {right} was meant",
                   C.replace_at(rhs, path, C.Hadamard(node.left, node.right)))


def _sign_slips(rhs, nodes, check: NetworkCheck):
    """One term of a sum with the wrong sign: ``u - v`` for ``u + v`` and back, ``-u`` for ``u``."""
    claim = check.claim
    for path, node in nodes:
        if isinstance(node, (C.Add, C.Sub)):
            flipped = (C.Sub if isinstance(node, C.Add) else C.Add)(node.left, node.right)
            sign = "+" if isinstance(node, C.Sub) else "-"
            yield (f"a sign slip in one term: {_factor_text(claim, node.right)} enters "
                   f"{claim.source(node)} with the wrong sign; it should be "
                   f"{sign} {_factor_text(claim, node.right)}",
                   C.replace_at(rhs, path, flipped))
            if not isinstance(node.left, (C.Add, C.Sub, C.Neg)):  # the first term
                yield (f"a sign slip in one term: {_factor_text(claim, node.left)} should be "
                       f"-{_factor_text(claim, node.left)}",
                       C.replace_at(rhs, path + ("left",), C.Neg(node.left)))
        elif isinstance(node, C.Neg) and path:
            yield (f"a sign slip in one term: {claim.source(node)} should be "
                   f"{_factor_text(claim, node.arg)}", C.replace_at(rhs, path, node.arg))


def _operand_order(rhs, nodes, check: NetworkCheck):
    for path, node in nodes:
        if isinstance(node, C.MatMul):
            yield (f"the factors of {check.claim.source(node)} are in the wrong order",
                   C.replace_at(rhs, path, C.MatMul(node.right, node.left)))


def _missing_decay(rhs, nodes, check: NetworkCheck):
    """``\\lambda W^{(l)}`` missing from a weight gradient of a network with weight decay."""
    if check.target.kind == "dW" and check.ctx.network.training["weight_decay"] and (
            check.batch or check.objective):
        weight = C.Leaf("W", check.target.layer)
        yield ("the weight-decay term is missing: the objective adds "
               "\\frac{\\lambda}{2} \\sum \\|W\\|^2, so \\partial L/\\partial W^{(l)} has "
               "a term \\lambda W^{(l)}",
               C.Add(rhs, C.MatMul(C.Leaf("lambda", None), weight)))


def _dropout_scale(rhs, nodes, check: NetworkCheck):
    """A dropout mask without the ``1/(1-p)`` of inverted dropout."""
    for path, node in nodes:
        if isinstance(node, C.Leaf) and node.name == "mask" and node.layer is not None:
            rate = C.Leaf("p", node.layer)
            scaled = C.Div(node, C.Sub(C.Num(Fraction(1)), rate))
            yield ("dropout's missing 1/(1-p): inverted dropout divides the kept units by "
                   "1 - p in the forward pass (a = m \\odot a_{prev} / (1-p)), so the "
                   f"gradient is {claim_text(check, node)} / (1-p) too",
                   C.replace_at(rhs, path, scaled))


def _bessel(rhs, nodes, check: NetworkCheck):
    """``1/(n-1)`` (or ``1/(B-1)``) where the norm's biased variance has ``1/n``."""
    for path, node in nodes:
        if isinstance(node, C.Sub) and isinstance(node.right, C.Num) and \
                node.right.value == 1 and isinstance(node.left, C.Leaf) and \
                node.left.name in ("n", "B"):
            yield ("Bessel's n-1 where the biased variance is used: the norm's \\sigma^{2} "
                   "is the mean of the squared deviations (1/n, as torch's normalisation in "
                   f"training), so {claim_text(check, node)} should be "
                   f"{claim_text(check, node.left)}", C.replace_at(rhs, path, node.left))


def _missing_eps(rhs, nodes, check: NetworkCheck):
    """``\\sqrt{\\sigma^2}`` where the norm divides by ``\\sqrt{\\sigma^2 + \\epsilon}``."""
    for path, node in nodes:
        if isinstance(node, C.Leaf) and node.name in ("sigma2", "sigma") and node.layer and \
                not isinstance(_parent(rhs, path), C.Add):
            with_eps = C.Add(node, C.Leaf("eps", node.layer))
            if node.name == "sigma":
                with_eps = C.Apply(C.Func("sqrt"), C.Add(C.Power(node, 2), C.Leaf(
                    "eps", node.layer)))
            yield ("the normalisation's \\epsilon is missing: the layer divides by "
                   "\\sqrt{\\sigma^{2} + \\epsilon}", C.replace_at(rhs, path, with_eps))


def _wrong_axis(rhs, nodes, check: NetworkCheck):
    """A batch norm's mean taken over the features (``X \\mathbf{1} / n``) instead of over the
    batch (``\\frac{1}{B} \\mathbf{1}^T X``), or a layer norm's the other way round."""
    norms = {check.ctx.layer_type(m): m for m in range(1, check.depth + 1)
             if check.ctx.layer_type(m) in ("batch_norm", "layer_norm")}
    if not check.batch or not norms:
        return
    for path, node in nodes:
        if "batch_norm" in norms and isinstance(node, C.MatMul) and isinstance(
                node.right, C.Ones):
            yield ("the mean over the wrong axis: batch norm averages each feature over the "
                   "B samples of the batch (\\frac{1}{B} \\mathbf{1}^T X), not each sample "
                   "over its features", _swap_sizes(C.replace_at(
                       rhs, path, C.MatMul(C.Transpose(C.Ones()), node.left)), "B"))
        if "layer_norm" in norms and isinstance(node, C.MatMul) and isinstance(
                node.left, C.Transpose) and isinstance(node.left.arg, C.Ones):
            width = C.LayerRef(None, norms["layer_norm"])
            yield ("the mean over the wrong axis: layer norm averages each sample over its "
                   "n features (\\frac{1}{n} X \\mathbf{1}), not each feature over the batch",
                   _swap_sizes(C.replace_at(rhs, path, C.MatMul(node.right, C.Ones())), width))


def _swap_sizes(node, to):
    """Every ``n_l`` (``to == "B"``) or ``B`` (``to`` a width's layer) of ``node`` swapped."""
    if isinstance(node, C.Leaf):
        if to == "B" and node.name == "n":
            return C.Leaf("B", None, span=node.span)
        if to != "B" and node.name == "B":
            return C.Leaf("n", to, span=node.span)
        return node
    changes = {name: _swap_sizes(child, to) for name, child in C.children(node)}
    return replace(node, **changes) if changes else node


def _unnormalised(rhs, nodes, check: NetworkCheck):
    """A norm's input ``a^{(k-1)}`` where its normalised input ``\\hat{x}^{(k)}`` belongs."""
    norms = [m for m in range(1, check.depth + 1)
             if check.ctx.layer_type(m) in ("batch_norm", "layer_norm")]
    l_value = check.bindings[0][0]
    for path, node in nodes:
        if not (isinstance(node, C.Leaf) and node.name == "a" and node.layer is not None):
            continue
        try:
            layer = node.layer.resolve(l_value, check.depth)
        except ValueError:
            continue
        if layer + 1 in norms:
            xhat = C.Leaf("xhat", node.layer.shifted(1), node.batch)
            yield (f"the unnormalised input {claim_text(check, node)} where the normalised "
                   f"{C.leaf_latex(_named(xhat))} belongs (layer {layer + 1} is a "
                   f"{check.ctx.layer_type(layer + 1)})", C.replace_at(rhs, path, xhat))


def _missing_factor(rhs, nodes, check: NetworkCheck):
    """A factor of the op's own quantities missing (``\\hat{x}``, ``\\gamma``, the mask)."""
    layers = {node.layer for _, node in nodes if isinstance(node, C.Leaf) and node.layer}
    layers |= {node.target.layer for _, node in nodes if isinstance(node, C.Grad)}
    layers.add(check.target.layer)
    l_value = check.bindings[0][0]
    for ref in sorted(layers, key=lambda r: (r.var or "", r.offset)):
        try:
            layer = ref.resolve(l_value, check.depth)
        except ValueError:
            continue
        for letter in ("xhat", "gamma", "mask"):
            if 1 <= layer <= check.depth and check.ctx.truth.has(letter, layer):
                factor = C.Leaf(letter, ref, check.batch and letter != "gamma")
                yield (f"a missing factor {C.leaf_latex(_named(factor))}",
                       C.Hadamard(rhs, factor))


def _named(leaf: C.Leaf) -> C.Leaf:
    latex = {"xhat": "\\hat{X}" if leaf.batch else "\\hat{x}", "gamma": "\\gamma",
             "mask": "M" if leaf.batch else "m"}[leaf.name]
    return replace(leaf, name=latex)


def _has_leaf(node, name: str) -> bool:
    return any(isinstance(item, C.Leaf) and item.name == name for _, item in C.walk(node))


def claim_text(check: NetworkCheck, node) -> str:
    return check.claim.source(node) or C.to_latex(node)


CATALOGUE = (_bessel, _extra_terms, _transposes, _layer_indices, _activation_derivatives,
             _softmax_diagonal, _hand_derivatives, _missing_fprime, _extra_factors,
             _side_by_side, _sign_slips, _missing_decay, _dropout_scale, _missing_eps, _wrong_axis,
             _unnormalised, _missing_factor, _operand_order)


def _product(factors: list):
    product = factors[0]
    for factor in factors[1:]:
        product = C.Hadamard(product, factor)
    return product


def _parent(root, path):
    if not path:
        return None
    node = root
    for name in path[:-1]:
        node = getattr(node, name)
    return node


def _is_bias(node) -> bool:
    while isinstance(node, (C.Neg, C.Transpose)):
        node = node.arg
    return isinstance(node, C.Leaf) and node.name == "b"


def _layer_text(arg) -> str:
    for _, node in C.walk(arg):
        if isinstance(node, C.Leaf) and node.layer is not None:
            return node.layer.label
    return "l"


def _activations_text(check: NetworkCheck, arg: C.Node, exclude: str | None = None) -> str:
    """'layer 1 is tanh' for the layers whose activation f applied to ``arg`` is."""
    names = {name: layers for name, layers in _layer_activations(check, arg).items()
             if name != exclude}
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


def _hand_variants(rhs, path, node, check: NetworkCheck):
    """Replace the factors of an elementwise product that only involve a^{(m)}, z^{(m)}
    by f_m'(z^{(m)}): a derivative written out by hand, for the wrong activation or with
    a wrong formula for the right one."""
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
        z = C.Leaf("z", ref, batch)
        generic = C.Apply(C.Func("generic", 1), z)
        text = " \\odot ".join(_factor_text(claim, h) for h in hand)
        yield (_hand_description(check, hand, text, z, ref),
               C.replace_at(rhs, path, _product(rest + [generic])))


def _hand_description(check: NetworkCheck, hand: list, text: str, z: C.Leaf, ref) -> str:
    """Which mistake a hand-written derivative is: another activation's derivative, or
    the layer's own activation with a wrong formula (named with the engine's f')."""
    use = f"use f_{{{ref.label}}}'(z^{{({ref.label})}})"
    which = _which_derivative(hand)
    own = {name: layers for name, layers in _layer_activations(check, z).items()
           if not _activation(check, layers[0]).is_softmax}  # softmax: _softmax_diagonal's
    if which is not None and which not in own:
        return (f"derivative of the wrong activation: {text} is the derivative of {which} "
                f"(written with a = {which}(z)), but {_activations_text(check, z, which)}; "
                f"{use}")
    if len(own) == 1 and _functions_used(hand) <= set(own):
        (name, _), = own.items()
        return (f"wrong derivative formula for {name}: "
                f"{derivative_latex(_activation(check, own[name][0]))}, "
                f"not {text}; {use}")
    if which is not None:  # right at some layers, another activation at the others
        return (f"derivative of the wrong activation: {text} is the derivative of {which} "
                f"(written with a = {which}(z)), but {_activations_text(check, z, which)}; "
                f"{use}")
    truths = "".join(f": {derivative_latex(_activation(check, layers[0]))}"
                     for layers in own.values())
    return (f"wrong derivative: {text} is not the derivative of the layer's activation "
            f"({_activations_text(check, z)}{truths}); {use}")


def _layer_activations(check: NetworkCheck, arg: C.Node) -> dict:
    """``{activation name: [layers]}`` of the layers whose activation f applied to ``arg``
    is, over the claim's bindings."""
    names = {}
    for l_value, _ in check.bindings:
        try:
            activation, layer = check.function_of(
                C.Apply(C.Func("generic", 1), arg, span=arg.span), l_value, None)
        except (C.ClaimParseError, LayerError):
            continue
        names.setdefault(activation.name, []).append(layer)
    return names


def _activation(check: NetworkCheck, layer: int):
    return check.ctx.activation(layer)


def _functions_used(hand: list) -> set:
    """The activations a hand-written factor names; ``a`` is the layer's own (None)."""
    used = set()
    for factor in hand:
        for _, item in C.walk(factor):
            if isinstance(item, C.Apply):
                used.add(item.func.name)
    return used - set(MATH_FUNCTIONS) if used else used


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
                got = numeric((x_symbol(),), expr)(points) * np.ones_like(points)
                want = numeric((x_symbol(),), function_derivative(
                    name, activation.expr, 1))(points) * np.ones_like(points)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            continue
        if np.allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=1e-9):
            return name
    return None


def _hand_sympy(node, forward: sp.Expr) -> sp.Expr:
    """A hand-written factor as a function of z, with a = forward(z)."""
    from symbp.registry import BUILTIN_ACTIVATIONS

    x = x_symbol()
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
        expr = function.expr if function is not None else MATH_FUNCTIONS[node.func.name](x)
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
