"""Rewrites of a tensor claim for the usual mistakes about convolution, pooling and flatten.

Contract: :func:`likely_conv_mistakes` returns up to :data:`MAX_FOUND` descriptions of the
mistakes whose rewritten claim holds (``check.holds(variant)``, a
:class:`~symbp.verify.tensors.TensorCheck`): a mistake is named only when undoing it makes the
claim agree with the engine's gradients, never from the claim's form alone. :func:`variants`
yields the ``(description, variant claim)`` pairs, most telling first, one family at a time:

- the kernel's flip: ``rot180`` added to (or taken from) a correlation's kernel, a kernel read
  ``W_{..,e}`` flipped to ``W_{..,K-1-e}``, the kernel offsets negated in the other reads
  (``\\delta_{i+p}`` for ``\\delta_{i-p}`` and back): an unflipped kernel, or one flipped once
  too often;
- the border: ``\\delta`` (bare, padded or dilated) replaced by ``\\widetilde{\\delta}`` (dilated
  by S, zero-padded by K - 1 - P: a full correlation where the claim has a valid one), the
  input padded by P in a kernel gradient's correlation, the padding's offset restored in the
  reads (the input gradient's position ``i -> i + P``, the kernel gradient's offset
  ``p -> p - P``): a missing (or wrong) border term;
- the stride: the input read at ``S i + p`` for ``i + p``, ``\\delta`` read at ``e/S`` for
  ``e``, ``\\operatorname{dil}_S(\\delta)`` in a kernel gradient's correlation: a missing
  stride; the delta's positions shifted by one in the other reads: 1-based and 0-based
  indices mixed (Goodfellow's ``(i-1) s + m`` under 0-based sums);
- pooling: a max pooling's output gradient times its window argmax ``\\chi`` (a constant
  factor of the claim dropped with it), an average pooling's times ``1/K^2``; the tiling
  reading (``\\lfloor i/S \\rfloor``) of overlapping windows summed over the windows instead;
- flatten: ``\\operatorname{vec}^{-1}`` around a multi-axis input's gradient;
- the kernel's channel axes swapped (``W_{c,c'}`` read where ``W_{c',c}`` belongs);
- an extra ``1/B`` dropped.

The geometry (K, S, P) of a concrete layer is its numbers; of the general layer the numbers
when every layer the claim applies to has the same, else the letters ``K S P``. Index
expressions are rewritten by :mod:`symbp.verify.index_rewrites`; the values of the variants
are the decision's (:mod:`symbp.verify.tensors`). A family that cannot rewrite a
form it meets yields nothing more; the others are still tried.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from fractions import Fraction
from typing import TYPE_CHECKING

from symbp.claims import nodes as C
from symbp.claims.latex import to_latex
from symbp.ops.geometry import window_geometry
from symbp.verify import index_rewrites as X

if TYPE_CHECKING:
    from symbp.verify.tensors import TensorCheck


MAX_FOUND = 3  # descriptions returned
MAX_VARIANTS = 60  # variants tried per claim (a claim of the conv corpus yields at most 6)

UNFLIPPED = "an unflipped kernel"
OVERFLIPPED = "a kernel flipped once too often"
BORDER = "a missing border term"
WRONG_BORDER = "the wrong border term"
STRIDE = "a missing stride"
ARGMAX = "the max-pool gradient sent to every entry of the window"
AVERAGE = "average pooling's missing 1/K^2"
UNRESHAPED = "the flatten gradient unreshaped"
OVERLAP = "the windows overlap"
INDEX_BASE = "1-based and 0-based indices mixed"
CHANNELS = "the kernel's channel axes swapped"
EXTRA_B = "an extra 1/B"

_CONV = ("conv1d", "conv2d")
_INPUTS = ("a", "x")  # a layer's input: a^{(l-1)}, x = a^{(0)}


def likely_conv_mistakes(check: TensorCheck, claim: C.Claim) -> list[str]:
    """Up to :data:`MAX_FOUND` descriptions of mistakes whose correction makes ``claim``
    hold."""
    found = []
    for description, variant in itertools.islice(variants(claim, check), MAX_VARIANTS):
        if description not in found and check.holds(variant):
            found.append(description)
            if len(found) >= MAX_FOUND:
                break
    return found


def variants(claim: C.Claim, check: TensorCheck):
    """``(description, variant claim)`` for the usual mistakes, most telling first. A family
    that cannot read the claim's form (an index it cannot rewrite) yields nothing more."""
    layers = _Layers(check, claim)
    for family in FAMILIES:
        try:
            for description, rhs in family(claim, layers):
                if rhs != claim.rhs:  # a rewrite that changed nothing says nothing
                    yield description, C.Claim((claim.lhs, rhs), claim.text)
        except (TypeError, ValueError, KeyError, IndexError):
            continue


# ------------------------------------------------------------------ the kernel's flip
def rotations(claim: C.Claim, layers: _Layers):
    """``rot180`` taken from what it rotates, or added to a correlation's kernel."""
    rhs = claim.rhs
    for path, node in C.walk(rhs):
        if isinstance(node, C.Apply) and node.func.name == "rot180":
            yield (f"{OVERFLIPPED}: {_text(claim, node)} rotates by 180 degrees what the "
                   "forward pass does not: symbp's convolution is a cross-correlation (as "
                   "torch's), so the rotation of a true convolution's formulas (conv2 in "
                   "MATLAB, Bouvrie's k) is taken back by W = rot180(k); drop it",
                   C.replace_at(rhs, path, node.arg))
        elif isinstance(node, C.Correlate) and not _is_rotated(node.right) and \
                _reads(node.right, "W"):
            yield (f"{UNFLIPPED}: {_text(claim, node.right)} is correlated as it is; the "
                   "input gradient of a correlation correlates the padded delta with the "
                   "kernel rotated by 180 degrees, \\operatorname{rot}_{180^{\\circ}}"
                   f"({_text(claim, node.right)})",
                   C.replace_at(rhs, path + ("right",), C.Apply(C.Func("rot180"), node.right)))


def flipped_kernel_reads(claim: C.Claim, layers: _Layers):
    """``W_{c',c,e_1,e_2}`` read at ``K - 1 - e``."""
    rhs = claim.rhs
    for path, node in C.walk(rhs):
        if not _is_read(node, "W") or not layers.is_conv(node.arg.layer):
            continue
        spatial = layers.spatial(node.arg.layer)
        kernel = layers.geometry(node.arg.layer, "K")
        if kernel is None or len(node.indices) != 2 + spatial:
            continue
        items = list(node.indices)
        flipped_before = False
        for axis in range(len(items) - spatial, len(items)):
            flipped_before |= X.letter_sign(items[axis]) < 0
            last = C.Sub(kernel, C.Num(Fraction(1)))
            items[axis] = X.as_item(C.Sub(last, X.as_node(items[axis])))
        what = OVERFLIPPED if flipped_before else UNFLIPPED
        yield (f"{what}: the kernel {_text(claim, node)} should be read "
               f"{'unflipped' if flipped_before else 'flipped'}, at K - 1 minus its offsets",
               C.replace_at(rhs, path, replace(node, indices=tuple(items))))


def negated_offsets(claim: C.Claim, layers: _Layers):
    """The kernel offsets ``p, q`` negated in every read but the kernel's own."""
    offsets = layers.offsets()
    if not offsets:
        return
    sign = X.sign_in_reads(claim.rhs, offsets, skip=lambda read: _is_read(read, "W"))
    if sign == 0:
        return
    mapping = {letter: C.Neg(C.Letter(letter)) for letter in offsets}
    variant = X.map_reads(claim.rhs, mapping, skip=lambda read: _is_read(read, "W"))
    plus = ", ".join(f"+ {letter}" for letter in offsets)
    minus = ", ".join(f"- {letter}" for letter in offsets)
    read = _text(claim, _offset_read(claim.rhs, offsets))
    if sign > 0:
        yield (f"{UNFLIPPED}: {read} is read at {plus}, as the forward pass reads its "
               f"input (a correlation with the kernel unrotated); the backward pass reads it "
               f"at {minus}, the kernel flipped: each input position receives from the "
               "outputs it fed", variant)
    else:
        yield (f"{OVERFLIPPED}: {read} is read at {minus}, a true convolution's reading; "
               f"symbp's forward pass correlates, reading its input at {plus}, and so does "
               "the kernel gradient", variant)


def _offset_read(rhs, offsets: list[str]):
    """The first read (not the kernel's) with a kernel offset in its indices."""
    for _, node in C.walk(rhs):
        if isinstance(node, C.Indexed) and not _is_read(node, "W") and any(
                isinstance(n, C.Letter) and n.name in offsets
                for item in node.indices for n in X.parts(X.as_node(item))):
            return node
    return rhs


# ------------------------------------------------------------------ the border
def tilde_deltas(claim: C.Claim, layers: _Layers):
    """``\\delta`` (bare, or inside pad and dil) replaced by ``\\widetilde{\\delta}``."""
    rhs = claim.rhs
    if not layers.is_input_gradient():
        return  # a kernel or bias gradient reads delta itself
    wrapped = set()
    for path, node in C.walk(rhs):
        if path in wrapped:
            continue
        inner, wrappers = _unwrap(node)
        wrapped.add(path + ("arg",) * len(wrappers))
        if not (isinstance(inner, C.Indexed) and isinstance(inner.arg, C.Leaf)
                and inner.arg.name == "delta" and layers.is_conv(inner.arg.layer)):
            continue
        ref = inner.arg.layer
        if _is_tilde_already(wrappers, layers, ref):
            continue
        tilde = replace(inner, arg=C.Leaf("deltatilde", ref, inner.arg.batch))
        yield (_border_text(claim, node, wrappers, layers, ref), C.replace_at(rhs, path, tilde))


def _is_tilde_already(wrappers, layers: _Layers, ref) -> bool:
    """Is ``pad(dil(delta))`` as written the same as ``\\widetilde{\\delta}`` (padded by
    K - 1 - P, dilated by S)?"""
    pads = [w for w in wrappers if w.func.name == "pad"]
    border, stride = layers.number(ref, "K", -1, "P"), layers.number(ref, "S")
    if len(pads) != 1 or border is None or pads[0].func.params != (C.Num(Fraction(border)),):
        return False
    return stride == 1 or any(w.func.name == "dil" for w in wrappers)


def _border_text(claim, node, wrappers, layers: _Layers, ref) -> str:
    border = layers.number(ref, "K", -1, "P")
    stride = layers.number(ref, "S")
    amount = f" = {border}" if border is not None else ""
    pads = [w for w in wrappers if w.func.name == "pad"]
    text = _text(claim, node)
    if stride not in (None, 1) and not any(w.func.name == "dil" for w in wrappers) and pads:
        return (f"{STRIDE}: {text} is zero-padded but not dilated: with stride S = {stride} "
                "the output gradient has S - 1 zeros between neighbours before it is "
                "padded by K - 1 - P (\\widetilde{\\delta})")
    if pads:
        return (f"{WRONG_BORDER}: {text} should be zero-padded by K - 1 - P{amount} "
                "(\\widetilde{\\delta}): the forward pass's padding P takes P off the "
                "full correlation's K - 1")
    return (f"{BORDER}: {text} is correlated as it is (a valid correlation); the input "
            f"gradient is a full correlation, with the delta zero-padded by K - 1 - "
            f"P{amount} (\\widetilde{{\\delta}}) so that the border inputs receive from the "
            "outputs they fed")


def padded_inputs(claim: C.Claim, layers: _Layers):
    """``a \\star \\delta`` (a kernel gradient) with the input zero-padded by P."""
    rhs = claim.rhs
    ref = layers.target_kernel()
    if ref is None:
        return
    padding = layers.geometry(ref, "P")
    if padding is None or _is_zero(padding):
        return
    for path, node in C.walk(rhs):
        if isinstance(node, C.Correlate) and _is_input(node.left) and _unwrap(node.left)[1] == []:
            padded = C.Apply(C.Func("pad", params=(padding,)), node.left)
            yield (f"{BORDER}: the forward pass correlates the input zero-padded by P = "
                   f"{_index_text(padding)}, so the kernel gradient correlates "
                   f"\\operatorname{{pad}}_{{{_index_text(padding)}}}"
                   f"({_text(claim, node.left)}), not {_text(claim, node.left)}, with the delta",
                   C.replace_at(rhs, path + ("left",), padded))


def padding_offsets(claim: C.Claim, layers: _Layers):
    """The padding's offset restored: an input gradient's position ``i -> i + P``, a kernel
    gradient's offset ``p -> p - P``."""
    kernel_ref = layers.target_kernel()
    ref = kernel_ref or layers.consumer()
    if ref is None:
        return
    padding = layers.geometry(ref, "P")
    letters = layers.lhs_spatial()
    if padding is None or _is_zero(padding) or not letters:
        return
    step = C.Neg(padding) if kernel_ref is not None else padding
    mapping = {letter: C.Add(C.Letter(letter), step) for letter in letters}
    if kernel_ref is not None:  # the input's reads move, not the output gradient's
        variant = X.map_reads(claim.rhs, mapping, skip=lambda read: not _is_input(read))
    else:  # the output gradient's reads move, not those of the layer's own z or a
        variant = X.map_reads(claim.rhs, mapping, skip=lambda read: not (
            _is_delta(read) and read.arg.layer == ref))
    pad = _index_text(padding)
    if kernel_ref is not None:
        where = ", ".join(f"kernel offset {p} reads the input at position + {p} - {pad}"
                          for p in letters)
    else:
        where = ", ".join(f"input position {i} feeds the output at {i} - offset + {pad}"
                          for i in letters)
    yield f"{BORDER}: the padding's offset is left out: with padding P = {pad}, {where}", variant


# ------------------------------------------------------------------ the stride
def strides(claim: C.Claim, layers: _Layers):
    ref = layers.target_kernel() or layers.consumer()
    if ref is None:
        return
    stride = layers.geometry(ref, "S")
    if stride is None or stride == C.Num(Fraction(1)):
        return
    rhs, text = claim.rhs, _index_text(stride)
    positions = _delta_positions(rhs, ref)
    if layers.target_kernel() is not None and positions:
        mapping = {letter: C.MatMul(stride, C.Letter(letter)) for letter in positions}
        gap = " " if isinstance(stride, C.Letter) else ""
        starts = ", ".join(f"{text}{gap}{i}" for i in positions)
        yield (f"{STRIDE}: output position {', '.join(positions)} of a stride-{text} "
               f"convolution starts at input position {starts}, so the kernel gradient reads "
               f"the input at {starts} plus the kernel offsets",
               X.map_reads(rhs, mapping, skip=lambda read: not _is_input(read)))
    for path, node in C.walk(rhs):
        if isinstance(node, C.Correlate) and _is_input(node.left) and _is_delta(node.right):
            yield (f"{STRIDE}: with stride S = {text} the kernel gradient correlates the "
                   "input with the delta dilated by S (S - 1 zeros between neighbours), "
                   f"\\operatorname{{dil}}_{{{text}}}({_text(claim, node.right)})",
                   C.replace_at(rhs, path + ("right",),
                                C.Apply(C.Func("dil", params=(stride,)), node.right)))
    if layers.target_kernel() is None:
        divided = _map_delta_reads(rhs, ref, layers.spatial(ref),
                                   lambda item: X.as_item(C.Div(X.as_node(item), stride)))
        if divided != rhs:
            yield (f"{STRIDE}: with stride S = {text} input position i is reached from "
                   f"output (i - offset)/{text} only where that is a whole number (0 between), "
                   f"so the delta's positions are divided by the stride", divided)


def index_base(claim: C.Claim, layers: _Layers):
    """Goodfellow's 1-based ``(i-1) S + p`` written with 0-based sums (or ``i S + p`` with
    1-based ones): the delta's positions shifted by one in the other reads."""
    ref = layers.target_kernel() or layers.consumer()
    if ref is None:
        return
    one_based = any(isinstance(node, C.Sum) and node.lower == 1 for _, node in C.walk(
        claim.rhs))
    positions = _delta_positions(claim.rhs, ref)
    if not positions:
        return
    step = C.Num(Fraction(-1 if one_based else 1))
    mapping = {letter: C.Add(C.Letter(letter), step) for letter in positions}
    variant = X.map_reads(claim.rhs, mapping, skip=lambda read: _is_delta(read))
    base, other = ("1-based", "0-based") if one_based else ("0-based", "1-based")
    yield (f"{INDEX_BASE}: the sums are {base}, the reads of the delta's position "
           f"{', '.join(positions)} elsewhere are {other} (Goodfellow's (i-1) s + m is "
           "1-based: output i starts at input (i-1) s + 1, at 0-based i s)", variant)


# ------------------------------------------------------------------ pooling and flatten
def pooling(claim: C.Claim, layers: _Layers):
    rhs = claim.rhs
    for path, node in C.walk(rhs):
        ref = _pool_read(node, layers)
        if ref is None:
            continue
        kind = layers.type(ref)
        if kind.startswith("max_pool"):
            if _reads(rhs, "chi"):
                continue  # the argmax is there (\chi is 0 or 1: a second one changes nothing)
            chi = _window_argmax(node, ref, layers)
            if chi is None:
                continue
            routed = C.MatMul(chi, node)
            text = (f"{ARGMAX}: a max pooling passes each window's gradient to the window's "
                    f"maximum only (the argmax \\chi^{{({ref.label})}}), the other entries "
                    "get 0")
            yield text, C.replace_at(rhs, path, routed)
            unscaled = _without_constants(C.replace_at(rhs, path, routed))
            if unscaled is not None:
                yield text, unscaled
        elif kind.startswith("avg_pool"):
            size = layers.window_size(ref)
            yield (f"{AVERAGE}: an average pooling divides each window's sum by its "
                   f"{size} entries, so each input receives 1/{size} of its window's gradient",
                   C.replace_at(rhs, path, C.MatMul(C.Div(C.Num(Fraction(1)),
                                                          C.Num(Fraction(size))), node)))


def overlapping_windows(claim: C.Claim, layers: _Layers):
    """The tiling reading (one window per position, ``\\lfloor i/S \\rfloor`` at offset
    ``i \\bmod S``) of a pooling whose windows overlap (K > S), summed instead over every
    window that holds the position."""
    rhs = claim.rhs
    for _, node in C.walk(rhs):
        ref = _pool_read(node, layers)
        kernel, stride = (layers.number(ref, "K"), layers.number(ref, "S")) if ref else (0, 0)
        if ref is None or kernel is None or stride is None or kernel <= stride:
            continue
        spatial = layers.spatial(ref)
        positions = layers.lhs_letters(spatial)
        windows = node.indices[len(node.indices) - spatial:]
        S = C.Num(Fraction(stride))
        if len(positions) != spatial or any(X.as_node(w) != C.Floor(C.Div(C.Letter(i), S))
                                            for i, w in zip(positions, windows, strict=True)):
            continue
        used = {n.name for _, item in C.walk(rhs) if isinstance(item, C.Indexed)
                for index in item.indices for n in X.parts(X.as_node(index))
                if isinstance(n, C.Letter)} | set(positions)
        offsets = [name for name in ("p", "q", "u", "v", "m", "n") if name not in used][:spatial]
        extents = layers.network.shapes[layers.resolved(ref)[0]][1:]
        body = rhs
        for i, o in zip(positions, offsets, strict=True):
            window = C.Div(C.Sub(C.Letter(i), C.Letter(o)), S)
            body = X.replace_items(body, {C.Floor(C.Div(C.Letter(i), S)): window,
                                         C.Mod(C.Letter(i), S): C.Letter(o)})
        for (i, o), extent in reversed(list(zip(zip(positions, offsets, strict=True), extents,
                                                 strict=True))):
            window = C.Div(C.Sub(C.Letter(i), C.Letter(o)), S)
            inside = C.Indicator(C.Member(window, C.Num(Fraction(0)),
                                          C.Num(Fraction(extent - 1))))
            body = C.Sum(o, C.MatMul(inside, body), 0, str(kernel - 1),
                         C.Num(Fraction(kernel - 1)))
        yield (f"{OVERLAP}: with {kernel} x {kernel} windows and stride {stride} an input lies "
               "in several windows, and its gradient sums over every window that holds it "
               f"(the offsets {', '.join(offsets)} with (position - offset)/{stride} a whole "
               f"number); \\lfloor i/{stride} \\rfloor reads one window per position, "
               "right only when the windows tile the input", body)
        return


def flattens(claim: C.Claim, layers: _Layers):
    lhs, rhs = claim.lhs, claim.rhs
    if not isinstance(lhs, C.Grad) or not isinstance(lhs.target, C.Leaf) or \
            isinstance(rhs, C.Apply) and rhs.func.name == "unvec":
        return
    ref = lhs.target.layer
    if lhs.target.name == "a" and ref is not None and layers.multi_axis(ref):
        yield (f"{UNRESHAPED}: {_text(claim, rhs)} is the gradient of the flattened "
               "(vectorised) input; the layer's own gradient is it reshaped back, "
               f"\\operatorname{{vec}}^{{-1}}({_text(claim, rhs)})",
               C.Apply(C.Func("unvec"), rhs))


def batch_factors(claim: C.Claim, layers: _Layers):
    rhs = claim.rhs
    for path, node in C.walk(rhs):
        if isinstance(node, C.MatMul) and _is_one_over_b(node.left):
            kept = node.right
        elif isinstance(node, C.Div) and _is_batch_size(node.den):
            kept = node.num
        else:
            continue
        yield (f"{EXTRA_B}: symbp's \\Delta^{{(l)}} is \\partial L/\\partial Z^{{(l)}} of the "
               "mean loss L = \\frac{1}{B} \\sum_s \\ell_s: its 1/B is already inside it",
               C.replace_at(rhs, path, kept))


def channels(claim: C.Claim, layers: _Layers):
    """The kernel's two channel axes swapped (``W_{c,c'}`` for ``W_{c',c}``)."""
    rhs = claim.rhs
    for path, node in C.walk(rhs):
        if _is_read(node, "W") and layers.is_conv(node.arg.layer) and len(node.indices) >= 2:
            first, second = node.indices[:2]
            swapped = replace(node, indices=(second, first) + tuple(node.indices[2:]))
            yield (f"{CHANNELS}: W^{{(l)}}_{{c,c',p,q}} takes input "
                   "channel c' to output channel c (the output channel first), so "
                   f"{_text(claim, node)} should be read with its first two indices swapped",
                   C.replace_at(rhs, path, swapped))


FAMILIES = (rotations, flipped_kernel_reads, negated_offsets, tilde_deltas, padded_inputs,
            padding_offsets, strides, index_base, pooling, overlapping_windows, flattens,
            channels, batch_factors)


# ------------------------------------------------------------------ the network's layers
class _Layers:
    """The layers a claim is about: their types and geometry, in the claim's terms."""

    def __init__(self, check: TensorCheck, claim: C.Claim):
        self.check, self.claim = check, claim
        self.network = check.network
        try:
            self.bindings = check.layers(claim)
        except (C.ClaimParseError, ValueError):
            self.bindings = [None]

    def resolved(self, ref: C.LayerRef | None) -> list[int]:
        """The layer numbers ``ref`` stands for over the claim's bindings of l."""
        if ref is None:
            return []
        found = []
        for l_value in self.bindings:
            try:
                found.append(ref.resolve(l_value, self.network.depth))
            except ValueError:
                return []
        return [m for m in found if 1 <= m <= self.network.depth]

    def type(self, ref) -> str:
        types = {self.network.layers[m - 1].type for m in self.resolved(ref)}
        return types.pop() if len(types) == 1 else ""

    def is_conv(self, ref) -> bool:
        return self.type(ref) in _CONV

    def spatial(self, ref) -> int:
        numbers = self.resolved(ref)
        return len(self.network.shapes[numbers[0]]) - 1 if numbers else 0

    def multi_axis(self, ref) -> bool:
        numbers = self.resolved(ref)
        return bool(numbers) and all(len(self.network.shapes[m]) > 1 for m in numbers)

    def _values(self, ref, letter: str) -> list:
        """K, S or P of each layer ``ref`` stands for ([] where one differs by axis)."""
        index = "KSP".index(letter)
        values = []
        for m in self.resolved(ref):
            axes = set(window_geometry(self.network, m)[index])
            if len(axes) != 1:
                return []  # a different number per axis: no single letter's value
            values.append(axes.pop())
        return values

    def geometry(self, ref, letter: str):
        """K, S or P of the layer(s) ``ref`` stands for, as an index expression."""
        values = self._values(ref, letter)
        if not values:
            return None
        if len(set(values)) == 1:
            return C.Num(Fraction(values[0]))
        return C.Letter(letter) if ref.offset == 0 and ref.var == "l" else None

    def number(self, ref, *terms):
        """``K - 1 - P`` and the like as a number when the layers agree on it."""
        total, sign = 0, 1
        for term in terms:
            if term == -1:
                total -= 1
                sign = -1
                continue
            values = self._values(ref, term)
            if not values or len(set(values)) != 1:
                return None
            total += sign * values[0]
        return total

    def window_size(self, ref) -> int:
        return math.prod(window_geometry(self.network, self.resolved(ref)[0])[0])

    def target(self):
        lhs = self.claim.lhs
        return lhs.arg if isinstance(lhs, C.Indexed) else lhs

    def is_input_gradient(self) -> bool:
        """Is the claim about the gradient of a layer's input (``\\partial\\ell/\\partial
        a^{(m)}``, ``\\partial\\ell/\\partial x``, or a delta it leads to)?"""
        target = self.target()
        if isinstance(target, C.Leaf):
            return target.name == "delta"
        leaf = target.target if isinstance(target, C.Grad) else None
        return isinstance(leaf, C.Leaf) and leaf.name in _INPUTS

    def target_kernel(self):
        """The layer of a kernel gradient ``\\partial\\ell/\\partial W^{(m)}`` (m a conv)."""
        target = self.target()
        if isinstance(target, C.Grad) and isinstance(target.target, C.Leaf) and \
                target.target.name == "W" and self.is_conv(target.target.layer):
            return target.target.layer
        return None

    def consumer(self):
        """The convolution whose input gradient the claim is: the layer of its kernel read,
        or the layer after the target's."""
        for _, node in C.walk(self.claim.rhs):
            if _is_read(node, "W") and self.is_conv(node.arg.layer):
                return node.arg.layer
            if isinstance(node, C.Leaf) and node.name == "W" and self.is_conv(node.layer):
                return node.layer
        target = self.target()
        leaf = target.target if isinstance(target, C.Grad) else None
        if isinstance(leaf, C.Leaf) and leaf.name in _INPUTS and leaf.layer is not None:
            after = leaf.layer.shifted(1)
            return after if self.is_conv(after) else None
        return None

    def lhs_spatial(self) -> list[str]:
        """The lhs's plain letters at spatial axes (a kernel gradient's offsets p, q; an input
        gradient's positions i, j)."""
        lhs = self.claim.lhs
        if not isinstance(lhs, C.Indexed):
            return []
        ref = self.target_kernel() or self.consumer()
        return self.lhs_letters(self.spatial(ref) if ref is not None else 0)

    def lhs_letters(self, spatial: int) -> list[str]:
        """The lhs's last ``spatial`` items, when they are plain letters."""
        lhs = self.claim.lhs
        if not isinstance(lhs, C.Indexed) or not spatial or len(lhs.indices) <= spatial:
            return []
        items = lhs.indices[len(lhs.indices) - spatial:]
        return [item for item in items if isinstance(item, str) and not item.isdigit()]

    def offsets(self) -> list[str]:
        """The kernel offsets: a kernel gradient's lhs letters, or the letters read at the
        spatial axes of the kernel in the rhs."""
        if self.target_kernel() is not None:
            return self.lhs_spatial()
        found = []
        for _, node in C.walk(self.claim.rhs):
            if _is_read(node, "W") and self.is_conv(node.arg.layer):
                spatial = self.spatial(node.arg.layer)
                if len(node.indices) == 2 + spatial:
                    found += [item for item in node.indices[2:] if isinstance(item, str)
                              and not item.isdigit() and item not in found]
        summed = {node.index for _, node in C.walk(self.claim.rhs) if isinstance(node, C.Sum)}
        return [letter for letter in found if letter in summed]


def _map_delta_reads(rhs, ref, spatial: int, fn):
    """``rhs`` with ``fn`` applied to the spatial items of the reads of ``\\delta^{(ref)}``
    and to the brackets' ``e \\in \\{...\\}`` on those items."""
    items = set()

    def visit(node):
        node = C.map_children(node, visit)
        if _is_delta(node) and isinstance(node, C.Indexed) and node.arg.layer == ref and \
                len(node.indices) == (2 if node.arg.batch else 1) + spatial:
            start = len(node.indices) - spatial
            items.update(X.as_node(item) for item in node.indices[start:])
            return replace(node, indices=node.indices[:start] + tuple(
                fn(item) for item in node.indices[start:]))
        return node

    def brackets(node):
        node = C.map_children(node, brackets)
        if isinstance(node, C.Member) and node.expr in items:
            return replace(node, expr=X.as_node(fn(node.expr)))
        return node

    return brackets(visit(rhs))


def _delta_positions(rhs, ref) -> list[str]:
    """The plain letters at the spatial axes of the reads of ``\\delta^{(ref)}``."""
    found = []
    for _, node in C.walk(rhs):
        if _is_delta(node) and isinstance(node, C.Indexed) and node.arg.layer == ref:
            channel = 2 if node.arg.batch else 1
            found += [item for item in node.indices[channel:]
                      if isinstance(item, str) and not item.isdigit() and item not in found]
    return found


# ------------------------------------------------------------------ reads
def _is_read(node, name: str) -> bool:
    return isinstance(node, C.Indexed) and isinstance(node.arg, C.Leaf) and \
        node.arg.name == name


def _reads(node, name: str) -> bool:
    return any(_is_read(item, name) or isinstance(item, C.Leaf) and item.name == name
               for _, item in C.walk(node))


def _is_rotated(node) -> bool:
    return isinstance(node, C.Apply) and node.func.name == "rot180"


def _is_delta(node) -> bool:
    leaf = node.arg if isinstance(node, C.Indexed) else node
    return isinstance(leaf, C.Leaf) and leaf.name == "delta"


def _is_input(node) -> bool:
    inner, _ = _unwrap(node)
    leaf = inner.arg if isinstance(inner, C.Indexed) else inner
    return isinstance(leaf, C.Leaf) and leaf.name in _INPUTS


def _unwrap(node):
    """``(inner, [pad/dil applications from outside in])``."""
    wrappers = []
    while isinstance(node, C.Apply) and node.func.name in ("pad", "dil"):
        wrappers.append(node)
        node = node.arg
    return node, wrappers


def _pool_read(node, layers: _Layers):
    """The layer of a pooling layer's output gradient read ``\\partial\\ell/\\partial
    a^{(m)}_{...}``, else None."""
    if not isinstance(node, C.Indexed) or not isinstance(node.arg, C.Grad):
        return None
    leaf = node.arg.target
    if not isinstance(leaf, C.Leaf) or leaf.name != "a" or leaf.layer is None:
        return None
    kind = layers.type(leaf.layer)
    return leaf.layer if kind.startswith(("max_pool", "avg_pool")) else None


def _window_argmax(read: C.Indexed, ref, layers: _Layers):
    """``\\chi^{(m)}`` at the read's window and the lhs position's offset in it."""
    spatial = layers.spatial(ref)
    positions = layers.lhs_letters(spatial)
    if len(positions) != spatial or len(read.indices) < spatial + 1:
        return None
    stride = layers.geometry(ref, "S")
    if stride is None:
        return None
    windows = read.indices[len(read.indices) - spatial:]
    offsets = tuple(_offset(position, window, stride)
                    for position, window in zip(positions, windows, strict=True))
    return C.Indexed(C.Leaf("chi", ref), tuple(read.indices) + offsets)


def _offset(position: str, window, stride):
    """The offset of input ``position`` in output ``window``: ``i mod S`` for
    ``\\lfloor i/S \\rfloor``, ``p`` for ``(i - p)/S``, else ``i - S window``."""
    node = X.as_node(window)
    if isinstance(node, C.Floor):
        return C.Mod(C.Letter(position), stride)
    return X.as_item(C.Sub(C.Letter(position), C.MatMul(stride, node)))


def _without_constants(rhs):
    """``rhs`` with its constant factors (``\\frac{1}{4}``) dropped, None if it has none."""
    for path, node in C.walk(rhs):
        if isinstance(node, C.MatMul):
            for keep, drop in ((node.right, node.left), (node.left, node.right)):
                if _is_constant(drop):
                    return C.replace_at(rhs, path, keep)
    return None


def _is_constant(node) -> bool:
    if isinstance(node, C.Num):
        return True
    return isinstance(node, C.Div) and _is_constant(node.num) and _is_constant(node.den)


def _is_batch_size(node) -> bool:
    return isinstance(node, C.Leaf) and node.name == "B"


def _is_one_over_b(node) -> bool:
    return isinstance(node, C.Div) and isinstance(node.num, C.Num) and \
        node.num.value == 1 and _is_batch_size(node.den)


def _is_zero(node) -> bool:
    return isinstance(node, C.Num) and node.value == 0


def _text(claim: C.Claim, node) -> str:
    return claim.source(node) or to_latex(node)


def _index_text(node) -> str:
    if isinstance(node, C.Num):
        return str(node.value)
    if isinstance(node, C.Letter):
        return node.name
    return to_latex(node)
