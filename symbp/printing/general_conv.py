"""The general convolution layer ``l``: a concrete layer's derived formulas with its numbers named.

Contract: :func:`section` returns, for a network with a convolution layer
that reads another layer's output (read by nothing else) and pads every axis
(so that its derived formulas keep every range condition), the per-sample
formulas of that layer
as derived (forward, delta, kernel, bias and input gradients) with its
layer numbers renamed as :mod:`symbp.printing.general` does (``l - 1``,
``l``, ``f_l'``), its channel counts ``n_{l-1}``, ``n_{l}``, and each number
of its geometry named by the role it plays in the derived index expressions:
a read at ``i S + p - P`` (the forward definition, the kernel gradient) has
the stride ``S`` and padding ``P``, one at ``(i - p + P)/S`` (the input
gradient) the same; a sum over kernel offsets runs to ``K - 1``, one over
positions to the extent (``H`` in, ``H'`` out; ``L, L'`` in 1-d); a range
condition on a read is ``[0 <= e <= H - 1]`` or ``[e in {0, ..., H' - 1}]``.
A number in another role, or one the renaming cannot place, gives None
(nothing is printed rather than a guess). Nothing is derived here.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symbp.engine.indices import FREE, Inside, affine_terms
from symbp.printing import general
from symbp.printing.axes import kinds_of_indices
from symbp.printing.rows import Section, formula_row
from symbp.printing.sample import sample_equation

CONV_OPS = ("conv1d", "conv2d")


class NotGeneral(Exception):
    """A number of the concrete layer that the renaming cannot place."""


@dataclass(frozen=True)
class GeneralForm:
    """One formula of the chosen layer: as derived (``concrete``) and with its numbers named."""

    label: str
    tensor: object  # the tensor it defines (or whose gradient it is)
    gradient: object  # the engine's Gradient, None for the forward definition
    concrete: sp.Expr
    general: sp.Expr


def section(document):
    found = general_forms(document)
    if found is None:
        return None
    layer, forms, _ = found
    graph = document.graph
    renamed = general._renamed(document.sample, layer,
                               {layer - 1: "l - 1", layer: "l", layer + 1: "l + 1"})
    rows = []
    for form in forms:
        expr = form.general
        if form.label == f"g_z{layer}":  # the activation's derivative, as derived, is f_l'
            expr = general._with_fprime(expr, graph, layer, renamed) or expr
        tensor = form.tensor
        target = renamed.quantities[(form.gradient.adjoint if form.gradient else tensor).base.label]
        shape = tensor.shape[1:] if tensor.role != "parameter" else tensor.shape
        rows.append(formula_row(f"general_conv_{form.label}", target, expr, shape, renamed))
    return Section(f"Backpropagation, general convolution layer l for one sample (the formulas "
                   f"of layer {layer} renamed: kernel K, stride S, padding P, input extents "
                   "H, W and output extents H', W'; L, L' in 1-d)", tuple(rows))


def general_forms(document):
    """``(layer, [GeneralForm], {name: the number it stands for})`` or None."""
    layer = _chosen(document)
    if layer is None:
        return None
    try:
        return layer, *_forms(document, layer)
    except NotGeneral:
        return None


def _chosen(document):
    """The last convolution layer that pads every axis and reads another layer's output,
    which nothing else reads (its input gradient is the convolution's alone)."""
    graph = document.graph
    for equation in reversed(graph.equations):
        if equation.op not in CONV_OPS:
            continue
        options = document.d.network.layers[equation.layer - 1].options
        source = _input(graph, equation.layer)
        only = [c.out.name for c in graph.consumers(source.name)] == [equation.out.name]
        if all(p > 0 for p in options["padding"]) and only and \
                f"g_{source.name}" in document.samples:
            return equation.layer
    return None


def _input(graph, layer: int):
    """The tensor a convolution layer convolves (its other inputs are W and b)."""
    return next(t for t in graph.definition(f"z{layer}").inputs if t.role != "parameter")


def _geometry(document, layer: int) -> list:
    """Per spatial axis: numbers and their names."""
    graph = document.graph
    z = graph.tensors[f"z{layer}"]
    x = _input(graph, layer)
    options = document.d.network.layers[layer - 1].options
    axes = len(z.shape) - 2
    per = {key: tuple(options[key]) * (axes if len(options[key]) == 1 else 1)
           for key in ("kernel", "stride", "padding")}
    same = {key: len(set(values)) == 1 for key, values in per.items()}
    extents = (("L",),) if axes == 1 else (("H",), ("W",))
    names = []
    for a in range(axes):
        def named(key, letter, a=a):
            return sp.Symbol(letter if same[key] else f"{letter}_{{{a + 1}}}", positive=True)
        names.append({"K": (per["kernel"][a], named("kernel", "K")),
                      "S": (per["stride"][a], named("stride", "S")),
                      "P": (per["padding"][a], named("padding", "P")),
                      "in": (int(x.shape[2 + a]), sp.Symbol(extents[a][0], positive=True)),
                      "out": (int(z.shape[2 + a]), sp.Symbol(extents[a][0] + "'",
                                                              positive=True))})
    return names


def _forms(document, layer: int) -> tuple:
    graph, view = document.graph, document.sample
    geometry = _geometry(document, layer)
    x = _input(graph, layer)
    inside = {x.name, f"g_{x.name}"}  # tensors with the input extents; the others the output's
    channels = {graph.tensors[f"z{layer}"].shape[1]: sp.Symbol("n_{l}", positive=True),
                x.shape[1]: sp.Symbol("n_{l-1}", positive=True)}
    items = [("forward", graph.tensors[f"z{layer}"], None,
              sample_equation(graph.definition(f"z{layer}"), graph))]
    for name in (f"g_z{layer}", f"g_W{layer}", f"g_b{layer}", f"g_{x.name}"):
        gradient = document.kept.get(name)
        if gradient is not None and name in document.samples:
            items.append((name, gradient.of, gradient, document.samples[name]))
    forms = []
    for label, tensor, gradient, expr in items:
        if expr is None:
            raise NotGeneral(label)
        code = (gradient.adjoint if gradient else tensor).name
        renamed = _general(expr, view, geometry, inside, view.axes.get(code, ()))
        forms.append(GeneralForm(label, tensor, gradient, expr, renamed.xreplace(channels)))
    numbers = {symbol: number for axis in geometry for number, symbol in axis.values()}
    numbers.update({symbol: size for size, symbol in channels.items()})
    return forms, numbers


def _general(expr, view, geometry: list, inside: set, own: tuple):
    """``expr`` (of a tensor with axes ``own``) with its geometry's numbers named."""
    kinds = {**kinds_of_indices(expr, view.axes), **dict(zip(FREE, own, strict=False))}
    return _renamed_numbers(expr, view, geometry, inside, kinds)


def _renamed_numbers(expr, view, geometry, inside, kinds):
    if isinstance(expr, sp.Indexed):
        name = expr.base.label.name
        axes = view.axes.get(name, ())
        if len(axes) != len(expr.indices):
            return expr
        indices = [_index(i, kind, geometry, kinds)[0] if kind.startswith("space") else i
                   for i, kind in zip(expr.indices, axes, strict=True)]
        return expr.base[tuple(indices)]
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    if isinstance(expr, Inside):
        index, size = expr.args
        axis = _axis_of(index, kinds)
        general_index, role = _index(index, f"space{axis}", geometry, kinds)
        extent = geometry[axis]["in" if role == "read" else "out"]
        if size != extent[0]:
            raise NotGeneral(expr)
        return Inside(general_index, extent[1])
    if isinstance(expr, sp.Sum):
        inner = kinds_of_indices(expr.function, view.axes)
        inner = {**inner, **{s: k for s, k in kinds.items() if s not in
                             {limit[0] for limit in expr.limits}}}  # the free keep their kinds
        body = _renamed_numbers(expr.function, view, geometry, inside, inner)
        limits = [(i, low, _limit(i, high, expr.function, inner, geometry, inside, view))
                  for i, low, high in expr.limits]
        return sp.Sum(body, *limits)
    return expr.func(*[_renamed_numbers(arg, view, geometry, inside, kinds) for arg in expr.args])


def _axis_of(index, kinds) -> int:
    found = {int(kinds[s][-1]) for s in index.free_symbols if s in kinds
             and kinds[s].startswith(("space", "kernel"))}
    if len(found) != 1:
        raise NotGeneral(index)
    return found.pop()


def _index(index, kind, geometry, kinds):
    """A spatial index with its numbers named: ``(index, "read" | "flipped" | "plain")``."""
    if isinstance(index, sp.Symbol):
        return index, "plain"
    terms = affine_terms(index)
    if terms is None:
        raise NotGeneral(index)
    coefficients, constant = terms
    used = {s: c for s, c in coefficients.items() if c != 0}
    offsets = [s for s in used if kinds.get(s, "").startswith("kernel")]
    positions = [s for s in used if kinds.get(s, "").startswith("space")]
    if len(offsets) != 1 or len(positions) != 1 or len(used) != 2:
        raise NotGeneral(index)
    (p,), (i,) = offsets, positions
    g = geometry[int(kind[-1])]
    (stride, S), (pad, P) = g["S"], g["P"]
    if used[i] == stride and used[p] == 1 and constant == -pad:
        return S * i + p - P, "read"
    if used[i] == sp.Rational(1, stride) and used[p] == -sp.Rational(1, stride) \
            and constant == sp.Rational(pad, stride):
        return (i - p + P) / S, "flipped"
    raise NotGeneral(index)


def _limit(index, high, body, kinds, geometry, inside, view):
    kind = kinds.get(index, "")
    if kind.startswith("kernel"):
        number, symbol = geometry[int(kind[-1])]["K"]
    elif kind.startswith("space"):
        readers = {e.base.label.name for e in body.atoms(sp.Indexed) if index in e.indices}
        extent = "in" if readers & inside else "out"
        number, symbol = geometry[int(kind[-1])][extent]
    else:
        return high
    if high != number - 1:
        raise NotGeneral(index)
    return symbol - 1
