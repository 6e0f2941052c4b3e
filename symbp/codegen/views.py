"""Reads at affine indices as NumPy views: windows, strides, reshapes, zero padding.

Contract: :func:`lower_views` rewrites an index expression of the engine so that
every tensor entry is read at plain indices. An entry read at affine indices
(a convolution's ``x[s, c, i*S + p - P]``, a transposed convolution's
``g[s, c, (u - p + P)/S]``, a flatten's ``W[k, 4*c + 2*h + w]``), together with
the :class:`~symbp.engine.indices.Inside` conditions of its indices in the same
product, becomes a read of a new array at plain indices, each axis carrying one
index symbol. That array is a view (no copy) of the tensor, or of a zero-padded
(and for a rational index, dilated) copy of it written by ``_zero_padded``:

- ``Inside(e, n) * T[.., e, ..]`` (zero outside ``0..n-1``; for ``e = (u - p)/S``
  also zero where ``e`` is not an integer) is ``T`` spread ``S`` apart
  (``dilation``) with zero borders, read at the integer index ``S*e``;
- an index ``a*i + b*p + d`` of two symbols is the windows of that axis
  (``_windows``, i.e. ``sliding_window_view``), sliced ``[d::a]`` for the positions and
  ``[::b]`` for the offsets (``b < 0``: the flipped kernel);
- an index ``4*c + 2*h + w`` whose coefficients are the mixed radix of the
  symbols' ranges, and which covers the axis exactly, is a ``reshape``;
- one symbol ``a*i + d`` is a strided slice; a symbol on two axes is their
  ``np.diagonal``;
- ``sum_{c,h,w} T[s, c, h, w] KroneckerDelta(t, 4*c + 2*h + w)`` (the flatten
  forward) is ``T.reshape(-1, 64)``.

Nothing is evaluated: a view is code (:class:`View`) that the index compiler
reads like any array, and the padded copies are statements (:class:`Padding`)
that the caller writes before the statement that reads them. A read this
module cannot lower, or a condition that no read consumes, raises
:class:`Unlowerable` naming it: the code generator never guesses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy as sp

from symbp.engine.indices import FREE, Inside, affine_terms, contract, within_ranges


class Unlowerable(ValueError):
    """An index form the view lowering has no NumPy form for."""


@dataclass(frozen=True)
class View:
    """An array at plain indices: ``code`` (a view expression) and the extent of each axis
    (None for the batch)."""

    code: str
    extents: tuple


@dataclass(frozen=True)
class Padding:
    """``name = _zero_padded(source, pads, dilation)``: a zero array with ``source``'s
    entries ``dilation`` apart, after ``pads[a][0]`` zeros on axis ``a`` (and ``pads[a][1]``
    after them); ``extents`` is the result's shape (None for the batch)."""

    name: str
    source: str
    pads: tuple
    dilation: tuple
    extents: tuple

    def code(self, out: str) -> str:
        dilation = "" if set(self.dilation) == {1} else f", dilation={self.dilation}"
        return f"{self.name} = _zero_padded({self.source}, {self.pads}{dilation}, out={out})"


class Lowering:
    """The views and padded copies of one statement. ``arrays(name)`` is the code
    holding a tensor, ``arrays.extents(name)`` its shape (None for the batch);
    ``padded(source, pads, dilation, extents)`` names the padded copy (shared by the
    statements that pad the same array alike); ``views`` collects the views of every
    statement (their names are unique in it)."""

    def __init__(self, arrays, padded, views: dict):
        self.arrays, self.padded, self.views = arrays, padded, views
        self.paddings: list = []

    def view(self, code: str, extents: tuple, labels: tuple) -> sp.Expr:
        """A new array name for the view ``code``, read at ``labels``."""
        name = f"_view{len(self.views)}"
        self.views[name] = View(code, extents)
        return sp.IndexedBase(name, real=True)[labels]


def lower_views(expr: sp.Expr, lowering: Lowering, ranges: dict) -> sp.Expr:
    """``expr`` with every entry read at plain indices (see the module docstring);
    ``ranges`` maps each free index to its extent (None for the batch)."""
    if not _needs_lowering(expr):
        return expr
    return _rewrite(expr, lowering, dict(ranges))


def _needs_lowering(expr: sp.Expr) -> bool:
    if expr.has(Inside, sp.KroneckerDelta):
        return True
    return any(not all(isinstance(i, sp.Symbol) for i in e.indices)
               for e in expr.atoms(sp.Indexed))


# ------------------------------------------------------------------ walking
def _rewrite(expr, lowering, ranges):
    if isinstance(expr, sp.Indexed):
        return _product([expr], lowering, ranges)
    if isinstance(expr, sp.Sum):
        body, limits = _merged(expr)
        inner = dict(ranges)
        for index, low, high in limits:
            inner[index] = _extent(high - low + 1)
        flat = _flatten_read(body, limits, lowering, inner)
        if flat is not None:
            return flat
        return sp.Sum(_product(sp.Mul.make_args(body), lowering, inner), *limits)
    if isinstance(expr, sp.Mul):
        return _product(expr.args, lowering, ranges)
    if not expr.args or not _needs_lowering(expr):
        return expr
    return expr.func(*[_rewrite(arg, lowering, ranges) for arg in expr.args])


def _extent(size):
    size = sp.sympify(size)
    return int(size) if size.is_Integer else None


def _merged(expr: sp.Sum):
    """A nest of sums as one: ``sum_k f(k) sum_q g(k, q)`` is ``sum_{k,q} f(k) g(k, q)``
    (the canonical bound indices of a nest are distinct)."""
    body, limits = expr.function, list(expr.limits)
    while True:
        if isinstance(body, sp.Sum):
            limits += list(body.limits)
            body = body.function
            continue
        factors = sp.Mul.make_args(body)
        sums = [f for f in factors if isinstance(f, sp.Sum)]
        if len(sums) != 1:
            return body, limits
        (inner,) = sums
        limits += list(inner.limits)
        body = sp.Mul(*[f for f in factors if f is not inner]) * inner.function


def _product(factors, lowering, ranges):
    """A product whose affine reads become views; its Inside conditions go into them."""
    conditions = {sp.expand(f.args[0]): f for f in factors if isinstance(f, Inside)}
    used: set = set()
    out = []
    for factor in factors:
        if isinstance(factor, Inside):
            continue
        if isinstance(factor, sp.KroneckerDelta):
            raise Unlowerable(f"no NumPy form for the delta {factor} in a product")
        if isinstance(factor, sp.Indexed):
            out.append(_read(factor, conditions, used, lowering, ranges))
        else:
            out.append(_rewrite(factor, lowering, ranges))
    unused = [conditions[e] for e in conditions if e not in used]
    if unused:
        raise Unlowerable(f"the condition {unused[0]} guards no read of a tensor")
    return sp.Mul(*out)


# --------------------------------------------------------------------- reads
@dataclass
class _Axis:
    """How one axis of a read becomes view axes."""

    kind: str  # "plain", "slice", "constant", "radix", "window"
    symbols: tuple = ()  # radix: outer to inner; window: (position, offset)
    coefficients: tuple = ()
    offset: int = 0
    extent: int | None = None  # of the (padded) axis


def _read(entry: sp.Indexed, conditions, used, lowering, ranges):
    name = entry.base.label.name
    extents = tuple(lowering.arrays.extents(name))
    if all(isinstance(i, sp.Symbol) for i in entry.indices) and len(set(entry.indices)) == len(
            entry.indices):
        return entry
    axes, pads, dilation, padded_extents = [], [], [], []
    for index, extent in zip(entry.indices, extents, strict=True):
        axis, pad, step, size = _axis(entry, sp.expand(index), extent, conditions, used, ranges)
        axes.append(axis)
        pads.append(pad)
        dilation.append(step)
        padded_extents.append(size)
    source = lowering.arrays(name)
    if any(p != (0, 0) for p in pads) or any(s != 1 for s in dilation):
        padding = lowering.padded(source, tuple(pads), tuple(dilation), tuple(padded_extents))
        lowering.paddings.append(padding)
        source = padding.name
    code, labels = _view_code(source, axes, padded_extents, ranges)
    return lowering.view(code, tuple(ranges.get(s) for s in labels), labels)


def _axis(entry, index, extent, conditions, used, ranges):
    """``(_Axis, (pad before, pad after), dilation, padded extent)`` of one index."""
    if isinstance(index, sp.Symbol):
        return _Axis("plain", (index,)), (0, 0), 1, extent
    terms = affine_terms(index)
    if terms is None or extent is None:
        raise Unlowerable(f"no view reads {entry}: the index {index} is not affine in a "
                          "spatial axis")
    coefficients, constant = terms
    coefficients = {s: c for s, c in coefficients.items() if c != 0}
    if any(ranges.get(s) is None for s in coefficients):
        raise Unlowerable(f"no view reads {entry}: an index of {index} has no known range")
    step = math.lcm(*[sp.fraction(c)[1] for c in (*coefficients.values(), constant)])
    scaled = {s: int(c * step) for s, c in coefficients.items()}
    offset = int(constant * step)
    size = step * (extent - 1) + 1
    low = offset + sum(min(0, c * (ranges[s] - 1)) for s, c in scaled.items())
    high = offset + sum(max(0, c * (ranges[s] - 1)) for s, c in scaled.items())
    pad = (max(0, -low), max(0, high - (size - 1)))
    if step != 1 or pad != (0, 0):
        if index not in conditions:
            raise Unlowerable(f"no view reads {entry}: the index {index} leaves the axis "
                              "without a range condition")
        used.add(index)
    elif index in conditions:
        used.add(index)  # always inside: the condition holds everywhere
    offset += pad[0]
    size += pad[0] + pad[1]
    return _shape_of(entry, scaled, offset, size, ranges), pad, step, size


def _shape_of(entry, coefficients, offset, size, ranges) -> _Axis:
    symbols = sorted(coefficients, key=lambda s: (abs(coefficients[s]), ranges[s], str(s)))
    if not symbols:
        return _Axis("constant", offset=offset, extent=size)
    if len(symbols) == 1:
        return _Axis("slice", tuple(symbols), (coefficients[symbols[0]],), offset, size)
    radix = 1
    for symbol in symbols:
        if coefficients[symbol] != radix:
            break
        radix *= ranges[symbol]
    else:
        if offset == 0 and radix == size:
            return _Axis("radix", tuple(reversed(symbols)), offset=0, extent=size)
    if len(symbols) == 2:
        first, second = symbols
        width = {s: abs(coefficients[s]) * (ranges[s] - 1) + 1 for s in symbols}
        position, window = (second, first) if width[first] <= width[second] else (first, second)
        return _Axis("window", (position, window),
                     (coefficients[position], coefficients[window]), offset, size)
    raise Unlowerable(f"no view reads {entry}: an index of three symbols that is not a "
                      "reshape")


def _view_code(source: str, axes, extents, ranges):
    """The view expression of ``source`` (shape ``extents``) and the symbol of each axis."""
    code = source
    if any(a.kind == "radix" for a in axes):
        dims = []
        for axis, extent in zip(axes, extents, strict=True):
            dims += [ranges[s] for s in axis.symbols] if axis.kind == "radix" else [extent]
        shape = ", ".join("-1" if d is None else str(d) for d in dims)
        code = f"{code}.reshape({shape})"
    labels, slots, windows, window_labels, window_slots = [], [], [], [], []
    for axis in axes:
        if axis.kind == "plain":
            labels.append(axis.symbols[0])
            slots.append(":")
        elif axis.kind == "radix":
            labels += list(axis.symbols)
            slots += [":"] * len(axis.symbols)
        elif axis.kind == "constant":
            labels.append(None)
            slots.append(str(axis.offset))
        elif axis.kind == "slice":
            (symbol,), (step,) = axis.symbols, axis.coefficients
            labels.append(symbol)
            slots.append(_slice(axis.offset, step, ranges[symbol], axis.extent))
        else:  # window: the positions stay on the axis, the offsets are appended
            (where, offset), (step, width_step) = axis.symbols, axis.coefficients
            width = abs(width_step) * (ranges[offset] - 1) + 1
            windows.append((len(labels), width))
            start = axis.offset + (width_step * (ranges[offset] - 1) if width_step < 0 else 0)
            labels.append(where)
            slots.append(_slice(start, step, ranges[where], axis.extent - width + 1))
            window_labels.append(offset)
            window_slots.append(":" if width_step == 1 else f"::{width_step}")
    if windows:
        shape = tuple(width for _, width in windows)
        where = tuple(position for position, _ in windows)
        code = f"_windows({code}, {shape}, {where})"
    slots += window_slots
    while slots and slots[-1] == ":":
        slots.pop()
    if slots:
        code += "[" + ", ".join(slots) + "]"
    labels = [label for label in labels + window_labels if label is not None]
    return _diagonals(code, labels)


def _slice(start: int, step: int, count: int, extent: int) -> str:
    """``start:stop:step``, the ``count`` entries ``start, start + step, ...`` of an axis of
    ``extent`` entries (``:`` for all of them)."""
    last = start + step * (count - 1)
    if step > 0:
        start_text = "" if start == 0 else str(start)
        stop_text = "" if last + 1 >= extent else str(last + 1)
    else:
        start_text = "" if start == extent - 1 else str(start)
        stop_text = "" if last - 1 < 0 else str(last - 1)
    return f"{start_text}:{stop_text}" + ("" if step == 1 else f":{step}")


def _diagonals(code: str, labels: list):
    """A symbol on two axes reads their diagonal (``np.diagonal`` puts it last)."""
    while len(set(labels)) < len(labels):
        first = next(p for p, s in enumerate(labels) if labels.index(s) < p)
        second = labels.index(labels[first])
        code = f"np.diagonal({code}, 0, {second}, {first})"
        symbol = labels[first]
        labels = [s for p, s in enumerate(labels) if p not in (first, second)] + [symbol]
    return code, tuple(labels)


def _flatten_read(body, limits, lowering, ranges):
    """``sum_{c,h,w} T[s, c, h, w] KroneckerDelta(t, 4*c + 2*h + w)`` as the view
    ``T.reshape(-1, 64)`` read at ``[s, t]``, or None for any other sum."""
    factors = sp.Mul.make_args(body)
    deltas = [f for f in factors if isinstance(f, sp.KroneckerDelta)]
    reads = [f for f in factors if isinstance(f, sp.Indexed)]
    if len(deltas) != 1 or len(reads) != 1 or len(factors) != 2:
        return None
    summed = [index for index, _, _ in limits]
    (delta,), (entry,) = deltas, reads
    target, position = (delta.args if delta.args[0] not in summed else delta.args[::-1])
    terms = affine_terms(position)
    indices = list(entry.indices)
    if not isinstance(target, sp.Symbol) or target in summed or terms is None:
        raise Unlowerable(f"no reshape reads {delta}")
    coefficients, constant = terms
    order = sorted(summed, key=lambda s: -coefficients.get(s, 0))
    radix = 1
    for symbol in reversed(order):
        if coefficients.get(symbol) != radix:
            raise Unlowerable(f"no reshape reads {delta}: not the C order of {entry}")
        radix *= ranges[symbol]
    first = indices.index(order[0]) if order[0] in indices else -1
    if constant != 0 or first < 0 or indices[first:first + len(order)] != order:
        raise Unlowerable(f"no reshape reads {delta}: not the C order of {entry}")
    extents = list(lowering.arrays.extents(entry.base.label.name))
    dims = extents[:first] + [radix] + extents[first + len(order):]
    shape = ", ".join("-1" if d is None else str(d) for d in dims)
    labels = tuple(indices[:first] + [target] + indices[first + len(order):])
    code = f"{lowering.arrays(entry.base.label.name)}.reshape({shape})"
    return lowering.view(code, tuple(ranges.get(s) for s in labels), labels)


# ------------------------------------------------------- strided outputs
def split_strided(expr: sp.Expr, extents: tuple):
    """A statement that reads an index ``u`` of its result only as ``(u - p)/S``, ``p``
    summed over ``0..S-1`` (a pooling or convolution whose kernel is its stride, read
    backwards), or plainly, computed as an array with ``u = S*m + r`` split in two axes
    ``(m, r)`` that a ``reshape`` joins: ``(u - p)/S`` is an integer only for ``p = r``,
    so the sum over ``p`` goes and the read is at ``m``. Returns ``(expr, axes, ranges)``
    (the new expression, the result's axes in C order, every index's extent) or None."""
    free = FREE[:len(extents)]
    limits = {index: high - low + 1 for s in expr.atoms(sp.Sum) for index, low, high in s.limits}
    axes, ranges, split = [], {}, {}
    for index, extent in zip(free, extents, strict=True):
        stride = _stride_of(expr, index, limits)
        if stride is None or extent is None or extent % stride:
            axes.append(index)
            ranges[index] = extent
            continue
        high = sp.Symbol(f"{index.name}_high", integer=True, nonnegative=True)
        low = sp.Symbol(f"{index.name}_low", integer=True, nonnegative=True)
        split[index] = (stride, high, low)
        axes += [high, low]
        ranges |= {high: extent // stride, low: stride}
    if not split:
        return None
    expr = expr.xreplace({u: stride * high + low for u, (stride, high, low) in split.items()})
    quotients = {}  # m + (r - p)/S -> (m, the delta of p and r)
    for stride, high, low in split.values():
        for index in _indices(expr):
            if affine_terms(index) is None:
                continue
            coefficients, constant = affine_terms(index)
            summed = set(coefficients) - {high, low}
            if (coefficients.get(high) == 1 and coefficients.get(low) == sp.Rational(1, stride)
                    and constant == 0 and len(summed) == 1
                    and coefficients[next(iter(summed))] == -sp.Rational(1, stride)):
                quotients[sp.expand(index)] = (high, sp.KroneckerDelta(summed.pop(), low))
    expr = expr.replace(
        lambda e: isinstance(e, Inside) and sp.expand(e.args[0]) in quotients,
        lambda e: quotients[sp.expand(e.args[0])][1] * Inside(
            quotients[sp.expand(e.args[0])][0], e.args[1]))
    expr = expr.replace(
        lambda e: isinstance(e, sp.Indexed),
        lambda e: e.base[tuple(quotients.get(sp.expand(i), (i,))[0] for i in e.indices)])
    ranges |= {index: extent for index, extent in limits.items()}
    bounds = {s: (0, n - 1) for s, n in ranges.items() if n is not None}
    return within_ranges(contract(expr), bounds), tuple(axes), ranges


def _stride_of(expr, index, limits):
    """``S`` when every index expression holding ``index`` is ``index`` or ``(index - p)/S``
    with ``p`` summed over ``0..S-1``, at least one of them the latter; else None."""
    strides = set()
    for expression in _indices(expr):
        if not expression.has(index) or expression == index:
            continue
        terms = affine_terms(expression)
        if terms is None or terms[1] != 0 or len(terms[0]) != 2:
            return None
        coefficient = terms[0].get(index)
        (other,) = set(terms[0]) - {index} or {None}
        if coefficient is None or other is None or terms[0][other] != -coefficient:
            return None
        stride = 1 / coefficient
        if not stride.is_Integer or stride < 2 or limits.get(other) != stride:
            return None
        strides.add(int(stride))
    return strides.pop() if len(strides) == 1 else None


def _indices(expr):
    """Every index expression of ``expr``: of its entries and of its conditions."""
    found = [i for e in expr.atoms(sp.Indexed) for i in e.indices]
    return found + [e.args[0] for e in expr.atoms(Inside)]


# ------------------------------------------- contraction before the windows
def contract_first(expr: sp.Expr, arrays, ranges: dict):
    """A convolution-like sum ``sum_{c,p} A[.., c, p] G[.., c, e(u, p)]`` (``A`` read at
    plain indices, ``G`` at affine ones in the offsets ``p``) as two steps when that
    is cheaper than the windows of ``G``: ``T[.., p, .., j] = sum_c A[.., c, p] G[.., c, j]``
    (one contraction of plain arrays), then ``sum_p T[.., p, .., e(u, p)]`` (a read of
    ``T`` at affine indices: windows, summed over the offsets). This is the
    transposed convolution's col2im order, which does not multiply the zeros of a
    padded ``G``. Returns ``(inner, labels, extents, outer)``: the first step's
    expression and its axes and their extents, and ``outer(base)``, the second step
    reading ``T`` from ``base``; or None."""
    parts = _summand(expr)
    if parts is None:
        return None
    limits, conditions, reads, others = parts
    if len(reads) != 2 or not all(f.is_number for f in others):
        return None
    plain = [r for r in reads if all(isinstance(i, sp.Symbol) for i in r.indices)]
    if len(plain) != 1 or len(set(plain[0].indices)) != len(plain[0].indices):
        return None
    (kernel,), (read,) = plain, [r for r in reads if r is not plain[0]]
    summed = {index: int(high - low + 1) for index, low, high in limits}
    affine = [i for i in read.indices if not isinstance(i, sp.Symbol)]
    offsets = [k for k in summed if k in kernel.indices and any(e.has(k) for e in affine)]
    contracted = [k for k in summed if k not in offsets]
    if not offsets or any(k not in kernel.indices or k not in read.indices for k in contracted):
        return None
    if any(e.has(*contracted) for e in affine):
        return None
    positions = _positions([i for i in read.indices if not isinstance(i, sp.Symbol)])
    spread = read.base[tuple(positions.get(i, i) for i in read.indices)]
    labels = tuple(i for i in kernel.indices if i not in contracted) + tuple(
        i for i in spread.indices if i not in contracted)
    samples = spread.indices[0]
    if samples in ranges and ranges[samples] is None and samples in labels:  # the batch first
        labels = (samples,) + tuple(i for i in labels if i != samples)
    if len(set(labels)) != len(labels):
        return None
    sizes = dict(ranges) | summed
    kernel_extents = dict(zip(kernel.indices, arrays.extents(kernel.base.label.name),
                              strict=True))
    read_extents = dict(zip(spread.indices, arrays.extents(read.base.label.name), strict=True))
    extents = tuple(kernel_extents.get(s, read_extents.get(s)) for s in labels)
    windows = math.prod(sizes[s] for s in (*offsets, *contracted)) * math.prod(
        sizes[s] or 1 for s in read.free_symbols if s in ranges)
    if math.prod(e or 1 for e in extents) >= windows:
        return None
    inner = sp.Mul(*others) * sp.Sum(kernel * spread, *[(k, 0, summed[k] - 1)
                                                       for k in contracted])
    return inner, labels, extents, _reading_back(labels, positions, conditions,
                                                 {k: summed[k] for k in offsets})


def multiply_first(expr: sp.Expr, arrays, ranges: dict):
    """A sum over window offsets ``p`` of a product of reads that all read the same
    affine indices ``e(u, p)`` (max pooling read backwards: ``sum_p chi[.., e, p] g[.., e]``)
    as two steps, as :func:`contract_first`: ``T[.., j, .., p] = chi[.., j, p] g[.., j]``
    (the product at plain indices), then ``sum_p T[.., e(u, p), .., p]`` (each offset's
    terms added where they land, :func:`scattered`). Returns ``(inner, labels, extents,
    outer)`` or None (also when an offset is no axis of a read)."""
    parts = _summand(expr)
    if parts is None:
        return None
    limits, conditions, reads, others = parts
    if len(reads) < 2 or others:
        return None
    affine = [tuple(i for i in r.indices if not isinstance(i, sp.Symbol)) for r in reads]
    if not affine[0] or any(set(a) != set(affine[0]) for a in affine):
        return None
    positions = _positions(affine[0])
    plain = [r.base[tuple(positions.get(i, i) for i in r.indices)] for r in reads]
    widest = max(plain, key=lambda r: len(r.indices))
    labels = tuple(dict.fromkeys(i for r in [widest, *plain] for i in r.indices))
    summed = {index: int(high - low + 1) for index, low, high in limits}
    if not set(summed) <= set(labels) or any(len(set(r.indices)) < len(r.indices)
                                             for r in plain):
        return None
    sizes = {}
    for read in plain:
        sizes |= dict(zip(read.indices, arrays.extents(read.base.label.name), strict=True))
    extents = tuple(sizes[s] for s in labels)

    return sp.Mul(*plain), labels, extents, _reading_back(labels, positions, conditions,
                                                          summed)


def _summand(expr):
    """``(limits, conditions, reads, other factors)`` of a sum of a product, or None."""
    if not isinstance(expr, sp.Sum):
        return None
    body, limits = _merged(expr)
    factors = sp.Mul.make_args(body)
    conditions = [f for f in factors if isinstance(f, Inside)]
    reads = [f for f in factors if isinstance(f, sp.Indexed)]
    others = [f for f in factors if not isinstance(f, (Inside, sp.Indexed))]
    return limits, conditions, reads, others


def _positions(affine) -> dict:
    """A plain position index ``j0, j1, ...`` for each affine index expression."""
    return {e: sp.Symbol(f"j{a}", integer=True, nonnegative=True) for a, e in enumerate(affine)}


def _reading_back(labels, positions, conditions, summed: dict):
    """The second step of a two-step sum: ``outer(base)`` reads the first step's array
    ``base`` (axes ``labels``) back at the affine positions, summed over ``summed``."""
    def outer(base):
        entry = base[labels].xreplace({j: e for e, j in positions.items()})
        return sp.Sum(sp.Mul(*conditions) * entry, *[(k, 0, n - 1) for k, n in summed.items()])
    return outer


def scattered(expr: sp.Expr, arrays, ranges: dict):
    """``sum_p Inside(e) T[.., p, .., e, ..]`` with each ``e = (u + P - D p)/S`` (``u`` a free
    index, ``p`` a summed offset): the second step of :func:`contract_first`, as
    ``_col2im``: each offset's terms added at their input positions (no padded copy of
    ``T``, no multiplication by its zeros). Returns ``(code, axes)`` or None."""
    if not isinstance(expr, sp.Sum):
        return None
    body, limits = _merged(expr)
    factors = sp.Mul.make_args(body)
    conditions = {sp.expand(f.args[0]): f.args[1] for f in factors if isinstance(f, Inside)}
    reads = [f for f in factors if isinstance(f, sp.Indexed)]
    if len(reads) != 1 or len(conditions) + 1 != len(factors):
        return None
    (entry,) = reads
    summed = [index for index, _, _ in limits]
    offsets, positions, geometry, axes = [], [], [], []
    for axis, index in enumerate(entry.indices):
        if isinstance(index, sp.Symbol):
            if index not in summed:
                axes.append(index)
            else:
                offsets.append((index, axis))
            continue
        terms = affine_terms(index)
        if terms is None or len(terms[0]) != 2:  # (without a condition: always inside)
            return None
        (coefficients, constant) = terms
        free = [s for s in coefficients if s not in summed]
        moved = [s for s in coefficients if s in summed]
        if len(free) != 1 or len(moved) != 1 or (1 / coefficients[free[0]]).is_integer is False:
            return None
        stride = 1 / coefficients[free[0]]
        dilation, padding = -coefficients[moved[0]] * stride, constant * stride
        if not (stride.is_Integer and stride > 0 and dilation.is_Integer and dilation > 0
                and padding.is_Integer and ranges.get(free[0])):
            return None
        positions.append((moved[0], axis))
        geometry.append((int(stride), int(dilation), int(padding), ranges[free[0]]))
        axes.append(free[0])
    moved = [s for s, _ in positions]
    if len(set(moved)) != len(moved) or not {s for s, _ in offsets} == set(moved) == set(summed):
        return None
    order = {symbol: axis for symbol, axis in offsets}
    offset_axes = tuple(order[symbol] for symbol, _ in positions)
    position_axes = tuple(axis for _, axis in positions)
    stride, dilation, padding, size = (tuple(g[k] for g in geometry) for k in range(4))
    dilated = "" if set(dilation) == {1} else f", dilation={dilation}"
    code = (f"_col2im({arrays(entry.base.label.name)}, {offset_axes}, {position_axes}, "
            f"size={size}, stride={stride}, padding={padding}{dilated})")
    return code, tuple(axes)
