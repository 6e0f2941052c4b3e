"""Rewrites of a claim for the usual mistakes about the other ops of the graph engine.

Contract: the families of :mod:`symbp.verify.rewrites`' kind for layer norm, batch norm,
dropout and weight decay: the weight-decay term missing, dropout's missing ``1/(1-p)``,
Bessel's ``n-1`` where the biased variance is used, the normalisation's missing
``\\epsilon``, the mean over the wrong axis, the unnormalised input where ``\\hat{x}``
belongs, a missing factor of the op's own quantities. A missing path (a norm's ``μ`` or
``σ²`` path, a residual's identity path) is found on the values, by
:mod:`symbp.verify.mistakes`.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import TYPE_CHECKING

from symbp import claims as C
from symbp.verify.rewrites import claim_text, parent

if TYPE_CHECKING:
    from symbp.verify.decide import NetworkCheck


def missing_decay(rhs, nodes, check: NetworkCheck):
    """``\\lambda W^{(l)}`` missing from a weight gradient of a network with weight decay."""
    if check.target.kind == "dW" and check.ctx.network.training["weight_decay"] and (
            check.batch or check.objective):
        weight = C.Leaf("W", check.target.layer)
        yield ("the weight-decay term is missing: the objective adds "
               "\\frac{\\lambda}{2} \\sum \\|W\\|^2, so \\partial L/\\partial W^{(l)} has "
               "a term \\lambda W^{(l)}",
               C.Add(rhs, C.MatMul(C.Leaf("lambda", None), weight)))


def dropout_scale(rhs, nodes, check: NetworkCheck):
    """A dropout mask without the ``1/(1-p)`` of inverted dropout."""
    for path, node in nodes:
        if isinstance(node, C.Leaf) and node.name == "mask" and node.layer is not None:
            rate = C.Leaf("p", node.layer)
            scaled = C.Div(node, C.Sub(C.Num(Fraction(1)), rate))
            yield ("dropout's missing 1/(1-p): inverted dropout divides the kept units by "
                   "1 - p in the forward pass (a = m \\odot a_{prev} / (1-p)), so the "
                   f"gradient is {claim_text(check, node)} / (1-p) too",
                   C.replace_at(rhs, path, scaled))


def bessel(rhs, nodes, check: NetworkCheck):
    """``1/(n-1)`` (or ``1/(B-1)``) where the norm's biased variance has ``1/n``."""
    for path, node in nodes:
        if isinstance(node, C.Sub) and isinstance(node.right, C.Num) and \
                node.right.value == 1 and isinstance(node.left, C.Leaf) and \
                node.left.name in ("n", "B"):
            yield ("Bessel's n-1 where the biased variance is used: the norm's \\sigma^{2} "
                   "is the mean of the squared deviations (1/n, as torch's normalisation in "
                   f"training), so {claim_text(check, node)} should be "
                   f"{claim_text(check, node.left)}", C.replace_at(rhs, path, node.left))


def missing_eps(rhs, nodes, check: NetworkCheck):
    """``\\sqrt{\\sigma^2}`` where the norm divides by ``\\sqrt{\\sigma^2 + \\epsilon}``."""
    for path, node in nodes:
        if isinstance(node, C.Leaf) and node.name in ("sigma2", "sigma") and node.layer and \
                not isinstance(parent(rhs, path), C.Add):
            with_eps = C.Add(node, C.Leaf("eps", node.layer))
            if node.name == "sigma":
                with_eps = C.Apply(C.Func("sqrt"), C.Add(C.Power(node, 2), C.Leaf(
                    "eps", node.layer)))
            yield ("the normalisation's \\epsilon is missing: the layer divides by "
                   "\\sqrt{\\sigma^{2} + \\epsilon}", C.replace_at(rhs, path, with_eps))


def wrong_axis(rhs, nodes, check: NetworkCheck):
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


def unnormalised(rhs, nodes, check: NetworkCheck):
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


def missing_factor(rhs, nodes, check: NetworkCheck):
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
