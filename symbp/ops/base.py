"""The layer-type registry and the builder that turns a spec's layers into a graph.

Contract: a :class:`LayerType` has a name, its spec :class:`Option` s (the
keys a ``[[layers]]`` table may hold, each with a default and a check that
raises :class:`~symbp.errors.SpecError` naming the field) and a ``build``
function ``build(builder, layer)`` that adds the layer's tensors and
equations to ``builder.graph`` and returns its output tensor. The
:class:`Builder` knows the mode (``"train"`` or ``"eval"``), the previous
layer's output, the named layers' outputs (for ``residual``), and the sizes:
each layer's feature width is a symbol ``n_{l}`` whose value is in
``builder.sizes``; the batch is ``B``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp

from symbp.engine.graph import Graph, Tensor

BATCH = sp.Symbol("B", integer=True, positive=True)
REQUIRED = object()
LAYER_TYPES: dict = {}


def width(layer: int) -> sp.Symbol:
    """The symbolic feature width ``n_{layer}``."""
    return sp.Symbol(f"n_{{{layer}}}", integer=True, positive=True)


@dataclass(frozen=True)
class Option:
    """A spec key: ``default`` (or :data:`REQUIRED`) and ``check(value, where, layer)``."""

    default: object = REQUIRED
    check: Callable = field(default=lambda value, where, context: value)


@dataclass(frozen=True)
class LayerType:
    name: str
    options: dict
    build: Callable
    summary: str = ""


INTERNAL_OPS = ("normalize", "affine", "objective")  # labels of equations that are no layer


def op_labels() -> set:
    """Every op label an equation may carry besides an activation's name."""
    return set(LAYER_TYPES) | set(INTERNAL_OPS)


def layer_type(name: str, summary: str = "", **options: Option):
    """Register the decorated ``build`` function as layer type ``name``."""
    def register(build):
        LAYER_TYPES[name] = LayerType(name, options, build, summary)
        return build
    return register


@dataclass
class Builder:
    """State while a network's layers are added to a graph, first to last."""

    mode: str
    network: object
    graph: Graph = field(default_factory=Graph)
    sizes: dict = field(default_factory=dict)
    named: dict = field(default_factory=dict)
    previous: Tensor | None = None
    layer: int = 0
    outputs: list = field(default_factory=list)  # the input, then each layer's output

    def size(self, dimension) -> int:
        """The value of a shape entry (a width symbol or an integer)."""
        return int(sp.sympify(dimension).xreplace(self.sizes))

    def output(self, latex_letter: str = "a") -> Tensor:
        """The layer's output tensor ``a{l}`` with the previous output's shape."""
        return Tensor(f"a{self.layer}", self.previous.shape, layer=self.layer,
                      latex=f"{latex_letter}^{{({self.layer})}}")

    def tensor(self, name: str, shape: tuple, role: str = "value", latex: str = "") -> Tensor:
        return Tensor(f"{name}{self.layer}", shape, role,
                      latex=latex or f"{name}^{{({self.layer})}}", layer=self.layer)

    def given(self, name: str, shape: tuple, role: str, latex: str = "",
              init: str | None = None) -> Tensor:
        tensor = self.graph.add(self.tensor(name, shape, role, latex))
        if init is not None:
            self.graph.init[tensor.name] = init
        return tensor
