"""The graph of a network: named tensors and the index-notation equations that define them.

Contract: a :class:`Tensor` is a named node with a shape of size expressions
(``B`` for the batch, ``n_{l}`` for a layer's width, or integers) and a role:
``input``, ``target``, ``parameter``, ``mask`` and ``state`` tensors are given;
``value`` tensors are defined by exactly one :class:`Equation`, in the free
indices :data:`~symbp.engine.indices.FREE` of their rank, from earlier
tensors (any earlier tensor, so a residual reads a layer's output twice);
the ``loss`` is a scalar value. The batch index is an ordinary index: batch
norm, which couples the rows of a batch, is an equation like any other.
Equations are kept in forward order, which is an order the forward pass can
evaluate them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import sympy as sp

from symbp.engine.indices import free_indices

ROLES = ("input", "target", "parameter", "mask", "state", "value", "loss")
GIVEN = ("input", "target", "parameter", "mask", "state")


@dataclass(frozen=True)
class Tensor:
    """A named tensor: ``name`` in code (``W1``), ``latex`` in print (``W^{(1)}``)."""

    name: str
    shape: tuple
    role: str = "value"
    latex: str = ""
    layer: int = 0

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}")

    @cached_property
    def base(self) -> sp.IndexedBase:
        return sp.IndexedBase(self.name, real=True)

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __getitem__(self, indices) -> sp.Expr:
        """``tensor[i, j]``: the SymPy entry (a rank-0 tensor is its base symbol)."""
        indices = indices if isinstance(indices, tuple) else (indices,)
        if len(indices) != self.rank:
            raise ValueError(f"{self.name} has rank {self.rank}, indexed with {len(indices)}")
        return self.base[indices] if indices else self.base.label

    def entry(self) -> sp.Expr:
        """The tensor at its own free indices."""
        return self[free_indices(self.rank)]


@dataclass(frozen=True)
class Equation:
    """``out[FREE] = expr``: the forward definition of one tensor; ``op`` names its family."""

    out: Tensor
    expr: sp.Expr
    inputs: tuple
    op: str
    layer: int = 0


@dataclass
class Graph:
    """Tensors by name, and the equations of the value tensors in forward order."""

    tensors: dict = field(default_factory=dict)
    equations: list = field(default_factory=list)
    init: dict = field(default_factory=dict)  # parameter/state name -> initialisation kind
    updates: list = field(default_factory=list)  # (state tensor, new value), after a step
    identities: list = field(default_factory=list)  # (sum, value) the graph guarantees
    keep: dict = field(default_factory=dict)  # mask name -> probability that an entry is 1
    _readers: dict = field(default_factory=dict, repr=False)  # name -> consuming equations
    _definitions: dict = field(default_factory=dict, repr=False)
    _order: dict = field(default_factory=dict, repr=False)  # name -> position in tensors

    def add(self, tensor: Tensor) -> Tensor:
        if tensor.name in self.tensors:
            raise ValueError(f"tensor {tensor.name} defined twice")
        self._order[tensor.name] = len(self.tensors)
        self.tensors[tensor.name] = tensor
        return tensor

    def define(self, tensor: Tensor, expr: sp.Expr, op: str) -> Tensor:
        """Add ``tensor`` with its defining equation; its inputs are the tensors ``expr`` reads."""
        inputs = self.read_by(expr)
        self.add(tensor)
        equation = Equation(tensor, expr, inputs, op, tensor.layer)
        self.equations.append(equation)
        self._definitions[tensor.name] = equation
        for read in inputs:
            self._readers.setdefault(read.name, []).append(equation)
        return tensor

    def read_by(self, expr: sp.Expr) -> tuple:
        """The tensors an expression reads, in the order they were added to the graph."""
        names = {item.base.label.name for item in expr.atoms(sp.Indexed)}
        names |= {symbol.name for symbol in expr.free_symbols if isinstance(symbol, sp.Symbol)
                  and self.tensors.get(symbol.name, None) is not None
                  and self.tensors[symbol.name].rank == 0}
        known = sorted((n for n in names if n in self.tensors), key=self._order.__getitem__)
        return tuple(self.tensors[n] for n in known)

    def definition(self, name: str) -> Equation | None:
        return self._definitions.get(name)

    def consumers(self, name: str) -> list:
        return list(self._readers.get(name, ()))

    @property
    def loss(self) -> Tensor:
        return next(t for t in self.tensors.values() if t.role == "loss")

    def given(self, role: str) -> list:
        return [t for t in self.tensors.values() if t.role == role]
