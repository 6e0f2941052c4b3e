"""What a network claim is checked against: its target, the network, random instances.

Contract: :func:`target_of` reads a claim's left-hand side as a
:class:`Target` (``delta``, ``dW``, ``db`` or ``da`` at a layer, per sample or
batch), or None for a scalar claim. :meth:`Context.of` is a network with its
:class:`~symbp.verify.truth.Truth`, the three width sets a claim is evaluated
with (the spec's and two sets of pairwise different widths) and cached
:class:`Instance` s: one random point of one width set, with the values of
every quantity of the notation and of the truth there (the engine's gradients
evaluated by :mod:`symbp.engine.numeric`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from symbp import claims as C
from symbp.errors import SymbpError
from symbp.verify import truth as T
from symbp.verify.echo import tree_latex
from symbp.verify.shapes import LayerError

SEEDS = (11, 23, 37)
PER_SAMPLE_B = 7  # the value of B where a per-sample claim mentions it
BATCH_ROWS = (4, 3, 5)  # the samples of a batch claim's points, one per seed: no literal
# batch size (a 1/4 for 1/B) holds at all of them


def batch_rows(seed: int) -> int:
    """The samples of the batch at the random point ``seed``."""
    return BATCH_ROWS[SEEDS.index(seed)] if seed in SEEDS else BATCH_ROWS[0]
RTOL = 1e-7  # claim and truth agree to this relative tolerance (float64 values)
ATOL = 1e-12  # and to this absolute one: a gradient that is exactly 0 (a bias before batch
# norm) is computed as float64 rounding, ~1e-17, on both sides
OBJECTIVES = ("L", "J")  # the losses of claims that name the objective, not a sample's loss


@dataclass(frozen=True)
class Target:
    """The quantity on the left: delta, dW, db or da at ``layer``."""

    kind: str
    layer: C.LayerRef
    batch: bool
    node: C.Node

    @property
    def objective(self) -> bool:
        """A claim about the objective (``L``, ``J``: weight decay included), not about a
        sample's loss (``\\ell``, ``C``, ``E``)."""
        return isinstance(self.node, C.Grad) and self.node.loss in OBJECTIVES

    def latex(self, l_value=None, depth=None) -> str:
        if self.kind == "delta":
            leaf = C.Leaf("delta", self.layer, self.batch)
            return C.leaf_latex(leaf, l_value, depth)
        letter = T.LETTER_OF[self.kind]
        loss = "L" if self.batch else r"\ell"
        name = _LATEX.get((letter, self.batch), letter)  # leaf_latex prints it as its letter
        target = C.leaf_latex(C.Leaf(name, self.layer, self.batch), l_value, depth)
        return rf"\frac{{\partial {loss}}}{{\partial {target}}}"


_LATEX = {(name, batch): latex for name, latex in (
    ("gamma", r"\gamma"), ("beta", r"\beta"), ("mu", r"\mu"), ("sigma2", r"\sigma^{2}"))
    for batch in (False, True)} | {("xhat", False): r"\hat{x}", ("xhat", True): r"\hat{X}"}


def reads_a_batch(claim: C.Claim) -> bool:
    """Does the right-hand side read a batch quantity (a capital, or a gradient of one)? Then
    a parameter's gradient is the batch's, whatever its loss is called (Ng's dW)."""
    return any((node.target if isinstance(node, C.Grad) else node).batch
               for side in claim.sides[1:] for _, node in C.walk(side)
               if isinstance(node, C.Grad) and isinstance(node.target, C.Leaf)
               or isinstance(node, C.Leaf))


def target_of(lhs: C.Node) -> Target | None:
    if isinstance(lhs, C.Leaf) and lhs.name == "delta" and lhs.layer is not None:
        return Target("delta", lhs.layer, lhs.batch, lhs)
    if isinstance(lhs, C.Grad) and lhs.target.name in T.KIND_OF:
        target = lhs.target
        return Target(T.KIND_OF[target.name], target.layer, target.batch, lhs)
    return None


class Context:
    """A network with its derivation, widths and random instances (cached)."""

    _cache: dict = {}

    @classmethod
    def of(cls, network) -> "Context":
        key = repr(sorted(network.to_dict().items(), key=lambda kv: kv[0]))
        if key not in cls._cache:
            cls._cache[key] = cls(network, T.Truth.of(network))
        return cls._cache[key]

    def __init__(self, network, truth: T.Truth):
        self.network = network
        self.truth = truth
        self.depth = network.depth
        self.width_sets = truth.width_sets()
        self._instances = {}
        self._trees = {}

    def activation(self, layer: int):
        """Layer ``layer``'s activation f (a dense or activation layer); else a LayerError."""
        kind = self.truth.types.get(layer)
        if kind not in ("dense", "activation"):
            raise LayerError(f"layer {layer} is a {kind} layer, which has no activation f")
        return self.network.activation_of(layer)

    def has_activation(self, layer: int) -> bool:
        return self.truth.types.get(layer) in ("dense", "activation")

    def layer_type(self, layer: int) -> str:
        return "input" if layer == 0 else self.truth.types[layer]

    def instance(self, set_index: int, seed: int, batch: bool) -> "Instance":
        key = (set_index, seed, batch)
        if key not in self._instances:
            label, widths = self.width_sets[set_index]
            self._instances[key] = Instance(self, label, widths, seed, batch)
        return self._instances[key]

    def instances(self, batch: bool, quick: bool = False) -> list:
        """Smallest widths first, so that the first failing point is a readable one."""
        order = (1, 2, 0)
        seeds = SEEDS[:1] if quick else SEEDS
        return [self.instance(s, seed, batch) for s in order for seed in seeds]

    def truth_tree(self, kind: str, layer: int, batch: bool, objective: bool = False):
        """The engine's matrix tree for ``kind`` at a concrete layer."""
        key = (kind, layer, batch, objective)
        if key not in self._trees:
            self._trees[key] = self._make_tree(kind, layer, batch, objective)
        return self._trees[key]

    def _make_tree(self, kind, layer, batch, objective):
        try:
            return self.truth.tree(kind, layer, batch, objective)
        except T.NotMapped as error:
            raise SymbpError(f"symbp verify cannot read the derived {kind} of layer {layer} "
                             f"in the notation of claims: {error}") from None

    def correct_latex(self, target: Target, layer: int) -> str | None:
        """The truth's formula ``lhs = rhs`` for the target's own layer expression (``l``,
        ``l+1``, ``L``): from the engine's matrix tree for networks of dense layers, else
        as ``symbp derive`` prints it at ``layer``; None where neither has one."""
        if not self.truth.dense_only:
            return self.truth.printed(target.kind, layer, target.batch)
        if target.layer.var is None:
            return self.concrete_latex(target, None, layer)
        return f"{target.latex()} = {tree_latex(self.general_tree(target, layer))}"

    def concrete_latex(self, target: Target, l_value: int | None, layer: int) -> str | None:
        """The truth's formula at the concrete ``layer`` (``l`` = ``l_value``)."""
        if not self.truth.dense_only:
            return self.truth.printed(target.kind, layer, target.batch)
        tree = self.truth_tree(target.kind, layer, target.batch, target.objective)
        return f"{target.latex(l_value, self.depth)} = {tree_latex(tree)}"

    def general_tree(self, target: Target, layer: int):
        """The engine's formula at ``layer`` for the target's own layer expression
        (``l``, ``l+1``, ``L``)."""
        ref = target.layer
        base = (T.LAYER if ref.var == "l" else T.OUTPUT) + ref.offset
        try:
            return self.truth.general_tree(target.kind, layer, target.batch, base,
                                           target.objective)
        except T.NotMapped:
            return self.truth_tree(target.kind, layer, target.batch, target.objective)


class Instance:
    """One random network instance: parameters, the forward pass and the truth (the
    engine's gradients evaluated there)."""

    def __init__(self, ctx: Context, label: str, widths: list, seed: int, batch: bool):
        self.ctx, self.label, self.widths, self.seed, self.batch = ctx, label, widths, seed, batch
        rows = batch_rows(seed) if batch else 1
        try:
            self.values = ctx.truth.instance(widths, seed, rows)
        except T.NotMapped as error:
            raise SymbpError(f"symbp verify cannot check this per-sample claim: {error}") from None
        self.B = rows if batch else PER_SAMPLE_B

    def truth(self, kind: str, layer: int, objective: bool = False) -> np.ndarray:
        """The truth of ``kind`` at ``layer``; ``objective``: of a per-sample objective
        (``J``, ``L``: the sample's loss plus the weight decay), else of the loss."""
        truth = self.values["truth", kind, layer]
        return truth + self.values["decay", kind, layer] if objective and (
            "decay", kind, layer) in self.values else truth

    def paths(self, kind: str, layer: int) -> list:
        """The truth of ``kind`` at ``layer`` split into the engine's paths (cached)."""
        key = ("paths", kind, layer)
        if key not in self.values:
            self.values[key] = self.ctx.truth.paths(kind, layer, self.values)
        return self.values[key]

    def describe(self) -> str:
        widths = ", ".join(str(w) for w in self.widths)
        return f"{self.label} n_0..n_{len(self.widths) - 1} = {widths}"


def close(claim, truth) -> bool:
    claim, truth = np.asarray(claim, dtype=float), np.asarray(truth, dtype=float)
    if claim.shape != truth.shape or not np.all(np.isfinite(claim)):
        return False
    scale = float(np.max(np.abs(truth))) if truth.size else 0.0
    return bool(np.allclose(claim, truth, rtol=RTOL, atol=max(RTOL * scale, ATOL)))
