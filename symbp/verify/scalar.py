"""Scalar claims: identities between expressions of one variable, without a network.

Contract: :func:`verify_scalar` decides a claim such as
``\\frac{d}{dz}\\sigma(z) = \\sigma(z)(1-\\sigma(z))``: both sides are read as
SymPy expressions in one variable (an activation's derivative from the
engine, :mod:`symbp.verify.functions`), compared at several points (the
numbers decide) and, within :func:`~symbp.verify.entries.symbolic_ok`'s
limits, simplified (the evidence and the difference). A constant ratio is
named (a sign, a factor); otherwise the likely mistake is found by rewritten claims
(:func:`~symbp.verify.mistakes.likely_scalar_mistakes`: a sign slip, the product or chain
rule), each tested against the same truth, sympy.diff of the left-hand side. A layer
identity (UFLDL's ``f'(z^{(l)}_i) = a^{(l)}_i (1 - a^{(l)}_i)``) is such an identity in
``z^{(l)}`` at each layer of the network it applies to, with ``a^{(l)} = f_l(z^{(l)})`` and
``f`` the layer's activation.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from symbp import claims as C
from symbp.verify.entries import symbolic_ok
from symbp.verify.functions import (
    MATH_FUNCTIONS,
    custom_activation_of,
    derivative_latex,
    function_derivative,
    function_latex,
    numeric,
    x_symbol,
)
from symbp.verify.mistakes import likely_scalar_mistakes
from symbp.verify.verdict import Verdict

SCALAR_POINTS = (0.5, -1.3, 2.1, -0.4, 1.7, -2.6, 0.9, 3.1)
RTOL = 1e-7


def verify_scalar(claim: C.Claim, network) -> Verdict:
    claim = C.Claim(tuple(_derivative_scope(side) for side in claim.sides), claim.text)
    refs = _layer_refs(claim)
    if refs:
        return _verify_layer_identity(claim, network, refs)
    symbol = sp.Symbol(_scalar_variable(claim), real=True)
    return _decide_identity(claim, _ScalarConverter(claim, symbol, network), network)


def _decide_identity(claim: C.Claim, converter, network) -> Verdict:
    """Each right-hand side against the left's value (the first that differs decides)."""
    symbol = converter.symbol
    sides = [converter.convert(side) for side in claim.sides]
    lhs = sides[0]
    symbolic = all(symbolic_ok(side) for side in claim.sides)
    verdict = None
    for rhs, rhs_node in zip(sides[1:], claim.sides[1:], strict=True):
        verdict = _decide_scalar(claim, lhs, rhs, symbol, network, symbolic)
        if not verdict.ok:
            if verdict.counterexample:  # after a constant ratio, what explains it
                found = likely_scalar_mistakes(claim, claim.lhs, rhs_node, lambda variant:
                                               _holds(converter, lhs, variant, symbol))
                verdict.mistakes = (verdict.mistakes + found)[:3]
            return verdict
    return verdict


def _layer_refs(claim: C.Claim) -> list:
    """The layers of a layer identity's z^{(l)}, a^{(l)} and f_l (UFLDL's
    ``f'(z^{(l)}_i) = a^{(l)}_i (1 - a^{(l)}_i)``): the quantities of one layer."""
    refs = []
    for side in claim.sides:
        for _, node in C.walk(side):
            if isinstance(node, C.Leaf) and node.name in ("z", "a") and node.layer is not None:
                refs.append((node, node.layer))
            elif isinstance(node, C.Apply) and node.func.layer is not None:
                refs.append((node, node.func.layer))
    return refs


def _verify_layer_identity(claim: C.Claim, network, refs) -> Verdict:
    """A layer's activation identity, decided as a scalar identity in z at each layer it
    applies to (every layer with an elementwise activation for a general l): z^{(l)} is the
    variable, a^{(l)} = f_l(z^{(l)}) and f the layer's activation (its derivatives the
    engine's)."""
    from symbp.verify.context import Context

    first = refs[0][0]
    if network is None:
        raise C.ClaimParseError(f"{claim.source(first)} is a layer's quantity: give the "
                                "network spec (symbp verify SPEC --claim ...)",
                                first.span[0] + 1, text=claim.text)
    ctx = Context.of(network)
    layers = []
    for layer in range(1, ctx.depth + 1):
        ref = refs[0][1]
        l_value = layer - ref.offset if ref.var == "l" else None
        try:
            if all(r.resolve(l_value, ctx.depth) == layer for _, r in refs) and \
                    ctx.has_activation(layer) and not ctx.activation(layer).is_softmax:
                layers.append(layer)
        except ValueError:
            continue
    if not layers:
        raise C.ClaimParseError(f"{claim.source(first)}: the claim names the quantities of "
                                "one layer with an elementwise activation, and the network "
                                "has none that fits", first.span[0] + 1, text=claim.text)
    symbol = sp.Symbol("z", real=True)
    for layer in layers:
        activation = ctx.activation(layer)
        verdict = _decide_identity(claim, _ScalarConverter(claim, symbol, network, activation),
                                   network)
        where = f"layer {layer} ({activation.name})"
        if not verdict.ok:
            verdict.summary = f"at {where}: {verdict.summary}"
            lhs = claim.lhs
            if isinstance(lhs, C.Apply) and lhs.func.name == "generic" and lhs.func.order == 1 \
                    and not lhs.func.power:  # the engine's f', in terms of f where it has that
                verdict.correct = derivative_latex(activation, f"z^{{({layer})}}")
            if verdict.counterexample:
                verdict.counterexample["where"] = f"{where}, {verdict.counterexample['where']}"
            return verdict
    every = " (every layer with an elementwise activation)" if refs[0][1].var == "l" else ""
    held = ", ".join(f"{layer} ({ctx.activation(layer).name})" for layer in layers)
    verdict.summary = f"holds at layer{'s' if len(layers) > 1 else ''} {held}{every}"
    verdict.evidence = [verdict.summary] + verdict.evidence
    verdict.layers = layers
    return verdict


def _holds(converter, lhs, variant, symbol) -> bool:
    """Does the rewritten right-hand side ``variant`` agree with ``lhs`` at the points?"""
    try:
        expr = converter.convert(variant)
    except (C.ClaimParseError, TypeError, ValueError, ZeroDivisionError):
        return False
    points, failures = _scalar_points(lhs, expr, symbol)
    return not failures and len(points) >= 3


def _derivative_scope(node):
    """``\\frac{d}{dx}`` applies to the rest of its product, as the sources write it:
    ``\\frac{d}{dx} x \\Phi(x)`` is the derivative of ``x \\Phi(x)`` (the parser binds the
    operator to the next factor); a parenthesised argument, ``\\frac{d}{dx}(x) \\Phi(x)``,
    stays as written."""
    node = C.map_children(node, _derivative_scope)
    if not isinstance(node, C.MatMul):
        return node
    factors = _product_factors(node)
    for at, factor in enumerate(factors[:-1]):
        if isinstance(factor, C.Deriv) and factor.span[1] == factor.arg.span[1]:
            arg = _product([factor.arg] + factors[at + 1:])
            scoped = C.Deriv(factor.var, arg, span=(factor.span[0], node.span[1]))
            return _product(factors[:at] + [scoped])
    return node


def _product_factors(node) -> list:
    if isinstance(node, C.MatMul):
        return _product_factors(node.left) + _product_factors(node.right)
    return [node]


def _product(factors: list):
    product = factors[0]
    for factor in factors[1:]:
        product = C.MatMul(product, factor, span=(product.span[0], factor.span[1]))
    return product


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

    def __init__(self, claim: C.Claim, symbol: sp.Symbol, network, activation=None):
        self.claim, self.symbol, self.network = claim, symbol, network
        self.activation = activation  # a layer identity's f: z^{(l)} is the variable

    def fail(self, node, message, expected=()):
        raise C.ClaimParseError(message, node.span[0] + 1, expected, self.claim.text)

    def convert(self, node) -> sp.Expr:
        method = getattr(self, "c_" + type(node).__name__, None)
        if method is None:  # an entry, a sum, a bracket: a claim about a network's tensors
            self.fail(node, f"{self.claim.source(node)} has no reading in a scalar identity "
                            "of one variable; a claim about a network's quantities starts "
                            "with \\delta or a loss gradient")
        return method(node)

    def c_Num(self, node):
        return sp.Rational(node.value.numerator, node.value.denominator)

    def c_Ones(self, node):
        return sp.Integer(1)

    def c_Leaf(self, node):
        if self.activation is not None and node.layer is not None and not node.batch:
            if node.name == "z":
                return self.symbol
            if node.name == "a":  # a^{(l)} = f_l(z^{(l)})
                return self.activation.expr.subs(x_symbol(), self.symbol)
        if node.layer is None and node.name in ("z", "x", "a") and not node.batch:
            return self.symbol
        if node.name == "pi" and node.layer is None:
            return sp.pi
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

        if func.name == "generic" and self.activation is not None:
            activation = self.activation
            expr = function_derivative(activation.name, activation.expr, func.order)
            expr = expr ** func.power if func.power is not None else expr
            return expr.subs(x_symbol(), self.convert(node.arg))
        if func.name == "generic":
            self.fail(node, "f, g or \\phi name a layer's activation; in a scalar claim write "
                            "the function (\\sigma, \\tanh, \\operatorname{softplus}, ...)",
                      ["\\sigma", "\\tanh", "\\exp", "\\log"])
        activation = BUILTIN_ACTIVATIONS.get(func.name)
        if activation is None and self.network is not None and func.name in \
                self.network.activations:
            activation = custom_activation_of(func.name, self.network.activations[func.name])
        if activation is not None and activation.is_softmax or func.name == "diag":
            self.fail(node, f"{func.name} is a vector function; it needs a network claim")
        if activation is not None:
            forward, name = activation.expr, activation.name
        elif func.name in MATH_FUNCTIONS:
            forward, name = MATH_FUNCTIONS[func.name](x_symbol()), func.name
        else:
            self.fail(node, f"unknown function '{func.name}'",
                      sorted(set(BUILTIN_ACTIVATIONS) - {"softmax"} | set(MATH_FUNCTIONS)))
        expr = function_derivative(name, forward, func.order)
        if func.power is not None:
            expr = expr ** func.power
        return expr.subs(x_symbol(), self.convert(node.arg))


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
        f = numeric((symbol,), lhs)
        g = numeric((symbol,), rhs)
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
    name = function_latex(activation.name)
    in_f = sp.latex(derivative.in_output, symbol_names={A: rf"{name}({symbol})"})
    return f"{in_f} = {text}"
