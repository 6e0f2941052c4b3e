"""The likely mistake of a wrong claim, found by testing variants.

Contract: :func:`likely_mistakes` returns up to three descriptions of the
usual mistakes whose correction makes the claim agree with the truth at
every point: a constant factor read off the values (a sign, a 2, ``1/B``,
dropout's ``1/(1-p)``), a path of the engine's gradient the claim lacks (a
norm's ``μ`` or ``σ²`` path, a residual's identity path, the weight decay),
then the rewritten claims of :data:`CATALOGUE`
(:mod:`symbp.verify.rewrites`, :mod:`symbp.verify.op_rewrites`), each decided
like the claim itself (a :class:`~symbp.verify.rewrites.Layerwise` variant, one tree on
some layers and another on the rest, e.g. ``\\odot f'(z)`` and a softmax layer's Jacobian,
part by part on its layers). :func:`likely_scalar_mistakes` does the same for a scalar
identity with :data:`~symbp.verify.rewrites.SCALAR_CATALOGUE`, each variant tested against
sympy.diff of the left-hand side (:mod:`symbp.verify.scalar`). A description names what is
wrong only when its variant matches; no mistake is named from the claim's form alone.
"""
from __future__ import annotations

import copy
import itertools
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from symbp import claims as C
from symbp.errors import SymbpError
from symbp.verify.context import close
from symbp.verify.op_rewrites import (
    bessel,
    dropout_scale,
    missing_decay,
    missing_eps,
    missing_factor,
    unnormalised,
    wrong_axis,
)
from symbp.verify.rewrites import (
    SCALAR_CATALOGUE,
    Layerwise,
    activation_derivatives,
    extra_factors,
    extra_terms,
    hand_derivatives,
    layer_indices,
    missing_fprime,
    operand_order,
    pre_activations,
    side_by_side,
    sign_slips,
    softmax_diagonal,
    transposes,
)
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
        if _holds(check, variant):
            found.append(description)
        if len(found) >= 3:
            break
    return found


def _holds(check: NetworkCheck, variant) -> bool:
    """Does the variant agree with the truth at every point (a :class:`Layerwise` one: each
    part on its layers)?"""
    parts = variant.parts if isinstance(variant, Layerwise) else ((check.bindings, variant),)
    for bindings, rhs in parts:
        part = copy.copy(check)
        part.bindings = list(bindings)
        try:  # one point first (cheap), then every point, as for the claim itself
            if not part.evaluate(rhs, quick=True, stop_early=True).ok or \
                    not part.evaluate(rhs, stop_early=True).ok:
                return False
        except (C.ClaimParseError, SymbpError):
            return False
    return True


def likely_scalar_mistakes(claim: C.Claim, lhs, rhs, holds) -> list[str]:
    """Up to three descriptions of mistakes in the scalar identity ``lhs = rhs`` (trees of
    ``claim``) whose correction makes it true; ``holds(variant)`` decides a rewritten
    right-hand side."""
    nodes = list(C.walk(rhs))
    candidates = (item for family in SCALAR_CATALOGUE for item in family(rhs, nodes, claim, lhs))
    found = []
    for description, variant in itertools.islice(candidates, MAX_VARIANTS):
        if description not in found and holds(variant):
            found.append(description)
            if len(found) >= 3:
                break
    return found


def _ratio(check: NetworkCheck, outcome: Outcome) -> str | None:
    """``claim = c * truth`` at every point: a sign or a factor (one constant c), or the
    batch size (c = B or 1/B at each point, whose batches differ in size)."""
    ratios = _point_ratios(outcome)
    if ratios is None:
        return None
    if all(abs(c - 1.0 / B) < 1e-9 for c, B in ratios):
        return _extra_one_over_b(check)
    if all(abs(c - B) < 1e-6 * B for c, B in ratios):
        return _extra_b(check)
    c = ratios[0][0]
    if not np.allclose([r for r, _ in ratios], c, rtol=1e-6):
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
    return f"the claim is {sp.nsimplify(c, tolerance=1e-6, rational=True)} times the truth"


def _point_ratios(outcome: Outcome) -> list | None:
    """``(c, B)`` at each point where the claim is ``c`` times the truth, else None."""
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
        ratios.append((c, point.inst.B))
    return ratios


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


CATALOGUE = (bessel, extra_terms, transposes, layer_indices, activation_derivatives,
             softmax_diagonal, hand_derivatives, missing_fprime, extra_factors,
             side_by_side, sign_slips, missing_decay, dropout_scale, missing_eps, wrong_axis,
             unnormalised, missing_factor, pre_activations, operand_order)
