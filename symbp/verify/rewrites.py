"""Rewrites of a claim for the usual mistakes in the backpropagation of dense networks.

Contract: each family ``f(rhs, nodes, check)`` yields ``(description, variant)``: the
claim's right-hand side ``rhs`` (``nodes`` its :func:`~symbp.claims.walk`) rewritten as if
one usual mistake were undone, and what that mistake is, in the claim's own terms; the
search (:mod:`symbp.verify.mistakes`) names a description only when its variant agrees
with the truth. The families: an extra term (a bias in the recursion), a missing or extra
transpose, a wrong layer index, the derivative of the wrong activation, ``f'`` taken at
``a`` instead of ``z``, softmax's Jacobian treated as diagonal, a derivative written out
by hand for another activation or with a wrong formula for the layer's own one (named with
the engine's ``f'``), a missing ``f'`` (at a softmax layer its Jacobian: a
:class:`Layerwise` variant), an extra factor, vectors multiplied side by side
where ``\\odot`` was meant, a sign slip in one term, factors in the wrong order.
:data:`SCALAR_CATALOGUE`'s families ``f(rhs, nodes, claim, lhs)`` rewrite a scalar identity
(:mod:`symbp.verify.scalar`): a sign slip in a term or a function's argument, the product
rule's dropped factor or term, the chain rule's missing inner derivative, an extra term; a
missing derivative is written as ``\\frac{d}{dx}`` of the user's own factor, which SymPy
differentiates. The small helpers on claims' trees are shared with
:mod:`symbp.verify.op_rewrites`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from symbp import claims as C
from symbp.verify.functions import (
    MATH_FUNCTIONS,
    derivative_latex,
    function_derivative,
    numeric,
    x_symbol,
)
from symbp.verify.shapes import LayerError

if TYPE_CHECKING:
    from symbp.verify.decide import NetworkCheck


def extra_terms(rhs, nodes, check: NetworkCheck):
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
                elif has_leaf(drop, "lambda") and check.target.kind == "dW" and \
                        not check.batch and not check.objective:
                    why = (f"weight decay in a sample's loss: remove {text}. The weight "
                           "decay \\frac{\\lambda}{2} \\sum \\|W\\|^2 is part of the "
                           "objective (L or J), not of the sample's loss \\ell; it is in "
                           "\\partial L/\\partial W^{(l)} = (\\Delta^{(l)})^T A^{(l-1)} + "
                           "\\lambda W^{(l)}")
                elif has_leaf(drop, "lambda") and check.target.kind in ("db", "dgamma",
                                                                          "dbeta"):
                    why = (f"weight decay on the biases: remove {text}. The weight decay "
                           "\\frac{\\lambda}{2} \\sum \\|W\\|^2 covers the weights of dense "
                           "layers only, not biases or gains")
                else:
                    why = f"an extra term: without {text} the claim is correct"
                yield why, C.replace_at(rhs, path, keep)


def transposes(rhs, nodes, check: NetworkCheck):
    claim = check.claim
    for path, node in nodes:
        if isinstance(node, C.Transpose):
            yield (f"an extra transpose: {claim.source(node)} should be "
                   f"{claim.source(node.arg)}", C.replace_at(rhs, path, node.arg))
        elif isinstance(node, C.Leaf) and node.name != "B":
            above = parent(rhs, path)
            if node.name == "W" or isinstance(above, C.MatMul):
                yield (f"missing transpose: {claim.source(node)} should be "
                       f"({claim.source(node)})^T", C.replace_at(rhs, path, C.Transpose(node)))
    if check.target.kind == "dW":
        yield ("transposed outer product: dL/dW^{(l)} has the shape of W^{(l)} "
               "(n_l x n_{l-1}), so it is \\delta^{(l)} (a^{(l-1)})^T, not its transpose",
               C.Transpose(rhs))
    else:
        yield "the result is transposed", C.Transpose(rhs)


def layer_indices(rhs, nodes, check: NetworkCheck):
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


def activation_derivatives(rhs, nodes, check: NetworkCheck):
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
                label, written = node.arg.layer.label, claim.source(node.arg)
                yield (f"f' taken at a^{{({label})}} instead of z^{{({label})}}"
                       + (f" (written {written})" if written != C.leaf_latex(node.arg) else ""),
                       C.replace_at(rhs, path, at_z))


def softmax_diagonal(rhs, nodes, check: NetworkCheck):
    """An elementwise factor standing for a softmax layer's derivative: ``f'(z^{(L)})``,
    ``\\sigma'(z^{(L)})`` or ``a^{(L)} \\odot (1 - a^{(L)})`` replaced by the Jacobian."""
    claim = check.claim
    for path, node in nodes:
        if not isinstance(node, C.Hadamard) or isinstance(parent(rhs, path), C.Hadamard):
            continue
        factors = _hadamard_factors(node)
        for ref, batch, stand_in in _softmax_factors(factors, check):
            rest = [f for f in factors if all(f is not s for s in stand_in)]
            if not rest:
                continue
            jacobian = C.Apply(C.Func("softmax", 1), C.Leaf("z", ref, batch))
            text = " \\odot ".join(factor_text(claim, s) for s in stand_in)
            yield (f"softmax's Jacobian treated as diagonal: layer {ref.label} is softmax, "
                   f"whose derivative is a full Jacobian matrix (each output depends on every "
                   f"z^{{({ref.label})}}_j), not the elementwise factor {text}; the delta is "
                   f"the Jacobian (transposed) times the gradient",
                   C.replace_at(rhs, path, C.MatMul(jacobian, product(rest))))


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


def _is_softmax_layer(check: NetworkCheck, ref: C.LayerRef, bindings=None) -> bool:
    for l_value, _ in check.bindings if bindings is None else bindings:
        try:
            layer = ref.resolve(l_value, check.depth)
        except ValueError:
            return False
        if not 1 <= layer <= check.depth or not check.ctx.has_activation(layer) or \
                not check.ctx.activation(layer).is_softmax:
            return False
    return True


def hand_derivatives(rhs, nodes, check: NetworkCheck):
    for path, node in nodes:  # derivatives written out by hand, e.g. a (1 - a)
        if isinstance(node, C.Hadamard) and not isinstance(parent(rhs, path), C.Hadamard):
            yield from _hand_variants(rhs, path, node, check)


@dataclass(frozen=True)
class Layerwise:
    """A variant that is one tree on some of the claim's layers and another on the rest:
    ``parts`` are ``(bindings, rhs)`` pairs (bindings as :attr:`NetworkCheck.bindings`)."""

    parts: tuple


def missing_fprime(rhs, nodes, check: NetworkCheck):
    """``f'`` left out of a delta (or of a bias gradient, which is the delta): the factor
    ``\\odot f'(z)``, and at a softmax layer its Jacobian (transposed) times the claim."""
    target = check.target
    if target.kind not in ("delta", "db") or (target.kind == "db" and check.batch):
        return
    ref = target.layer
    generic = C.Apply(C.Func("generic", 1), C.Leaf("z", ref, target.batch))
    text = (f"missing the factor f_{{{ref.label}}}'(z^{{({ref.label})}}): "
            f"\\delta^{{({ref.label})}} = \\partial\\ell/\\partial z^{{({ref.label})}} needs "
            f"the derivative of the activation")
    softmax = [b for b in check.bindings if _is_softmax_layer(check, ref, [b])]
    if not softmax:
        yield text, C.Hadamard(rhs, generic)
        return
    layers = ", ".join(str(layer) for _, layer in softmax)
    jacobian = C.MatMul(C.Transpose(generic), rhs)
    rest = [b for b in check.bindings if b not in softmax]
    parts = ((tuple(rest), C.Hadamard(rhs, generic)),) if rest else ()
    yield (f"{text} (at the softmax layer {layers}: its Jacobian, transposed, times the "
           "gradient)", Layerwise(parts + ((tuple(softmax), jacobian),)))


def pre_activations(rhs, nodes, check: NetworkCheck):
    """``z^{(m)}`` where the activation ``a^{(m)} = f_m(z^{(m)})`` belongs, and back."""
    claim = check.claim
    for path, node in nodes:
        if isinstance(node, C.Leaf) and node.name in ("z", "a") and node.layer is not None:
            other = C.Leaf("a" if node.name == "z" else "z", node.layer, node.batch)
            what = ("the pre-activation {0} where the activation {1} = f(z) belongs"
                    if node.name == "z" else "the activation {0} where the pre-activation "
                    "{1} belongs")
            mine, written = C.leaf_latex(node), claim.source(node)
            if written and written != mine:
                mine += f" (written {written})"
            yield (what.format(mine, C.leaf_latex(other)), C.replace_at(rhs, path, other))


def extra_factors(rhs, nodes, check: NetworkCheck):
    claim, target = check.claim, check.target
    for path, node in nodes:
        if isinstance(node, C.Hadamard):
            for keep, drop in ((node.left, node.right), (node.right, node.left)):
                extra = f"an extra factor {factor_text(claim, drop)}"
                if target.kind == "delta" and target.layer.var == "L" and isinstance(
                        drop, C.Apply) and drop.func.order:
                    extra += (f": with {check.ctx.network.loss} and a "
                              f"{check.ctx.network.layers[-1].activation} output, "
                              "\\partial\\ell/\\partial z^{(L)} already includes the "
                              "activation's derivative")
                yield extra, C.replace_at(rhs, path, keep)


def side_by_side(rhs, nodes, check: NetworkCheck):
    """``u v`` (a matrix product of two vectors, or a scaling) where ``u \\odot v`` was meant."""
    claim = check.claim
    for path, node in nodes:
        if isinstance(node, C.MatMul):
            left, right = factor_text(claim, node.left), factor_text(claim, node.right)
            if isinstance(node.left, C.MatMul):
                left = f"({left})"
            yield (f"vectors multiplied side by side: {claim.source(node)} is a matrix "
                   f"product, but the elementwise product {left} \\odot {right} was meant",
                   C.replace_at(rhs, path, C.Hadamard(node.left, node.right)))


def sign_slips(rhs, nodes, check: NetworkCheck):
    """One term of a sum with the wrong sign: ``u - v`` for ``u + v`` and back, ``-u`` for ``u``."""
    yield from _term_sign_slips(rhs, nodes, check.claim)


def _term_sign_slips(rhs, nodes, claim: C.Claim):
    for path, node in nodes:
        if isinstance(node, (C.Add, C.Sub)):
            flipped = (C.Sub if isinstance(node, C.Add) else C.Add)(node.left, node.right)
            sign = "+" if isinstance(node, C.Sub) else "-"
            yield (f"a sign slip in one term: {factor_text(claim, node.right)} enters "
                   f"{claim.source(node)} with the wrong sign; it should be "
                   f"{sign} {factor_text(claim, node.right)}",
                   C.replace_at(rhs, path, flipped))
            if not isinstance(node.left, (C.Add, C.Sub, C.Neg)):  # the first term
                yield (f"a sign slip in one term: {factor_text(claim, node.left)} should be "
                       f"-{factor_text(claim, node.left)}",
                       C.replace_at(rhs, path + ("left",), C.Neg(node.left)))
        elif isinstance(node, C.Neg) and path:
            yield (f"a sign slip in one term: {claim.source(node)} should be "
                   f"{factor_text(claim, node.arg)}", C.replace_at(rhs, path, node.arg))


def swapped_indices(claim: C.Claim):
    """A weight's gradient in components with its two index letters exchanged on the right
    (Wikipedia's ``o_j \\delta_i`` for ``o_i \\delta_j``): ``(description, claim)`` with the
    right-hand side's letters swapped back, for the caller to read in the claim's
    convention (a letter there may name a unit's layer) and decide."""
    lhs = claim.lhs
    if not isinstance(lhs, C.Indexed) or len(lhs.indices) != 2:
        return
    p, q = lhs.indices
    if p == q or not all(isinstance(i, str) and len(i) == 1 for i in (p, q)):
        return
    swap = {p: q, q: p}

    def flip(node):
        node = C.map_children(node, flip)
        if isinstance(node, C.Indexed):
            return replace(node, indices=tuple(swap.get(i, i) if isinstance(i, str) else i
                                               for i in node.indices))
        return node

    sides = tuple(flip(side) for side in claim.sides[1:])
    if sides == claim.sides[1:]:
        return
    written = claim.source(claim.sides[1])
    yield (f"swapped indices: {written} should be {_swapped_text(claim, swap)} (the "
           f"transposed outer product: {p} and {q} exchanged)", C.Claim((lhs,) + sides,
                                                                       claim.text))


def _swapped_text(claim: C.Claim, swap: dict) -> str:
    """The right-hand side's text with the letters of ``swap`` exchanged in its subscripts."""
    rhs = claim.sides[1]
    start, end = rhs.span
    edits = []
    for _, node in C.walk(rhs):
        if isinstance(node, C.Indexed) and node.span[1] > node.span[0]:
            text = claim.text[node.span[0]:node.span[1]]
            at = text.rfind("_")
            if at >= 0:
                edits.append((node.span[0] + at, node.span[1]))
    text = list(claim.text)
    for a, b in edits:
        for n in range(a, b):
            text[n] = swap.get(text[n], text[n])
    return " ".join("".join(text[start:end]).split())


# ------------------------------------------------- scalar identities (no network)
def scalar_sign_slips(rhs, nodes, claim: C.Claim, lhs):
    """A term with the wrong sign; a function's argument with the wrong sign (``e^{x}`` for
    ``e^{-x}``: ``\\frac{1}{1 + e^{x}}`` is ``\\sigma(-x)``, not ``\\sigma(x)``)."""
    yield from _term_sign_slips(rhs, nodes, claim)
    for path, node in nodes:
        if not isinstance(node, C.Apply) or isinstance(node.arg, C.Num):
            continue
        flipped = node.arg.arg if isinstance(node.arg, C.Neg) else C.Neg(node.arg)
        where = "the exponent" if node.func.name == "exp" else "the argument"
        yield (f"a sign slip in {where}: {claim.source(node)} should be "
               f"{_with_arg(claim, node, flipped)}",
               C.replace_at(rhs, path, replace(node, arg=flipped)))


def product_rule(rhs, nodes, claim: C.Claim, lhs):
    """``\\frac{d}{dx}(u v) = u' v + u v'`` with a factor dropped from one term, or a term
    left out (the variant writes it as ``\\frac{d}{dx}`` of the factor: SymPy differentiates)."""
    if not isinstance(lhs, C.Deriv) or not isinstance(lhs.arg, (C.MatMul, C.Hadamard)):
        return
    factors = [f for f in _product_factors(lhs.arg) if not isinstance(f, C.Num)]
    rule = "the product rule: \\frac{d}{dx}(u v) = u' v + u v'"
    for path, term in _terms(rhs):
        for factor in factors:
            yield (f"{rule}; the term {factor_text(claim, term)} is missing the factor "
                   f"{factor_text(claim, factor)}: it should be {factor_text(claim, factor)} "
                   f"{factor_text(claim, term)}",
                   C.replace_at(rhs, path, C.MatMul(factor, term)))
    for at, factor in enumerate(factors):
        others = factors[:at] + factors[at + 1:]
        term = product(others + [C.Deriv(lhs.var, factor)]) if others else None
        if term is not None:
            text = " ".join(factor_text(claim, f) for f in others)
            yield (f"{rule}; the term {text} \\frac{{d}}{{d{lhs.var}}} "
                   f"{factor_text(claim, factor)} is missing", C.Add(rhs, term))


def chain_rule(rhs, nodes, claim: C.Claim, lhs):
    """``\\frac{d}{dx} f(g(x)) = f'(g(x)) g'(x)`` without the inner derivative ``g'(x)``."""
    if isinstance(lhs, C.Deriv) and isinstance(lhs.arg, C.Apply) and \
            not isinstance(lhs.arg.arg, (C.Leaf, C.Num)):
        inner = lhs.arg.arg
        yield (f"the chain rule's inner derivative is missing: "
               f"\\frac{{d}}{{d{lhs.var}}} f(g) = f'(g) \\frac{{dg}}{{d{lhs.var}}}, with g = "
               f"{claim.source(inner)}", C.MatMul(rhs, C.Deriv(lhs.var, inner)))


def scalar_extra_terms(rhs, nodes, claim: C.Claim, lhs):
    for path, node in nodes:
        if isinstance(node, (C.Add, C.Sub)):
            for keep, drop in ((node.left, node.right), (node.right, node.left)):
                if isinstance(node, C.Sub) and keep is node.right:
                    keep = C.Neg(keep, span=keep.span)
                yield (f"an extra term: without {claim.source(drop)} the claim is correct",
                       C.replace_at(rhs, path, keep))


SCALAR_CATALOGUE = (scalar_sign_slips, product_rule, chain_rule, scalar_extra_terms)


def _terms(node, path=()):
    """``(path, term)`` of the terms of a sum (the node itself when it is no sum)."""
    if isinstance(node, (C.Add, C.Sub)):
        yield from _terms(node.left, path + ("left",))
        yield from _terms(node.right, path + ("right",))
    elif isinstance(node, C.Neg):
        yield from _terms(node.arg, path + ("arg",))
    else:
        yield path, node


def _product_factors(node) -> list:
    if isinstance(node, (C.MatMul, C.Hadamard)):
        return _product_factors(node.left) + _product_factors(node.right)
    return [node]


def _with_arg(claim: C.Claim, node: C.Apply, arg) -> str:
    """The user's text of ``node`` with its argument replaced by ``arg``."""
    text, (start, end), (a_start, a_end) = claim.text, node.span, node.arg.span
    if not (start <= a_start <= a_end <= end) or a_end <= a_start:
        return C.to_latex(replace(node, arg=arg))
    if isinstance(arg, C.Neg):
        inner = claim.source(node.arg)
        written = f"-{inner}" if isinstance(node.arg, (C.Leaf, C.Apply, C.Num)) else \
            f"-({inner})"
    else:
        written = claim.source(arg)
    return " ".join((text[start:a_start] + written + text[a_end:end]).split())


def operand_order(rhs, nodes, check: NetworkCheck):
    for path, node in nodes:
        if isinstance(node, C.MatMul):
            yield (f"the factors of {check.claim.source(node)} are in the wrong order",
                   C.replace_at(rhs, path, C.MatMul(node.right, node.left)))


def has_leaf(node, name: str) -> bool:
    return any(isinstance(item, C.Leaf) and item.name == name for _, item in C.walk(node))


def claim_text(check: NetworkCheck, node) -> str:
    return check.claim.source(node) or C.to_latex(node)


def product(factors: list):
    product = factors[0]
    for factor in factors[1:]:
        product = C.Hadamard(product, factor)
    return product


def parent(root, path):
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


def factor_text(claim: C.Claim, node) -> str:
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
        text = " \\odot ".join(factor_text(claim, h) for h in hand)
        yield (_hand_description(check, hand, text, z, ref),
               C.replace_at(rhs, path, product(rest + [generic])))


def _hand_description(check: NetworkCheck, hand: list, text: str, z: C.Leaf, ref) -> str:
    """Which mistake a hand-written derivative is: another activation's derivative, or
    the layer's own activation with a wrong formula (named with the engine's f')."""
    use = f"use f_{{{ref.label}}}'(z^{{({ref.label})}})"
    which = _which_derivative(hand)
    own = {name: layers for name, layers in _layer_activations(check, z).items()
           if not _activation(check, layers[0]).is_softmax}  # softmax: softmax_diagonal's
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
