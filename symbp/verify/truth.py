"""The truth of a network claim: the engine's gradients, read in the notation of claims.

Contract: :meth:`Truth.of` takes a network of dense, activation, layer_norm,
batch_norm, residual and dropout layers, with or without weight decay, and
reads the gradients of :func:`~symbp.engine.derivation.derive_graph` (the
batch graph, self-checked) in the notation claims are written in
(CONVENTIONS §1): ``delta`` (``d loss / d z^{(m)}``), ``dW``, ``db``, ``da``
(``d loss / d a^{(m)}``) and, for the other ops, ``dgamma``, ``dbeta``,
``dxhat``, ``dmu``, ``dsigma2`` at a concrete layer ``m``, per sample
(column vectors; not where batch norm couples the rows) or for a batch
(rows). :meth:`Truth.instance` is the value of every quantity of the notation
(``W1``, ``gamma2``, ``mu2``, ``xhat2``, ``mask3``, ...) and of the truth at a
random point; :meth:`Truth.width_sets` the widths a claim is evaluated with
(layers that must agree, such as a residual's two inputs, share a width).
For networks of dense layers :meth:`Truth.tree` is a formula as a
:mod:`symbp.forms` matrix tree (:func:`symbp.forms.to_matrix`),
:meth:`Truth.general_tree` the same formula for a layer expression (``l``,
``l+1``, ``L``); for any network :meth:`Truth.printed` is the gradient's row
as ``symbp derive`` prints it. Any other layer type is a
:class:`~symbp.errors.SymbpError` naming the layer.

Every step from the engine's gradients to a claim's quantity is a
substitution; no derivative is written here:

- the engine differentiates the batch objective ``L = (1/B) sum_s loss_s``, and
  symbp's batch delta is its ``Delta^{(m)} = dL/dZ^{(m)}`` (``g_z{m}``, with the
  ``1/B`` of the mean, as ``symbp derive`` prints it): every ``g_z{m}`` is
  replaced by ``Delta^{(m)}``;
- every other gradient the formula reads (``g_a{m}``) is replaced by its own
  expression, so that a formula reads ``W``, ``b``, ``z``, ``a``, ``y`` and the
  deltas only (a gradient the engine inlined is the sum over its consumers of
  the engine's VJPs);
- per sample is the batch of one: ``B = 1``, a sum over the batch is its one
  term, and the row index is dropped;
- a general formula is a concrete layer's with each layer ``n`` written
  ``base + (n - m)``; a hidden delta keeps ``f_l'`` opaque: the engine's VJP
  of layer ``m``'s activation is linear in its seed ``g_a{m}``, and its
  coefficient (read off by differentiating in the seed) prints as ``f_l'``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache

import numpy as np
import sympy as sp

from symbp import forms
from symbp.engine.indices import FREE, canonical
from symbp.errors import SymbpError
from symbp.ops.base import BATCH

KIND_OF = {"z": "delta", "W": "dW", "b": "db", "a": "da", "gamma": "dgamma", "beta": "dbeta",
           "xhat": "dxhat", "mu": "dmu", "sigma2": "dsigma2"}  # a quantity -> its gradient
KINDS = tuple(KIND_OF.values())
LAYER = sp.Symbol("l", integer=True, positive=True)  # the general layer of a claim
OUTPUT = sp.Symbol("L", integer=True, positive=True)  # the output layer
LETTER_OF = {kind: letter for letter, kind in KIND_OF.items()}
SUPPORTED_OPS = ("dense", "activation", "layer_norm", "batch_norm", "residual", "dropout")
_QUANTITY = re.compile(r"(W|b|z|a|mu|sigma2|xhat|gamma|beta|mask)(\d+)")
# The deltas' bases are named Delta{m}: SymPy orders a product's factors by name, and a
# capital sorts before x and a, so to_matrix reads an outer product as delta x^T.
_NAMED = re.compile(r"(W|b|z|a|Delta|fprime)(\d+)")
_WIDTH = re.compile(r"n_\{(\d+)\}")
_ROW_KINDS = ("delta", "da")  # their engine form has the batch row as first index
WEIGHT_SCALE, BIAS_SCALE = 0.7, 0.3  # random points: tanh and sigmoid layers do not saturate
GAIN_SCALE = 0.3  # gamma = 1 + N(0, GAIN_SCALE), beta = N(0, GAIN_SCALE): no 1 or 0 hides a term
SAMPLE_BATCH = 4  # where batch norm couples the rows, one sample is read off a batch this size


class NotMapped(Exception):
    """An engine expression with no reading in the notation of claims."""


def _base(name: str) -> sp.IndexedBase:
    return sp.IndexedBase(name, real=True)


class Truth:
    """The engine's derivation of one network, read in claims' notation (cached per spec)."""

    _cache: dict = {}

    @classmethod
    def of(cls, network) -> "Truth":
        key = repr(network.to_dict())
        if key not in cls._cache:
            _require_supported(network)
            from symbp.engine.derivation import derive_graph

            cls._cache[key] = cls(derive_graph(network))
        return cls._cache[key]

    def __init__(self, derivation):
        self.derivation = derivation
        self.network = derivation.network
        self.graph = derivation.graph
        self.depth = self.network.depth
        (self.input_name,), (self.target_name,) = ([t.name for t in self.graph.given(role)]
                                           for role in ("input", "target"))
        batch = {t.name for t in self.graph.tensors.values() if t.shape[:1] == (BATCH,)}
        self._batch_names = frozenset(batch | {f"{letter}{m}" for letter in ("Delta", "fprime")
                                               for m in range(1, self.depth + 1)})
        self._notation = {}
        self._printed = None  # symbp derive's backward rows, by name (built when first asked)
        self.types = {number: layer.type for number, layer in enumerate(self.network.layers, 1)}
        self.dense_only = set(self.types.values()) == {"dense"}
        self.couples_rows = "batch_norm" in self.types.values()

    def has(self, letter: str, layer: int) -> bool:
        """Does layer ``layer`` have the quantity ``letter`` (``a`` at 0 is the input)?"""
        return (letter == "a" and layer == 0) or f"{letter}{layer}" in self.graph.tensors

    # ----------------------------------------------------------- formulas
    def tree(self, kind: str, layer: int, batch: bool, objective: bool = False):
        """The matrix tree of ``kind`` at the concrete ``layer`` (per sample: of the sample's
        loss, or with ``objective`` of the objective, weight decay included)."""
        return self._tree(self.expression(kind, layer, batch, objective), kind, layer, batch)

    def general_tree(self, kind: str, layer: int, batch: bool, base: sp.Expr,
                     objective: bool = False):
        """The formula of ``kind`` at ``layer`` written for the layer expression ``base``."""
        expr = self._general_expression(kind, layer, batch, objective)
        tree = self._tree(expr, kind, layer, batch)
        return forms.map_tensors(tree, lambda t: forms.Leaf(_relabel(t, layer, base)))

    def expression(self, kind: str, layer: int, batch: bool, objective: bool = False
                   ) -> sp.Expr:
        """The index expression of ``kind`` at ``layer`` in claims' tensors (see the
        module docstring); its free indices are :meth:`free`'s. Per sample it is the
        sample's loss's (no weight decay) unless ``objective``."""
        key = (kind, layer, batch, batch or objective)
        if key not in self._notation:
            name = self._name(kind, layer)
            engine = self._gradient(name) if batch or objective else self.loss_gradient(name)
            self._notation[key] = self._read(engine, kind, batch)
        return self._notation[key]

    def loss_gradient(self, name: str) -> sp.Expr:
        """The engine's gradient of ``name`` without the weight decay's path."""
        gradient = self.derivation.gradient_of(name)
        if gradient is None:
            return self._gradient(name)
        decay = [c for consumer, c in gradient.paths if consumer.op == "objective"]
        return sp.expand(gradient.expr - sp.Add(*decay)) if decay else gradient.expr

    def _general_expression(self, kind: str, layer: int, batch: bool, objective: bool
                            ) -> sp.Expr:
        if kind == "delta" and layer < self.depth:
            opaque = self._opaque_fprime(layer)
            if opaque is not None:
                return self._read(opaque, kind, batch)
        return self.expression(kind, layer, batch, objective)

    def _opaque_fprime(self, layer: int) -> sp.Expr | None:
        """``g_a{m} * fprime{m}``: the activation's VJP with its coefficient held opaque,
        or None where the VJP is not one elementwise coefficient times its seed."""
        gradient = self.derivation.gradient_of(f"z{layer}")
        if gradient is None or len(gradient.paths) != 1:
            return None
        consumer, contribution = gradient.paths[0]
        seed = _base(f"g_{consumer.out.name}")[FREE[:2]]
        coefficient = sp.diff(contribution, seed)
        if coefficient.has(seed.base) or sp.expand(contribution - coefficient * seed) != 0:
            return None
        return _base(f"fprime{layer}")[FREE[:2]] * seed

    def _name(self, kind: str, layer: int) -> str:
        if kind == "da" and layer == 0:
            return self.input_name
        return f"{LETTER_OF[kind]}{layer}"

    def _gradient(self, name: str) -> sp.Expr:
        """The engine's gradient of tensor ``name``; an inlined one as the sum of the
        engine's VJPs over its consumers."""
        gradient = self.derivation.gradient_of(name)
        if gradient is not None:
            return gradient.expr
        from symbp.engine.backward import vjp

        tensor = self.graph.tensors[name]
        return sp.Add(*[vjp(consumer, tensor) for consumer in self.graph.consumers(name)])

    def _read(self, engine: sp.Expr, kind: str, batch: bool) -> sp.Expr:
        expr = _constants_out_of_sums(canonical(self._deltas_only(engine)))
        if kind == "delta":
            expr = sp.factor_terms(expr)  # g - e^{-a} g = (1 - e^{-a}) g
        return expr if batch else _one_sample(expr, kind, self._batch_names)

    def _deltas_only(self, expr: sp.Expr) -> sp.Expr:
        """``g_z{m} -> Delta{m}``; every other gradient by its own expression."""
        def swap(entry):
            name = entry.base.label.name[2:]
            if re.fullmatch(r"z\d+", name):
                return _base(f"Delta{name[1:]}")[entry.indices]
            return self._deltas_only(_at(self._gradient(name), entry.indices))

        return expr.replace(
            lambda e: isinstance(e, sp.Indexed) and e.base.label.name.startswith("g_"), swap)

    def free(self, kind: str, batch: bool) -> tuple:
        if kind in _ROW_KINDS:
            return FREE[:2] if batch else FREE[1:2]
        return FREE[:2] if kind == "dW" else FREE[:1]

    def _tree(self, expr: sp.Expr, kind: str, layer: int, batch: bool):
        tensors = {item.base.label: self._leaf(item.base.label.name, batch)
                   for item in expr.atoms(sp.Indexed)}
        like = {"dW": forms.Tensor("W", layer), "db": forms.Tensor("b", layer)}.get(
            kind, forms.Tensor("a", layer, batch))
        try:
            return forms.to_matrix(expr, self.free(kind, batch), tensors, like)
        except forms.NotMatrixForm as error:
            raise NotMapped(str(error)) from None

    def _leaf(self, name: str, batch: bool) -> forms.Tensor:
        tensor = self.graph.tensors.get(name)
        if tensor is not None and tensor.role == "input":
            return forms.Tensor("a", 0, batch)
        if tensor is not None and tensor.role == "target":
            return forms.Tensor("y", None, batch)
        match = _NAMED.fullmatch(name)
        if match is None:
            raise NotMapped(f"the engine's tensor {name} has no name in claims")
        letter = {"Delta": "delta"}.get(match.group(1), match.group(1))
        return forms.Tensor(letter, int(match.group(2)), batch and letter not in "Wb")

    # ------------------------------------------------------------- widths
    def width_sets(self) -> list:
        """``(label, widths of layers 0..L)``: the spec's, and two sets of pairwise different
        widths (smallest first, then largest first) where layers that must agree share one."""
        classes = self._width_classes()
        groups = list(dict.fromkeys(classes))
        sets = [("the spec's widths", list(self.network.widths))]
        for values in (range(2, len(groups) + 2), range(len(groups) + 1, 1, -1)):
            value = dict(zip(groups, values, strict=True))
            sets.append(("unequal widths", [value[c] for c in classes]))
        return sets

    def _width_classes(self) -> list:
        """The width symbol of each layer's output, a residual's two inputs made one."""
        same = {}

        def find(symbol):
            while same.get(symbol, symbol) != symbol:
                symbol = same[symbol]
            return symbol

        for equation in self.graph.equations:
            if equation.op == "residual":
                first, *rest = [find(t.shape[-1]) for t in equation.inputs]
                for other in rest:
                    same[other] = first
        outputs = [self.graph.tensors[self.input_name]] + [
            self.graph.tensors[f"a{m}"] for m in range(1, self.depth + 1)]
        return [find(tensor.shape[-1]) for tensor in outputs]

    # ------------------------------------------------------------- numbers
    def instance(self, widths: list, seed: int, rows: int) -> dict:
        """Every quantity at a random point, by its name in claims (``W1``, ``b1`` and the
        other vectors as columns, ``a0`` for x, ``z1``, ``a1``, ``xhat2``, ``Y``,
        ``delta1``), per sample (``rows == 1``: columns) or as ``rows`` rows;
        ``("truth", kind, m)`` holds the truth of ``kind`` at layer ``m``, in the same
        layout (per sample: of the sample's loss; ``("decay", kind, m)`` what the weight
        decay adds for the objective of a batch of one). Where batch norm couples the rows, one sample is sample 0 of a batch of
        :data:`SAMPLE_BATCH` (see :class:`_View`)."""
        view = _View(SAMPLE_BATCH, True) if rows == 1 and self.couples_rows else \
            _View(rows, False)
        sizes = {symbol: widths[int(_WIDTH.fullmatch(symbol.name).group(1))]
                 for symbol in self.derivation.sizes}
        sizes[BATCH] = view.batch
        given = self.random_point(sizes, np.random.default_rng(seed))
        from symbp.engine.numeric import run

        with np.errstate(all="ignore"):
            arrays = run(self.graph, given, sizes, self.derivation.gradients)
            if view.sample_of_batch:
                arrays = self._only_sample_zero(given, arrays, sizes)
            for name in self._quantities():
                self.ensure_gradient(f"g_{name}", arrays, sizes)
            self.ensure_gradient(f"g_{self.input_name}", arrays, sizes)
        values = self._in_notation(arrays, sizes, view)
        values["arrays"], values["sizes"], values["view"] = arrays, sizes, view
        return values

    def _only_sample_zero(self, given: dict, arrays: dict, sizes: dict) -> dict:
        """The batch again with every target but sample 0's set to its prediction, where the
        loss's gradient vanishes: the engine's gradients are then sample 0's loss's, / B."""
        from symbp.engine.numeric import run

        output = arrays[f"a{self.depth}"]
        target = np.array(given[self.target_name])
        target[1:] = output[1:]
        arrays = run(self.graph, {**given, self.target_name: target}, sizes,
                     self.derivation.gradients)
        # the output layer's input: where the rows' losses meet the network
        name = f"z{self.depth}" if f"z{self.depth}" in self.graph.tensors else \
            f"a{self.depth - 1}"
        self.ensure_gradient(f"g_{name}", arrays, sizes)
        last = arrays[f"g_{name}"]
        if np.max(np.abs(last[1:])) > 1e-12 * max(1.0, np.max(np.abs(last))):
            raise NotMapped("batch norm couples the samples of a batch, and this loss's "
                            "gradient does not vanish where a = y, so one sample's gradients "
                            "cannot be read off a batch; write the claim for the batch")
        return arrays

    def paths(self, kind: str, layer: int, values: dict) -> list:
        """``(consumer equation, value)``: the gradient ``kind`` of layer ``layer`` at the
        point ``values`` (:meth:`instance`'s) split into the engine's paths, one per
        equation that reads the tensor (the layout of the truth's value). A dense layer's
        delta, whose one path is its activation's, is split by the paths of the
        activation's output: each path of ``g_a{m}`` carried through the activation's VJP."""
        name = self._name(kind, layer)
        tensor = self.graph.tensors[name]
        per_row = tensor.shape[:1] == (BATCH,)
        with np.errstate(all="ignore"):
            raw = self._raw_paths(name, values["arrays"], values["sizes"])
            if kind == "delta" and len(raw) == 1:
                (activation, contribution, _), = raw
                seed = f"g_{activation.out.name}"
                upstream = self._raw_paths(activation.out.name, values["arrays"],
                                           values["sizes"])
                raw = [(source, contribution, self._value(
                    contribution, tensor, {**values["arrays"], seed: array}, values["sizes"]))
                       for source, _, array in upstream]
        view = values["view"]
        return [(consumer, view.gradient(array, per_row, consumer.op))
                for consumer, _, array in raw]

    def _raw_paths(self, name: str, arrays: dict, sizes: dict) -> list:
        """``(consumer, contribution, value)`` of the gradient of tensor ``name``."""
        from symbp.engine.backward import vjp

        tensor = self.graph.tensors[name]
        gradient = self.derivation.gradient_of(name)
        found = gradient.paths if gradient is not None else [
            (consumer, vjp(consumer, tensor)) for consumer in self.graph.consumers(name)]
        result = []
        for consumer, contribution in found:
            for entry in contribution.atoms(sp.Indexed):
                if entry.base.label.name.startswith("g_"):
                    self.ensure_gradient(entry.base.label.name, arrays, sizes)
            result.append((consumer, contribution,
                           self._value(contribution, tensor, arrays, sizes)))
        return result

    def _value(self, expr, tensor, arrays: dict, sizes: dict) -> np.ndarray:
        from symbp.engine.numeric import value_of

        return value_of(expr, tensor, arrays, sizes, frozenset({self.graph.loss.name}))

    def _quantities(self) -> list:
        return [name for name in self.graph.tensors if _QUANTITY.fullmatch(name)]

    def ensure_gradient(self, adjoint: str, arrays: dict, sizes: dict) -> None:
        """The value of an adjoint the engine inlined, from its consumers' VJPs (and the
        adjoints those read, first)."""
        if adjoint in arrays:
            return
        from symbp.engine.numeric import value_of

        name = adjoint[2:]
        expr = self._gradient(name)
        for entry in expr.atoms(sp.Indexed):
            if entry.base.label.name.startswith("g_"):
                self.ensure_gradient(entry.base.label.name, arrays, sizes)
        arrays[adjoint] = value_of(expr, self.graph.tensors[name], arrays, sizes,
                                   frozenset({self.graph.loss.name}))

    def random_point(self, sizes, rng, fan_in: bool = False) -> dict:
        """Every given tensor at a random point: parameters, masks, states, the input and a
        valid target. With ``fan_in`` a weight's scale is divided by the square root of its
        fan-in over 3 (the spec's full widths: a convolution's pre-activations stay of order
        1, where a fixed scale saturates the softmax), else fixed (the small widths of
        :meth:`width_sets`)."""
        def shape(tensor):
            return tuple(int(sp.sympify(d).xreplace(sizes)) for d in tensor.shape)

        given = {}
        for tensor in self.graph.given("parameter"):
            letter = _QUANTITY.fullmatch(tensor.name).group(1)
            scale = {"W": WEIGHT_SCALE, "b": BIAS_SCALE}.get(letter, GAIN_SCALE)
            if fan_in and letter == "W":
                scale *= np.sqrt(3 / max(int(np.prod(shape(tensor)[1:])), 1))
            given[tensor.name] = rng.normal(1.0 if letter == "gamma" else 0.0, scale,
                                            shape(tensor))
        for tensor in self.graph.given("mask"):
            given[tensor.name] = _mask(rng, shape(tensor), self.graph.keep[tensor.name])
        for tensor in self.graph.given("state"):
            given[tensor.name] = np.zeros(shape(tensor))
        given[self.input_name] = rng.normal(0, 1, shape(self.graph.tensors[self.input_name]))
        given[self.target_name] = _targets(self.network, shape(self.graph.tensors[self.target_name]),
                                       rng)
        return given

    def _in_notation(self, arrays: dict, sizes: dict, view: "_View") -> dict:
        values = {"a0": view.value(arrays[self.input_name], True),
                  "Y": view.value(arrays[self.target_name], True)}
        names = [(self.input_name, "a0", 0)] + [
            (name, name, int(_QUANTITY.fullmatch(name).group(2))) for name in self._quantities()]
        for name, code, layer in names:
            tensor = self.graph.tensors[name]
            per_row = tensor.shape[:1] == (BATCH,)
            values[code] = view.value(arrays[name], per_row)
            letter = "a" if code == "a0" else _QUANTITY.fullmatch(name).group(1)
            if letter in KIND_OF and f"g_{name}" in arrays:
                parts = self._gradient_parts(name, arrays, sizes, view)
                values["truth", KIND_OF[letter], layer] = sum(
                    view.gradient(array, per_row, consumer.op) for consumer, _, array in parts)
                for consumer, _, array in parts:
                    if consumer.op == "objective":  # a sample's objective adds it
                        values["decay", KIND_OF[letter], layer] = view.value(array, per_row)
            if letter == "z":
                values[f"delta{layer}"] = values["truth", "delta", layer]
        return values

    def _gradient_parts(self, name: str, arrays: dict, sizes: dict, view: "_View") -> list:
        """The gradient of ``name`` whole, or, for a parameter in a per-sample claim, split
        into its paths: the weight decay's belongs to the objective L, not to the sample's
        loss (as ``symbp derive`` prints a sample's gradients)."""
        if not view.per_sample or self.graph.tensors[name].shape[:1] == (BATCH,):
            return [(_WHOLE, None, arrays[f"g_{name}"])]
        return self._raw_paths(name, arrays, sizes)

    # ------------------------------------------------------------- printed
    def printed(self, kind: str, layer: int, batch: bool) -> str | None:
        """The gradient's formula as ``symbp derive`` prints it (its first matrix line,
        else its index form), or None where the printer shows no row for it."""
        if self._printed is None:
            self._printed = _printed_rows(self.derivation)
        rows = self._printed
        name = f"g_{self._name(kind, layer)}"
        for key in ((name, f"paths_{name}") if batch else (f"sample_{name}",)):
            row = rows.get(key)
            if row is not None:
                return row
        return None


def _printed_rows(derivation) -> dict:
    """Each backward row symbp derive prints, by name: ``lhs = rhs`` LaTeX."""
    from symbp.printing.sections import Document

    document = Document(derivation)
    found = {}
    for section in (document.backward_pass(), document.backward_sample()):
        for row in section.rows:
            lhs, relation, rhs = row.lines[0]
            found[row.name] = f"{lhs} {relation} {rhs}"
    return found


class _View:
    """How the engine's arrays read in a claim: ``batch`` rows as rows (a batch claim) or
    one row as a column (a per-sample claim on a batch of one). Where batch norm couples
    the rows (``sample_of_batch``), a per-sample claim reads sample 0 of a batch whose other
    samples' losses have zero gradient: each per-row tensor's row 0, and ``batch`` times the
    engine's gradients (of the mean loss). A per-sample gradient is the sample's loss's: the
    weight decay's path is not in it."""

    def __init__(self, batch: int, sample_of_batch: bool):
        self.batch, self.sample_of_batch = batch, sample_of_batch

    def value(self, array, per_row: bool) -> np.ndarray:
        if self.sample_of_batch and per_row:
            return _layout(np.asarray(array)[:1], 1, True)
        return _layout(array, 1 if self.sample_of_batch else self.batch, per_row)

    @property
    def per_sample(self) -> bool:
        return self.sample_of_batch or self.batch == 1

    def gradient(self, array, per_row: bool, op: str | None = None) -> np.ndarray:
        """A gradient's value; ``op`` the equation of its path: the objective's (the
        weight decay) is no part of a sample's loss."""
        if op == "objective" and self.per_sample:
            return 0 * self.value(array, per_row)
        scale = self.batch if self.sample_of_batch else 1
        return scale * self.value(array, per_row)


class _Whole:
    """The consumer of a gradient taken whole (not split into its paths)."""

    op = None


_WHOLE = _Whole()


def _mask(rng, shape: tuple, keep: float) -> np.ndarray:
    """A dropout mask with a dropped and a kept unit in every row (of two or more units), so
    that no point of a claim hides the mask (or its absence) behind a row of ones."""
    mask = (rng.random(shape) < keep).astype(float)
    rows = mask.reshape(shape[0], -1)
    if rows.shape[1] >= 2:
        for row in rows:
            picks = rng.choice(rows.shape[1], 2, replace=False)
            if row.all():
                row[picks[0]] = 0.0
            if not row.any():
                row[picks[1]] = 1.0
    return rows.reshape(shape)


def _layout(array: np.ndarray, rows: int, per_row: bool) -> np.ndarray:
    """A batch tensor as rows (``rows > 1``) or one column (per sample); a per-row scalar
    ``(B,)`` as a ``(B, 1)`` column or a ``1 x 1``; any other vector as a column."""
    array = np.asarray(array, dtype=float)
    if array.ndim == 0:
        return array.reshape(1, 1)
    if not per_row:
        return array[:, None] if array.ndim == 1 else array
    if array.ndim == 1:
        return array[:, None]
    return array if rows > 1 else array.T


def _require_supported(network) -> None:
    """Claims are mapped for the ops of :data:`SUPPORTED_OPS`; any other is named."""
    for number, layer in enumerate(network.layers, 1):
        if layer.type not in SUPPORTED_OPS:
            raise SymbpError(
                f"layers[{number}]: symbp verify checks claims about networks of "
                f"{', '.join(SUPPORTED_OPS)} layers; this network has a {layer.type} layer "
                f"(claims about {layer.type} are not supported yet)")


def _targets(network, shape, rng) -> np.ndarray:
    """Valid targets for the loss: rows that sum to one, values in (0, 1), or any."""
    loss = network.loss_definition
    if loss.targets_sum_to_one:
        raw = rng.uniform(0.1, 1.0, shape)
        return raw / raw.sum(axis=1, keepdims=True)
    if network.task == "binary" or loss.name == "bce":
        return rng.uniform(0.05, 0.95, shape)
    return rng.normal(0, 1, shape)


def _at(expr: sp.Expr, indices: tuple) -> sp.Expr:
    """``expr`` (in ``FREE``) at ``indices``; its bound indices renamed first, so none is
    captured."""
    bound = {limit[0] for total in expr.atoms(sp.Sum) for limit in total.limits}
    fresh = {k: sp.Dummy(k.name, integer=True, nonnegative=True)
             for k in sorted(bound, key=sp.default_sort_key)}
    return expr.xreplace(fresh).xreplace(dict(zip(FREE, indices, strict=False)))


def _constants_out_of_sums(expr: sp.Expr) -> sp.Expr:
    """``sum_k c x_k = c sum_k x_k`` for each factor ``c`` without a bound index."""
    def pull(total):
        bound = {limit[0] for limit in total.limits}
        factors = sp.Mul.make_args(total.function)
        constant = sp.Mul(*[f for f in factors if not f.free_symbols & bound])
        varying = sp.Mul(*[f for f in factors if f.free_symbols & bound])
        return constant * sp.Sum(varying, *total.limits)

    return expr.replace(lambda e: isinstance(e, sp.Sum), pull)


def _one_sample(expr: sp.Expr, kind: str, batch_names: frozenset) -> sp.Expr:
    """The batch of one: ``B = 1``, one-term sums, the row index dropped."""
    expr = expr.xreplace({BATCH: sp.Integer(1)})
    expr = expr.replace(lambda e: isinstance(e, sp.Sum), _single_terms)
    if kind in _ROW_KINDS:
        expr = expr.xreplace({FREE[0]: sp.Integer(0)})

    def drop_row(entry):
        if entry.indices[0] != 0:
            raise NotMapped(f"{entry} couples the rows of a batch")
        return _base(entry.base.label.name)[entry.indices[1:]]

    return expr.replace(
        lambda e: isinstance(e, sp.Indexed) and e.base.label.name in batch_names, drop_row)


def _single_terms(total: sp.Sum) -> sp.Expr:
    body, kept = total.function, []
    for index, low, high in total.limits:
        if low == high:
            body = body.xreplace({index: low})
        else:
            kept.append((index, low, high))
    return sp.Sum(body, *kept) if kept else body


def _relabel(tensor: forms.Tensor, layer: int, base: sp.Expr) -> forms.Tensor:
    """Layer ``n`` of a formula at ``layer`` as ``base + (n - layer)``."""
    if tensor.layer is None:
        return tensor
    return replace(tensor, layer=base + (int(tensor.layer) - layer))


# ------------------------------------------------------------------- softmax
@lru_cache(maxsize=None)
def _softmax_op():
    """The engine's softmax op on a ``(B, n)`` input: its equation and input tensor."""
    from symbp.engine.graph import Tensor
    from symbp.ops.base import Builder, width
    from symbp.ops.elementwise import activate
    from symbp.registry import BUILTIN_ACTIVATIONS

    builder = Builder("train", None)
    builder.previous = builder.graph.add(Tensor("z", (BATCH, width(0)), "input"))
    builder.layer = 1
    out = activate(builder, BUILTIN_ACTIVATIONS["softmax"])
    return builder.graph.definition(out.name), builder.previous


def softmax(z: np.ndarray, axis: int) -> np.ndarray:
    """The softmax op's forward definition along ``axis`` (at ``z - max z``: it is
    shift-invariant, and so no exponential overflows)."""
    from symbp.engine.numeric import value_of
    from symbp.ops.base import width

    rows = np.moveaxis(np.asarray(z, dtype=float), axis, -1)
    rows = rows - rows.max(axis=-1, keepdims=True)
    equation, source = _softmax_op()
    flat = rows.reshape(-1, rows.shape[-1])
    sizes = {width(0): flat.shape[1], BATCH: flat.shape[0]}
    value = value_of(equation.expr, equation.out, {source.name: flat}, sizes, frozenset())
    return np.moveaxis(value.reshape(rows.shape), -1, axis)


def softmax_jacobian(s: np.ndarray) -> np.ndarray:
    """``d softmax_r / d z_c`` at the output ``s`` (a column): the engine's VJP of the
    softmax op, seeded with each unit vector in turn (row ``r`` is seed ``e_r``)."""
    from symbp.engine.backward import adjoint, vjp
    from symbp.engine.numeric import value_of
    from symbp.ops.base import width

    equation, source = _softmax_op()
    n = s.shape[0]
    arrays = {equation.out.name: np.tile(s[:, 0], (n, 1)),
              adjoint(equation.out).name: np.eye(n)}
    sizes = {width(0): n, BATCH: n}
    return value_of(vjp(equation, source), source, arrays, sizes, frozenset())
