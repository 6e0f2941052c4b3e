"""No claim symbp parses gets a wrong verdict: random correct formulas, rewritten.

Hypothesis draws a small MLP (widths, activations, a loss that fits its output) and one
of the backpropagation equations true for it (the error recursion, the output error, the
gradients of weights, biases and activations, per sample or for a batch, at a general
layer l, L - 1 or a concrete layer), then writes it in the notation of one of the presets
of ``--convention`` (symbp's own; Nielsen's w^l and \\sigma'; Wikipedia's (f^l)' and
\\cdot; Goodfellow's a, h and \\nabla_{a^{(k)}} J; Ng's dz^{[l]}, and his batches in
columns with 1/m; CS231n's Z = XW + b with 1/N; UFLDL's layer numbers and \\bullet), after
a chain of rewritings that keep it true: the operands of sums and elementwise products
swapped, (AB)^T = B^T A^T, double transposes, scalars moved or written as a division,
a - y as -(y - a), f' as f', f_l', g'^{[l]}, the activation's own derivative or its form
in a, and LaTeX spellings (^T, ^\\top, W^{(l)T}, \\odot, \\circ, \\left( \\right)). A second
test writes the equations entry by entry (index subscripts, \\sum over an index with or
without 0- or 1-based limits, factors in either order) in symbp's, Nielsen's and UFLDL's
notation, and in Bishop's unlayered units of a two-layer network (d2l's network, the bold
h, o, z of one hidden layer, is the first test's). A claim may be ``cannot parse``; it must never be ``incorrect``; and in symbp's
own notation every one must be read and ``correct``. Derandomized and bounded (about 15 s
of CPU).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
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


# ------------------------------------------------------------------ the sources' layers
def ufldl_layer(kind, layer):
    """UFLDL numbers the input layer 1 and lets W^(l), b^(l) map layer l to l+1: its a, z,
    delta of layer l+1 are symbp's of layer l, its W^(l), b^(l) symbp's; the output layer is
    n_l. A general layer variable is renamed so that the weights keep their index l."""
    base, offset = layer
    neurons = kind not in ("W", "b")
    if base is None:
        return (None, offset + 1) if neurons else layer
    if base == "L":
        return ("n_l", offset if neurons else offset - 1)
    return layer if neurons else ("l", offset - 1)


def ufldl_layers(node):
    """A tree in UFLDL's layer numbers (:func:`ufldl_layer`)."""
    moved = ufldl_layer
    if isinstance(node, Q):
        return node if node.layer is None else Q(node.kind, moved(node.kind, node.layer))
    if isinstance(node, Fprime):
        return Fprime(moved("z", node.layer), node.batch, node.style)
    if isinstance(node, Grad):
        return Grad(ufldl_layers(node.target))
    if isinstance(node, Const):
        return node
    return type(node)(**{name: ufldl_layers(value) for name, value in vars(node).items()})


# ------------------------------------------------------------------ notations
PREC = {"add": 1, "had": 2, "mul": 3, "atom": 5}


def layer_text(layer) -> str:
    base, offset = layer
    if base is None:
        return str(offset)
    return base + (f"+{offset}" if offset > 0 else f"-{-offset}" if offset < 0 else "")


def parens(layer) -> str:
    return f"^{{({layer_text(layer)})}}"


def bare(layer) -> str:  # Nielsen's and Wikipedia's superscripts: z^l, w^{l+1}
    text = layer_text(layer)
    return f"^{text}" if len(text) == 1 else f"^{{{text}}}"


def brackets(layer) -> str:  # Ng's z^{[l]}
    return f"^{{[{layer_text(layer)}]}}"


@dataclass(frozen=True)
class Notation:
    """How a source spells the quantities of a true equation."""

    convention: str  # the --convention preset ("symbp": symbp's own notation)
    letters: dict  # kind -> letter
    sup: object  # layer -> superscript
    grad: object  # (target letter with its layer) -> the loss gradient
    fprime: object  # (Fprime, Notation) -> the activation derivative
    odots: tuple = (r"\odot",)
    transposes: tuple = ("^T",)
    consts: dict = field(default_factory=dict)  # \frac{1}{B} -> the source's batch size
    cdot: str = " "  # the matrix product
    fuse: bool = True  # W^{(l+1)T} as well as (W^{(l+1)})^T
    layer_var: str = "l"

    def layer(self, layer):
        base, offset = layer
        return (self.layer_var if base == "l" else base, offset)

    def quantity(self, q: Q, transposed: str = "") -> str:
        letter = self.letters.get(q.kind, q.kind)
        if callable(letter):
            return letter(self, q)
        if q.layer is None:
            return letter + transposed
        sup = self.sup(self.layer(q.layer))
        if transposed:
            return sup and letter + sup[:-1] + transposed.strip("^{}") + "}"
        return letter + sup


def grad_frac(loss):
    return lambda n, target: rf"\frac{{\partial {loss}}}{{\partial {target}}}"


def grad_nabla(loss):
    return lambda n, target: rf"\nabla_{{{target}}} {loss}"


def as_grad(kind):  # a quantity spelled as a loss gradient (Goodfellow's delta)
    return lambda n, q: n.grad(n, n.quantity(Q(kind, q.layer)))


def symbp_fprime(fp: Fprime, n: Notation) -> str:
    z = n.quantity(Q("Z" if fp.batch else "z", fp.layer))
    prime = {"f_l'": f"f_{{{layer_text(n.layer(fp.layer))}}}'"}.get(fp.style, fp.style)
    return f"{prime}({z})"


def ng_fprime(fp: Fprime, n: Notation) -> str:
    z = n.quantity(Q("Z" if fp.batch else "z", fp.layer))
    sup = n.sup(n.layer(fp.layer))
    return (f"g{sup}'({z})" if fp.style == "f'" else f"g'{sup}({z})")


def wikipedia_fprime(fp: Fprime, n: Notation) -> str:
    return f"(f{n.sup(n.layer(fp.layer))})'"


PER_SAMPLE = {"delta": r"\delta", "Delta": r"\Delta"}
NOTATIONS = {
    "symbp": Notation("symbp", PER_SAMPLE, parens, grad_frac("L"), symbp_fprime,
                      (r"\odot", r"\circ"), ("^T", "^{T}", r"^\top", r"^{\top}")),
    "nielsen": Notation("nielsen", PER_SAMPLE | {"W": "w"}, bare, grad_frac("C"), symbp_fprime,
                        fuse=False),
    "wikipedia": Notation("wikipedia", PER_SAMPLE, bare, grad_nabla("C"), wikipedia_fprime,
                          (r"\circ",), cdot=r" \cdot ", fuse=False),
    "goodfellow": Notation("goodfellow", {"z": "a", "a": "h", "delta": as_grad("z")},
                           parens, grad_nabla("J"), symbp_fprime, transposes=(r"^\top",),
                           layer_var="k"),
    "ng": Notation("ng", {"delta": "dz", "dZ": "dZ", "dA": "dA"}, brackets,
                   lambda n, target: "d" + target, ng_fprime, ("*",),
                   consts={r"\frac{1}{B}": r"\frac{1}{m}", "B": "m"}),
    "cs231n": Notation("cs231n", {"Delta": "dZ"}, parens, lambda n, target: "d" + target,
                       symbp_fprime,
                       consts={r"\frac{1}{B}": r"\frac{1}{N}", "B": "N"}),
    "ufldl": Notation("ufldl", PER_SAMPLE, parens, grad_nabla("J"), symbp_fprime, (r"\bullet",)),
    "d2l": Notation("d2l", {name: rf"\mathbf{{{name}}}" for name in "Whozx"}, parens,
                    grad_frac("J"), lambda fp, n: r"\phi'(\mathbf{z})", transposes=(r"^\top",)),
}
@dataclass(frozen=True)
class Spelling:
    notation: Notation
    transpose: str = "^T"
    odot: str = r"\odot"
    left: str = "("
    right: str = ")"
    fuse: bool = False  # W^{(l+1)T} rather than (W^{(l+1)})^T


def render(node, sp: Spelling) -> tuple[str, int]:
    """LaTeX of a tree and its precedence (parentheses only where they are needed)."""
    n = sp.notation

    def group(text):
        return f"{sp.left}{text}{sp.right}"

    def at_least(child, prec):
        text, p = render(child, sp)
        return text if p >= prec else group(text)

    if isinstance(node, Q):
        return n.quantity(node), PREC["atom"]
    if isinstance(node, Const):
        return n.consts.get(node.text, node.text), PREC["atom"]
    if isinstance(node, Grad):
        return n.grad(n, n.quantity(node.target)), PREC["atom"]
    if isinstance(node, Fprime):
        return n.fprime(node, n), PREC["atom"]
    if isinstance(node, T):
        if sp.fuse and n.fuse and isinstance(node.arg, Q) and node.arg.layer is not None \
                and not callable(n.letters.get(node.arg.kind)):
            return n.quantity(node.arg, sp.transpose), PREC["atom"]
        text, p = render(node.arg, sp)
        plain = p == PREC["atom"] and not any(c in text for c in "^_ '\\")
        return (text if plain else group(text)) + sp.transpose, PREC["atom"]
    if isinstance(node, Mul):
        return at_least(node.left, PREC["mul"]) + n.cdot + at_least(node.right, PREC["mul"] + 1), \
            PREC["mul"]
    if isinstance(node, Div):
        return f"{at_least(node.arg, PREC['mul'])} / {n.consts.get('B', 'B')}", PREC["mul"]
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


@st.composite
def networks(draw, sigmoid_only=False, depth=None, canonical=False):
    depth = depth or draw(st.integers(2, 4))
    widths = draw(st.lists(st.integers(2, 5), min_size=depth - 1, max_size=depth - 1))
    hidden = ("sigmoid",) if sigmoid_only else HIDDEN
    outputs = OUTPUTS[1:2] + OUTPUTS[3:] if sigmoid_only else OUTPUTS[:3] if canonical else OUTPUTS
    output, loss = draw(st.sampled_from(outputs))
    width = draw(st.integers(2, 4)) if output == "softmax" else draw(st.integers(1, 3))
    layers = [Dense(n, draw(st.sampled_from(hidden))) for n in widths]
    return Network(inputs=draw(st.integers(2, 5)), layers=layers + [Dense(width, output)],
                   loss=loss)


def ng_batch(kind, layer, first, loss, activation):
    """Ng's vectorised equations: the m samples are columns, dZ^{[l]} holds the per-sample
    errors (no 1/m), dW^{[l]} = 1/m dZ^{[l]} A^{[l-1]T}."""
    up = shift(layer, 1)
    if kind == "recursion":
        return Q("dZ", layer), Had(Mul(T(Q("W", up)), Q("dZ", up)), Fprime(layer, True))
    if kind == "weights":
        before = Q("X") if first else Q("A", shift(layer, -1))
        return Grad(Q("W", layer)), Mul(INV_B, Mul(Q("dZ", layer), T(before)))
    if kind == "biases":
        return Grad(Q("b", layer)), Mul(INV_B, Mul(Q("dZ", layer), ONES))
    if kind == "activations":
        return Grad(Q("A", layer)), Mul(T(Q("W", up)), Q("dZ", up))
    out = ("L", 0)
    error = Sub(Q("A", out), Q("Y"))
    if loss == "mse" and activation == "sigmoid":
        return Q("dZ", out), Had(error, Fprime(out, True))
    return Q("dZ", out), error


def cs231n_batch(kind, layer, first, loss, activation):
    """CS231n's: rows are samples, Z = XW + b (W is symbp's W^T), dZ = dL/dZ of the mean loss."""
    up = shift(layer, 1)
    if kind == "recursion":
        return Q("Delta", layer), Had(Mul(Q("Delta", up), T(Q("W", up))), Fprime(layer, True))
    if kind == "weights":
        before = Q("X") if first else Q("A", shift(layer, -1))
        return Grad(Q("W", layer)), Mul(T(before), Q("Delta", layer))
    if kind == "activations":
        return Grad(Q("A", layer)), Mul(Q("Delta", up), T(Q("W", up)))
    out = ("L", 0)
    error = Mul(INV_B, Sub(Q("A", out), Q("Y")))
    if loss == "mse" and activation == "sigmoid":
        return Q("Delta", out), Had(error, Fprime(out, True))
    return Q("Delta", out), error


KINDS = ("recursion", "weights", "biases", "activations", "output")
GENERAL_ONLY = {"nielsen", "wikipedia"}  # their layer numbers are not symbp's (Nielsen: a^1 = x)
STYLES = {"symbp": ("f'", "f_l'", "named", "in a"), "nielsen": (r"\sigma'", "in a"),
          "ng": ("f'", "g'", "in a"), "wikipedia": ("f'",), "d2l": ("f'",)}


def d2l_equation(kind):
    """d2l.ai §5.3's network: z = W^(1) x, h = phi(z), o = W^(2) h (the output's pre-activation)."""
    hidden, out = (None, 1), (None, 2)
    return {"h": (Grad(Q("h")), Mul(T(Q("W", out)), Grad(Q("o")))),
            "z": (Grad(Q("z")), Had(Grad(Q("h")), Fprime(hidden, False))),
            "W2": (Grad(Q("W", out)), Mul(Grad(Q("o")), T(Q("h")))),
            "W1": (Grad(Q("W", hidden)), Mul(Grad(Q("z")), T(Q("x"))))}[kind]


@st.composite
def equations(draw, net: Network, name: str):
    """A true equation of ``net`` in the letters of notation ``name``, with its f' spelled."""
    depth = len(net.layers)
    batch = name == "cs231n" or (name in ("symbp", "ng") and draw(st.booleans()))
    kinds = KINDS[:2] + KINDS[3:] if name == "cs231n" else KINDS
    kind = draw(st.sampled_from(kinds))
    top = depth - 1 if kind in ("recursion", "activations") else depth
    layers = [("l", 0), ("L", -1)] + ([("L", 0)] if top == depth else [])
    if name not in GENERAL_ONLY:
        layers += [(None, n) for n in range(1, top + 1)]
    layer = draw(st.sampled_from(layers))
    first = layer_number(layer, 0, depth) == 1 and layer[0] != "l"
    loss, output = net.loss, net.layers[-1].activation
    if name == "d2l":
        lhs, rhs = d2l_equation(draw(st.sampled_from(("h", "z", "W2", "W1"))))
    elif batch and name in ("ng", "cs231n"):
        lhs, rhs = (ng_batch if name == "ng" else cs231n_batch)(kind, layer, first, loss, output)
    elif kind == "output":
        lhs, rhs = output_error(loss, output, batch)
    elif kind == "recursion":
        lhs, rhs = recursion(layer, batch)
    elif kind == "weights":
        lhs, rhs = weights(layer, batch, first)
    elif kind == "biases":
        lhs, rhs = biases(layer, batch)
    else:
        lhs, rhs = activations(layer)
    styles = STYLES.get(name, ("f'", "in a"))
    rhs = spell(rhs, lambda layer: net.layers[layer_number(layer, 0, depth) - 1].activation,
                styles, draw(st.integers(0, 2**32)))
    if name == "ufldl":
        lhs, rhs = ufldl_layers(lhs), ufldl_layers(rhs)
    return lhs, rhs


def spell(node, activation_of, styles, seed):
    """Each f' in one of the notation's ``styles``: f', f_l', g' (Ng's g'^{[l]}), the
    activation's own name, a fixed name (Nielsen's \\sigma'), or (sigmoid, tanh) its form in a."""
    rng = random.Random(seed)

    def one(fp: Fprime):
        activation = activation_of(fp.layer) if fp.layer[0] != "l" else None
        options = []
        for style in styles:
            if style == "in a" and activation in ("sigmoid", "tanh"):
                options.append(derivative_in_a(fp, activation))
            elif style == "named" and activation in ("sigmoid", "tanh"):
                options.append(Fprime(fp.layer, fp.batch,
                                      {"sigmoid": r"\sigma'", "tanh": r"\tanh'"}[activation]))
            elif style not in ("in a", "named"):
                options.append(Fprime(fp.layer, fp.batch, style))
        return rng.choice(options)

    def walk(node):
        if isinstance(node, Fprime):
            return one(node)
        if isinstance(node, (Q, Const, Grad)):
            return node
        return type(node)(**{name: walk(value) for name, value in vars(node).items()})

    return walk(node)


@st.composite
def spellings(draw, notation: Notation):
    fancy = notation.convention == "symbp" and draw(st.booleans())
    return Spelling(notation, draw(st.sampled_from(notation.transposes)),
                    draw(st.sampled_from(notation.odots)),
                    r"\left(" if fancy else "(", r"\right)" if fancy else ")",
                    draw(st.booleans()))


def check(claim: str, net: Network, convention: str):
    return verify(claim, net, convention=convention)


@pytest.mark.parametrize("name", list(NOTATIONS))
@settings(max_examples=9, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_rewritten_correct_formulas_are_never_incorrect(name, data):
    notation = NOTATIONS[name]
    net = data.draw(networks(sigmoid_only=name == "nielsen", depth=2 if name == "d2l" else None),
                    label="network")
    lhs, rhs = data.draw(equations(net, name), label="equation")
    rng = random.Random(data.draw(st.integers(0, 2**32), label="rewritings"))
    rhs = rewrite_all(rhs, iter(lambda: rng.randrange(12), None))
    claim = claim_text(lhs, rhs, data.draw(spellings(notation), label="spelling"))
    verdict = check(claim, net, notation.convention)
    assert verdict.verdict != "incorrect", f"{claim}\n{verdict}"
    if name == "symbp":
        assert verdict.verdict == "correct", f"symbp's own notation is read: {claim}\n{verdict}"


def drop_transpose(node):
    """The tree with its first transposed weight matrix untransposed, or None."""
    if isinstance(node, T) and isinstance(node.arg, Q) and node.arg.kind == "W":
        return node.arg
    if isinstance(node, (Q, Const, Grad, Fprime)):
        return None
    for name, value in vars(node).items():
        dropped = drop_transpose(value)
        if dropped is not None:
            return type(node)(**(vars(node) | {name: dropped}))
    return None


def one_mistake(rhs, choice):
    """A mistake that always changes the value for unequal widths: a flipped sign, a factor 2,
    or a weight matrix's transpose dropped (each transpose counts: the parity flips)."""
    dropped = drop_transpose(rhs)
    mistakes = [Neg(rhs), Mul(Const("2"), rhs)] + ([dropped] if dropped is not None else [])
    return mistakes[choice % len(mistakes)]


@pytest.mark.parametrize("name", list(NOTATIONS))
@settings(max_examples=5, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_formulas_with_one_mistake_are_never_correct(name, data):
    notation = NOTATIONS[name]
    net = data.draw(networks(sigmoid_only=name == "nielsen", depth=2 if name == "d2l" else None),
                    label="network")
    lhs, rhs = data.draw(equations(net, name), label="equation")
    rng = random.Random(data.draw(st.integers(0, 2**32), label="rewritings"))
    wrong = one_mistake(rhs, data.draw(st.integers(0, 2), label="mistake"))
    wrong = rewrite_all(wrong, iter(lambda: rng.randrange(12), None))
    claim = claim_text(lhs, wrong, data.draw(spellings(notation), label="spelling"))
    verdict = check(claim, net, notation.convention)
    assert verdict.verdict != "correct", f"{claim}\n{verdict}"


# ------------------------------------------------------------------ component forms
@dataclass(frozen=True)
class Components:
    """How a source writes entries: its letters, layer superscripts and loss gradients."""

    convention: str
    letters: dict
    sup: object  # layer -> superscript
    grad: str  # the loss gradient of one entry, "{}" for the entry
    fprime: str  # "{}" for z_j
    layers: object = None  # (kind, symbp layer) -> the source's layer
    width: str = "n_{{{}}}"  # the number of units of a layer, for a sum's upper limit

    def entry(self, kind, layer, *idx):
        layer = self.layers(kind, layer) if self.layers else layer
        name = self.letters.get(kind, kind)
        sup = "" if layer is None else self.sup(layer)
        sub = "".join(idx)
        return f"{name}{sup}_{sub if len(sub) == 1 else '{' + sub + '}'}"


COMPONENTS = {
    "symbp": Components("symbp", PER_SAMPLE, parens, r"\frac{{\partial L}}{{\partial {}}}", "f'({})"),
    "nielsen": Components("nielsen", PER_SAMPLE | {"W": "w"}, bare,
                          r"\frac{{\partial C}}{{\partial {}}}", r"\sigma'({})"),
    "ufldl": Components("ufldl", PER_SAMPLE, parens, r"\frac{{\partial}}{{\partial {}}} J(W,b;x,y)",
                        "f'({})", ufldl_layer, "s_{{{}}}"),
}


@st.composite
def component_claims(draw, net: Network, name: str):
    """A true equation of ``net`` written entry by entry (index subscripts, sums over an
    index with or without limits), its factors and index letters drawn at random."""
    c = COMPONENTS[name]
    depth = len(net.layers)
    j, k = draw(st.permutations("ijkpq"))[:2]
    kind = draw(st.sampled_from(KINDS))
    top = depth - 1 if kind in ("recursion", "activations") else depth
    layers = [("l", 0), ("L", -1)] + ([("L", 0)] if top == depth else [])
    if name != "nielsen":
        layers += [(None, n) for n in range(1, top + 1)]
    layer = draw(st.sampled_from(layers))
    up, down = shift(layer, 1), shift(layer, -1)
    first = layer[0] is None and layer[1] == 1
    flip = draw(st.booleans())

    def product(*factors):
        return " ".join(reversed(factors) if flip else factors)

    def fprime(at, index):
        activation = None if at[0] == "l" else net.layers[layer_number(at, 0, depth) - 1].activation
        a = c.entry("a", at, index)
        forms = [c.fprime.format(c.entry("z", at, index))]
        if activation == "tanh" and name != "nielsen":
            forms.append(f"(1 - ({a})^2)")
        if activation == "sigmoid":
            forms.append(f"{a} (1 - {a})")
        return draw(st.sampled_from(forms))

    def sum_over(body):
        limit = draw(st.sampled_from(["", "1", "0"] if name != "nielsen" else [""]))
        if not limit:
            return draw(st.sampled_from([rf"\sum_{k} ", rf"\sum_{{{k}}} "])) + body
        width = c.width.format(layer_text(c.layers("z", up) if c.layers else up))
        end = width if limit == "1" else f"{width}-1"
        return rf"\sum_{{{k}={limit}}}^{{{end}}} " + body

    weighted = sum_over(product(c.entry("W", up, k, j), c.entry("delta", up, k)))
    if kind == "recursion":
        rhs = product(fprime(layer, j), draw(st.sampled_from([weighted, f"\\left({weighted}\\right)"])))
        return f"{c.entry('delta', layer, j)} = {rhs}"
    if kind == "activations":
        return f"{c.grad.format(c.entry('a', layer, j))} = {weighted}"
    if kind == "weights":
        before = f"x_{k}" if first else c.entry("a", down, k)
        return f"{c.grad.format(c.entry('W', layer, j, k))} = " \
               f"{product(c.entry('delta', layer, j), before)}"
    if kind == "biases":
        return f"{c.grad.format(c.entry('b', layer, j))} = {c.entry('delta', layer, j)}"
    out = ("L", 0)
    error = f"{c.entry('a', out, j)} - y_{j}"
    if net.loss == "mse" and net.layers[-1].activation == "sigmoid":
        return f"{c.entry('delta', out, j)} = {product(f'({error})', fprime(out, j))}"
    return f"{c.entry('delta', out, j)} = {error}"


@st.composite
def bishop_claims(draw, net: Network):
    """Bishop's unlayered units of a two-layer network (PRML §5.3): inputs i, hidden units j,
    outputs k; a the pre-activation, z the hidden activation, y the output, t the target."""
    flip = draw(st.booleans())

    def product(*factors):
        return " ".join(reversed(factors) if flip else factors)

    hidden = net.layers[0].activation
    sums = draw(st.sampled_from([r"\sum_k", r"\sum_{k}", r"\sum_{k=1}^{K}"]))
    kind = draw(st.sampled_from(("output", "hidden", "second", "first")))
    if kind == "output":
        return r"\delta_k = " + draw(st.sampled_from(["y_k - t_k", "-(t_k - y_k)", "-t_k + y_k"]))
    if kind == "hidden":
        forms = ["h'(a_j)"] + (["(1 - z_j^2)"] if hidden == "tanh" else [])
        weighted = f"{sums} " + product("w_{kj}", r"\delta_k")
        return r"\delta_j = " + product(draw(st.sampled_from(forms)), weighted)
    grad = draw(st.sampled_from([r"\frac{{\partial E_n}}{{\partial {}}}",
                                 r"\partial E_n / \partial {}"]))
    if kind == "second":
        return grad.format(draw(st.sampled_from(["w_{kj}", "w^{(2)}_{kj}"]))) + " = " \
            + product(r"\delta_k", "z_j")
    return grad.format("w_{ji}") + " = " + product(r"\delta_j", "z_i")  # eq. (5.53)


@pytest.mark.parametrize("name", list(COMPONENTS) + ["bishop"])
@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_component_forms_are_never_incorrect(name, data):
    if name == "bishop":
        net = data.draw(networks(depth=2, canonical=True), label="network")
        claim = data.draw(bishop_claims(net), label="claim")
    else:
        net = data.draw(networks(sigmoid_only=name == "nielsen"), label="network")
        claim = data.draw(component_claims(net, name), label="claim")
    verdict = check(claim, net, name)
    assert verdict.verdict != "incorrect", f"{claim}\n{verdict}"
