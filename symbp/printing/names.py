"""What each tensor is called in print, and readable index letters.

Contract: a :class:`Quantity` is how one graph tensor (or its gradient) is
printed in one *view*: ``"batch"`` (rows are samples, the objective ``L``)
or ``"sample"`` (one row ``s`` as a column vector, the sample's loss
``\\ell``). Its ``latex``/``text`` name is the matrix-form name (batch
matrices capital: ``Z^{(1)}``, ``\\hat{X}^{(2)}``), :meth:`Quantity.entry`
the LaTeX of one entry (``z^{(1)}_{s,i}``) for index forms. Gradients are
``\\frac{\\partial L}{\\partial ...}`` (``\\ell`` per sample), except a dense
layer's pre-activation, whose gradient is ``\\Delta^{(l)} = \\partial L /
\\partial Z^{(l)}`` (batch) and ``\\delta^{(l)} = \\partial \\ell / \\partial
z^{(l)}`` (one sample), and so is a convolution layer's.
:func:`readable` renames the engine's canonical indices (``i0, i1, k0``) to
letters by the kind of axis they index (:mod:`symbp.printing.axes`): ``s``
for the batch row, ``i, j`` for the other free axes of a dense layer's
tensors, ``r, t`` for a sum over the batch and ``k, m, p`` for other sums;
``c, i, j, p, q`` (channel, position, kernel offset) for the axes of
convolutions and pooling. The names come from the engine's ``Tensor.latex``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from symbp.engine.indices import FREE
from symbp.ops.base import BATCH
from symbp.printing.axes import BATCH_KIND, FEATURE, kinds_of_indices, letter_pools

VIEWS = ("batch", "sample")
WEIGHTED_OPS = ("dense", "conv1d", "conv2d")  # a layer's pre-activation: its gradient is delta


@dataclass(frozen=True)
class Quantity:
    """One tensor as printed: ``code`` its graph name, ``latex``/``text`` its matrix name."""

    code: str
    latex: str
    text: str
    entry_base: str  # LaTeX name an entry's indices attach to
    over: str = ""  # an entry printed as d(over)/d(entry_base_{...}) when set
    comma: bool = False  # indices joined with commas (a batch row index among them)
    function: str = ""  # an entry printed as function(entry_base_{...}) when set
    gradient: bool = False  # a gradient (its entries print first in a product)
    parameter: bool = False  # a parameter (next, in a product over positions: W a)

    def entry(self, indices: str) -> str:
        sub = f"{self.entry_base}_{{{indices}}}"
        if self.function:
            return rf"{self.function}\left({sub}\right)"
        return rf"\frac{{\partial {self.over}}}{{\partial {sub}}}" if self.over else sub

    def text_entry(self, indices: str) -> str:
        entry = f"{to_text(self.entry_base) if not self.over else self.text}[{indices}]"
        return f"{to_text(self.function)}({entry})" if self.function else entry


def to_text(latex: str) -> str:
    """A tensor's LaTeX name in plain text: ``\\hat{x}^{(2)}`` -> ``xhat^(2)``."""
    text = re.sub(r"\\frac\{\\partial (\\?\w+)\}\{\\partial (.*)\}$",
                  lambda m: f"d{m.group(1).lstrip(chr(92))}/d{to_text(m.group(2))}", latex)
    if text != latex:
        return text
    text = re.sub(r"\\operatorname\{(\w+)\}", r"\1", latex)
    text = re.sub(r"\\widetilde\{\\?(\w+)\}", r"\1~", text)
    text = re.sub(r"\^\{(\d*)\((.*?)\)\}", r"\1^(\2)", text)
    text = re.sub(r"\\hat\{\\?(\w+)\}", r"\1hat", text)
    return re.sub(r"\\(\w+)", r"\1", text).replace("{", "").replace("}", "")


def capital(latex: str) -> str:
    """``a^{(1)}`` -> ``A^{(1)}``, ``\\hat{x}^{(2)}`` -> ``\\hat{X}^{(2)}``; Greek names as they are."""
    latex = re.sub(r"^(\\operatorname\{vec\}\()([a-z])(?=\^)",  # a batch reshape: vec(A^{(4)})
                   lambda m: m.group(1) + m.group(2).upper(), latex)
    latex = re.sub(r"^([a-z])(?=\^|$)", lambda m: m.group(1).upper(), latex)
    return re.sub(r"^\\hat\{([a-z])\}", lambda m: rf"\hat{{{m.group(1).upper()}}}", latex)


def is_batch(tensor) -> bool:
    return tensor.rank > 0 and tensor.shape[0] == BATCH


def _sample_latex(tensor) -> str:
    return {"X": "x", "Y": "y"}.get(tensor.name, tensor.latex)


def tensor_quantity(tensor, view: str) -> Quantity:
    """How ``tensor`` itself is printed in ``view``."""
    if view == "sample" and is_batch(tensor):
        latex = _sample_latex(tensor)
        return Quantity(tensor.name, latex, to_text(latex), latex)
    batch_matrix = is_batch(tensor) and tensor.rank == 2
    latex = capital(tensor.latex) if batch_matrix else tensor.latex
    return Quantity(tensor.name, latex, to_text(latex), tensor.latex, comma=is_batch(tensor),
                    parameter=tensor.role == "parameter")


def gradient_quantity(graph, tensor, adjoint, view: str) -> Quantity:
    """How the gradient of ``tensor`` (held in ``adjoint``) is printed in ``view``."""
    sample = view == "sample"
    equation = graph.definition(tensor.name)
    comma = is_batch(tensor) and not sample
    if equation is not None and equation.op in WEIGHTED_OPS:
        letter = r"\delta" if sample else r"\Delta"
        latex = f"{letter}^{{({tensor.layer})}}"
        return Quantity(adjoint.name, latex, to_text(latex), latex, comma=comma, gradient=True)
    loss = r"\ell" if sample else "L"
    own = tensor_quantity(tensor, view)
    latex = rf"\frac{{\partial {loss}}}{{\partial {own.latex}}}"
    text = f"d{'l' if sample else 'L'}/d{own.text}"
    base = own.latex if sample else tensor.latex
    return Quantity(adjoint.name, latex, text, base, over=loss, comma=comma, gradient=True)


def quantities(graph, gradients, view: str) -> dict:
    """Every tensor of ``graph`` and every gradient's adjoint, by IndexedBase label."""
    table = {t.base.label: tensor_quantity(t, view) for t in graph.tensors.values()}
    for gradient in gradients:
        table[gradient.adjoint.base.label] = gradient_quantity(graph, gradient.of,
                                                               gradient.adjoint, view)
    return table


# ------------------------------------------------------------------ index letters
def readable(expr: sp.Expr, shape: tuple, axes: dict | None = None, own: tuple = ()) -> tuple:
    """``(expr with letters for its indices, the free letters)`` for a tensor of ``shape``
    whose axes are of the kinds ``own`` (:mod:`symbp.printing.axes`; ``axes`` names the
    axes of the tensors ``expr`` reads). Without them every axis is a row or a feature."""
    if len(own) != len(shape):
        own = tuple(BATCH_KIND if size == BATCH else FEATURE for size in shape)
    free, letters = {}, []
    for axis, kind in enumerate(own):
        letter = _pick(letter_pools(kind, bound=False), set(letters))
        free[FREE[axis]] = sp.Symbol(letter, integer=True)
        letters.append(letter)
    return _bound(expr.xreplace(free), set(letters), axes or {}), letters


def _pick(pool: tuple, used: set) -> str:
    return next(c for c in pool + tuple("abcdefgh") if c not in used)


def _bound(expr: sp.Expr, used: set, axes: dict) -> sp.Expr:
    if not isinstance(expr, sp.Basic) or expr.is_Atom or isinstance(expr, sp.Indexed):
        return expr
    if isinstance(expr, sp.Sum):
        body, limits, inner = expr.function, [], set(used)
        kinds = kinds_of_indices(body, axes)
        for index, low, high in expr.limits:
            kind = kinds.get(index, BATCH_KIND if high == BATCH - 1 else FEATURE)
            letter = _pick(letter_pools(kind, bound=True), inner)
            inner.add(letter)
            symbol = sp.Symbol(letter, integer=True)
            body = body.xreplace({index: symbol})
            limits.append((symbol, low, high))
        return sp.Sum(_bound(body, inner, axes), *limits)
    return expr.func(*[_bound(arg, used, axes) for arg in expr.args])
