"""Readings of a derived index expression as the operation a textbook names it by.

Contract: :func:`reading` takes an engine expression (canonical indices, before
the printer's letters), the :class:`~symbp.printing.names.Quantity` it
defines, that tensor's shape and the :class:`~symbp.printing.rows.View`, and
returns a :class:`Reading` (image-level lines, and index expressions to print
in index form) or None when the expression has none of these forms:

- a cross-correlation ``sum_{c',p} W_{c,c',p} x_{s,c',iS+p-P}`` (a
  convolution's forward definition): ``z_{s,c} = sum_{c'} pad_P(x_{s,c'}) *_S
  W_{c,c'}``; the same form with the sum over the positions ``i`` (a kernel
  gradient ``sum_{r,i} x_{r,c',iS+p-P} delta_{r,c,i}``) is the correlation of
  the padded input with the stride-dilated delta;
- a flatten ``f_{s,t} = sum_{c,i} x_{s,c,i} d_{t, c H + i}``: the reshape
  ``vec(x)_{s, c H + i} = x_{s,c,i}``; an expression that reads a flattened
  tensor only at that position (a dense layer's input gradient) is
  ``vec^{-1}`` of its matrix form;
- a read of a delta at ``(i - p + P)/S`` times a kernel at ``p`` (an input
  gradient): the full correlation of the zero-padded, stride-dilated delta
  with the kernel rotated by 180 degrees (a transposed convolution). Its index
  form is the derived expression with ``p -> K - 1 - p`` and the padded delta
  named (``tilde``, defined by the derived read and its range conditions).

- a pooling's input gradient ``sum_p [(i - p)/K in ...] g_{(i-p)/K}`` whose windows
  tile the input (stride = kernel = K, the extent a multiple of it): each position lies
  in one window, ``p = i mod K``, read at ``floor(i/K)``.

Nothing is derived here: a reading recognises the derived expression's shape
and renames or substitutes within it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import sympy as sp

from symbp.engine.indices import FREE, Inside, affine_terms
from symbp.printing.axes import CHANNEL
from symbp.printing.indexing import affine, arranged, flattened_sum
from symbp.printing.matrix import matrix_latex, matrix_text, matrix_tree
from symbp.printing.names import readable, to_text
from symbp.printing.scalar import ScalarLatex, ScalarText


@dataclass(frozen=True)
class Reading:
    lines: tuple  # ((lhs, relation, rhs), ...) LaTeX, image level
    texts: tuple  # their plain text
    forms: tuple = ()  # ((quantity, expr, shape, view, note), ...) printed in index form
    replaces: bool = False  # the reading is the index form (a reshape's, without its delta)


def reading(target, expr: sp.Expr, shape: tuple, view) -> Reading | None:
    for read in (_transposed, _correlation, _reshape, _unflattened, _tiled):
        found = read(target, expr, shape, view)
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------ pieces
def _name(entry) -> str:
    return entry.base.label.name


def _spatial_axes(entry, view) -> list:
    kinds = view.axes.get(_name(entry), ())
    return [a for a, kind in enumerate(kinds) if kind.startswith(("space", "kernel"))] \
        if len(kinds) == len(entry.indices) else []


def _product(expr):
    """``(ranges, limits, entries, conditions)`` of a sum of a product of two entries and
    range conditions, or None."""
    if not isinstance(expr, sp.Sum):
        return None
    limits, factors = flattened_sum(expr)
    entries = [f for f in factors if isinstance(f, sp.Indexed)]
    conditions = [f for f in factors if isinstance(f, Inside)]
    if len(entries) != 2 or len(entries) + len(conditions) != len(factors):
        return None
    return {i: (low, high) for i, low, high in limits}, limits, entries, conditions


def _named(expr, target, shape, view):
    own = view.axes.get(target.code, ())
    return readable(arranged(expr, view.axes), shape, view.axes, own)


def _find(named, base):
    return next(e for e in named.atoms(sp.Indexed) if e.base == base)


def _letters(printer, entry, axes: list) -> str:
    return ",".join(printer._print(i) for a, i in enumerate(entry.indices) if a not in axes)


def _subscript(values: list) -> str:
    distinct = sorted(set(values))
    return str(distinct[0]) if len(distinct) == 1 else "(" + ",".join(map(str, values)) + ")"


def _lead(target, letters: list, view) -> str:
    kinds = view.axes.get(target.code, ())
    return ",".join(letter for letter, kind in zip(letters, kinds, strict=False)
                    if not kind.startswith(("space", "kernel")))


# ------------------------------------------------------------------ correlation
def _correlation(target, expr, shape, view):
    terms = sp.Add.make_args(expr)
    sums = [t for t in terms if isinstance(t, sp.Sum)]
    if len(sums) != 1:
        return None
    parts = _product(sums[0])
    if parts is None:
        return None
    ranges, _, entries, conditions = parts
    signals = [e for e in entries if not all(isinstance(i, sp.Symbol) for i in e.indices)]
    if len(signals) != 1:
        return None
    (signal,) = signals
    kernel = next(e for e in entries if e is not signal)
    axes = _spatial_axes(signal, view)
    if not axes or {c.args[0] for c in conditions} - {signal.indices[a] for a in axes}:
        return None
    strides, pads, modes = [], [], set()
    for a in axes:
        geometry = _strided(signal.indices[a], kernel, ranges)
        if geometry is None:
            return None
        stride, pad, mode = geometry
        strides.append(stride)
        pads.append(pad)
        modes.add(mode)
    modes = (modes - {None}) or {"stride"}
    if len(modes) != 1 or any(i in ranges for i in signal.indices if i not in
                              {signal.indices[a] for a in axes} and not kernel.has(i)):
        return None
    if modes == {"dilate"} and not _covers(signal, axes, shape, strides, pads, view):
        return None
    return _correlation_reading(target, expr, shape, view, signal, kernel, strides, pads,
                                modes.pop())


def _covers(signal, axes, shape, strides, pads, view) -> bool:
    """A kernel gradient reads as ``pad_P(x) \\star dil_S(delta)`` only where that valid
    correlation has the kernel's extent: where the windows reach the padded input's last
    entry, ``(n + 2P - K)`` a multiple of ``S`` on every axis (else the correlation has more
    entries than the kernel; the index form stays)."""
    extents = view.shapes[_name(signal)]
    kernels = shape[-len(axes):]
    return all((int(extents[a]) + 2 * pad - int(k)) % stride == 0 for a, pad, k, stride in zip(
        axes, pads, kernels, strides, strict=True))


def _strided(index, kernel, ranges):
    """``(stride, padding, mode)`` of a read at ``u S + v - P``: ``stride`` when the kernel
    reads the summed ``v`` (a forward convolution), ``dilate`` when it reads the summed
    ``u`` (a kernel gradient: the delta dilated by the stride)."""
    terms = affine_terms(index)
    if terms is None:
        return None
    coefficients, constant = terms
    used = {s: c for s, c in coefficients.items() if c != 0}
    if len(used) != 2 or not all(c.is_Integer and c > 0 for c in used.values()):
        return None
    (u, cu), (v, cv) = sorted(used.items(), key=lambda item: (-item[1], str(item[0])))
    if cv != 1 or not (-constant).is_Integer or -constant < 0:
        return None
    kernel_reads = set(kernel.indices)
    for summed, other, mode in ((v, u, "stride"), (u, v, "dilate")):
        if summed in ranges and summed in kernel_reads and other not in ranges \
                and other not in kernel_reads:  # one kernel for every position
            return int(cu), int(-constant), mode if cu != 1 else None  # stride 1: either
    return None


def _correlation_reading(target, expr, shape, view, signal, kernel, strides, pads, mode):
    named, letters = _named(expr, target, shape, view)
    quantities, latex, text = view.quantities, ScalarLatex(view.names(), view.quantities), \
        ScalarText(view.names(False), view.quantities)
    summed = next(t for t in sp.Add.make_args(named) if isinstance(t, sp.Sum))
    rest = sp.Add(*[t for t in sp.Add.make_args(named) if t is not summed])
    sig, ker = _find(summed, signal.base), _find(summed, kernel.base)
    sig_axes, ker_axes = _spatial_axes(signal, view), _spatial_axes(kernel, view)
    over = [i for a, i in enumerate(sig.indices) if a not in sig_axes
            and any(i == limit[0] for limit in summed.limits)]
    sig_q, ker_q = quantities[signal.base.label], quantities[kernel.base.label]
    padded = any(pads)
    pad = f"_{{{_subscript(pads)}}}"
    signal_latex = sig_q.entry(_letters(latex, sig, sig_axes))
    signal_latex = rf"\operatorname{{pad}}{pad}\left({signal_latex}\right)" if padded \
        else signal_latex
    kernel_latex = ker_q.entry(_letters(latex, ker, ker_axes))
    star = r"\star"
    dilated = any(s != 1 for s in strides)
    if dilated and mode == "stride":
        star = rf"\star_{{{_subscript(strides)}}}"
    elif dilated:
        kernel_latex = rf"\operatorname{{dil}}_{{{_subscript(strides)}}}\left({kernel_latex}\right)"
    sums = " ".join(rf"\sum_{{{latex._print(i)}}}" for i in over)
    rhs = f"{sums} {signal_latex} {star} {kernel_latex}".strip()
    if rest != 0:
        rhs += f" + {latex._print(rest)}"
    lhs = target.entry(_lead(target, letters, view))
    signal_text = sig_q.text_entry(_letters(text, sig, sig_axes))
    signal_text = f"pad_{_subscript(pads)}({signal_text})" if padded else signal_text
    kernel_text = ker_q.text_entry(_letters(text, ker, ker_axes))
    star_text = "⋆"
    if dilated and mode == "stride":
        star_text = f"⋆_{_subscript(strides)}"
    elif dilated:
        kernel_text = f"dil_{_subscript(strides)}({kernel_text})"
    text_rhs = " ".join([*[f"sum_{text._print(i)}" for i in over], signal_text, star_text,
                         kernel_text]) + (f" + {text._print(rest)}" if rest != 0 else "")
    text_lhs = target.text_entry(_lead(target, letters, view))
    return Reading(((lhs, "=", rhs),), (f"{text_lhs} = {text_rhs}",))


# ------------------------------------------------------------- transposed conv
def _transposed(target, expr, shape, view):
    parts = _product(expr)
    if parts is None:
        return None
    ranges, limits, entries, conditions = parts
    kernel = next((e for e in entries if view.axes.get(_name(e), ())[:2] == (CHANNEL, CHANNEL)
                   and len(view.axes[_name(e)]) == len(e.indices)), None)
    if kernel is None:
        return None
    delta = next(e for e in entries if e is not kernel)
    summed, _, *offsets = kernel.indices
    lead = delta.indices[:len(delta.indices) - len(offsets) - 1]
    if len(limits) != len(offsets) + 1 or summed not in ranges or \
            delta.indices[len(lead)] != summed or any(
            p not in ranges or ranges[p][0] != 0 for p in offsets):
        return None
    reads = delta.indices[len(lead) + 1:]
    geometry = [_flipped(e, p, ranges) for e, p in zip(reads, offsets, strict=True)]
    extents = view.shapes.get(_name(delta), ())[-len(offsets):]
    if any(g is None for g in geometry) or any(
            c.args[0] not in reads or c.args[1] != extents[reads.index(c.args[0])]
            for c in conditions):
        return None
    return _transposed_reading(target, expr, shape, view, kernel, delta, lead, geometry,
                               limits)


def _flipped(index, offset, ranges):
    """``(position, stride, padding, kernel)`` of a read at ``(u - p + P)/S``, or None."""
    terms = affine_terms(index)
    if terms is None:
        return None
    coefficients, constant = terms
    used = {s: c for s, c in coefficients.items() if c != 0}
    positions = [s for s in used if s != offset]
    if offset not in used or len(positions) != 1 or positions[0] in ranges:
        return None
    position = positions[0]
    stride = 1 / used[position]
    padding = constant * stride
    if not (stride.is_Integer and stride > 0 and used[offset] == -used[position]
            and padding.is_Integer and padding >= 0 and ranges[offset][1].is_Integer):
        return None
    return position, int(stride), int(padding), int(ranges[offset][1]) + 1


def _tilde(latex: str) -> str:
    return re.sub(r"^(\\[A-Za-z]+|[A-Za-z])", lambda m: rf"\widetilde{{{m.group(1)}}}", latex)


def _transposed_reading(target, expr, shape, view, kernel, delta, lead, geometry, limits):
    delta_q = view.quantities[delta.base.label]
    if delta_q.over:  # the delta of a layer is named: its padded copy is its tilde
        return None
    base = sp.IndexedBase(f"tilde_{_name(delta)}", real=True)
    latex_name = _tilde(delta_q.entry_base)
    tilde_q = replace(delta_q, code=base.label.name, latex=_tilde(delta_q.latex),
                      text=to_text(_tilde(delta_q.latex)), entry_base=latex_name)
    summed, fixed, *offsets = kernel.indices
    rotated = sp.Sum(base[(*lead, summed, *[u + p for p, (u, *_) in zip(offsets, geometry,
                                                                       strict=True)])]
                     * kernel.base[(summed, fixed, *[k - 1 - p for p, (*_, k) in zip(
                         offsets, geometry, strict=True)])], *limits)
    rank = len(delta.indices)
    spatial = FREE[rank - len(offsets):rank]
    before = [k - 1 - pad for _, _, pad, k in geometry]
    reads = [(v - left) / stride for v, left, (_, stride, _, _) in zip(
        spatial, before, geometry, strict=True)]
    extents = view.shapes[_name(delta)][-len(offsets):]
    definition = sp.Mul(*[Inside(r, n) for r, n in zip(reads, extents, strict=True)]) * \
        delta.base[(*FREE[:rank - len(offsets)], *reads)]
    inputs = view.shapes[target.code][-len(offsets):]
    after = [n + pad - (m - 1) * stride - 1 for n, m, (_, stride, pad, _) in zip(
        inputs, extents, geometry, strict=True)]
    tilde_shape = (*view.shapes[_name(delta)][:-len(offsets)],
                   *[n + k - 1 for n, (*_, k) in zip(inputs, geometry, strict=True)])
    tilde_view = view.with_quantity(base, tilde_q, view.axes[_name(delta)], tilde_shape)
    strides = [stride for _, stride, _, _ in geometry]
    note = _padding_note(strides, before, after)
    image = _rotated_image(target, rotated, shape, tilde_view, base, kernel)
    return Reading((image[0],), (image[1],),
                   ((target, rotated, shape, tilde_view, ""),
                    (tilde_q, definition, tilde_shape, tilde_view, note)))


def _padding_note(strides, before, after) -> tuple:
    """LaTeX and text of how the padded, dilated delta is made."""
    parts = []
    if any(s != 1 for s in strides):
        parts.append(f"dilated by {_subscript(strides)} (stride - 1 zeros between entries)")
    if before == after:
        parts.append(f"zero-padded by {_subscript(before)}")
    else:
        parts.append(f"zero-padded by {_subscript(before)} before and {_subscript(after)} "
                     "after")
    text = ", ".join(parts)
    return rf" \quad \text{{({text})}}", f"  ({text})"


def _rotated_image(target, rotated, shape, view, base, kernel):
    named, letters = _named(rotated, target, shape, view)
    latex, text = ScalarLatex(view.names(), view.quantities), \
        ScalarText(view.names(False), view.quantities)
    tilde, ker = _find(named, base), _find(named, kernel.base)
    tilde_axes, ker_axes = _spatial_axes(tilde, view), _spatial_axes(ker, view)
    channel = latex._print(ker.indices[0])
    tilde_q, ker_q = view.quantities[base.label], view.quantities[kernel.base.label]
    lhs = target.entry(_lead(target, letters, view))
    rhs = (rf"\sum_{{{channel}}} {tilde_q.entry(_letters(latex, tilde, tilde_axes))} \star "
           rf"\operatorname{{rot}}_{{180^{{\circ}}}}\left("
           rf"{ker_q.entry(_letters(latex, ker, ker_axes))}\right) \quad \text{{(full "
           r"correlation, a transposed convolution)}")
    text_line = (f"{target.text_entry(_lead(target, letters, view))} = sum_{channel} "
                 f"{tilde_q.text_entry(_letters(text, tilde, tilde_axes))} ⋆ "
                 f"rot180({ker_q.text_entry(_letters(text, ker, ker_axes))})  "
                 "(full correlation, a transposed convolution)")
    return (lhs, "=", rhs), text_line


# ---------------------------------------------------------------- reshapes
def _reshape(target, expr, shape, view):
    """``vec(x)_{s, cH + i} = x_{s,c,i}`` from ``sum_{c,i} d_{t, cH + i} x_{s,c,i}``."""
    if not isinstance(expr, sp.Sum):
        return None
    limits, factors = flattened_sum(expr)
    deltas = [f for f in factors if isinstance(f, sp.KroneckerDelta)]
    entries = [f for f in factors if isinstance(f, sp.Indexed)]
    if len(deltas) != 1 or len(entries) != 1 or len(factors) != 2:
        return None
    (delta,), (entry,) = deltas, entries
    bound = [limit[0] for limit in limits]
    position = next((arg for arg in delta.args if set(bound) <= arg.free_symbols), None)
    flat = next((arg for arg in delta.args if arg is not position), None)
    lead = entry.indices[:len(entry.indices) - len(bound)]
    if position is None or not isinstance(flat, sp.Symbol) or \
            tuple(entry.indices[len(lead):]) != tuple(bound):
        return None
    rank = len(entry.indices)
    renamed = dict(zip(bound, FREE[len(lead):rank], strict=True))
    own = view.axes.get(_name(entry), ())
    named, letters = readable(sp.Tuple(entry.xreplace(renamed), position.xreplace(renamed)),
                              view.shapes.get(_name(entry), (None,) * rank), view.axes, own)
    read, at = named.args
    latex, text = ScalarLatex(view.names(), view.quantities), \
        ScalarText(view.names(False), view.quantities)
    flat_letters = [*letters[:len(lead)]]
    lhs = target.entry(",".join([*flat_letters, affine(latex, at)]))
    text_lhs = target.text_entry(",".join([*flat_letters, affine(text, at)]))
    return Reading(((lhs, "=", latex._print(read) + r" \quad \text{(a reshape, C order)}"),),
                   (f"{text_lhs} = {text._print(read)}  (a reshape, C order)",), replaces=True)


def _unflattened(target, expr, shape, view):
    """``vec^{-1}`` of the matrix form of an expression that reads a flattened position."""
    kinds = view.axes.get(target.code, ())
    spatial = [FREE[a] for a, kind in enumerate(kinds) if kind.startswith(("space", "channel"))]
    if len(kinds) != len(shape) or not spatial:
        return None
    positions = {i for e in expr.atoms(sp.Indexed) for i in e.indices
                 if not isinstance(i, sp.Symbol) and i.free_symbols & set(spatial)}
    if len(positions) != 1:
        return None
    (position,) = positions
    if not set(spatial) <= position.free_symbols:
        return None
    rank = len(kinds) - len(spatial) + 1
    flat = FREE[rank - 1]
    matrix = expr.xreplace({position: flat})
    if matrix.free_symbols & set(spatial) - {flat}:
        return None
    node = matrix_tree(matrix, rank, view.quantities)
    if node is None:
        return None
    lhs = target.latex
    shown = matrix_latex(node, view.scalars)
    return Reading(((lhs, "=", rf"\operatorname{{vec}}^{{-1}}\left({shown}\right)"),),
                   (f"{target.text} = vec^-1({matrix_text(node, view.scalars)})",))


# ------------------------------------------------------------- tiled windows
def _tiled(target, expr, shape, view):
    """The sum over window offsets with exactly one term per position, where windows tile."""
    coefficient, summed = expr.as_coeff_Mul()
    if not isinstance(summed, sp.Sum):
        return None
    limits, factors = flattened_sum(summed)
    ranges = {i: (low, high) for i, low, high in limits}
    conditions = [f for f in factors if isinstance(f, Inside)]
    extents = view.shapes.get(target.code, ())
    windows, offsets, counts = {}, {}, {}
    for index in {i for f in factors for e in ([f] if isinstance(f, Inside) else
                                               f.atoms(sp.Indexed))
                  for i in (e.args[:1] if isinstance(e, Inside) else e.indices)
                  if i.free_symbols & set(ranges) and not isinstance(i, sp.Symbol)}:
        found = _window_read(index, ranges, extents)
        if found is None:
            return None
        position, offset, size = found
        windows[index] = sp.floor(position / size)
        offsets[offset] = sp.Mod(position, size)
        counts[index] = extents[FREE.index(position)] // size  # the windows along the axis
    if set(offsets) != set(ranges) or any(c.args[0] not in windows or c.args[1] !=
                                          counts[c.args[0]] for c in conditions):
        return None
    body = sp.Mul(*[f for f in factors if not isinstance(f, Inside)])
    tiled = coefficient * body.xreplace(windows).xreplace(offsets)
    note = (r" \quad \text{(the windows tile the input: one window per position)}",
            "  (the windows tile the input: one window per position)")
    return Reading((), (), ((target, tiled, shape, view, note),))


def _window_read(index, ranges, extents):
    """``(position, offset, K)`` of a read at ``(u - p)/K`` with ``p`` in ``0..K-1`` and the
    extent of ``u`` a multiple of ``K``, or None."""
    terms = affine_terms(index)
    if terms is None or terms[1] != 0:
        return None
    used = {s: c for s, c in terms[0].items() if c != 0}
    offsets = [s for s in used if s in ranges]
    positions = [s for s in used if s not in ranges and s in FREE]
    if len(offsets) != 1 or len(positions) != 1 or len(used) != 2:
        return None
    (offset,), (position,) = offsets, positions
    size = 1 / used[position]
    axis = FREE.index(position)
    if not (size.is_Integer and size > 1 and used[offset] == -used[position]
            and ranges[offset] == (0, size - 1) and axis < len(extents)
            and sp.sympify(extents[axis]).is_Integer and extents[axis] % size == 0):
        return None
    return position, offset, size
