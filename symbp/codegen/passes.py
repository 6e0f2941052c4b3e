"""The forward and backward passes of a derived graph, as NumPy statements.

Contract: :func:`build_passes` takes a :class:`~symbp.engine.derivation.GraphDerivation`
and returns :class:`Passes`: the statements of the training forward pass (batch
statistics, dropout masks from ``masks`` or none), of the evaluation forward
pass when it differs, of the running-statistics updates (``Graph.updates``), of
the backward pass (one per derived gradient, in the engine's order), and the
objective. Every statement is compiled from the engine's index expressions by
:mod:`symbp.codegen.arrays`; the only forms chosen here are numerical (the
row-shifted ``_softmax``, stable logarithms of the output in the loss).

Buffers: a tensor computed by a call with ``out=`` writes into ``work.get(name)``
(a work array when the caller passes them, else a new array); an elementwise
activation writes into its input's array when nothing else reads the input.
An adjoint read once, as a factor of the one gradient that reads it, is
computed into that gradient's array (``delta1 = delta2 @ W2; delta1 *= 1 - a1**2``).
Seed terms of the backward pass (terms that read no adjoint: the output delta,
weight decay) are multiplied by ``rate`` (``scale = rate/B`` where the term
holds ``1/B``): ``rate = 1`` gives the gradients, the learning rate the steps
of plain gradient descent. A statement that reads a dropout mask has a branch
without masks (the mask replaced by its keep probability: no dropout).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import sympy as sp

from symbp.codegen.arrays import Term, aligned, atomic, compile_index, writes
from symbp.codegen.printer import print_expr
from symbp.codegen.safety import Code
from symbp.codegen.views import (
    Lowering,
    Padding,
    View,
    contract_first,
    lower_views,
    multiply_first,
    scattered,
    split_strided,
)
from symbp.engine.argmax import IsArgmax
from symbp.engine.indices import FREE, Inside
from symbp.ops.base import BATCH
from symbp.registry import A, X, Y

RATE = sp.Symbol("rate", positive=True)
SCALE = sp.Symbol("scale", positive=True)  # rate / B
LOG_A = sp.Symbol("log_a", real=True)  # log(a{L}) of a softmax output, from _log_softmax


@dataclass
class Passes:
    forward: list  # Code lines of the training forward pass
    eval_forward: list | None  # of the evaluation pass, None when it is the same
    updates: list  # Code lines updating `state`
    backward: list
    kept: tuple  # names the forward pass returns (what backward and the loss read)
    loss_lines: list  # Code lines computing `total`: the objective
    loss_reads: tuple  # names the loss reads (output z, a)
    buffers: dict  # work-array name -> shape code
    zero_buffers: dict  # the zero-padded copies' work arrays (their borders stay 0)
    uses_log_a: bool


# ------------------------------------------------------------------ naming
def variable(tensor) -> str:
    """The code that holds ``tensor``'s array in the generated functions."""
    name = tensor.name
    if tensor.role == "parameter":
        return f'params["{name}"]'
    if tensor.role == "state":
        return f'state["{name}"]'
    if tensor.role == "mask":
        return f'masks["{name}"]'
    if name.startswith("g_"):
        of = name[2:]
        if re.fullmatch(r"z\d+", of):
            return "delta" + of[1:]
        return name
    return name


def _grad_target(name: str) -> str:
    return f'grads["{name[2:]}"]'


class _Namer:
    """A tensor's (or a view's) code and its shape (None for the batch axis)."""

    def __init__(self, graph, adjoints, sizes):
        self.tensors = {**graph.tensors, **{t.name: t for t in adjoints}}
        self.sizes = sizes
        self.views: dict = {}  # view name -> views.View, for every statement

    def __call__(self, name: str) -> str:
        if name in self.views:
            return self.views[name].code
        return variable(self.tensors[name])

    def extents(self, name: str) -> tuple:
        if name in self.views:
            return self.views[name].extents
        return _extents(self.tensors[name], self.sizes)


def _extents(tensor, sizes) -> tuple:
    return tuple(None if d == BATCH else int(sp.sympify(d).xreplace(sizes)) for d in tensor.shape)


# --------------------------------------------------------------- statements
_NUMBER = r"-?\d+\.\d*(e-?\d+)?"
_UFUNC_CALL = re.compile(rf"(np\.(?P<ufunc>\w+)|_expit|_softmax)\(({_NUMBER}, )?"
                         rf"(?P<arg>\w+)(, {_NUMBER})?\)")


def _single_call(code: str):
    """The argument of ``code`` when it is one ufunc call on one array (``np.tanh(z1)``)."""
    call = _UFUNC_CALL.fullmatch(code)
    if call is None or (call["ufunc"] and not isinstance(getattr(np, call["ufunc"], None),
                                                         np.ufunc)):
        return None
    return call["arg"]


class _Writer:
    """Statements that compute tensors into variables, with buffer bookkeeping."""

    def __init__(self, names, sizes, shapes, extents, paddings):
        self.names, self.sizes, self.shapes, self.extents = names, sizes, shapes, extents
        self.buffers: dict = {}
        self.paddings = paddings  # (source, pads, dilation) -> views.Padding, shared
        self.owned: set = set()  # variables that hold an array of their own

    def expression(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every width symbol replaced by its size (``B`` stays a name)."""
        return sp.sympify(expr).xreplace(self.sizes)

    def lowered(self, expr: sp.Expr, ranges: dict):
        """``expr`` (its free indices' extents in ``ranges``, None for the batch) with
        its affine reads as views, and the statements writing the padded arrays they view."""
        lowering = Lowering(self.names, self.padded, self.names.views)
        expr = lower_views(expr, lowering, ranges)
        return expr, [p.code(f'work.get("{p.name}")') for p in lowering.paddings]

    def padded(self, source: str, pads: tuple, dilation: tuple, extents: tuple) -> Padding:
        """The zero-padded copy of ``source`` (one work array per source and geometry)."""
        key = (source, pads, dilation)
        if key not in self.paddings:
            stem = re.sub(r"\W", "", source.replace("params", "")) + "_padded"
            taken = {p.name for p in self.paddings.values()}
            name = next(n for n in (stem, *(f"{stem}{k}" for k in range(2, 99)))
                        if n not in taken)
            self.paddings[key] = Padding(name, source, pads, dilation, extents)
        return self.paddings[key]

    def buffer(self, name: str) -> str:
        self.buffers[name] = self.shapes[name]
        return f'work.get("{name}")'

    def assign(self, name: str, expr: sp.Expr, rank: int, out_hint: str | None = None) -> list:
        """Statements binding variable ``name`` to ``expr`` (rank ``rank``)."""
        expr = self.expression(expr)
        extents = self.extents[name]
        plain = [f for f in sp.Mul.make_args(expr) if _reads_plainly(f)]
        strided = sp.Mul(*[f for f in sp.Mul.make_args(expr) if not _reads_plainly(f)])
        split = split_strided(strided, extents) if strided != 1 else None
        if split is not None:
            lines = self._joined(name, *split)
            if lines is not None and plain:  # the rest multiplies the result in place
                rest = compile_index(sp.Mul(*plain), self.names, FREE[:rank])
                lines.append(f"{name} *= {_bare(rest, FREE[:rank])}")
            if lines is not None:
                return lines
        ranges = dict(zip(FREE, extents, strict=False))
        first = (contract_first(strided, self.names, ranges)
                 or multiply_first(strided, self.names, ranges))
        lines = []
        if first is not None:  # the contraction or product, then the windows (col2im order)
            inner, labels, inner_extents, outer = first
            terms = f"{name}_by_offset"
            self.names.views[terms] = View(terms, inner_extents)
            lines.append(f"{terms} = {_bare(compile_index(inner, self.names, labels), labels)}")
            expr = outer(sp.IndexedBase(terms, real=True))
            scatter = scattered(expr, self.names, ranges)
            if scatter is not None:
                self.owned.add(name)
                lines.append(f"{name} = {aligned(Term(*scatter), FREE[:rank])}")
                if plain:  # the rest multiplies the result in place
                    rest = compile_index(sp.Mul(*plain), self.names, FREE[:rank])
                    lines.append(f"{name} *= {_bare(rest, FREE[:rank])}")
                return lines
            expr *= sp.Mul(*plain)
        expr, padding = self.lowered(expr, ranges)
        return lines + padding + self._assign(name, expr, rank, out_hint)

    def maximum(self, name: str, entry: sp.Expr, limits: tuple, rank: int) -> list:
        """``name`` = the maximum of ``entry`` over the indices of ``limits``."""
        target = FREE[:rank]
        ranges = dict(zip(target, self.extents[name], strict=True))
        ranges |= {index: int(high - low + 1) for index, low, high in limits}
        expr, padding = self.lowered(self.expression(entry), ranges)
        term = compile_index(expr, self.names, target)
        summed = tuple(index for index, _, _ in limits)
        axis = tuple(term.axes.index(index) for index in summed)
        kept = tuple(a for a in term.axes if a not in summed)
        self.owned.add(name)
        maximum = f"_window_max({term.code}, {axis}"
        if kept == target:
            return padding + [f"{name} = {maximum}, out={self.buffer(name)})"]
        return padding + [f"{name} = {aligned(Term(maximum + ')', kept), target)}"]

    def _joined(self, name: str, expr: sp.Expr, axes: tuple, ranges: dict) -> list | None:
        """``name`` computed with a strided axis split in two, then reshaped (see
        :func:`~symbp.codegen.views.split_strided`)."""
        expr, padding = self.lowered(expr, ranges)
        term = compile_index(expr, self.names, axes)
        if set(term.axes) != set(axes):
            return None
        shape = ", ".join("-1" if d is None else str(d) for d in self.extents[name])
        self.owned.add(name)
        code = aligned(term, axes)
        return padding + [f"{name} = {code if atomic(code) else f'({code})'}.reshape({shape})"]

    def _assign(self, name: str, expr: sp.Expr, rank: int, out_hint) -> list:
        target = FREE[:rank]
        whole = compile_index(expr, self.names, target)
        if whole.call is None and whole.atomic and whole.axes == target:
            self.owned.discard(name)
            return [f"{name} = {whole.code}"]  # another name for the same array
        lines = self._into(f"{name} =", name, expr, rank, lambda: self.buffer(name))
        if lines is not None:
            self.owned.add(name)
            return lines
        argument = _single_call(whole.code) if whole.axes == target else None
        if argument is not None:
            out = out_hint(argument) if out_hint else self.buffer(name)
            self.owned.add(name)
            return [f"{name} = {whole.code[:-1]}, out={out})"]
        self.owned.add(name)
        if set(whole.axes) != set(target):  # a constant or target-only output delta
            return [f"{name} = {self.filled(name, aligned(whole, target))}"]
        return [f"{name} = {_bare(whole, target)}"]

    def filled(self, name: str, code: str) -> str:
        """A new array of ``name``'s shape and the input's dtype, holding ``code``
        (which broadcasts against it)."""
        inputs = self.names("X")
        shape = self.shapes[name].replace("rows", f"{inputs}.shape[0]")
        return f"np.broadcast_to({code}, {shape}).astype({inputs}.dtype)"

    def store(self, out: str, expr: sp.Expr, rank: int) -> list:
        """Statements writing ``expr`` into the existing array ``out`` (a gradient)."""
        target = FREE[:rank]
        expr, padding = self.lowered(self.expression(expr),
                                     dict(zip(FREE, self.extents[out], strict=False)))
        lines = self._into("", out, expr, rank, lambda: out)
        if lines is not None:
            return padding + lines
        return padding + [
            f"{out}[...] = {_bare(compile_index(expr, self.names, target), target)}"]

    def _into(self, bind: str, name: str, expr, rank, out) -> list | None:
        """``name`` computed by a call with ``out=`` and then updated in place, or None."""
        target = FREE[:rank]
        for combine, pieces in (("+=", sp.Add.make_args(expr)), ("*=", sp.Mul.make_args(expr))):
            if len(pieces) < 2 and combine == "*=" and not isinstance(expr, sp.Sum):
                pieces = (expr,)
            for position, piece in enumerate(pieces):
                call = self._call(piece, rank, out, fresh=bool(bind))
                if call is None:
                    continue
                rest = pieces[:position] + pieces[position + 1:]
                first = f"{bind} {call}".strip()
                if not rest:
                    return [first]
                other = (sp.Add if combine == "+=" else sp.Mul)(*rest)
                numerator, denominator = sp.fraction(other)
                if combine == "*=" and numerator == 1:
                    combine, other = "/=", denominator
                term = compile_index(other, self.names, target)
                return [first, f"{name} {combine} {_bare(term, target)}"]
        return None

    def _call(self, piece, rank, out, fresh=False) -> str | None:
        target = FREE[:rank]
        term = compile_index(piece, self.names, target)
        if term.call is not None and term.call[0] == "tensordot":
            return term.code if fresh and term.axes == target else None
        if term.call is not None and term.axes == target:
            return writes(term, out())
        difference = _difference(piece)
        if difference is not None:
            left, right = (compile_index(p, self.names, target) for p in difference)
            if left.axes == target and left.call is None and left.atomic:
                return f"np.subtract({left.code}, {aligned(right, target)}, out={out()})"
        return None


def _reads_plainly(expr: sp.Expr) -> bool:
    """No sum, no condition, every entry at plain indices (an elementwise factor)."""
    return not expr.has(sp.Sum, Inside) and all(
        isinstance(i, sp.Symbol) for e in expr.atoms(sp.Indexed) for i in e.indices)


def _bare(term: Term, target: tuple) -> str:
    """The code of ``term`` aligned to ``target``, without parentheses when it needs none."""
    return term.code if term.axes in (target, ()) else aligned(term, target)


def _difference(expr):
    """``(u, v)`` when ``expr`` is exactly ``u - v`` for two tensor entries."""
    if not (expr.is_Add and len(expr.args) == 2):
        return None
    positive = [t for t in expr.args if isinstance(t, sp.Indexed)]
    negative = [-t for t in expr.args if isinstance(-t, sp.Indexed)]
    if len(positive) == 1 and len(negative) == 1:
        return positive[0], negative[0]
    return None


# --------------------------------------------------------------- the passes
def _shapes(tensors, sizes) -> dict:
    return {variable(tensor): _shape_code(_extents(tensor, sizes)) for tensor in tensors}


def _shape_code(extents: tuple) -> str:
    """``(rows, 8, 8)``: a shape in the work arrays' code, ``rows`` for the batch."""
    dims = ["rows" if d is None else str(d) for d in extents]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _without_masks(expr, keeps):
    return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base.label.name in keeps,
                        lambda e: keeps[e.base.label.name])


def _reads_mask(expr, keeps) -> bool:
    return any(e.base.label.name in keeps for e in expr.atoms(sp.Indexed))


def _branch(writer, keeps, expr, emit) -> list:
    """``emit(expr)``, with an ``if masks is None`` branch when ``expr`` reads a mask."""
    if not _reads_mask(expr, keeps):
        return emit(expr)
    plain = emit(_without_masks(expr, keeps))
    owned_plain = set(writer.owned)
    masked = emit(expr)
    writer.owned &= owned_plain
    return (["if masks is None:"] + ["    " + line for line in plain]
            + ["else:"] + ["    " + line for line in masked])


def _readers(graph, gradients, loss_reads) -> dict:
    """Tensor name -> how many equations, gradients and the loss read it."""
    counts: dict = {}
    for expr in [e.expr for e in graph.equations if e.op != "objective"] + [
            g.expr for g in gradients] + [value for _, value in graph.updates]:
        for name in {i.base.label.name for i in expr.atoms(sp.Indexed)}:
            counts[name] = counts.get(name, 0) + 1
    for name in loss_reads:
        counts[name] = counts.get(name, 0) + 1
    return counts


def _forward_lines(writer, graph, network, readers, keeps, activations) -> list:
    lines = []
    layer = None
    for equation in graph.equations:
        if equation.op == "objective":
            continue
        if equation.layer != layer:
            layer = equation.layer
            lines.append(f"# layer {layer}: {_layer_summary(network.layers[layer - 1])}")
        name, rank = variable(equation.out), equation.out.rank
        source = equation.inputs[0] if equation.inputs else None
        in_place = (source is not None and variable(source) in writer.owned
                    and readers.get(source.name, 0) <= 1 and source.shape == equation.out.shape)

        def hint(argument, in_place=in_place, name=name):
            return argument if in_place else writer.buffer(name)

        if equation.op == "softmax":
            argument = variable(source)
            lines.append(f"{name} = _softmax({argument}, out={hint(argument)})")
            writer.owned.add(name)
            continue
        if equation.op in activations:
            expr = activations[equation.op].expr.xreplace({X: sp.Symbol(variable(source),
                                                                       real=True)})
            code = print_expr(expr)
            argument = _single_call(code)
            if code == variable(source):
                lines.append(f"{name} = {code}")
                writer.owned.discard(name)
            elif argument is not None:
                lines.append(f"{name} = {code[:-1]}, out={hint(argument)})")
                writer.owned.add(name)
            else:
                lines.append(f"{name} = {code}")
                writer.owned.add(name)
            continue
        pooled = _window_maximum(graph, equation.expr)
        if pooled is not None:
            lines[:] = _maximum_first(lines, writer.maximum(name, *pooled[1:], rank),
                                      variable(graph.tensors[pooled[0]]), name)
            continue
        lines += _branch(writer, keeps, equation.expr,
                         lambda expr, name=name, rank=rank: writer.assign(name, expr, rank))
    return lines


def _maximum_first(lines: list, maximum: list, indicator: str, name: str) -> list:
    """``lines`` and the statement ``maximum`` of the window maximum ``name`` (max
    pooling), moved before the statement of its window-argmax ``indicator`` when that
    one reads the same windows: the indicator then takes the maximum (computed once)."""
    if len(maximum) == 1:
        call = re.fullmatch(rf"{name} = _window_max\((?P<windows>.*), out=.*\)", maximum[0])
        head = f"{indicator} = _first_maximum("
        for position, line in enumerate(lines):
            if call and line == f"{head}{call['windows']})":
                return lines[:position] + maximum + [
                    f"{head}{call['windows']}, {name})"] + lines[position + 1:]
    return lines + maximum


def _window_maximum(graph, expr):
    """``(indicator, entry, limits)`` when ``expr`` is ``sum_p entry(p) * chi[.., p]`` with ``chi`` the
    window-argmax indicator of that entry (max pooling): that sum is the window's maximum,
    computed as one. None for any other expression."""
    if not isinstance(expr, sp.Sum):
        return None
    factors = sp.Mul.make_args(expr.function)
    chosen = [f for f in factors if isinstance(f, sp.Indexed)
              and isinstance(getattr(graph.definition(f.base.label.name), "expr", None),
                             IsArgmax)]
    if len(factors) != 2 or len(chosen) != 1:
        return None
    (indicator,) = chosen
    (entry,) = [f for f in factors if f is not indicator]
    definition = graph.definition(indicator.base.label.name).expr
    own = dict(zip(FREE, indicator.indices, strict=False))
    summed = tuple(index for index, _, _ in expr.limits)
    window = tuple(own[p] for p, _ in definition.window)
    if window != summed or definition.entry.xreplace(own) != entry:
        return None
    return indicator.base.label.name, entry, expr.limits


def _layer_summary(layer) -> str:
    """The layer's type and sizes: symbp's own words and numbers only (no spec text)."""
    if layer.type == "dense":
        return f"dense, {int(layer.options['units'])} units"
    if layer.type == "dropout":
        return f"dropout, rate {float(layer.options['rate'])!r}"
    if "kernel" in layer.options:  # convolution and pooling: the window's geometry
        return f"{layer.type}, {window_summary(layer)}"
    return layer.type


def window_summary(layer) -> str:
    """``8 channels, kernel 3x3, stride 2x2, padding 1x1`` (what differs from the
    defaults), from the layer's integers only."""
    options = layer.options
    parts = [f"{int(options['channels'])} channels"] if "channels" in options else []

    def sizes(value):
        return "x".join(str(int(v)) for v in value)

    parts.append(f"kernel {sizes(options['kernel'])}")
    if options.get("stride") and tuple(options["stride"]) not in ((1,), tuple(
            options["kernel"])):
        parts.append(f"stride {sizes(options['stride'])}")
    if any(options.get("padding") or ()):
        parts.append(f"padding {sizes(options['padding'])}")
    return ", ".join(parts)


def _inline_single_readers(gradients) -> list:
    """Adjoints read once, as a factor of the one gradient that reads them, go into it."""
    expressions = {g.adjoint.name: g.expr for g in gradients}
    kept = []
    for position, gradient in enumerate(gradients):
        name = gradient.adjoint.name
        entry = gradient.adjoint.entry()
        later = [g for g in gradients[position + 1:] if expressions[g.adjoint.name].has(
            gradient.adjoint.base)]
        if gradient.of.role != "parameter" and len(later) == 1:
            reader = later[0].adjoint.name
            factors = sp.Mul.make_args(expressions[reader])
            if entry in factors and expressions[reader].count(gradient.adjoint.base) == 1:
                expressions[reader] = expressions[reader].xreplace({entry: expressions[name]})
                continue
        kept.append(gradient)
    return [(g, expressions[g.adjoint.name]) for g in kept]


def _seeded(expr) -> sp.Expr:
    """``expr`` with each term that reads no adjoint multiplied by the step ``rate``."""
    terms = []
    for term in sp.Add.make_args(expr):
        if any(i.base.label.name.startswith("g_") for i in term.atoms(sp.Indexed)):
            terms.append(term)
        elif not (term * BATCH).has(BATCH):
            terms.append(SCALE * (term * BATCH))
        else:
            terms.append(RATE * term)
    return sp.Add(*terms)


def _backward_lines(writer, gradients, keeps) -> list:
    lines = []
    for gradient, expr in _inline_single_readers(gradients):
        expr = _seeded(expr)
        name, rank = gradient.adjoint.name, gradient.adjoint.rank
        lines.append(f"# dL/d{gradient.of.name}")
        if gradient.of.role == "parameter":
            target = _grad_target(name)
            lines += _branch(writer, keeps, expr,
                             lambda e, t=target, r=rank: writer.store(t, e, r))
        else:
            var = variable(gradient.adjoint)
            lines += _branch(writer, keeps, expr,
                             lambda e, v=var, r=rank: writer.assign(v, e, r))
    return lines


def _log_of_output(argument: sp.Expr, output: sp.Expr) -> sp.Expr:
    """``log(g(a))`` with ``a = f(z)`` substituted, expanded so nothing takes ``log(0)``."""
    composed = sp.simplify(argument.subs(A, output))
    return sp.expand_log(sp.log(composed), force=True)


def _loss_lines(writer, graph, network, activations):
    """The objective: the stable per-sample loss summed over the batch over B, plus decay."""
    loss = graph.loss
    equation = graph.definition(loss.name)
    output = next(e for e in reversed(graph.equations) if e.op != "objective")
    a_name = variable(output.out)
    expr = network.loss_definition.expr
    reads = [a_name]
    uses_log_a = False
    if output.op == "softmax" and expr.has(sp.log(A)):
        expr = expr.subs(sp.log(A), LOG_A)
        uses_log_a = True
        reads.insert(0, variable(output.inputs[0]))
    elif output.op in activations and expr.has(sp.log):
        source = sp.Symbol(variable(output.inputs[0]), real=True)
        activation = activations[output.op].expr.subs(X, source)
        expr = expr.replace(lambda e: isinstance(e, sp.log) and e.args[0].has(A),
                            lambda e: _log_of_output(e.args[0], activation))
        reads.insert(0, str(source))
    per_sample = print_expr(expr.subs({A: sp.Symbol(a_name, real=True),
                                       Y: sp.Symbol("Y", real=True)}))
    lines = [f"total = float(({per_sample}).sum()) / Y.shape[0]"]
    for term in sp.Add.make_args(equation.expr):
        if _reads_parameters_only(graph, term):  # weight decay
            code = compile_index(writer.expression(term), writer.names, ()).code
            lines.append(f"total += float({code})")
    return lines, tuple(dict.fromkeys(reads)), uses_log_a


def _reads_parameters_only(graph, term: sp.Expr) -> bool:
    """Does ``term`` of the objective read parameters alone (a weight-decay term, not the
    mean loss, which reads the output, and the target where the loss does)?"""
    read = {graph.tensors[i.base.label.name].role for i in term.atoms(sp.Indexed)}
    return bool(read) and read <= {"parameter"}


def _is_activation(network, op: str) -> bool:
    """An equation labelled with an activation's name (any other op is compiled from its
    index expression: a new op needs nothing here)."""
    from symbp.registry import BUILTIN_ACTIVATIONS

    return op != "softmax" and (op in BUILTIN_ACTIVATIONS or op in network.activations)


def build_passes(derivation) -> Passes:
    network = derivation.network
    graph, sizes = derivation.graph, derivation.sizes
    activations = {e.op: network.activation_named(e.op) for e in graph.equations
                   if _is_activation(network, e.op)}
    adjoints = [g.adjoint for g in derivation.gradients]
    names = _Namer(graph, adjoints, sizes)
    every = list(graph.tensors.values()) + adjoints + list(derivation.eval.graph.tensors.values())
    extents = {variable(t): _extents(t, sizes) for t in every}
    extents |= {_grad_target(t.name): _extents(t, sizes) for t in adjoints
                if t.name[2:] in graph.tensors and graph.tensors[t.name[2:]].role == "parameter"}
    paddings: dict = {}
    writer = _Writer(names, sizes, _shapes(every, sizes), extents, paddings)
    keeps = graph.keep  # mask -> keep probability, as the op defines it
    loss_lines, loss_reads, uses_log_a = _loss_lines(writer, graph, network, activations)
    readers = _readers(graph, derivation.gradients, loss_reads)
    forward = _forward_lines(writer, graph, network, readers, keeps, activations)
    read_back = {i.base.label.name for g in derivation.gradients for i in g.expr.atoms(sp.Indexed)}
    read_back |= {i.base.label.name for _, v in graph.updates for i in v.atoms(sp.Indexed)}
    kept = tuple(variable(t) for t in graph.tensors.values()
                 if t.role == "value" and t.name in read_back and t.name not in loss_reads)
    updates = []
    for state, value in graph.updates:
        code = compile_index(writer.expression(value), names, FREE[:state.rank])
        updates.append(f"{variable(state)}[...] = {_bare(code, FREE[:state.rank])}")
    columns: dict = {}  # the code of a copy of windows -> its variable in the forward pass
    forward = _hoisted_columns(forward, columns, writer)
    backward, reused = _reused_columns(_backward_lines(writer, derivation.gradients, keeps),
                                       columns)
    kept = tuple(name for name in kept if any(re.search(rf"\b{re.escape(name)}\b", line)
                                              for line in backward))
    kept = tuple(dict.fromkeys(kept + reused + loss_reads))
    eval_forward = None
    if [(e.out.name, e.expr) for e in derivation.eval.graph.equations] != [
            (e.out.name, e.expr) for e in graph.equations]:
        eval_writer = _Writer(names, sizes, writer.shapes, extents, paddings)
        eval_graph = derivation.eval.graph
        eval_readers = _readers(eval_graph, [], loss_reads)
        eval_forward = _forward_lines(eval_writer, eval_graph, network, eval_readers, {},
                                      activations)
    return Passes(
        forward=[Code(line) for line in forward],
        eval_forward=None if eval_forward is None else [Code(line) for line in eval_forward],
        updates=[Code(line) for line in updates],
        backward=[Code(line) for line in backward], kept=kept,
        loss_lines=[Code(line) for line in loss_lines], loss_reads=loss_reads,
        buffers=dict(sorted(writer.buffers.items(), key=lambda item: _order(item[0], every))),
        zero_buffers={p.name: _shape_code(p.extents) for p in paddings.values()},
        uses_log_a=uses_log_a)


# -------------------------------------------------- windows copied once
def _im2col_calls(line: str) -> list:
    """The ``_im2col(..)`` calls in ``line``, as written."""
    calls = []
    for start in [m.start() for m in re.finditer(r"_im2col\(", line)]:
        depth = 0
        for position in range(start + len("_im2col"), len(line)):
            depth += {"(": 1, ")": -1}.get(line[position], 0)
            if depth == 0:
                calls.append(line[start:position + 1])
                break
    return calls


def _hoisted_columns(lines: list, columns: dict, writer) -> list:
    """Each copy of windows (``_im2col(view, order)``, a convolution's im2col) in a
    statement of the forward pass (outside branches) computed once, before it, into
    a work array ``cols1``, ``cols2``, .. (``columns`` maps its code to that name), so
    that the kernel gradient reads the same copy (:func:`_reused_columns`)."""
    out = []
    for line in lines:
        for call in [] if line.startswith(" ") else _im2col_calls(line):
            if call not in columns:
                view, _, order = call[len("_im2col("):-1].rpartition(", (")
                extents = next((v.extents for v in writer.names.views.values()
                                if v.code == view), None)
                if extents is None:
                    continue
                name = f"cols{len(columns) + 1}"
                columns[call] = name
                order = [int(a) for a in order.rstrip(")").split(",") if a.strip()]
                writer.shapes[name] = _shape_code(tuple(extents[a] for a in order))
                out.append(f"{name} = {call[:-1]}, out={writer.buffer(name)})")
            line = line.replace(call, columns.get(call, call))
        out.append(line)
    return out


def _reused_columns(lines: list, columns: dict):
    """``lines`` reading the forward pass's copies of windows (``columns``) instead of
    copying them again (and without the padded copies nothing else reads), and the
    names of the copies they read."""
    reused = []
    for position, line in enumerate(lines):
        for call in _im2col_calls(line):
            if call in columns:
                lines[position] = line = line.replace(call, columns[call])
                reused.append(columns[call])
    padded = [re.match(r"\s*(\w+) = _zero_padded\(", line) for line in lines]
    unread = {m[1] for m in padded if m and not any(  # padded copies that only they read
        re.search(rf"\b{m[1]}\b", line) for line in lines if not line.lstrip().startswith(
            f"{m[1]} = "))}
    lines = [line for line, m in zip(lines, padded, strict=True) if not (m and m[1] in unread)]
    return lines, tuple(dict.fromkeys(reused))


def _order(name: str, tensors) -> int:
    return next((p for p, t in enumerate(tensors) if variable(t) == name), len(tensors))
