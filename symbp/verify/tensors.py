"""Deciding a tensor claim: entries of any rank, against the engine's arrays.

Contract: ``TensorCheck(claim, network).run()`` is the
:class:`~symbp.verify.verdict.Verdict` on a claim about a network with
convolution, pooling or flatten layers (any claim on such a network: entries
``\\frac{\\partial L}{\\partial W^{(3)}_{c,c',p,q}}``, operator forms
``\\operatorname{pad}_{1}(X_{s,c'}) \\star \\Delta^{(1)}_{s,c}``, and the dense
layers' matrix forms), read by :mod:`symbp.verify.tensor_values`.
:meth:`TensorCheck.holds` says whether another claim about the same quantity
holds (the mistake search's variants).

The truth is the graph engine's: its gradients evaluated by
:mod:`symbp.engine.numeric` at random points (the parameters, the input and a
valid target drawn as :class:`~symbp.verify.truth.Truth` draws them), never a
formula written here. A claim's quantities name the engine's tensors:
``W^{(l)} b^{(l)} z^{(l)} a^{(l)}`` (``a^{(0)} = x``), ``x y``, ``\\chi^{(l)}``
(the window argmax of a max pooling), ``\\operatorname{vec}(a^{(l)})``,
``\\delta^{(l)}`` / ``\\Delta^{(l)}`` (``\\partial L/\\partial z^{(l)}``), the
gradients ``\\partial L/\\partial q``, and ``\\widetilde{\\Delta}^{(l)}``, the
printed notation's ``\\Delta^{(l)}`` dilated by the stride and zero-padded by
``K - 1 - P`` (to the input's extent plus ``K - 1``).

A batch claim (``L`` or ``J``, ``\\Delta``, entries with the sample index) is
the gradient of the mean loss at batches of
:data:`~symbp.verify.context.BATCH_ROWS` samples (one size per point; ``\\ell`` with the
sample index: each row its own sample's loss's); a per-sample claim (``\\ell``,
``\\delta``, entries without the sample index) is a sample's loss's, at a batch of one,
and a ``B`` it mentions is :data:`~symbp.verify.context.PER_SAMPLE_B` (one sample's
gradient has no ``1/B``). Random points scale each weight by its fan-in. A claim about the
general layer ``l`` is checked at every layer where each quantity it reads exists with the indices it
is read with (and the geometry letters ``K S P H W H' W'`` are the layer's);
it is correct only when it agrees with the truth at every such layer, at
every point.
"""

from __future__ import annotations

import numpy as np

from symbp import claims as C
from symbp.errors import SymbpError
from symbp.ops.base import BATCH as BATCH_SIZE
from symbp.ops.geometry import window_geometry
from symbp.verify import truth as T
from symbp.verify.context import (
    BATCH_ROWS,
    OBJECTIVES,
    PER_SAMPLE_B,
    SEEDS,
    batch_rows,
    close,
    reads_a_batch,
)
from symbp.verify.conv_rewrites import likely_conv_mistakes
from symbp.verify.functions import MATH_FUNCTIONS, function_derivative, numeric, x_symbol
from symbp.verify.tensor_values import (
    MAX_RANGE,
    Absent,
    Evaluator,
    Mismatch,
    Scope,
    Value,
    dilate,
    spread,
)
from symbp.verify.verdict import Verdict

TENSOR_OPS = ("conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
              "flatten")
SAMPLE_LETTERS = ("s", "r")  # the sample index of the printed batch rows


def has_tensor_ops(network) -> bool:
    """Does ``network`` have a layer whose claims are read as tensor claims?"""
    return network is not None and any(layer.type in TENSOR_OPS for layer in network.layers)


FORWARD = ("z", "a", "chi")  # forward quantities a claim may define (and vec(a))
_CHANGES_IN_EVALUATION = ("batch_norm", "dropout")  # their forward pass differs in training


def claim_kind(claim: C.Claim) -> str | None:
    """``"gradient"`` (a gradient, a delta, or an entry of one), ``"forward"`` (a forward
    quantity's definition: ``z``, ``a``, ``\\chi``, ``\\operatorname{vec}(a)``, or an
    entry), or None (a claim without a network quantity on the left)."""
    lhs = claim.lhs
    target = lhs.arg if isinstance(lhs, C.Indexed) else lhs
    if isinstance(target, C.Grad) or (isinstance(target, C.Leaf) and target.name in (
            "delta", "deltatilde")):
        return "gradient"
    if isinstance(target, C.Apply) and target.func.name == "vec":
        target = target.arg
    if isinstance(target, C.Leaf) and target.name in FORWARD and target.layer is not None:
        return "forward"
    return None


class Engine:
    """The engine's derivation of one network and its arrays at random points (cached)."""

    _cache: dict = {}

    @classmethod
    def of(cls, network) -> "Engine":
        key = repr(network.to_dict())
        if key not in cls._cache:
            from symbp.engine.derivation import derive_graph

            cls._cache[key] = cls(network, T.Truth(derive_graph(network)))
        return cls._cache[key]

    def __init__(self, network, truth: T.Truth):
        self.network, self.truth = network, truth
        self.graph = truth.graph
        self._points = {}

    def point(self, rows: int, seed: int) -> tuple:
        """``(arrays, sizes)``: every tensor of the graph and the gradients the engine
        keeps, at a random point of ``rows`` samples."""
        key = (rows, seed)
        if key not in self._points:
            from symbp.engine.numeric import run

            sizes = {**self.truth.derivation.sizes, BATCH_SIZE: rows}
            given = self.truth.random_point(sizes, np.random.default_rng(seed), fan_in=True)
            with np.errstate(all="ignore"):
                arrays = run(self.graph, given, sizes, self.truth.derivation.gradients)
            self._points[key] = (arrays, sizes)
        return self._points[key]

    def gradient(self, name: str, rows: int, seed: int, of_loss: bool) -> np.ndarray:
        """The gradient of tensor ``name`` (of the objective; with ``of_loss`` of the loss
        alone, the weight decay's path left out)."""
        arrays, sizes = self.point(rows, seed)
        key = f"loss_g_{name}" if of_loss else f"g_{name}"
        if key not in arrays:
            with np.errstate(all="ignore"):
                self.truth.ensure_gradient(f"g_{name}", arrays, sizes)
                if of_loss:
                    from symbp.engine.numeric import value_of

                    expr = self.truth.loss_gradient(name)
                    arrays[key] = value_of(expr, self.graph.tensors[name], arrays, sizes,
                                           frozenset({self.graph.loss.name}))
        return arrays[key]

    def has(self, name: str) -> bool:
        return name in self.graph.tensors


class TensorCheck:
    def __init__(self, claim: C.Claim, network):
        self.claim, self.network = claim, network
        self.engine = Engine.of(network)
        self.depth = network.depth
        _check_lhs(claim, self)

    def fail(self, node, message: str):
        raise C.ClaimParseError(message, node.span[0] + 1, text=self.claim.text)

    def batch(self, claim: C.Claim, l_value) -> bool:
        """Is ``claim`` about a batch (else one sample) at layer ``l_value``? An entry of a
        tensor with a row per sample is the batch's when its first index is the sample's
        (:data:`SAMPLE_LETTERS`: ``a^{(2)}_{s,c}``), one sample's when it reads every other
        axis (``\\frac{\\partial L}{\\partial x_{c,i,j}}``) or when it is a lowercase
        quantity's (``z^{(2)}_{c}``, the channel c of one sample); otherwise, and for whole
        tensors, a gradient of the objective ``L`` or ``J``, a capital (``A``, ``\\Delta``)
        and an entry of a forward quantity are the batch's, a gradient of a sample's loss
        ``\\ell`` and ``\\delta`` one sample's."""
        lhs = claim.lhs
        target = lhs.arg if isinstance(lhs, C.Indexed) else lhs
        leaf = _gradient_leaf(target) if isinstance(target, C.Grad) else target
        if isinstance(leaf, C.Apply):
            leaf = leaf.arg
        if isinstance(target, C.Grad):
            batch = leaf.batch or target.loss in OBJECTIVES or (
                leaf.name in PARAMETERS and reads_a_batch(claim))
        else:  # a forward quantity: a whole lowercase one is one sample's
            batch = leaf.batch or (isinstance(lhs, C.Indexed) and leaf.name not in (
                "delta", "deltatilde"))
        if isinstance(lhs, C.Indexed) and not isinstance(target, C.Apply):
            name = _Quantities(self, l_value, SEEDS[0], 1, False).engine_name(target)
            tensor = self.engine.graph.tensors.get(name)
            if tensor is not None and tensor.shape[:1] == (BATCH_SIZE,):
                if lhs.indices[:1] and lhs.indices[0] in SAMPLE_LETTERS:
                    batch = True
                elif len(lhs.indices) == len(tensor.shape) - 1 or not leaf.batch:
                    batch = False  # every other axis, or a lowercase quantity's slice
        couples = "batch_norm" in {layer.type for layer in self.network.layers}
        if couples and (not batch or _sample_loss(target)):
            self.fail(claim.lhs, "batch norm couples the samples of a batch: write the claim "
                                 "for the batch (\\frac{\\partial L}{\\partial ...} with the "
                                 "sample index)")
        return batch

    # ----------------------------------------------------------- layers
    def layers(self, claim: C.Claim) -> list:
        """The layers ``claim`` is checked at: its own (None), or each layer where the general
        layer l reads only quantities that exist, with the indices it reads them at."""
        if not _mentions_l(claim):
            return [None]
        own = self._lhs_layer(claim)
        if own is not None and own.var != "l":
            self.fail(claim.lhs, "the right-hand side uses the layer l but the left-hand side "
                                 "names a fixed layer")
        found, unreadable = [], None
        for m in range(1, self.depth + 1):
            try:
                self.values(claim, m, SEEDS[0])
            except Absent:
                continue  # the claim is not about this layer
            except Mismatch:
                pass  # about this layer, with extents that do not fit: incorrect there
            except C.ClaimParseError as error:
                unreadable = unreadable or error
                continue
            found.append(m)
        if not found and unreadable is not None:
            raise unreadable
        if not found:
            self.fail(claim.lhs, "no layer of this network has every quantity the claim reads "
                                 "at layer l (with the indices it reads them at)")
        return found

    def _lhs_layer(self, claim: C.Claim) -> C.LayerRef | None:
        lhs = claim.lhs
        target = lhs.arg if isinstance(lhs, C.Indexed) else lhs
        leaf = _gradient_leaf(target) if isinstance(target, C.Grad) else target
        if isinstance(leaf, C.Apply):
            leaf = leaf.arg
        return getattr(leaf, "layer", None)

    # ----------------------------------------------------------- values
    def values(self, claim: C.Claim, l_value, seed: int) -> tuple:
        """``(truth, claim)`` :class:`~symbp.verify.tensor_values.Value` s at one point, the
        claim's aligned to the truth's index letters."""
        batch = self.batch(claim, l_value)
        rows = batch_rows(seed) if batch else 1
        quantities = _Quantities(self, l_value, seed, rows, batch)
        scope = Scope(tensor=quantities.tensor, raw=quantities.raw, batch=batch, ranges={}, geometry=self._geometry(l_value),
                      width=quantities.width, batch_size=rows if batch else PER_SAMPLE_B,
                      base=_base(claim),
                      activation=quantities.function, text=claim.text,
                      constants=self._constants())
        scope.ranges.update(_lhs_ranges(claim.lhs, quantities.raw(claim.lhs), scope.base))
        _sum_ranges(claim, scope, quantities)
        evaluator = Evaluator(scope)
        left = evaluator.run(claim.lhs)
        scope.target_shape = left.array.shape
        right = evaluator.run(claim.rhs)
        return left, _aligned(right, left, claim, self)

    def _geometry(self, l_value) -> dict | None:
        """K, S, P (where every axis has the same) and the extents H, W, H', W' (L, L') of a
        convolution or pooling layer ``l_value`` (None for a claim without the layer l)."""
        if l_value is None:
            return None
        layer = self.network.layers[l_value - 1]
        if layer.type not in TENSOR_OPS or layer.type == "flatten":
            return {}
        spatial = len(self.network.shapes[l_value]) - 1
        kernel, stride, padding = window_geometry(self.network, l_value)
        geometry = {letter: values[0] for letter, values in (
            ("K", kernel), ("S", stride), ("P", padding)) if len(set(values)) == 1}
        names = (("L", "L'"),) if spatial == 1 else (("H", "H'"), ("W", "W'"))
        extents = zip(names, self.network.shapes[l_value - 1][1:],
                      self.network.shapes[l_value][1:], strict=True)
        for (inner, outer), n, m in extents:
            geometry[inner], geometry[outer] = n, m
        return geometry

    def _constants(self) -> dict:
        constants = {}
        decay = self.network.training.get("weight_decay")
        if decay:
            constants["lambda"] = float(decay)
        for layer in self.network.layers:
            for name, key in (("eps", "eps"), ("p", "rate")):
                if key in layer.options:
                    constants.setdefault(name, float(layer.options[key]))
        return constants

    # ---------------------------------------------------------- decision
    def holds(self, claim: C.Claim) -> bool:
        """Does ``claim`` (about the same quantity) agree with the truth at every layer and
        point?"""
        try:
            return all(close(right.array, left.array)
                       for l_value in self.layers(claim) for seed in SEEDS
                       for left, right in [self.values(claim, l_value, seed)])
        except (Absent, Mismatch, C.ClaimParseError, SymbpError):
            return False

    def run(self) -> Verdict:
        checked = []
        for l_value in self.layers(self.claim):
            for seed in SEEDS:
                try:
                    left, right = self.values(self.claim, l_value, seed)
                except Absent as error:
                    self.fail(self.claim.lhs, str(error))
                except Mismatch as error:
                    return self._incorrect(l_value, seed, None, None, shape=str(error))
                if not close(right.array, left.array):
                    return self._incorrect(l_value, seed, left, right)
            checked.append(l_value)
        return self._correct(checked)

    def _mode(self, l_value, seed=None) -> str:
        """One sample, the batch of the point ``seed``, or (None) the batches of all."""
        if not self.batch(self.claim, l_value):
            return "one sample"
        if seed is None:
            sizes = sorted(set(BATCH_ROWS))
            listed = f"{', '.join(map(str, sizes[:-1]))} or {sizes[-1]}" if len(sizes) > 1 \
                else str(sizes[0])
            return f"a batch of {listed} samples"
        return f"a batch of {batch_rows(seed)} samples"

    def _correct(self, checked) -> Verdict:
        layers = [m for m in checked if m is not None]
        at = f" at layer{'s' if len(layers) > 1 else ''} {', '.join(map(str, layers))}" \
            if layers else ""
        summary = (f"equal to the engine's gradients entry by entry{at}, at {len(SEEDS)} "
                   f"random points ({self._mode(checked[0])} each)")
        return Verdict("correct", self.claim.text, summary=summary, layers=layers,
                       evidence=[summary])

    def _incorrect(self, l_value, seed, left, right, shape=None) -> Verdict:
        mode = self._mode(l_value, seed)
        where = f"layer {l_value}, for {mode}" if l_value is not None else f"for {mode}"
        verdict = Verdict("incorrect", self.claim.text,
                          layers=[l_value] if l_value is not None else [])
        if shape is not None:
            verdict.summary = f"shape mismatch {'at ' if l_value else ''}{where}: {shape}"
            verdict.shape = shape
        else:
            verdict.summary = f"the values differ from the truth {'at ' if l_value else ''}{where}"
            verdict.counterexample = _counterexample(left, right, where)
        verdict.correct = self._printed(l_value)
        verdict.mistakes = likely_conv_mistakes(self, self.claim)
        return verdict

    def _printed(self, l_value) -> str | None:
        kind, layer = _printed_kind(self.claim.lhs, l_value, self.depth)
        if kind is None:
            return None
        return self.engine.truth.printed(kind, layer, self.batch(self.claim, l_value))


PARAMETERS = ("W", "b", "gamma", "beta")  # one per network, not per sample


def _sample_loss(target) -> bool:
    return isinstance(target, C.Grad) and target.loss not in OBJECTIVES


def _check_lhs(claim: C.Claim, check: TensorCheck) -> None:
    kind = claim_kind(claim)
    if kind is None:
        check.fail(claim.lhs, "the left-hand side of a claim about a network is a gradient "
                              "(\\frac{\\partial L}{\\partial ...}, \\delta^{(l)}), a forward "
                              "quantity (z, a), or one of their entries")
    changes = {layer.type for layer in check.network.layers} & set(_CHANGES_IN_EVALUATION)
    if kind == "forward" and changes:
        check.fail(claim.lhs, f"a forward definition on a network with {sorted(changes)[0]}, "
                              "whose forward pass differs in training and evaluation: claims "
                              "about it are not read; claim its gradients")


class _Quantities:
    """The arrays of a claim's quantities at one point and layer (see the module docstring)."""

    def __init__(self, check: TensorCheck, l_value, seed: int, rows: int, batch: bool):
        self.check, self.l_value, self.seed, self.rows, self.batch = \
            check, l_value, seed, rows, batch
        self.engine = check.engine

    @property
    def arrays(self) -> dict:
        """The engine's arrays at this point (computed when a value is first read: a name
        is resolved without them)."""
        return self.engine.point(self.rows, self.seed)[0]

    def layer(self, ref: C.LayerRef | None) -> int | None:
        if ref is None:
            return None
        try:
            return ref.resolve(self.l_value, self.check.depth)
        except ValueError:
            raise Absent("the claim uses the layer l but its left-hand side names a fixed "
                          "layer") from None

    def width(self, ref: C.LayerRef) -> int:
        """``n_m``: the features (channels, for a multi-axis output) of layer m."""
        layer = self.layer(ref)
        shapes = self.check.network.shapes
        if layer is None or not 0 <= layer < len(shapes):
            raise Absent(f"there is no layer {layer}")
        return shapes[layer][0]

    def raw(self, node) -> np.ndarray:
        """The array an entry of ``node`` (a quantity, a gradient, an entry) is read from."""
        if isinstance(node, C.Indexed):
            node = node.arg
        if isinstance(node, C.Apply) and node.func.name == "vec" and self.engine.has(
                self.engine_name(node) or ""):
            return self.tensor(node)
        if isinstance(node, C.Apply) and node.func.name == "vec":
            inner = self.raw(node.arg)
            return inner.reshape(inner.shape[0], -1) if self.batch else inner.reshape(-1)
        return self.tensor(node)

    def engine_name(self, node) -> str | None:
        """The engine's tensor that ``node`` (a quantity or a gradient) reads."""
        if isinstance(node, C.Grad):
            return self._name(_gradient_leaf(node), node.target)
        if isinstance(node, C.Apply) and node.func.name == "vec":
            return self._vec_name(node.arg)
        if node.name in ("delta", "deltatilde"):
            return f"z{self._layer_of(node)}"
        return self._name(node, node)

    def tensor(self, node) -> np.ndarray:
        """The array of a quantity or a gradient (per sample: sample 0's)."""
        name = self.engine_name(node)
        if isinstance(node, C.Apply):
            array = self.arrays[name]
        elif isinstance(node, C.Grad):
            of_loss = node.loss not in OBJECTIVES
            array = self.engine.gradient(name, self.rows, self.seed, of_loss)
            if of_loss and self.batch and self._per_row(name):
                array = self.rows * array  # each row its own sample's loss's gradient
        elif node.name == "deltatilde":
            return self._tilde(node)
        elif node.name == "delta":
            array = self.engine.gradient(name, self.rows, self.seed, False)
        else:
            array = self.arrays[name]
        return self._sample(array, name)

    def _per_row(self, name: str) -> bool:
        tensor = self.engine.graph.tensors.get(name)
        return tensor is not None and tensor.shape[:1] == (BATCH_SIZE,)

    def _sample(self, array, name: str) -> np.ndarray:
        tensor = self.engine.graph.tensors.get(name)
        if self.batch or tensor is None or tensor.shape[:1] != (BATCH_SIZE,):
            return array
        return array[0]

    def _layer_of(self, leaf) -> int:
        layer = self.layer(leaf.layer)
        if layer is None:
            raise Absent(f"{C.to_latex(leaf)} needs a layer")
        if not self.engine.has(f"z{layer}"):
            raise Absent(f"layer {layer} has no z^{{({layer})}}, so no \\delta^{{({layer})}}")
        return layer

    def _name(self, leaf, where) -> str:
        """The engine's tensor for a quantity (``vec(a^{(m)})``: the dense layer's flattened
        input, or a flatten layer's output)."""
        if isinstance(where, C.Indexed):
            where = where.arg
        if isinstance(where, C.Apply) and where.func.name == "vec":
            return self._vec_name(leaf)
        if leaf.name == "x" or (leaf.name == "a" and self.layer(leaf.layer) == 0):
            return self.engine.truth.input_name
        if leaf.name == "y":
            return self.engine.truth.target_name
        layer = self.layer(leaf.layer)
        name = f"{leaf.name}{layer}"
        if layer is None or not self.engine.has(name):
            raise Absent(f"this network has no {C.to_latex(leaf)}")
        return name

    def _vec_name(self, leaf) -> str:
        layer = self.layer(leaf.layer)
        if layer is not None and self.engine.has(f"flat{layer + 1}"):
            return f"flat{layer + 1}"
        layers = self.check.network.layers
        if layer is not None and layer < len(layers) and layers[layer].type == "flatten":
            return f"a{layer + 1}"
        raise Absent(f"no layer flattens a^{{({layer})}}")

    def _tilde(self, leaf) -> np.ndarray:
        """``\\Delta^{(m)}`` dilated by the stride and zero-padded by K - 1 - P before, to the
        input's extent plus K - 1 (the printed notation's definition)."""
        layer = self._layer_of(leaf)
        spec = self.check.network.layers[layer - 1]
        if not spec.type.startswith("conv"):
            raise Absent(f"layer {layer} is not a convolution")
        delta = self._sample(self.engine.gradient(f"z{layer}", self.rows, self.seed, False),
                             f"z{layer}")
        kernel, stride, padding = window_geometry(self.check.network, layer)
        dilated = dilate(delta, list(stride))
        inputs = self.check.network.shapes[layer - 1][1:]
        lead = [(0, 0)] * (delta.ndim - len(kernel))
        return np.pad(dilated, lead + [
            (k - 1 - p, n + k - 1 - (k - 1 - p) - d) for k, p, n, d in zip(
                kernel, padding, inputs, dilated.shape[len(lead):], strict=True)])

    def function(self, node: C.Apply, values: np.ndarray) -> np.ndarray:
        """A function of the claim applied to ``values``: an activation or a math function,
        or their derivatives (the forward definitions and sympy.diff; none written here)."""
        from symbp.registry import BUILTIN_ACTIVATIONS

        func = node.func
        network = self.check.network
        if func.name == "generic":
            layer = self.layer(func.layer) if func.layer is not None else _leaf_layer(
                node.arg, self)
            if layer is None or not 1 <= layer <= self.check.depth or \
                    network.layers[layer - 1].activation is None:
                raise Absent("f needs the layer of an activation")
            activation = network.activation_of(layer)
        elif func.name in BUILTIN_ACTIVATIONS:
            activation = BUILTIN_ACTIVATIONS[func.name]
        elif func.name in network.activations:
            activation = network.activation_named(func.name)
        elif func.name in MATH_FUNCTIONS:
            expr = function_derivative(func.name, MATH_FUNCTIONS[func.name](x_symbol()),
                                       func.order)
            return _power(numeric((x_symbol(),), expr)(values), func.power)
        else:
            self.check.fail(node, f"unknown function '{func.name}'")
        if activation.is_softmax:
            if func.name == "generic":  # a general claim does not apply at a softmax layer
                raise Absent(f"f_{{{layer}}} is softmax, which is not elementwise: write its "
                             "entries")
            self.check.fail(node, "softmax is not elementwise: write its entries")
        expr = function_derivative(activation.name, activation.expr, func.order)
        return _power(numeric((x_symbol(),), expr)(values), func.power)


def _power(values, power):
    values = np.asarray(values, dtype=float)
    return values if power is None else values ** power


def _leaf_layer(node, quantities) -> int | None:
    for _, part in C.walk(node):
        if isinstance(part, C.Leaf) and part.layer is not None:
            return quantities.layer(part.layer)
    return None


def _gradient_leaf(grad: C.Grad) -> C.Leaf:
    target = grad.target
    if isinstance(target, C.Indexed):
        target = target.arg
    if isinstance(target, C.Apply):
        target = target.arg
    return target


def _mentions_l(claim: C.Claim) -> bool:
    for side in claim.sides:
        for _, node in C.walk(side):
            layer = getattr(node, "layer", None)
            if isinstance(layer, C.LayerRef) and layer.var == "l":
                return True
            func = getattr(node, "func", None)
            if func is not None and func.layer is not None and func.layer.var == "l":
                return True
    return False


def _base(claim: C.Claim) -> int:
    """1 when the claim's sums start at 1 (its entries are then read 1-based), else 0."""
    for side in claim.sides:
        for _, node in C.walk(side):
            if isinstance(node, C.Sum) and node.lower == 1:
                return 1
    return 0


def _lhs_ranges(lhs, raw: np.ndarray, base: int) -> dict:
    if not isinstance(lhs, C.Indexed):
        return {}
    ranges = {}
    for item, size in zip(lhs.indices, raw.shape, strict=False):
        if isinstance(item, str) and not item.isdigit():
            ranges[item] = (base, size)
    return ranges


def _sum_ranges(claim: C.Claim, scope: Scope, quantities) -> None:
    """The range of each sum's index (``scope.sums``): its limits, or the axis it indexes in
    the sum's body (two sums over one letter each have their own); and of any other letter read as a tensor's index (free on the right: reported when the
    sides are compared)."""
    evaluator = Evaluator(scope)
    for side in claim.sides[1:]:
        for _, node in C.walk(side):
            if not isinstance(node, C.Sum) or node.index is None:
                continue
            limit = getattr(node, "limit", None)
            lower = node.lower or 0
            if limit is not None:
                top = evaluator._index_node(limit)
                if top.names or top.den != 1:
                    evaluator.fail(limit, "a sum's upper limit is an integer")
                count = int(top.num) - lower + 1
                if not 1 <= count <= MAX_RANGE:
                    evaluator.fail(limit, f"a sum over {count} values: symbp verify sums over "
                                          f"1 to {MAX_RANGE}")
                scope.sums[node] = (lower, count)
            else:
                size = _axis_of(node.index, node.body, quantities)
                if size is not None:
                    scope.sums[node] = (scope.base, size)
            if node in scope.sums:
                scope.ranges.setdefault(node.index, scope.sums[node])
        for _, node in C.walk(side):
            if isinstance(node, C.Indexed):
                for item in node.indices:
                    if isinstance(item, str) and not item.isdigit() and \
                            item not in scope.ranges:
                        size = _axis_of(item, node, quantities)
                        if size is not None:
                            scope.ranges[item] = (scope.base, size)


def _axis_of(letter: str, body, quantities) -> int | None:
    """The length of the first axis that ``letter`` indexes on its own in ``body``."""
    for _, node in C.walk(body):
        if isinstance(node, C.Indexed) and letter in node.indices:
            try:
                raw = quantities.raw(node)
            except (Absent, KeyError):
                continue
            axis = node.indices.index(letter)
            if axis < raw.ndim:
                return raw.shape[axis]
    return None


def _aligned(right: Value, left: Value, claim: C.Claim, check) -> Value:
    extra = [name for name in right.names if name not in left.names]
    if extra:
        check.fail(claim.rhs, f"the index {extra[0]} is free on the right-hand side but not "
                              "on the left")
    array = spread(right, left.names, len(left.positional))
    if right.positional and array.shape[len(left.names):] != left.positional:
        raise Mismatch(f"the left-hand side is {_shape_text(left)}, the right-hand side "
                       f"{_shape_text(right)}")
    try:
        return Value(np.broadcast_to(array, left.array.shape), left.names)
    except ValueError:
        raise Mismatch(f"the left-hand side is {_shape_text(left)}, the right-hand side "
                       f"{_shape_text(right)}") from None


def _shape_text(value: Value) -> str:
    shape = value.positional
    if not shape:
        return "one entry per index" if value.names else "a scalar"
    return " × ".join(str(n) for n in shape)


def _counterexample(left: Value, right: Value, where: str) -> dict:
    gap = np.abs(np.asarray(right.array, dtype=float) - left.array)
    gap = np.where(np.isfinite(gap), gap, np.inf)
    at = np.unravel_index(int(np.argmax(gap)), gap.shape) if gap.size else ()
    names = list(left.names) + [f"axis {k}" for k in range(len(left.positional))]
    entry = ", ".join(f"{name} = {int(i)}" for name, i in zip(names, at, strict=False))
    return {"where": f"{where}, the entry {entry}" if entry else where,
            "claim": float(right.array[at]) if gap.size else float(right.array),
            "truth": float(left.array[at]) if gap.size else float(left.array)}


def _printed_kind(lhs, l_value, depth) -> tuple:
    target = lhs.arg if isinstance(lhs, C.Indexed) else lhs
    if isinstance(target, C.Leaf) and target.name == "delta":
        leaf, kind = target, "delta"
    elif isinstance(target, C.Grad) and not isinstance(target.target, C.Apply):
        leaf = _gradient_leaf(target)
        kind = T.KIND_OF.get(leaf.name)
    else:
        return None, None
    if kind is None or leaf.layer is None:
        return None, None
    try:
        return kind, leaf.layer.resolve(l_value, depth)
    except ValueError:
        return None, None


