"""The general layer ``l`` of a plain MLP, by renaming a concrete layer's derived formulas.

Contract: :func:`section` returns, for a network of dense layers only (at
least two), the backpropagation equations of a general hidden layer ``l``
and the output layer ``L``, per sample and for the batch: the engine's
gradients of one concrete hidden layer whose next layer is dense (the last
one with a non-linear activation), with each tensor's layer number renamed
(``l - 1``, ``l``, ``l + 1``, ``L``; the input ``x`` of layer 1 is
``a^{(l - 1)}``) and the factor of its delta that reads only the layer's own
``z``/``a`` (its activation's derivative, as derived) named
``f_l'(z^{(l)})``. Nothing is derived here; it is a renaming. None for any
other network.
"""

from __future__ import annotations

import re
from dataclasses import replace

import sympy as sp

from symbp.printing.rows import Section, View, formula_row

FPRIME = "fprime"


def section(document):
    network = document.d.network
    if not network.is_mlp or network.depth < 2:
        return None
    depth, graph = network.depth, document.graph
    for layer in range(depth - 1, 0, -1):
        rows = _rows(document, layer, depth, graph)
        if rows:
            return Section("Backpropagation, general layer l (the formulas of layer "
                           f"{layer} renamed; L the output layer)", tuple(rows))
    return None


def _names(layer: int, depth: int, output: bool) -> dict:
    return {depth: "L"} if output else {layer - 1: "l - 1", layer: "l", layer + 1: "l + 1"}


def _rename(text: str, names: dict) -> str:
    return re.sub(r"\((\d+)\)", lambda m: f"({names.get(int(m.group(1)), m.group(1))})", text)


def _renamed(view: View, layer: int, names: dict) -> View:
    table = {}
    for label, quantity in view.quantities.items():
        renamed = replace(quantity, latex=_rename(quantity.latex, names),
                          text=_rename(quantity.text, names),
                          entry_base=_rename(quantity.entry_base, names))
        if layer == 1 and label.name == "X":  # the input is layer l's a^{(l-1)}
            latex = "a^{(l - 1)}" if view.name == "sample" else "A^{(l - 1)}"
            renamed = replace(renamed, latex=latex, text=latex.replace("{", "").replace("}", ""),
                              entry_base="a^{(l - 1)}")
        table[label] = renamed
    return View(view.name, table, view.scalars, view.axes, view.shapes)


def _with_fprime(expr: sp.Expr, graph, layer: int, view: View):
    """``expr`` with the factor reading only ``z{layer}``/``a{layer}`` as ``f_l'`` (with the
    numbers of the derivative: ``g - g e^{-a}`` is ``g (1 - e^{-a})``, ``f_l'`` its second
    factor)."""
    own = {f"z{layer}", f"a{layer}"}
    factors = sp.Mul.make_args(sp.factor_terms(expr) if isinstance(expr, sp.Add) else expr)
    local = [f for f in factors if f.has(sp.Indexed) and not f.has(sp.Sum)
             and {e.base.label.name for e in f.atoms(sp.Indexed)} <= own]
    if not local:
        return None
    local += [f for f in factors if f.is_number]
    entry = next(iter(local[0].atoms(sp.Indexed)))
    fprime = sp.IndexedBase(FPRIME, real=True)[entry.indices]
    rest = sp.Mul(*[f for f in factors if f not in local])
    z = view.quantities[graph.tensors[f"z{layer}"].base.label]
    view.quantities[fprime.base.label] = replace(
        z, code=FPRIME, latex=rf"f_{{l}}'\left({z.latex}\right)",
        text=f"f_l'({z.text})", function="f_{l}'")
    return rest * fprime


def _rows(document, layer: int, depth: int, graph) -> list:
    rows = []
    labels = {f"g_z{depth}": "output_delta", f"g_z{layer}": "delta", f"g_W{layer}": "dW",
              f"g_b{layer}": "db"}
    for view_name, exprs in (("sample", document.samples), ("batch", document.shown)):
        own = document.sample if view_name == "sample" else document.batch
        view = _renamed(own, layer, _names(layer, depth, False))
        delta = exprs.get(f"g_z{layer}")
        delta = None if delta is None else _with_fprime(delta, graph, layer, view)
        if delta is None:
            return []
        output = _renamed(own, layer, _names(layer, depth, True))
        for name, expr, names in ((f"g_z{depth}", exprs.get(f"g_z{depth}"), output),
                                  (f"g_z{layer}", delta, view),
                                  (f"g_W{layer}", exprs.get(f"g_W{layer}"), view),
                                  (f"g_b{layer}", exprs.get(f"g_b{layer}"), view)):
            if expr is None:
                continue
            gradient = document.kept[name]
            target = names.quantities[gradient.adjoint.base.label]
            shape = gradient.of.shape[1:] if view_name == "sample" and \
                gradient.of.role != "parameter" else gradient.of.shape
            prefix = "" if view_name == "sample" else "batch_"
            rows.append(formula_row(prefix + labels[name], target, expr, shape, names))
    return rows
