"""Conventions: the user's letters and layouts, mapped to symbp's quantities.

Contract: a :class:`Convention` says what the letters of a source mean in symbp's
notation (CONVENTIONS §1): symbol roles (Goodfellow's and Bishop's ``a`` is symbp's
``z``; Bishop's ``z`` the hidden activation, ``y`` the output, ``t`` the target;
Goodfellow's and d2l's ``h`` the activation; d2l's ``o`` the output), the weight
layout (CS231n: ``W`` is ``n_{l-1} x n_l`` with ``Z = XW + b``, so its ``W`` is
symbp's ``W^T``), the batch layout (Ng: the samples are columns), a layer shift
(UFLDL: layer 1 is the input, ``a^{(1)} = x``, and ``W^{(l)}`` maps layer ``l`` to
``l+1``), the batch size's letter (``m``, ``N``), how unlayered component forms
find their layers (Bishop: units ``i, j, k`` of consecutive layers) and a sample index
(Ioffe and Szegedy: ``x_i``, ``y_i``, ``\\hat{x}_i`` are row i of the batch-norm layer's
input, output and normalised input, ``\\sum_{i=1}^{m}`` sums the rows, one activation's
products are elementwise). :data:`PRESETS` holds one per source; ``symbp`` is the default.

:func:`rewrite` applies a convention (and ``--let`` declarations, :func:`parse_let`)
to a claim as parsed (letters as written) and returns the claim in symbp's
quantities plus the mapping of the user's symbols; :func:`read` adds
:func:`symbp.verify.notation.to_matrix` and the final check that only symbp's
quantities are left. A letter that no convention in force maps is a
:class:`~symbp.claims.ClaimParseError` naming it and what it means in the sources
(``h: the activation in Goodfellow and d2l -- use --convention goodfellow or --let
h=a``). :func:`verify_written` is the whole path from text to verdict: read, decide
(:func:`symbp.verify.check.verify_parsed`), and for an incorrect claim try the
other presets: when one of them makes the claim correct, the verdict says so
("correct if W^{(l)} is n_{l-1} x n_l and Z = XW + b (as in CS231n); in this spec's
convention the formula is ..."): first when the user named no convention, after the
mistakes found in the named one; the presets whose letters the claim uses are tried first.
A component form's swapped indices (Wikipedia's ``o_j \\delta_i``) are tried in the claim's
own convention (:func:`~symbp.verify.rewrites.swapped_indices`). Nothing is evaluated here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from symbp import claims as C
from symbp.errors import SymbpError
from symbp.verify import notation
from symbp.verify.rewrites import swapped_indices

if TYPE_CHECKING:  # pragma: no cover
    from symbp.verify.verdict import Verdict

OUT = C.LayerRef("L")
HIDDEN = C.LayerRef("L", -1)
SYMBP_NAMES = {"W", "b", "z", "a", "x", "y", "delta", "B",  # and of the other ops:
               "mu", "sigma2", "sigma", "eps", "xhat", "gamma", "beta", "mask", "p", "lambda",
               "n", "pi"}
_LAYERED = {"W", "b", "z", "a", "delta", "mu", "sigma2", "sigma", "xhat", "gamma", "beta",
            "mask"}
_TARGETS = {"W", "b", "z", "a", "gamma", "beta", "xhat", "mu", "sigma2"}
_UNLAYERED = {"x", "y", "B", "lambda", "pi"}


@dataclass(frozen=True)
class Role:
    """What a letter is in symbp: ``name`` (one of :data:`SYMBP_NAMES`), and ``layer``,
    the layer it stands for when it is written without one."""

    name: str
    layer: C.LayerRef | None = None

    @property
    def latex(self) -> str:
        return C.leaf_latex(C.Leaf(self.name, self.layer))


@dataclass(frozen=True)
class Convention:
    """A source's notation (see the module docstring)."""

    name: str
    source: str
    condition: str = ""  # when the claim differs from symbp's: what this convention assumes
    symbols: dict = field(default_factory=dict)  # the letter as written -> Role
    weights_transposed: bool = False
    batch_columns: bool = False
    shift: int = 0  # added to the layer of a, z, delta written with l or a number
    layers_by_index: bool = False
    d_is_mean_gradient: bool = False  # CS231n's dZ is dL/dZ of the mean loss; Ng's stacks samples
    weights_from_to: bool = False  # Wikipedia's w_{ij}: from unit i to unit j
    letters: frozenset = frozenset()  # letters only this source writes, unmapped (C, layer k)
    samples: str = ""  # Ioffe's x_i: the sample index (one activation: products elementwise)
    integer_labels: bool = False  # CS231n's y_i is sample i's class: 1(y_i = k) is symbp's y_k


_BASE = {name: Role(name) for name in SYMBP_NAMES} | {"w": Role("W"), "yhat": Role("a", OUT)}

PRESETS = {c.name: c for c in (
    Convention("symbp", "symbp (CONVENTIONS §1)",
               "a^{(0)} = x, W^{(l)} is n_l \\times n_{l-1} and z^{(l)} = W^{(l)} a^{(l-1)} + b^{(l)}"),
    Convention("nielsen", "Nielsen, Neural Networks and Deep Learning, ch. 2",
               "w^l_{jk} is the weight from unit k of layer l-1 to unit j of layer l and n the "
               "number of training inputs", {"count": Role("B")}, letters=frozenset("C")),
    Convention("wikipedia", "Wikipedia, Backpropagation",
               "w_{ij} is the weight from unit i to unit j and o_j the output of unit j",
               {"o": Role("a"), "t": Role("y")}, layers_by_index=True, weights_from_to=True),
    Convention("bishop", "Bishop, PRML §5.3",
               "a is the pre-activation, z the hidden activation, y the output and t the "
               "target, and the units i, j, k are in consecutive layers",
               {"a": Role("z"), "z": Role("a"), "y": Role("a", OUT), "t": Role("y")},
               layers_by_index=True),
    Convention("goodfellow", "Goodfellow, Bengio and Courville, Deep Learning, Algorithm 6.4",
               "a^{(k)} is the pre-activation and h^{(k)} the activation",
               {"a": Role("z"), "h": Role("a"), "H": Role("a")}, letters=frozenset("k")),
    Convention("ng", "Ng's courses (deeplearning.ai)",
               "the columns of X, A, Z and dZ are the m samples (X is n_0 \\times m)",
               {"m": Role("B"), "a": Role("a", OUT)}, batch_columns=True),
    Convention("cs231n", "CS231n notes",
               "W^{(l)} is n_{l-1} \\times n_l, b^{(l)} a row and Z = XW + b",
               {"N": Role("B"), "h": Role("a"), "H": Role("a"), "f": Role("z", OUT),
                "p": Role("a", OUT)}, weights_transposed=True, d_is_mean_gradient=True,
               integer_labels=True),
    Convention("d2l", "d2l.ai, Dive into Deep Learning §5.3",
               "h is the hidden activation, o the output and z the hidden pre-activation",
               {"h": Role("a", HIDDEN), "o": Role("z", OUT), "z": Role("z", HIDDEN)}),
    Convention("ioffe", "Ioffe and Szegedy, Batch Normalization (2015), §3",
               "x_i and y_i are the batch-norm layer's input and output for sample i of the "
               "batch \\mathcal{B}, \\hat{x}_i its normalised input, \\mu_\\mathcal{B} and "
               "\\sigma^2_\\mathcal{B} the batch's mean and variance, m the batch size and "
               "\\ell the batch's loss",
               {"x": Role("a", C.LayerRef("l", -1)), "y": Role("a", C.LayerRef("l")),
                "xhat": Role("xhat", C.LayerRef("l")), "mu": Role("mu", C.LayerRef("l")),
                "sigma2": Role("sigma2", C.LayerRef("l")), "mu_B": Role("mu", C.LayerRef("l")),
                "sigma2_B": Role("sigma2", C.LayerRef("l")),
                "sigma_B": Role("sigma", C.LayerRef("l")),
                "gamma": Role("gamma", C.LayerRef("l")), "beta": Role("beta", C.LayerRef("l")),
                "m": Role("B")}, samples="i"),
    Convention("ufldl", "UFLDL tutorial (Stanford)",
               "layer 1 is the input (a^{(1)} = x) and W^{(l)} maps layer l to layer l+1",
               shift=-1),
)}
DEFAULT = PRESETS["symbp"]

_WRITTEN = {"yhat": "\\hat{y}", "count": "n", "xhat": "\\hat{x}", "gamma": "\\gamma",
            "beta": "\\beta", "mu": "\\mu", "sigma2": "\\sigma^2", "mu_B": "\\mu_\\mathcal{B}",
            "sigma2_B": "\\sigma^2_\\mathcal{B}", "sigma_B": "\\sigma_\\mathcal{B}"}  # as written
# What an unmapped letter means in the sources, and how to declare it.
HINTS = {
    "h": ("the activation in Goodfellow (h^{(k)}) and d2l (\\mathbf{h})",
          "--convention goodfellow or --let h=a"),
    "H": ("the batch of activations in CS231n", "--convention cs231n or --let H=a"),
    "o": ("the output in d2l (\\mathbf{o} = W^{(2)} \\mathbf{h})", "--convention d2l or "
          "--let o=z^{(L)}"),
    "t": ("the target in Bishop", "--convention bishop or --let t=y"),
    "g": ("the gradient being propagated in Goodfellow's Algorithm 6.4 (\\nabla_{h^{(k)}} J, "
          "then \\nabla_{a^{(k)}} J after the \\odot step)",
          "write that gradient, e.g. \\nabla_{a^{(k)}} J, or --let g=delta"),
    "m": ("the batch size in Ng's courses", "--convention ng or --let m=B"),
    "N": ("the batch size in CS231n", "--convention cs231n or --let N=B"),
    "count": ("the number of training inputs in Nielsen (a width is n_l)",
              "--convention nielsen or --let n=B"),
    "mu_B": ("the batch's mean in Ioffe and Szegedy (symbp's \\mu^{(l)} of a batch-norm "
             "layer)", "--convention ioffe or write \\mu^{(l)}"),
    "sigma2_B": ("the batch's variance in Ioffe and Szegedy (symbp's \\sigma^{2(l)} of a "
                 "batch-norm layer)", "--convention ioffe or write \\sigma^{2(l)}"),
    "sigma_B": ("the batch's standard deviation in Ioffe and Szegedy",
                "--convention ioffe or write \\sigma^{(l)}"),
}


def get(name) -> Convention:
    """The preset ``name`` (None: symbp's), or a SymbpError naming the choices."""
    if name is None:
        return DEFAULT
    if isinstance(name, Convention):
        return name
    key = str(name).strip().lower()
    if key not in PRESETS:
        raise SymbpError(f"--convention {name}: unknown convention; choose one of "
                         f"{', '.join(PRESETS)}")
    return PRESETS[key]


def parse_let(text: str) -> tuple[str, Role]:
    """``h=a``, ``t=y``, ``m=B``, ``o=z^{(L)}``, ``g=delta``: (the letter as parsed, its role);
    a SymbpError naming the flag for anything else."""
    if not isinstance(text, str) or text.count("=") != 1:
        raise SymbpError(f"--let {text}: expected LETTER=QUANTITY, e.g. --let h=a")
    mine, ours = (part.strip() for part in text.split("="))
    ours = {"delta": r"\delta", "Delta": r"\Delta"}.get(ours, ours)
    written, target = _one_leaf(mine, text), _one_leaf(ours, text)
    if target.name not in SYMBP_NAMES or target.batch:
        raise SymbpError(f"--let {text}: {ours} is not one of symbp's quantities "
                         "W, b, z, a, x, y, delta, B")
    if written.layer is not None or written.name in SYMBP_NAMES - {"B"}:
        raise SymbpError(f"--let {text}: {mine} must be a letter that symbp does not define "
                         "(such as h, o, t, g, m, N)")
    return written.name, Role(target.name, target.layer)


def _one_leaf(text: str, flag: str) -> C.Leaf:
    try:
        node = C.parse_claim(f"{text} = 0").lhs
    except C.ClaimParseError:
        node = None
    if not isinstance(node, C.Leaf):
        raise SymbpError(f"--let {flag}: {text!r} is not a single letter such as h or a^{{(L)}}")
    return node


@dataclass
class Reading:
    """A claim read in a convention: ``claim`` in symbp's quantities (matrix form),
    ``symbols`` the user's letters -> symbp's (LaTeX)."""

    claim: C.Claim
    convention: Convention
    symbols: dict
    convolutions: bool = False


def read(text_or_claim, convention=None, lets=(), convolutions: bool = False) -> Reading:
    """Parse (if given text), rewrite in ``convention`` with ``lets`` (pairs from
    :func:`parse_let`), translate component forms; ClaimParseError when it cannot be read.
    ``*`` is the elementwise product, unless the network has ``convolutions`` (then it
    may be one: the claim must say \\odot)."""
    claim = text_or_claim if isinstance(text_or_claim, C.Claim) else C.parse_claim(text_or_claim)
    conv = get(convention)
    notation.letter_indices_only(claim)
    claim = C.Claim(tuple(_labels(side, conv, claim) for side in claim.sides), claim.text)
    claim = notation.piecewise(claim)
    claim = C.Claim(tuple(_stars(side, convolutions, claim) for side in claim.sides), claim.text)
    if not _about_network(claim.lhs) or _uses(claim, "normal_cdf"):  # \phi is the normal
        claim = C.Claim(tuple(_densities(side) for side in claim.sides), claim.text)  # density
    rewritten, symbols = rewrite(claim, conv, dict(lets))
    matrix = notation.to_matrix(rewritten)
    matrix = C.Claim(tuple(_reciprocals(side) for side in matrix.sides), matrix.text)
    _check_symbp(matrix)
    return Reading(matrix, conv, symbols, convolutions)


def rewrite(claim: C.Claim, conv: Convention, lets: dict) -> tuple[C.Claim, dict]:
    """The claim with every letter in symbp's meaning and layout (see the module docstring)."""
    writer = _Rewriter(claim, conv, lets)
    sides = [writer.node(side) for side in claim.sides]
    sides = _normalise_lhs(sides)
    rewritten = C.Claim(tuple(sides), claim.text)
    return _fill_layers(rewritten, writer), writer.symbols


class _Rewriter:
    def __init__(self, claim: C.Claim, conv: Convention, lets: dict):
        self.claim, self.conv, self.lets = claim, conv, lets
        self.symbols: dict = {}
        self.index_layers = _index_layers(claim) if conv.layers_by_index else {}

    def fail(self, node, message):
        raise C.ClaimParseError(message, node.span[0] + 1, text=self.claim.text)

    def role(self, leaf: C.Leaf) -> Role:
        name = leaf.name
        role = self.lets.get(name) or self.conv.symbols.get(name) or _BASE.get(name)
        if role is None:
            meaning, fix = HINTS.get(name, ("not a quantity of the network", "--let "
                                            f"{name}=a (or another quantity)"))
            letter = _WRITTEN.get(name, name)
            self.fail(leaf, f"{letter} is not defined in the {self.conv.name} convention: "
                            f"{letter} is {meaning}; use {fix}")
        if role.name != name or (role.layer is not None and leaf.layer is None):
            written = _WRITTEN.get(name) or C.leaf_latex(replace(leaf, layer=None))
            self.symbols[written] = role.latex
        return role

    def layer(self, ref: C.LayerRef | None, name: str) -> C.LayerRef | None:
        if ref is None:
            return None
        if ref.var == "k":
            self.symbols.setdefault("k (the layer)", "l")
            ref = C.LayerRef("l", ref.offset)
        if self.conv.shift and ref.var == "L":  # UFLDL's n_l counts the input layer
            self.symbols["n_l"] = f"L + {-self.conv.shift}"
            if name in ("W", "b"):
                ref = ref.shifted(-self.conv.shift)
            elif name in ("a", "z", "delta"):  # n_l + o is symbp's layer L + o
                mine = C.leaf_latex(C.Leaf(name, ref))
                self.symbols[mine.replace("(L", "(n_l")] = mine
        elif self.conv.shift and name in ("a", "z", "delta"):
            shifted = ref.shifted(self.conv.shift)
            self.symbols[C.leaf_latex(C.Leaf(name, ref))] = C.leaf_latex(C.Leaf(name, shifted))
            ref = shifted
        return ref

    def leaf(self, leaf: C.Leaf, indices=()) -> C.Node:
        role = self.role(leaf)
        layer = self.layer(leaf.layer, role.name) if leaf.layer is not None else None
        if layer is None and indices and role.name not in ("x", "y") and self.index_layers:
            layers = [self.index_layers[i] for i in indices if i in self.index_layers]
            # a weight between the units of two layers is the deeper layer's
            layer = max(layers, key=lambda ref: ref.offset) if layers else None
        if layer is None:
            layer = role.layer
        if role.name == "x" and layer is not None:
            self.fail(leaf, "x is the input: it takes no layer index")
        new = C.Leaf(role.name, None if role.name in _UNLAYERED else layer, leaf.batch,
                     span=leaf.span)
        return replace(new, batch=False) if role.name == "B" else new

    def node(self, node):
        if isinstance(node, C.Sum) and (node.upper in self.lets or node.upper in
                                        self.conv.symbols):  # Ng's \sum_{i=1}^{m}
            self.role(C.Leaf(node.upper, span=node.span))
        if self.conv.samples:
            return self.per_sample(node)
        if isinstance(node, C.Leaf):
            return self.layout(self.leaf(node))
        if isinstance(node, C.Indexed):
            return self.indexed(node)
        if isinstance(node, C.Grad):
            return self.grad(node, ())
        if isinstance(node, C.Sum) and isinstance(node.body, C.Example) \
                and node.body.index == node.index:
            # Ng's \sum_{i=1}^{m} dZ^{[l](i)}: the sum of the examples' columns, dZ 1
            return C.MatMul(self.node(node.body.arg), C.Ones(), span=node.span)
        if isinstance(node, C.Example):
            self.fail(node, "an example's column X^{(i)} is read in a sum over the examples, "
                            "\\sum_{i=1}^{m} X^{(i)}")
        if isinstance(node, C.Transpose):
            inner = self.node(node.arg)
            return inner.arg if isinstance(inner, C.Transpose) else replace(node, arg=inner)
        if isinstance(node, C.Apply):
            func = node.func
            if func.layer is not None:
                func = replace(func, layer=self.layer(func.layer, "z"))
            arg = self.node(node.arg)
            if func.name == "vec" and isinstance(arg, C.Transpose):  # a layout of vec(A)
                return C.Transpose(replace(node, func=func, arg=arg.arg), span=node.span)
            return replace(node, func=func, arg=arg)
        return C.map_children(node, self.node)

    def per_sample(self, node):
        """Ioffe's notation: ``q_i`` of sample i is row i of the batch Q, ``\\sum_i`` sums
        the rows (Q^T 1), a product of one activation's values is elementwise, and the
        loss \\ell is the batch's (symbp's L)."""
        samples = self.conv.samples
        if isinstance(node, C.Indexed) and tuple(node.indices) == (samples,) and isinstance(
                node.arg.target if isinstance(node.arg, C.Grad) else node.arg, C.Leaf):
            if isinstance(node.arg, C.Grad):
                return self.batch_grad(node.arg, True)
            rows = replace(self.leaf(node.arg), batch=True)
            self.symbols[self.claim.source(node)] = f"{C.leaf_latex(rows)}_{{{samples},:}}"
            return rows
        if isinstance(node, C.Sum) and node.index == samples:
            return C.MatMul(C.Transpose(self.per_sample(node.body)), C.Ones(), span=node.span)
        if isinstance(node, C.Grad):
            return self.batch_grad(node, False)
        if isinstance(node, C.Leaf):
            return self.leaf(node)
        if isinstance(node, (C.Indexed, C.Example)):
            self.fail(node, f"in {self.conv.source} a quantity's subscript is the sample "
                            f"{samples} (x_{samples}, y_{samples}, \\hat{{x}}_{samples})")
        node = C.map_children(node, self.per_sample)
        if isinstance(node, C.MatMul) and not (_scalar(node.left) or _scalar(node.right)):
            return C.Hadamard(node.left, node.right, span=node.span)
        return node

    def batch_grad(self, node: C.Grad, rows: bool) -> C.Grad:
        """The batch loss's gradient (with respect to the batch's rows when ``rows``)."""
        if not isinstance(node.target, C.Leaf):
            self.fail(node, f"in {self.conv.source} a gradient is with respect to x_i, y_i, "
                            "\\hat{x}_i, \\gamma, \\beta or a statistic of the batch")
        target = self.leaf(node.target)
        if target.name not in _TARGETS:
            self.fail(node, "differentiate the loss with respect to x_i, y_i, \\hat{x}_i, "
                            "\\gamma, \\beta, \\mu_\\mathcal{B} or \\sigma^2_\\mathcal{B}")
        self.symbols[node.loss] = "L"
        statistic = target.name in ("mu", "sigma2", "sigma")  # one per batch, as a parameter's
        return C.Grad("L", replace(target, batch=rows or statistic), span=node.span)

    def indexed(self, node: C.Indexed):
        idx = tuple(node.indices)
        base = node.arg.target if isinstance(node.arg, C.Grad) else node.arg
        if self.conv.weights_from_to and isinstance(base, C.Leaf) and base.name in ("w", "W"):
            idx = tuple(reversed(idx))  # w_{ij} from unit i to unit j is symbp's W_{ji}
        if isinstance(node.arg, C.Grad):
            inner = self.grad(node.arg, idx)
        elif isinstance(node.arg, C.Leaf):
            inner = self.layout(self.leaf(node.arg, idx))
        else:  # an entry of an expression (vec(a)_i): its letters are rewritten inside
            inner = self.node(node.arg)
        return _index(inner, idx)

    def layout(self, leaf: C.Node, written: str | None = None) -> C.Node:
        """Transposes of the convention's layouts (an entry swaps its indices instead);
        ``written`` names the user's symbol in the mapping (default: the leaf's letter)."""
        if not isinstance(leaf, C.Leaf):
            return leaf
        flip = (leaf.name in ("W", "b") and self.conv.weights_transposed) or (
            leaf.batch and self.conv.batch_columns and leaf.name != "B")
        if flip and written is None:
            letter = C.leaf_latex(replace(leaf, layer=None))
            self.symbols[letter] = f"{letter}^{{\\top}}"
        return C.Transpose(leaf, span=leaf.span) if flip else leaf

    def grad(self, node: C.Grad, idx) -> C.Node:
        if not isinstance(node.target, C.Leaf):  # d/d vec(a): the letters inside it
            inner = self.node(node.target)
            if isinstance(inner, C.Transpose):  # the gradient of a transposed layout
                return C.Transpose(replace(node, target=inner.arg), span=node.span)
            return replace(node, target=inner)
        target = self.leaf(node.target, idx)
        if target.name == "x":
            target = C.Leaf("a", C.LayerRef(None, 0), target.batch, span=target.span)
        if target.name not in _TARGETS:
            ioffe = (" (y_i as the batch-norm layer's output, as in Ioffe and Szegedy: "
                     "--convention ioffe)") if target.name == "y" else ""
            self.fail(node, f"differentiate the loss with respect to W, b, z, a or x{ioffe}")
        letter = C.leaf_latex(replace(target, layer=None))
        written = f"d{letter}" if node.loss == "d" else f"\\partial {node.loss}/\\partial {letter}"
        if target.batch and target.name == "z":  # symbp's Delta is dL/dZ of the mean loss
            value = self.layout(C.Leaf("delta", target.layer, True, span=node.span), written)
            meaning = r"\Delta"
        else:
            loss = ("L" if target.batch else r"\ell") if node.loss == "d" else node.loss
            value = C.Grad(loss, target, span=node.span)
            meaning = rf"\frac{{\partial {loss}}}{{\partial {letter}}}"
            if (target.name in ("W", "b") and self.conv.weights_transposed) or (
                    target.batch and self.conv.batch_columns):
                value = C.Transpose(value, span=node.span)
        if isinstance(value, C.Transpose):
            meaning = rf"\left({meaning}\right)^{{\top}}"
        # Ng's dZ, dA stack the samples' gradients: B times those of the mean loss
        stacked = node.loss == "d" and target.batch and not self.conv.d_is_mean_gradient
        if stacked:
            value, meaning = C.MatMul(C.Leaf("B"), value, span=node.span), f"B {meaning}"
        if node.loss == "d" or meaning != rf"\frac{{\partial {node.loss}}}{{\partial {letter}}}":
            self.symbols[written] = meaning
        return value


def _index(inner: C.Node, idx: tuple) -> C.Node:
    """``inner`` indexed by ``idx``: a transposed quantity swaps its indices, Ng's ``B``
    times a quantity indexes the quantity."""
    if isinstance(inner, C.Transpose):
        return C.Indexed(inner.arg, tuple(reversed(idx)), span=inner.span)
    if isinstance(inner, C.MatMul):  # Ng's B Delta
        return C.MatMul(inner.left, _index(inner.right, idx), span=inner.span)
    return C.Indexed(inner, idx, span=inner.span)


def _index_layers(claim: C.Claim) -> dict:
    """Bishop's units: index letters i, j, k in consecutive layers; j is layer l, or the
    letter of the output (y, t) is L, or the letter of an input unit (x_i, as in
    eq. 5.53's z_i = x_i) is layer 0."""
    order = {"i": 0, "j": 1, "k": 2, "\\ell": 2}  # Wikipedia writes \ell for k
    letters = {i for side in claim.sides for _, n in C.walk(side) if isinstance(n, C.Indexed)
               for i in n.indices if i in order}
    anchor_letter, anchor = "j", C.LayerRef("l")
    for side in claim.sides:
        for _, n in C.walk(side):
            if not isinstance(n, C.Indexed) or not n.indices or n.indices[0] not in order:
                continue
            base = n.arg.target if isinstance(n.arg, C.Grad) else n.arg
            if isinstance(base, C.Leaf) and base.name in ("y", "t"):  # the output's units
                anchor_letter, anchor = n.indices[0], OUT
            elif isinstance(base, C.Leaf) and base.name in ("w", "W", "delta") and base.layer \
                    and anchor is not OUT:  # w^{(2)}_{kj}: unit k is in layer 2; \delta^{(L)}_j
                anchor_letter, anchor = n.indices[0], base.layer
            elif isinstance(base, C.Leaf) and base.name == "x" and anchor is not OUT:
                anchor_letter, anchor = n.indices[0], C.LayerRef(None, 0)  # x_i: an input unit
    return {letter: anchor.shifted(order[letter] - order[anchor_letter]) for letter in letters}


def _normalise_lhs(sides: list) -> list:
    """Undo a layout on the left-hand side: ``W^T = R`` is ``W = R^T``, ``B D = R`` is
    ``D = R / B``, so that the left side is the quantity itself."""
    lhs, rest = sides[0], list(sides[1:])
    while True:
        if isinstance(lhs, C.Transpose):
            lhs, rest = lhs.arg, [notation.transpose(side) for side in rest]
        elif isinstance(lhs, C.MatMul) and lhs.left == C.Leaf("B"):
            lhs, rest = lhs.right, [C.Div(side, C.Leaf("B")) for side in rest]
        else:
            return [lhs] + rest


def _fill_layers(claim: C.Claim, writer: _Rewriter) -> C.Claim:
    """Give an unlayered W, b, z, a or delta the layer the claim implies, or refuse:

    - a gradient target without a layer (Nielsen's ``\\nabla_a C``) takes the one layer
      that all the claim's layered quantities share;
    - in a claim with no layer anywhere, everything is layer 1 when the input x appears
      (CS231n's ``dW = X^T dZ``), the output layer L when the target y appears;
    - anything else is a ClaimParseError asking for the layer index."""
    if not _about_network(claim.lhs):  # a scalar claim in z, x or a: no layers
        return claim
    refs, missing, targets, has_x, has_y = set(), [], [], False, False
    for side in claim.sides:
        for path, node in _walk_all(side):
            input_ = isinstance(node, C.Leaf) and (node.name == "x" or (
                node.name == "a" and node.layer == C.LayerRef(None, 0)))  # a^{(0)} is x
            if isinstance(node, C.Leaf) and node.name in _LAYERED and not input_:
                if node.layer is not None:
                    refs.add(node.layer)
                else:
                    (targets if path == "target" else missing).append(node)
            has_x |= input_
            has_y |= isinstance(node, C.Leaf) and node.name == "y"
    if not missing and not targets:
        return claim
    if refs and not missing and len(refs) == 1:
        layer = next(iter(refs))
    elif not refs and has_x != has_y:
        layer = C.LayerRef(None, 1) if has_x else OUT
    else:
        first = (missing + targets)[0]
        letter = C.leaf_latex(first)
        hint = (" (unlayered units i, j, k as in Bishop: --convention bishop)"
                if writer.conv is not PRESETS["bishop"] else "")
        raise C.ClaimParseError(f"{letter} has no layer index and the claim does not say "
                                f"which layer it is: write {letter}^{{(l)}}{hint}",
                                first.span[0] + 1, ["'^{(l)}'"], claim.text)
    sides = tuple(_set_layer(side, layer) for side in claim.sides)
    writer.symbols["the layer of the unlayered quantities"] = layer.label
    return C.Claim(sides, claim.text)


def _labels(node, conv: Convention, claim: C.Claim):
    """CS231n's ``\\mathbb{1}(y_i = k)`` with an integer label y_i is entry k of symbp's one-hot
    target, ``y_k``; a condition in words (a case's ``\\text{if } ...``) is read only by
    :func:`verify_written`'s cases of a unit's layer."""
    if isinstance(node, C.Indicator) and isinstance(node.condition, C.Equal):
        sides = (node.condition.left, node.condition.right)
        label = next((side for side in sides if isinstance(side, C.Indexed) and isinstance(
            side.arg, C.Leaf) and side.arg.name == "y" and len(side.indices) == 1), None)
        letter = next((side for side in sides if isinstance(side, C.Letter)), None)
        if label is None or letter is None:
            raise C.ClaimParseError("an indicator of an equality reads a sample's integer "
                                    "label against a class letter, \\mathbb{1}(y_i = k)",
                                    node.span[0] + 1, text=claim.text)
        if not conv.integer_labels:
            raise C.ClaimParseError(f"{claim.source(node)} reads y_i as sample i's class (as "
                                    "in CS231n: --convention cs231n); symbp's y is the one-hot "
                                    f"target, whose entry is y_{letter.name}", node.span[0] + 1,
                                    text=claim.text)
        return C.Indexed(C.Leaf("y", span=label.arg.span), (letter.name,), span=node.span)
    if isinstance(node, C.Prose):
        raise C.ClaimParseError(f"a condition in words ({node.text}) is read only in cases "
                                "that say which unit is an output unit and which an inner "
                                "one (Wikipedia's derivation: --convention wikipedia)",
                                node.span[0] + 1, text=claim.text)
    return C.map_children(node, lambda child: _labels(child, conv, claim))


def _stars(node, convolutions: bool, claim: C.Claim):
    if isinstance(node, C.Star):
        if convolutions:
            raise C.ClaimParseError("'*' on a network with convolutions: write \\odot for the "
                                    "elementwise product (claims about a convolution are not "
                                    "read yet)", node.span[0] + 1, text=claim.text)
        return C.Hadamard(_stars(node.left, convolutions, claim),
                          _stars(node.right, convolutions, claim), span=node.span)
    return C.map_children(node, lambda child: _stars(child, convolutions, claim))


def _uses(claim: C.Claim, function: str) -> bool:
    return any(isinstance(node, C.Apply) and node.func.name == function
               for side in claim.sides for _, node in C.walk(side))


def _densities(node):
    """``\\phi(x)`` in a scalar identity or next to ``\\Phi`` (gelu's ``\\Phi(x) + x \\phi(x)``):
    the normal density; elsewhere in a claim about a network it is the layer's activation
    (d2l's)."""
    if isinstance(node, C.Apply) and node.func.name == "generic" and node.func.letter == "phi":
        return replace(node, func=C.Func("normal_pdf", node.func.order, node.func.power),
                       arg=_densities(node.arg))
    changes = {name: _densities(child) for name, child in C.children(node)}
    return replace(node, **changes) if changes else node


def _about_network(lhs: C.Node) -> bool:
    if isinstance(lhs, C.Indexed):
        lhs = lhs.arg
    return isinstance(lhs, C.Grad) or isinstance(lhs, C.Leaf) and lhs.name == "delta"


def _walk_all(node):
    """Every node, and the targets of gradients too."""
    for path, child in C.walk(node):
        yield path, child
        if isinstance(child, C.Grad):
            yield "target", child.target


def _set_layer(node, layer: C.LayerRef):
    if isinstance(node, C.Leaf):
        return replace(node, layer=layer) if node.name in _LAYERED and node.layer is None \
            else node
    if isinstance(node, C.Grad):
        return replace(node, target=_set_layer(node.target, layer))
    changes = {name: _set_layer(child, layer) for name, child in C.children(node)}
    return replace(node, **changes) if changes else node


_SCALARS = {"B", "n", "eps", "p", "lambda", "pi"}


def _reciprocals(node):
    """``\\frac{1}{v}`` with a vector or matrix ``v`` is its elementwise reciprocal, as the
    printer means it (``\\frac{1}{e^{A}}``): ``1 \\cdot v^{-1}``."""
    if isinstance(node, C.Grad):
        return node
    changes = {name: _reciprocals(child) for name, child in C.children(node)}
    node = replace(node, **changes) if changes else node
    if isinstance(node, C.Div) and isinstance(node.num, C.Num) and not _scalar(node.den):
        return C.MatMul(node.num, C.Power(node.den, -1, span=node.den.span), span=node.span)
    return node


def _scalar(node) -> bool:
    return all(not isinstance(n, (C.Leaf, C.Grad, C.Ones)) or isinstance(n, C.Leaf)
               and n.name in _SCALARS for _, n in C.walk(node))


def _check_symbp(claim: C.Claim) -> None:
    """Only symbp's quantities are left, with the layers the decision needs."""
    for side in claim.sides:
        for _, node in _walk_all(side):
            if isinstance(node, (C.Indexed, C.Sum)):  # pragma: no cover - to_matrix removed them
                raise C.ClaimParseError("an index form is left", node.span[0] + 1,
                                        text=claim.text)
            if isinstance(node, C.Leaf) and node.name not in SYMBP_NAMES:  # pragma: no cover
                raise C.ClaimParseError(f"{node.name} is not defined", node.span[0] + 1,
                                        text=claim.text)


# --------------------------------------------------------------- the verdict
def verify_written(text: str, network=None, convention=None, lets=()) -> Verdict:
    """Decide a claim as the user wrote it, in ``convention`` (a preset name, default
    symbp's) with ``lets`` (``"h=a"`` strings or parsed pairs)."""
    from symbp.verify.check import as_network
    from symbp.verify.verdict import unparsed

    network = as_network(network)
    conv = get(convention)
    pairs = [parse_let(item) if isinstance(item, str) else item for item in lets]
    convolutions = network is not None and any(
        layer.type.startswith("conv") for layer in network.layers)
    named = convention is not None or bool(pairs)
    try:
        parsed = text if isinstance(text, C.Claim) else C.parse_claim(text)
    except C.ClaimParseError as error:
        return label(unparsed(text if isinstance(text, str) else repr(text), error), conv, {},
                      convention is not None)
    text = parsed.text
    cases = _unit_cases(parsed, conv)
    if cases:
        return _verify_cases(text, cases, network, conv, pairs, convolutions, named)
    return _verify_claim(text, parsed, network, conv, pairs, convolutions, named)


def _verify_claim(text, parsed: C.Claim, network, conv, pairs, convolutions, named) -> Verdict:
    from symbp.verify.check import verify_parsed
    from symbp.verify.verdict import unparsed

    try:
        reading = read(parsed, conv, pairs, convolutions)
    except C.ClaimParseError as error:
        return label(unparsed(text, error), conv, {}, named)
    verdict = verify_parsed(reading.claim, network, text)
    label(verdict, conv, reading.symbols, named)
    if verdict.verdict == "incorrect" and network is not None:
        _component_mistakes(verdict, parsed, reading, network, pairs)
        _other_conventions(verdict, parsed, reading, network, pairs, named)
    return verdict


def _unit_cases(claim: C.Claim, conv: Convention) -> list | None:
    """Wikipedia's ``\\delta_j = \\begin{cases} ... & \\text{if } j \\text{ is an output neuron,}
    \\\\ ... & \\text{if } j \\text{ is an inner neuron.} \\end{cases}``: ``(condition, claim)``
    per case, the output case's unit j pinned to the output layer (``\\delta^{(L)}_j``), the
    inner one's to a hidden layer; None for any other claim."""
    lhs = claim.lhs
    if len(claim.sides) != 2 or not isinstance(claim.sides[1], C.Cases) or not \
            conv.layers_by_index or not isinstance(lhs, C.Indexed) or not isinstance(
                lhs.arg, C.Leaf) or lhs.arg.name != "delta" or lhs.arg.layer is not None:
        return None
    cases = []
    for value, condition in claim.sides[1].rows:
        words = condition.text.lower() if isinstance(condition, C.Prose) else ""
        if "output" in words:
            pinned = replace(lhs, arg=replace(lhs.arg, layer=OUT))
        elif "inner" in words or "hidden" in words:
            pinned = lhs
        else:
            return None
        cases.append((condition.text, C.Claim((pinned, value), claim.text)))
    return cases


def _verify_cases(text, cases, network, conv, pairs, convolutions, named) -> Verdict:
    """Each case as its own claim: the first that is not correct is the verdict (naming
    its case), else a correct verdict over all of them."""
    verdicts = []
    for condition, claim in cases:
        condition = condition.rstrip(",.; ")
        verdict = _verify_claim(text, claim, network, conv, pairs, convolutions, named)
        if not verdict.ok:
            verdict.summary = f"in the case '{condition}': {verdict.summary}"
            return verdict
        verdicts.append((condition, verdict))
    verdict = verdicts[0][1]
    rest = [item for _, case in verdicts for item in case.evidence[1:]]
    verdict.evidence = [f"{condition}: {case.evidence[0]}" for condition, case in verdicts
                        if case.evidence] + list(dict.fromkeys(rest))
    verdict.summary = verdict.evidence[0]
    verdict.layers = sorted({layer for _, case in verdicts for layer in case.layers})
    verdict.correct = "; ".join(case.correct for _, case in verdicts if case.correct) or None
    for _, case in verdicts[1:]:
        verdict.symbols.update(case.symbols)
    return verdict


def label(verdict, conv: Convention, symbols: dict, named: bool):
    """The verdict names the convention it was read in (when one was named or a symbol
    mapped) and the user's symbols."""
    if named or symbols:
        verdict.convention = conv.name
    if symbols:
        verdict.symbols = dict(symbols)
    return verdict


def _component_mistakes(verdict, parsed: C.Claim, reading: Reading, network, pairs) -> None:
    """Mistakes of a component form that its matrix reading cannot undo (swapped indices
    may move a unit to another layer): each variant read in the claim's convention."""
    from symbp.verify.check import verify_parsed

    text = parsed.text
    for description, variant in swapped_indices(parsed):
        try:
            other = read(variant, reading.convention, pairs, reading.convolutions)
            if verify_parsed(other.claim, network, text).ok and \
                    description not in verdict.mistakes:
                verdict.mistakes.append(description)
        except (C.ClaimParseError, SymbpError):
            continue


def _other_conventions(verdict, parsed: C.Claim, reading: Reading, network, pairs,
                       named: bool) -> None:
    """If another preset reads the claim as a correct one, say so: first when the user named
    no convention, after the mistakes found in the one they named."""
    from symbp.verify.check import verify_parsed

    seen = [reading.claim.sides]
    for conv in other_presets(parsed, reading.convention):
        try:
            other = read(parsed, conv, pairs, reading.convolutions)
        except C.ClaimParseError:
            continue
        if other.claim.sides in seen:
            continue
        seen.append(other.claim.sides)
        try:
            alternative = verify_parsed(other.claim, network, parsed.text)
        except SymbpError:
            continue
        if alternative.ok:
            add_convention_note(verdict, conv, named)
            return


def other_presets(parsed: C.Claim, current: Convention):
    """The presets other than ``current`` to try for ``parsed``, those whose letters the
    claim uses first (Goodfellow's h, k and J: goodfellow); Ioffe's only for a claim about
    samples x_i."""
    used = _letters(parsed)
    for conv in sorted(PRESETS.values(), key=lambda c: -len(used & (set(c.symbols) | c.letters))):
        if conv is current or conv.samples and not _has_index(parsed, conv.samples):
            continue
        yield conv


def add_convention_note(verdict, conv: Convention, named: bool) -> None:
    """The verdict says the claim is correct if read in ``conv``: first when the user named
    no convention, after the mistakes found in the one they named."""
    truth = f"; in this spec's convention the formula is {verdict.correct}" \
        if verdict.correct else ""
    note = (f"convention: correct if {conv.condition} (as in {conv.source}: "
            f"--convention {conv.name}){truth}")
    verdict.mistakes.insert(len(verdict.mistakes) if named else 0, note)


def _has_index(claim: C.Claim, letter: str) -> bool:
    return any(isinstance(node, C.Indexed) and letter in node.indices
               for side in claim.sides for _, node in C.walk(side))


def _letters(claim: C.Claim) -> set:
    """The letters a claim is written in: its quantities, losses and layer variables."""
    found = set()
    for side in claim.sides:
        for _, node in _walk_all(side):
            if isinstance(node, C.Leaf):
                found.add(node.name)
                if node.layer is not None and node.layer.var:
                    found.add(node.layer.var)
            elif isinstance(node, C.Grad):
                found.add(node.loss)
    return found
