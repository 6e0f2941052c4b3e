"""Deciding a network claim against the truth.

Contract: ``NetworkCheck(claim, target, context).run()`` is the
:class:`~symbp.verify.verdict.Verdict` on a parsed claim about a network
quantity. The truth always comes from the graph engine (its self-checked
gradients, read in the notation of claims by :mod:`symbp.verify.truth`),
never from formulas written here. A claim is decided in this order:

1. **Layers.** A claim about the generic layer ``l`` must hold at every
   layer it applies to: every hidden layer for ``\\delta^{(l)}``,
   ``\\partial L/\\partial z^{(l)}`` and ``\\partial L/\\partial a^{(l)}``; every
   layer for ``\\partial L/\\partial W^{(l)}``, ``\\partial L/\\partial b^{(l)}`` and
   the other ops' gradients; of those, in a network with other ops, the layers
   where every quantity the claim names exists (``W^{(l+1)}`` only where layer
   ``l+1`` is dense). Where batch norm couples the samples, a per-sample claim
   is about sample 0 of a batch (:mod:`symbp.verify.truth`).
2. **Shapes.** The right-hand side is evaluated on column vectors with the
   spec's widths and with two sets of pairwise different widths, so that a
   missing transpose or a bias of the wrong layer cannot hide behind square
   matrices. The first mismatch is reported in the claim's own terms, e.g.
   ``b^{(l+1)} has n_{l+1} rows, (W^{(l+1)})^T \\delta^{(l+1)} has n_l``.
3. **Symbols.** For networks of dense layers both sides are read entrywise
   as SymPy expressions (:mod:`symbp.verify.entries`); where SymPy simplifies
   the difference to zero the claim is symbolically equal, otherwise the
   simplified difference is what the verdict shows. Claims about the other
   ops are decided on the numbers, and the correct formula shown is the row
   ``symbp derive`` prints.
4. **Numbers.** float64 values at three random points for each of the three
   width sets (nine points per layer). A claim is called correct only when
   every point of every layer agrees; never on a single point.

For an incorrect claim :mod:`symbp.verify.mistakes` names the likely mistake;
the verdict adds a concrete counterexample and the correct formula in LaTeX.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from symbp import claims as C
from symbp.errors import SymbpError
from symbp.verify.context import Context, Instance, Target, close, reads_a_batch
from symbp.verify.echo import entry_latex
from symbp.verify.entries import NoSymbolic, forms_entry, simplify_difference, symbolic_ok
from symbp.verify.evaluate import SCALARS, Evaluation
from symbp.verify.functions import MATH_FUNCTIONS, custom_activation_of
from symbp.verify.mistakes import likely_mistakes
from symbp.verify.shapes import LayerError, ShapeError, Val, target_dims
from symbp.verify.truth import LETTER_OF
from symbp.verify.verdict import Verdict

# Batch claims when the rhs reads the batch: the parameters, and a norm's statistics (the
# printed dL/dsigma^2 of a batch reads the batch's xhat).
PARAMETER_KINDS = ("dW", "db", "dgamma", "dbeta", "dmu", "dsigma2")
VECTOR_KINDS = ("db", "dgamma", "dbeta")



@dataclass
class Point:
    inst: Instance
    l_value: int | None
    layer: int
    claim: np.ndarray | None = None
    truth: np.ndarray | None = None


@dataclass
class Outcome:
    shape: str | None = None  # a shape or layer problem, with where it happened
    shape_point: Point | None = None
    failures: list = field(default_factory=list)  # Point where values differ
    points: list = field(default_factory=list)  # every compared Point

    @property
    def ok(self) -> bool:
        return self.shape is None and not self.failures


class NetworkCheck:
    """Decides one network claim (the steps in the module docstring)."""

    def __init__(self, claim: C.Claim, target: Target, ctx: Context):
        self.claim, self.target, self.ctx = claim, target, ctx
        self.depth = ctx.depth
        self.sums: dict = {}
        if target.kind in PARAMETER_KINDS and reads_a_batch(claim):
            self.target = target = Target(target.kind, target.layer, True, target.node)
        self.batch = target.batch
        self.objective = target.objective  # per sample: the weight decay is in L, J, not in l
        self.bindings = self._bindings()

    # ----- which layers
    def _bindings(self) -> list[tuple[int | None, int]]:
        """``(value of l, concrete layer)`` pairs the claim must hold for."""
        target, depth = self.target, self.depth
        ref = target.layer
        hidden = list(range(1, depth))
        if target.kind in ("delta", "da") and ref.var == "l":
            layers = hidden
        else:
            layers = list(range(1, depth + 1))
        if ref.var != "l":
            layer = ref.resolve(None, depth)
            low = 0 if target.kind == "da" else 1
            if not low <= layer <= depth:
                raise C.ClaimParseError(
                    f"the network has layers 1..{depth}; {self.claim.source(target.node)} "
                    f"is layer {layer}", target.node.span[0] + 1, text=self.claim.text)
            if not self.ctx.truth.has(LETTER_OF[target.kind], layer):
                raise C.ClaimParseError(
                    f"{self.claim.source(target.node)}: layer {layer} is a "
                    f"{self.ctx.layer_type(layer)} layer, which has no "
                    f"{LETTER_OF[target.kind]}", target.node.span[0] + 1, text=self.claim.text)
            return [(None, layer)]
        pairs = [(layer - ref.offset, layer) for layer in layers
                 if self._has_quantities(layer - ref.offset, layer)]
        if not pairs and any(self.ctx.truth.types[m] != "dense" for m in layers):
            raise SymbpError(f"the claim about {self.claim.source(target.node)} for a generic "
                             "layer l applies to no layer: no layer l has every quantity it "
                             "names")
        if not pairs:
            raise SymbpError(f"the network has no hidden layer, so the claim about "
                             f"{self.claim.source(target.node)} for a generic layer l "
                             "applies to no layer")
        return pairs

    def _has_quantities(self, l_value: int, layer: int) -> bool:
        """Do layer ``layer`` (the target's) and every layer the claim names at this ``l``
        have the quantities the claim reads there (W at a dense layer, gamma at a norm)?"""
        truth = self.ctx.truth
        if not truth.has(LETTER_OF[self.target.kind], layer):
            return False
        for side in self.claim.sides[1:]:
            for _, node in C.walk(side):
                leaf = node.target if isinstance(node, C.Grad) else node
                if not isinstance(leaf, C.Leaf) or leaf.layer is None or leaf.name in SCALARS:
                    continue
                try:
                    at = leaf.layer.resolve(l_value, self.depth)
                except ValueError:
                    continue
                letter = {"sigma": "sigma2", "delta": "z"}.get(leaf.name, leaf.name)
                if 0 <= at <= self.depth and not truth.has(letter, at):
                    return False
        return True

    def function_of(self, node: C.Apply, l_value, inst):
        """``(activation or None, layer)`` for a function application."""
        func = node.func
        name = func.name
        if func.name == "generic":
            layer = self._function_layer(node, l_value)
            return self.ctx.activation(layer), layer
        from symbp.registry import BUILTIN_ACTIVATIONS

        network = self.ctx.network
        if name in BUILTIN_ACTIVATIONS:
            activation = BUILTIN_ACTIVATIONS[name]
        elif name in network.activations:
            activation = custom_activation_of(name, network.activations[name])
        elif name in MATH_FUNCTIONS:
            return None, None
        else:
            known = sorted(set(BUILTIN_ACTIVATIONS) | set(network.activations)
                           | set(MATH_FUNCTIONS))
            raise C.ClaimParseError(f"unknown function '{name}'", node.span[0] + 1,
                                    [f"\\operatorname{{{k}}}" for k in known], self.claim.text)
        layer = None
        if activation.is_softmax:
            layer = self._leaf_layer(node.arg, l_value)
        return activation, layer

    def _function_layer(self, node: C.Apply, l_value) -> int:
        func = node.func
        if func.layer is not None:
            try:
                layer = func.layer.resolve(l_value, self.depth)
            except ValueError:
                raise C.ClaimParseError("f_l uses the layer l but the left-hand side names "
                                        "a fixed layer", node.span[0] + 1,
                                        text=self.claim.text) from None
        else:
            layer = self._leaf_layer(node.arg, l_value)
            if layer is None:
                layer = self.target.layer.resolve(l_value, self.depth)
        if not 1 <= layer <= self.depth:
            raise LayerError(f"{self.claim.source(node)} is the activation of layer {layer}, "
                              f"which does not exist (the network has layers 1..{self.depth})")
        return layer

    def _leaf_layer(self, node, l_value) -> int | None:
        """The layer an argument lives in: its z, W, b (or else a) leaves' common layer."""
        found = {"zWb": set(), "a": set()}
        for _, item in C.walk(node):
            if isinstance(item, C.Leaf) and item.layer is not None:
                try:
                    layer = item.layer.resolve(l_value, self.depth)
                except ValueError:
                    continue
                found["a" if item.name == "a" else "zWb"].add(layer)
        for group in ("zWb", "a"):
            if len(found[group]) == 1:
                return found[group].pop()
            if len(found[group]) > 1:
                raise C.ClaimParseError(
                    "cannot tell which layer's activation this is; write f_l'",
                    node.span[0] + 1, text=self.claim.text)
        return None

    def own_layer(self, arg: C.Node, forward, l_value) -> int | None:
        """The layer m when ``arg`` is ``z^{(m)}`` and ``forward`` is layer m's activation."""
        if not (isinstance(arg, C.Leaf) and arg.name == "z" and arg.layer is not None):
            return None
        try:
            layer = arg.layer.resolve(l_value, self.depth)
        except ValueError:
            return None
        if not 1 <= layer <= self.depth or not self.ctx.has_activation(layer):
            return None
        activation = self.ctx.activation(layer)
        if forward is None:
            return layer if activation.is_softmax else None
        return layer if activation.expr is not None and activation.expr == forward else None

    # ----- checking
    def evaluate(self, rhs, quick=False, stop_early=False) -> Outcome:
        """Shapes first (spec widths, then unequal widths), then values at every point."""
        outcome = Outcome()
        instances = self.ctx.instances(self.batch, quick)
        shape_order = sorted(instances, key=lambda inst: inst.label != "the spec's widths")
        results = {}
        for inst in shape_order:
            for l_value, layer in self.bindings:
                point = Point(inst, l_value, layer)
                try:
                    value = Evaluation(self, inst, l_value).run(rhs)
                    array = self._final_shape(value, point)
                except (ShapeError, LayerError) as error:
                    outcome.shape = self._where(str(error), point)
                    outcome.shape_point = point
                    return outcome
                point.claim = array
                point.truth = inst.truth(self.target.kind, layer, self.objective)
                results[(id(inst), layer)] = point
        for inst in instances:
            for _, layer in self.bindings:
                point = results[(id(inst), layer)]
                outcome.points.append(point)
                if not close(point.claim, point.truth):
                    outcome.failures.append(point)
                    if stop_early:
                        return outcome
        return outcome

    def _final_shape(self, value: Val, point: Point) -> np.ndarray:
        """The claim's value in the truth's layout, or a ShapeError. A batch claim's
        parameter vector may be a row (``\\mathbf{1}^T \\Delta``, NumPy's ``sum(axis=0)``)."""
        rows, cols = target_dims(self.target.kind, self.target.layer, point.layer, point.inst)
        if self.batch and self.target.kind in VECTOR_KINDS and value.rows.one and \
                (value.cols.value, 1) == (rows.value, cols.value) and not value.scalar:
            return value.array.T
        lhs = self.target.latex()
        truth_shape = f"{rows.label} \\times {cols.label}"
        if value.scalar and not (rows.one and cols.one):
            raise ShapeError(f"{lhs} is {truth_shape}, but the right-hand side "
                              f"{value.text} is a scalar")
        if (value.rows.value, value.cols.value) != (rows.value, cols.value):
            raise ShapeError(f"{lhs} is {truth_shape}, but the right-hand side "
                              f"{value.text} is {value.shape_text}")
        return value.array

    def _where(self, message: str, point: Point) -> str:
        at = f"layer l = {point.l_value}" if point.l_value is not None else \
            f"layer {point.layer}"
        return f"{message} (at {at}, {point.inst.describe()})"

    def run(self) -> Verdict:
        claim = self.claim
        verdicts = []
        for rhs in claim.sides[1:]:
            verdicts.append(self._run_one(rhs))
        bad = next((v for v in verdicts if not v.ok), None)
        return bad if bad is not None else verdicts[0]

    def _run_one(self, rhs) -> Verdict:
        outcome = self.evaluate(rhs)
        layers = sorted({layer for _, layer in self.bindings})
        lhs_latex = self.target.latex()
        verdict = Verdict("incorrect", self.claim.text, lhs=lhs_latex, layers=layers)
        verdict.correct = self.ctx.correct_latex(self.target, self.bindings[0][1])
        if outcome.ok:
            verdict.verdict = "correct"
            verdict.evidence = self._evidence(rhs, outcome, layers)
            verdict.summary = verdict.evidence[0]
            return verdict
        point = outcome.shape_point or outcome.failures[0]
        verdict.correct_at_layer = self.ctx.concrete_latex(
            self.target, point.l_value, point.layer)
        if outcome.shape:
            verdict.shape = outcome.shape
            verdict.summary = f"shape mismatch: {outcome.shape}"
        else:
            failing = sorted({p.layer for p in outcome.failures})
            verdict.summary = self._value_summary(outcome, failing, layers)
            verdict.counterexample = self._counterexample(rhs, point)
            verdict.difference = self._difference(rhs, point)
        verdict.mistakes = likely_mistakes(self, rhs, outcome)
        return verdict

    def _value_summary(self, outcome, failing, layers) -> str:
        wrong = ", ".join(str(layer) for layer in failing)
        right = [layer for layer in layers if layer not in failing]
        text = f"the values differ from the truth at layer {wrong}"
        if len(failing) > 1:
            text = f"the values differ from the truth at layers {wrong}"
        if right:
            text += f" (they agree at layer {', '.join(str(r) for r in right)})"
        return text

    def _evidence(self, rhs, outcome, layers) -> list[str]:
        kind = {"delta": "every hidden layer", "da": "every hidden layer"}.get(
            self.target.kind, "every layer")
        if not self.ctx.truth.dense_only:
            kind = f"{kind} that has the quantities it names"
        scope = f"layer{'s' if len(layers) > 1 else ''} {', '.join(map(str, layers))}"
        if self.target.layer.var == "l":
            scope += f" ({kind})"
        per_layer = len(outcome.points) // max(len(layers), 1)
        sets = "; ".join(f"{label} {'-'.join(map(str, widths))}"
                         for label, widths in self.ctx.width_sets)
        lines = [f"holds at {scope}: shapes agree and the values agree at {per_layer} random "
                 f"points per layer (float64; {sets})"]
        symbolic = self._symbolic_all(rhs)
        if symbolic:
            lines.append("symbolically equal: SymPy reduces claim - truth to 0 entrywise")
        else:
            lines.append("SymPy could not reduce claim - truth to 0 entrywise; the verdict rests "
                         f"on {len(outcome.points)} numeric points")
        return lines

    def _symbolic_all(self, rhs) -> bool:
        if not symbolic_ok(rhs):
            return False
        for l_value, layer in self.bindings:
            result = self._symbolic(rhs, l_value, layer, confirm=True)
            if result is None or not result[0]:
                return False
        return True

    def _symbolic(self, rhs, l_value, layer, confirm=False):
        """``(is zero, difference)`` at one layer, or None if SymPy cannot say."""
        if not self.ctx.truth.dense_only:
            return None
        inst = self.ctx.instances(self.batch, quick=True)[0]
        try:
            value = Evaluation(self, inst, l_value, symbolic=True).run(rhs)
            truth_tree = self.ctx.truth_tree(self.target.kind, layer, self.batch, self.objective)
            truth = forms_entry(truth_tree, self.ctx, self.batch, self.sums)[0]
            if value.entry is None:
                return None
            return simplify_difference(value.entry - truth, self.ctx if confirm else None)
        except (NoSymbolic, ShapeError, LayerError, C.ClaimParseError):
            return None
        except (TypeError, ValueError, AttributeError, RecursionError, ZeroDivisionError,
                NotImplementedError):
            return None

    def _difference(self, rhs, point: Point) -> str | None:
        if not symbolic_ok(rhs):
            return None
        result = self._symbolic(rhs, point.l_value, point.layer)
        if result is None or result[0]:
            return None
        try:
            return entry_latex(result[1], self.sums, self.ctx, self.batch)
        except Exception:  # printing is best effort; the verdict does not depend on it
            return None

    def _counterexample(self, rhs, point: Point) -> dict:
        inst = point.inst
        used = {}
        for _, node in C.walk(rhs):
            if isinstance(node, C.Leaf) and node.name not in ("B",):
                try:
                    value = Evaluation(self, inst, point.l_value).run(node)
                except Exception:
                    continue
                name = C.leaf_latex(node, point.l_value, self.depth)
                if value.array.size <= 40:
                    used.setdefault(name, value.array.tolist())
        where = (f"layer l = {point.l_value}" if point.l_value is not None
                 else f"layer {point.layer}")
        where += f", {inst.describe()}, random seed {inst.seed}"
        return {"layer": point.layer, "where": where, "widths": inst.widths,
                "point": used, "claim": np.asarray(point.claim).tolist(),
                "truth": np.asarray(point.truth).tolist()}
