"""No claim symbp parses gets a wrong verdict: random correct formulas, rewritten.

Hypothesis draws a small MLP (widths, activations, a loss that fits its output), one of
the backpropagation equations true for it (the error recursion, the output error, the
gradients of weights, biases and activations, per sample or for a batch, at a general
layer l, L - 1 or a concrete layer), and a chain of rewritings that keep it true: the
operands of sums and elementwise products swapped, (AB)^T = B^T A^T, double transposes,
scalars moved or written as a division, a - y as -(y - a), f' written as f', f_l', the
activation's own derivative or its form in a. Each formula is printed in a notation (the
LaTeX spellings of symbp's own notation: ^T, ^\\top, \\odot, \\circ, \\left( \\right)). The
verdict must be ``correct``: a formula symbp reads is never called incorrect.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbp.spec import Dense, Network
from symbp.verify import verify

# ------------------------------------------------------------------ formulas
# A layer is (base, offset): ("l", 1) is l+1, ("L", -1) is L-1, (None, 2) is layer 2.


@dataclass(frozen=True)
class Q:  # a quantity: W b z a delta x y (per sample), W b Z A Delta X Y (batch)
    kind: str
    layer: tuple | None = None


@dataclass(frozen=True)
class T:  # transpose
    arg: object


@dataclass(frozen=True)
class Mul:  # matrix product, or scaling by a scalar factor
    left: object
    right: object


@dataclass(frozen=True)
class Div:  # by the batch size
    arg: object


@dataclass(frozen=True)
class Had:  # elementwise product
    left: object
    right: object


@dataclass(frozen=True)
class Add:
    left: object
    right: object


@dataclass(frozen=True)
class Sub:
    left: object
    right: object


@dataclass(frozen=True)
class Neg:
    arg: object


@dataclass(frozen=True)
class Const:  # 1, 2, \frac{1}{2}, \frac{1}{B}, \mathbf{1} (a vector of ones)
    text: str


@dataclass(frozen=True)
class Fprime:  # the layer's activation derivative at its pre-activation
    layer: tuple
    batch: bool
    style: str = "f'"  # f', f_l', or the activation's own name (\sigma', \tanh')


@dataclass(frozen=True)
class Grad:  # \frac{\partial L}{\partial target}
    target: Q


ONE, ONES, INV_B = Const("1"), Const(r"\mathbf{1}"), Const(r"\frac{1}{B}")


def shift(layer, k):
    base, offset = layer
    return (base, offset + k)


def layer_number(layer, l_value, depth):
    base, offset = layer
    return offset + {"l": l_value, "L": depth, None: 0}[base]


# ------------------------------------------------------------------ the true equations
def recursion(layer, batch):
    """delta^(l) = ((W^(l+1))^T delta^(l+1)) ⊙ f'(z^(l)); Delta = (Delta W) ⊙ f'(Z)."""
    up = shift(layer, 1)
    if batch:
        rhs = Had(Mul(Q("Delta", up), Q("W", up)), Fprime(layer, True))
        return Q("Delta", layer), rhs
    return Q("delta", layer), Had(Mul(T(Q("W", up)), Q("delta", up)), Fprime(layer, False))


def weights(layer, batch, first):
    before = Q("X" if batch else "x") if first else Q("A" if batch else "a", shift(layer, -1))
    if batch:  # symbp's batch Delta is dL/dZ of the mean loss: the 1/B is in Delta^(L)
        return Grad(Q("W", layer)), Mul(T(Q("Delta", layer)), before)
    return Grad(Q("W", layer)), Mul(Q("delta", layer), T(before))


def biases(layer, batch):
    if batch:
        return Grad(Q("b", layer)), Mul(T(Q("Delta", layer)), ONES)
    return Grad(Q("b", layer)), Q("delta", layer)


def activations(layer):
    up = shift(layer, 1)
    return Grad(Q("a", layer)), Mul(T(Q("W", up)), Q("delta", up))


def output_error(loss, activation, batch):
    """The output error of the pairs where it is a - y (times f' for mse on a sigmoid);
    for a batch, dL/dZ^(L) of the mean loss (as ``symbp derive`` prints it)."""
    out = ("L", 0)
    a, y = (Q("A", out), Q("Y")) if batch else (Q("a", out), Q("y"))
    lhs = Q("Delta" if batch else "delta", out)
    error = Mul(INV_B, Sub(a, y)) if batch else Sub(a, y)  # the mean loss's 1/B
    if loss == "mse" and activation == "sigmoid":
        return lhs, Had(error, Fprime(out, batch))
    return lhs, error


# ------------------------------------------------------------------ rewritings that keep it true
def is_scalar(node) -> bool:
    return isinstance(node, Const) and node.text != r"\mathbf{1}"


def rewrite(node, choice):
    """One rewriting at the root chosen by ``choice`` (an int), or the node itself."""
    options = [node]
    if isinstance(node, (Had, Add)):
        options.append(type(node)(node.right, node.left))
    if isinstance(node, Mul) and not is_scalar(node.left) and not is_scalar(node.right):
        options.append(T(Mul(T(node.right), T(node.left))))
    if isinstance(node, Mul) and is_scalar(node.left):
        options.append(Mul(node.right, node.left))
        if node.left == INV_B:
            options.append(Div(node.right))
    if isinstance(node, T) and isinstance(node.arg, T):
        options.append(node.arg.arg)
    if isinstance(node, Sub):
        options.append(Neg(Sub(node.right, node.left)))
        options.append(Add(Neg(node.right), node.left))
    if isinstance(node, Q) and node.kind in ("delta", "a", "W", "Delta"):
        options += [node, node, T(T(node))]  # now and then
    if isinstance(node, Had) and not isinstance(node.left, Const):
        options.append(Mul(Const("2"), Mul(Const(r"\frac{1}{2}"), node)))
    return options[choice % len(options)]


def rewrite_all(node, choices):
    """Rewrite every node of the tree once, bottom-up, each with the next choice."""
    if isinstance(node, (T, Mul, Div, Had, Add, Sub, Neg)):
        node = type(node)(**{name: rewrite_all(value, choices)
                             for name, value in vars(node).items()})
    return rewrite(node, next(choices))


def derivative_in_a(fp: Fprime, activation: str):
    """f' of sigmoid and tanh written in the layer's activation."""
    a = Q("A" if fp.batch else "a", fp.layer)
    if activation == "sigmoid":
        return Had(a, Sub(ONE, a))
    return Sub(ONE, Had(a, a))


def spell_derivatives(node, activation_of, choices):
    """Each f' as f', f_l', the activation's own derivative, or (sigmoid, tanh) its form in a."""
    if isinstance(node, Fprime):
        options = [node, Fprime(node.layer, node.batch, "f_l'")]
        activation = activation_of(node.layer) if node.layer[0] != "l" else None
        if activation in ("sigmoid", "tanh"):
            named = {"sigmoid": r"\sigma'", "tanh": r"\tanh'"}[activation]
            options += [Fprime(node.layer, node.batch, named), derivative_in_a(node, activation)]
        return options[next(choices) % len(options)]
    if isinstance(node, (Q, Const, Grad)):
        return node
    fields = {name: spell_derivatives(value, activation_of, choices)
              for name, value in vars(node).items()}
    return type(node)(**fields)


# ------------------------------------------------------------------ symbp's notation
@dataclass(frozen=True)
class Spelling:
    transpose: str = "^T"
    odot: str = r"\odot"
    left: str = "("
    right: str = ")"
    fuse: bool = False  # W^{(l+1)T} rather than (W^{(l+1)})^T


SYMBOLS = {"delta": r"\delta", "Delta": r"\Delta"}
PREC = {"add": 1, "had": 2, "mul": 3, "atom": 5}


def layer_text(layer) -> str:
    base, offset = layer
    if base is None:
        return str(offset)
    return base + (f"+{offset}" if offset > 0 else f"-{-offset}" if offset < 0 else "")


def quantity(q: Q) -> str:
    name = SYMBOLS.get(q.kind, q.kind)
    return name if q.layer is None else f"{name}^{{({layer_text(q.layer)})}}"


def render(node, sp: Spelling) -> tuple[str, int]:
    """LaTeX of a tree and its precedence (parentheses only where they are needed)."""
    def group(text):
        return f"{sp.left}{text}{sp.right}"

    def at_least(child, prec):
        text, p = render(child, sp)
        return text if p >= prec else group(text)

    if isinstance(node, Q):
        return quantity(node), PREC["atom"]
    if isinstance(node, Const):
        return node.text, PREC["atom"]
    if isinstance(node, Grad):
        return rf"\frac{{\partial L}}{{\partial {quantity(node.target)}}}", PREC["atom"]
    if isinstance(node, Fprime):
        z = quantity(Q("Z" if node.batch else "z", node.layer))
        prime = {"f_l'": f"f_{{{layer_text(node.layer)}}}'"}.get(node.style, node.style)
        return f"{prime}({z})", PREC["atom"]
    if isinstance(node, T):
        if sp.fuse and isinstance(node.arg, Q) and node.arg.layer is not None:
            mark = sp.transpose.strip("^{}")
            return quantity(node.arg)[:-1] + f"{mark}}}", PREC["atom"]
        text, p = render(node.arg, sp)
        return (text if p == PREC["atom"] and "^" not in text else group(text)) \
            + sp.transpose, PREC["atom"]
    if isinstance(node, Mul):
        return f"{at_least(node.left, PREC['mul'])} {at_least(node.right, PREC['mul'] + 1)}", \
            PREC["mul"]
    if isinstance(node, Div):
        return f"{at_least(node.arg, PREC['mul'])} / B", PREC["mul"]
    if isinstance(node, Had):
        return f"{at_least(node.left, PREC['had'])} {sp.odot} " \
               f"{at_least(node.right, PREC['had'] + 1)}", PREC["had"]
    if isinstance(node, Add):
        return f"{at_least(node.left, PREC['add'])} + {at_least(node.right, PREC['add'] + 1)}", \
            PREC["add"]
    if isinstance(node, Sub):
        return f"{at_least(node.left, PREC['add'])} - {at_least(node.right, PREC['add'] + 1)}", \
            PREC["add"]
    if isinstance(node, Neg):
        return f"-{at_least(node.arg, PREC['add'] + 1)}", PREC["add"]
    raise TypeError(node)


def claim_text(lhs, rhs, sp: Spelling) -> str:
    return f"{render(lhs, sp)[0]} = {render(rhs, sp)[0]}"


# ------------------------------------------------------------------ strategies
HIDDEN = ("sigmoid", "tanh", "relu", "softplus", "identity")
OUTPUTS = (("softmax", "cross_entropy"), ("sigmoid", "bce"), ("identity", "mse"),
           ("sigmoid", "mse"))
SPELLINGS = st.builds(Spelling, st.sampled_from(("^T", "^{T}", r"^\top", r"^{\top}")),
                      st.sampled_from((r"\odot", r"\circ")), st.just("("), st.just(")"),
                      st.booleans()) | st.just(Spelling(left=r"\left(", right=r"\right)"))


@st.composite
def networks(draw):
    depth = draw(st.integers(2, 4))
    widths = draw(st.lists(st.integers(2, 5), min_size=depth - 1, max_size=depth - 1))
    output, loss = draw(st.sampled_from(OUTPUTS))
    width = draw(st.integers(2, 4)) if output == "softmax" else draw(st.integers(1, 3))
    layers = [Dense(n, draw(st.sampled_from(HIDDEN))) for n in widths]
    return Network(inputs=draw(st.integers(2, 5)), layers=layers + [Dense(width, output)],
                   loss=loss)


@st.composite
def true_equations(draw, net: Network):
    depth = len(net.layers)
    batch = draw(st.booleans())
    kind = draw(st.sampled_from(("recursion", "weights", "biases", "activations", "output")))
    if kind == "output":
        return output_error(net.loss, net.layers[-1].activation, batch), None
    top = depth - 1 if kind in ("recursion", "activations") else depth
    layer = draw(st.sampled_from(
        [("l", 0)] + [(None, n) for n in range(1, top + 1)]
        + [("L", -1)] + ([("L", 0)] if top == depth else [])))
    number = None if layer[0] == "l" else layer_number(layer, 0, depth)
    if kind == "recursion":
        return recursion(layer, batch), number
    if kind == "weights":
        return weights(layer, batch, first=number == 1), number
    if kind == "biases":
        return biases(layer, batch), number
    return activations(layer), number


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_rewritten_correct_formulas_are_correct(data):
    net = data.draw(networks(), label="network")
    (lhs, rhs), number = data.draw(true_equations(net), label="equation")
    rng = random.Random(data.draw(st.integers(0, 2**32), label="rewritings"))
    choices = iter(lambda: rng.randrange(12), None)
    activation_of = lambda layer: net.layers[layer_number(layer, 0, len(net.layers)) - 1] \
        .activation  # noqa: E731
    rhs = spell_derivatives(rewrite_all(rhs, choices), activation_of, choices)
    claim = claim_text(lhs, rhs, data.draw(SPELLINGS, label="spelling"))
    verdict = verify(claim, net)
    assert verdict.verdict != "incorrect", f"{claim}\n{verdict}"
    assert verdict.verdict == "correct", f"symbp's own notation is read: {claim}\n{verdict}"
