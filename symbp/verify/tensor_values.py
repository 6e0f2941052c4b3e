"""A tensor claim's side evaluated at one point: arrays over index letters.

Contract: ``Evaluator(scope).run(node)`` is the :class:`Value` of a side of a
claim written with entries of tensors of any rank (CONVENTIONS §1's index
notation as ``symbp derive`` prints convolutions, pooling and flatten), with
whole tensors (the matrix forms of the dense layers) and with the operators of
the printed notation section (``\\star``, ``\\operatorname{pad}``, ``dil``,
``rot``, ``vec`` and ``vec^{-1}``). A :class:`Value` is an array whose leading
axes carry index letters (``names``) and whose other axes are positional (a
whole tensor, or the spatial axes a partial read ``X_{s,c'}`` leaves).

The :class:`Scope` says what the letters and quantities are at the point: the
arrays of the quantities (``scope.tensor(node)``), the range of every index
letter (a sum's index: the sum's own range, in its body), the values of the geometry letters ``K S P H W H' W' L L'`` and of the
widths ``n_l`` at the layer the claim is checked at, and the index base (0, or 1
when the claim's sums start at 1: then every entry is read 1-based).

An index expression (``i + p - 1``, ``(i - p + P)/S``, ``\\lfloor i/2 \\rfloor``,
``i \\bmod 2``) is computed exactly, as integer numerators over one
denominator; an entry read at a position outside its tensor, or at a position
that is not an integer, is 0 (the zero extension that the textbooks' index
forms assume). Iverson brackets are 1 where their condition holds. A claim that
cannot be evaluated (a letter without a range, a free letter on the right only,
a product of whole tensors whose shapes do not fit) raises
:class:`~symbp.claims.ClaimParseError` at its column, or :class:`Mismatch`
for shapes, in the claim's own words. Nothing is executed from the claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from symbp import claims as C

GEOMETRY = ("K", "S", "P", "H", "W", "H'", "W'", "L", "L'")  # a conv or pool layer's letters
MAX_RANGE = 4096  # values of one index letter (a sum's limits), as the spec's largest extent
MAX_ENTRIES = 4_000_000  # of any array a side is evaluated through
MAX_INDEX = 1_000_000  # the largest number in an index expression (and its denominator)
MAX_WORK = 10 * MAX_ENTRIES  # multiplications of one correlation (kernel entries × outputs)


class Mismatch(Exception):
    """The shapes of a tensor claim do not fit (the message says where, in the claim's terms)."""


class Absent(Exception):
    """A quantity or a geometry letter the claim reads does not exist at the layer checked,
    or a tensor there has other axes than the claim reads (a rank, not an extent)."""


@dataclass(frozen=True)
class Value:
    """``array``'s first ``len(names)`` axes carry the index letters ``names``; the rest are
    positional. ``ones``: the all-ones vector ``\\mathbf{1}`` (its length is its partner's);
    ``vector``: a vector quantity as a column, which a batch formula adds to each row of a
    matrix (the printed convention), where a matrix times ``\\mathbf{1}`` is a column."""

    array: np.ndarray
    names: tuple = ()
    ones: bool = False
    vector: bool = False  # a vector quantity laid out as a column (b: added to each row)

    @property
    def positional(self) -> tuple:
        return self.array.shape[len(self.names):]

    @property
    def scalar(self) -> bool:
        return not self.names and not self.positional and not self.ones


@dataclass
class Scope:
    """What a claim's letters and quantities are at one point (see the module docstring)."""

    tensor: object  # node -> the array of a quantity or a gradient
    raw: object  # node -> the array an entry of it is read from (vec(a): its reshape)
    batch: bool  # a batch claim (rows are samples), else one sample's
    ranges: dict  # index letter -> (first value, count)
    geometry: dict | None  # K S P H W ... -> int, at the layer l checked (None: no layer l)
    width: object  # LayerRef -> int
    batch_size: int
    base: int = 0
    activation: object = None  # (Apply node) -> NumPy function of the argument's values
    target_shape: tuple = ()  # the left-hand side's shape (what vec^{-1} reshapes into)
    text: str = ""
    constants: dict = field(default_factory=dict)  # eps, lambda, p -> float
    sums: dict = field(default_factory=dict)  # Sum node -> (first, count) of its own index


class Evaluator:
    def __init__(self, scope: Scope):
        self.scope = scope

    def fail(self, node, message: str):
        raise C.ClaimParseError(message, node.span[0] + 1, text=self.scope.text)

    def run(self, node) -> Value:
        method = getattr(self, "v_" + type(node).__name__, None)
        if method is None:
            self.fail(node, f"{type(node).__name__.lower()} has no reading in a claim about "
                            "tensors")
        return method(node)

    # ------------------------------------------------------------ atoms
    def v_Num(self, node):
        return Value(np.array(float(node.value)))

    def v_Ones(self, node):
        return Value(np.ones((1, 1)), ones=True)

    def v_Letter(self, node):
        if node.name in GEOMETRY:
            return Value(np.array(float(self._geometry(node))))
        first, count = self._range(node, node.name)
        return Value(np.arange(first, first + count, dtype=float), (node.name,))

    def v_Leaf(self, node):
        if node.name == "B":
            return Value(np.array(float(self.scope.batch_size)))
        if node.name == "n" and node.layer is not None:
            return Value(np.array(float(self.scope.width(node.layer))))
        if node.name in self.scope.constants:
            return Value(np.array(float(self.scope.constants[node.name])))
        return self._whole(node)

    def v_Grad(self, node):
        return self._whole(node)

    def _whole(self, node) -> Value:
        """A quantity as a whole tensor: a vector as a column."""
        array = self.scope.tensor(node)
        if array.ndim == 1:
            return Value(array.reshape(-1, 1), vector=True)
        return Value(array)

    # --------------------------------------------------------- entries
    def v_Indexed(self, node):
        raw = self._raw(node.arg)
        items = node.indices
        if len(items) > raw.ndim:
            raise Absent(f"{self.scope_text(node.arg)} has {raw.ndim} "
                           f"ax{'is' if raw.ndim == 1 else 'es'}, the claim reads "
                           f"{len(items)} indices")
        positions = [self.index(item, node) for item in items]
        names = _union([p.names for p in positions])
        self.bounded(node, names, raw.shape[len(items):])
        grids, valid = [], np.ones((1,) * len(names), dtype=bool)
        for (position, size) in zip(positions, raw.shape, strict=False):
            num, den = position.spread(names)
            whole = num % den == 0
            at = num // den - self.scope.base
            valid = valid & whole & (at >= 0) & (at < size)
            grids.append(at)
        grids = np.broadcast_arrays(*grids, valid) if grids else [valid]
        valid = grids[-1]
        clipped = [np.clip(g, 0, size - 1) for g, size in zip(grids[:-1], raw.shape,
                                                                strict=False)]
        picked = raw[tuple(clipped)] if clipped else raw
        mask = valid.reshape(valid.shape + (1,) * (picked.ndim - valid.ndim))
        return Value(np.where(mask, picked, 0.0), names)

    def _raw(self, arg) -> np.ndarray:
        """The array an entry is read from (a vector stays one axis)."""
        if isinstance(arg, C.Apply) and arg.func.name in ("pad", "dil", "rot180"):
            return self.v_Apply(arg).array
        if isinstance(arg, (C.Leaf, C.Grad)) or (isinstance(arg, C.Apply) and
                                                  arg.func.name == "vec"):
            return self.scope.raw(arg)
        self.fail(arg, "an index subscript belongs on a quantity (W, \\delta, a, ...)")

    def scope_text(self, node) -> str:
        start, end = node.span
        return " ".join(self.scope.text[start:end].split()) if end > start else \
            C.to_latex(node)

    def index(self, item, where) -> "_Index":
        """An index item (a letter, a digit, an index expression) as exact integers."""
        if isinstance(item, str):
            if item.isdigit():
                return _Index(np.array(int(item)), 1, ())
            first, count = self._range(where, item)
            return _Index(np.arange(first, first + count), 1, (item,))
        return self._index_node(item)

    def _index_node(self, node) -> "_Index":
        """An index expression as exact integers, refused where its numbers exceed
        :data:`MAX_INDEX` (no tensor has such an entry; numbers stay within int64)."""
        index = self._index_value(node)
        if index.den > MAX_INDEX or (np.size(index.num) and
                                     int(np.max(np.abs(index.num))) > MAX_INDEX * index.den):
            self.fail(node, f"an index beyond {MAX_INDEX}: symbp verify reads entries at "
                            f"indices from -{MAX_INDEX} to {MAX_INDEX}")
        return index

    def _index_value(self, node) -> "_Index":
        kind = type(node).__name__
        if kind == "Num":
            value = Fraction(node.value)
            if abs(value.numerator) > MAX_INDEX or value.denominator > MAX_INDEX:
                self.fail(node, f"an index beyond {MAX_INDEX}: symbp verify reads entries at "
                                f"indices from -{MAX_INDEX} to {MAX_INDEX}")
            return _Index(np.array(value.numerator), value.denominator, ())
        if kind == "Letter":
            if node.name in GEOMETRY:
                return _Index(np.array(self._geometry(node)), 1, ())
            if node.name == "B" and "B" not in self.scope.ranges:  # \sum_{r=0}^{B - 1}
                return _Index(np.array(self.scope.batch_size), 1, ())
            return self.index(node.name, node)
        if kind == "Leaf" and node.name == "n" and node.layer is not None:
            return _Index(np.array(self.scope.width(node.layer)), 1, ())
        if kind in ("Add", "Sub"):
            left, right = self._index_node(node.left), self._index_node(node.right)
            self.bounded(node, _union([left.names, right.names]))
            return left.combine(right, 1 if kind == "Add" else -1)
        if kind == "Neg":
            inner = self._index_node(node.arg)
            return _Index(-inner.num, inner.den, inner.names)
        if kind == "MatMul":
            left, right = self._index_node(node.left), self._index_node(node.right)
            self.bounded(node, _union([left.names, right.names]))
            if _largest(left) * _largest(right) > MAX_INDEX ** 3:  # int64 holds the product
                self.fail(node, f"an index beyond {MAX_INDEX}: symbp verify reads entries at "
                                f"indices from -{MAX_INDEX} to {MAX_INDEX}")
            return left.times(right)
        if kind == "Div":
            return self._index_node(node.num).over(self._index_node(node.den), node, self)
        if kind == "Floor":
            inner = self._index_node(node.arg)
            return _Index(inner.num // inner.den, 1, inner.names)
        if kind == "Mod":
            inner, modulus = self._index_node(node.arg), self._index_node(node.modulus)
            m = int(modulus.num) if not modulus.names and modulus.den == 1 else 0
            if m < 1:
                self.fail(node, "\\bmod takes a positive integer modulus")
            return _Index(inner.num % (m * inner.den), inner.den, inner.names)
        if kind == "Group":
            return self._index_node(node.expr)
        self.fail(node, "an index is made of index letters, integers, + - and division by "
                        "an integer, \\lfloor \\rfloor and \\bmod")

    def _range(self, where, letter: str) -> tuple:
        found = self.scope.ranges.get(letter)
        if found is None:
            self.fail(where, f"the range of the index {letter} is not known: give it as a "
                             f"sum's limits (\\sum_{{{letter}=0}}^{{...}}) or read it as a "
                             "tensor's index")
        return found

    def _geometry(self, node) -> int:
        if self.scope.geometry is None:
            self.fail(node, f"{node.name} is the {_GEOMETRY_MEANING[node.name]} of the general "
                            "layer l: a claim about a fixed layer writes its number")
        value = self.scope.geometry.get(node.name)
        if value is None:
            raise Absent(f"{node.name} is a convolution's or pooling's "
                         f"{_GEOMETRY_MEANING[node.name]}; this layer has none")
        return value

    # ------------------------------------------------------- operations
    def v_Add(self, node):
        return self._elementwise(node, np.add, node.left, node.right)

    def v_Sub(self, node):
        return self._elementwise(node, np.subtract, node.left, node.right)

    def v_Hadamard(self, node):
        return self._elementwise(node, np.multiply, node.left, node.right)

    def v_Div(self, node):
        return self._elementwise(node, _divide, node.num, node.den)

    def v_Neg(self, node):
        value = self.run(node.arg)
        return Value(-value.array, value.names, vector=value.vector)

    def v_Power(self, node):
        value = self.run(node.arg)
        with np.errstate(all="ignore"):
            return Value(np.power(value.array, float(node.exponent)), value.names,
                         vector=value.vector)

    def v_Transpose(self, node):
        value = self.run(node.arg)
        if value.ones:
            return Value(value.array, ones=True)
        if len(value.positional) != 2:
            raise Absent(f"{self.scope_text(node.arg)} is not a matrix: ^T needs two axes")
        return Value(np.swapaxes(value.array, -1, -2), value.names)

    def v_MatMul(self, node):
        left, right = self.run(node.left), self.run(node.right)
        if left.ones or right.ones:
            return self._ones_product(node, left, right)
        if left.scalar or right.scalar or left.names or right.names:
            return self._combine(node, np.multiply, left, right)
        if len(left.positional) != 2 or len(right.positional) != 2:
            raise Absent(f"{self.scope_text(node)}: a product of whole tensors needs "
                         "matrices (write the entries and their sums)")
        if left.array.shape[1] != right.array.shape[0]:
            raise Mismatch(f"{self.scope_text(node.left)} has {left.array.shape[1]} columns, "
                           f"{self.scope_text(node.right)} has {right.array.shape[0]} rows")
        return Value(left.array @ right.array)

    def _ones_product(self, node, left, right):
        """``M \\mathbf{1}`` sums the rows of M; ``\\mathbf{1}^T M`` its columns."""
        if right.ones and not left.ones and len(left.positional) == 2 and not left.names:
            return Value(left.array.sum(axis=1, keepdims=True))
        if left.ones and not right.ones and len(right.positional) == 2 and not right.names:
            return Value(right.array.sum(axis=0, keepdims=True))
        self.fail(node, "\\mathbf{1} multiplies a matrix")

    def v_Sum(self, node):
        if node.index is None:
            self.fail(node, "a sum over tensors names its index (\\sum_{k})")
        ranges, letter = self.scope.ranges, node.index
        outer = ranges.get(letter)
        if node in self.scope.sums:  # the sum's own range, inside its body only
            ranges[letter] = self.scope.sums[node]
        try:
            body = self.run(node.body)
            first, count = self._range(node, letter)
        finally:
            if outer is None:
                ranges.pop(letter, None)
            else:
                ranges[letter] = outer
        if letter not in body.names:
            return Value(body.array * count, body.names)
        axis = body.names.index(letter)
        names = body.names[:axis] + body.names[axis + 1:]
        return Value(body.array.sum(axis=axis), names)

    def v_Cases(self, node):
        """The first row whose condition holds, entry by entry (a row without one: otherwise)."""
        value_node, last = node.rows[-1]
        if last is not None:
            self.fail(node, "the last case of \\begin{cases} is 'otherwise'")
        result = self.run(value_node)
        for value_node, condition in reversed(node.rows[:-1]):
            if condition is None or type(condition).__name__ == "Prose":
                self.fail(node, "each case but the last names its condition (z > 0)")
            holds, names = self.condition(condition, node)
            value = self.run(value_node)
            chosen = self._combine(node, lambda a, b: a * b, value, Value(holds, names))
            rest = self._combine(node, lambda a, b: a * (1.0 - b), result, Value(holds, names))
            result = self._combine(node, np.add, chosen, rest)
        return result

    def v_Indicator(self, node):
        return Value(*self.condition(node.condition, node))

    def condition(self, cond, where) -> tuple:
        """``(0/1 array, names)`` of a condition."""
        kind = type(cond).__name__
        if kind == "Between":
            low, middle, high = (self._index_node(part) for part in (cond.low, cond.middle,
                                                                     cond.high))
            self.bounded(where, _union([low.names, middle.names, high.names]))
            first = _compare(low, middle, cond.low_op)
            second = _compare(middle, high, cond.high_op)
            return _both(first, second)
        if kind == "Member":
            value = self._index_node(cond.expr)
            low, high = self._index_node(cond.low), self._index_node(cond.high)
            self.bounded(where, _union([value.names, low.names, high.names]))
            whole = _Index(value.num % value.den == 0, 1, value.names)
            return _both(_both(_compare(low, value, "<="), _compare(value, high, "<=")),
                         (whole.num.astype(float), whole.names))
        if kind == "Equal" and _index_only(cond.left) and _index_only(cond.right):
            left, right = self._index_node(cond.left), self._index_node(cond.right)
            self.bounded(where, _union([left.names, right.names]))
            difference = left.combine(right, -1)
            return np.asarray(difference.num == 0, dtype=float), difference.names
        if kind in ("Compare", "Equal"):
            left, right = self.run(cond.left), self.run(cond.right)
            compare = {">": np.greater, "<": np.less, ">=": np.greater_equal,
                       "<=": np.less_equal, "=": np.equal}[getattr(cond, "op", "=")]
            value = self._combine(where, compare, left, right)
            return value.array.astype(float), value.names
        self.fail(where, "an Iverson bracket holds a comparison")

    def v_Apply(self, node):
        name = node.func.name
        if name in ("pad", "dil", "rot180", "vec", "unvec"):
            return self._reshaping(node, name)
        value = self.run(node.arg)
        if self.scope.activation is None:
            self.fail(node, f"{name} cannot be evaluated here")
        with np.errstate(all="ignore"):
            return Value(np.asarray(self.scope.activation(node, value.array), dtype=float) *
                         np.ones_like(value.array), value.names)

    def _reshaping(self, node, name):
        value = self.run(node.arg)
        params = [self._constant(p) for p in getattr(node.func, "params", ())]
        spatial = self._spatial_rank(node, value)
        if name == "vec":
            return Value(_vec(value, self.scope.batch))
        if name == "unvec":
            return Value(self._unvec(node, value))
        if name == "rot180":
            axes = tuple(range(value.array.ndim - spatial, value.array.ndim))
            return Value(np.flip(value.array, axis=axes), value.names)
        amounts = _per_axis(params, spatial, node, self)
        least = 0 if name == "pad" else 1
        if min(amounts) < least:
            self.fail(node, f"{name} takes {'amounts' if least == 0 else 'strides'} of at "
                            f"least {least}")
        extents = value.array.shape[value.array.ndim - spatial:]
        grown = [n + 2 * a if name == "pad" else (n - 1) * a + 1
                 for n, a in zip(extents, amounts, strict=True)]
        self.bounded(node, value.names, value.array.shape[len(value.names):value.array.ndim -
                                                          spatial] + tuple(grown))
        if name == "pad":
            width = [(0, 0)] * (value.array.ndim - spatial) + [(a, a) for a in amounts]
            return Value(np.pad(value.array, width), value.names)
        return Value(dilate(value.array, amounts), value.names)

    def _spatial_rank(self, node, value) -> int:
        rank = len(value.positional)
        if rank not in (1, 2) and node.func.name in ("pad", "dil", "rot180"):
            self.fail(node, f"{node.func.name} takes an image or a sequence (one or two axes): "
                            f"{self.scope_text(node.arg)} has {rank}")
        return rank

    def _unvec(self, node, value):
        shape = self.scope.target_shape
        if value.names or int(np.prod(shape)) != value.array.size:
            raise Mismatch(f"{self.scope_text(node)}: {value.array.size} entries do not "
                           f"reshape into the left-hand side's shape {tuple(shape)}")
        return value.array.reshape(shape)

    def _constant(self, node) -> int:
        index = self._index_node(node)
        if index.names or index.den != 1:
            self.fail(node, "an operator's parameter is an integer")
        return int(index.num)

    def v_Correlate(self, node):
        image, kernel = self.run(node.left), self.run(node.right)
        stride = 1 if node.stride is None else self._constant(node.stride)
        if stride < 1:
            self.fail(node.stride, "a correlation's stride is at least 1")
        rank = len(kernel.positional)
        if rank not in (1, 2) or len(image.positional) != rank:
            raise Absent(f"{self.scope_text(node)}: \\star correlates two images (or two "
                         "sequences) of the same rank")
        out = [(n - k) // stride + 1 for n, k in zip(image.positional, kernel.positional,
                                                     strict=True)]
        if any(o < 1 for o in out):
            raise Mismatch(f"{self.scope_text(node)}: the kernel {kernel.positional} is larger "
                           f"than the image {image.positional}")
        names = _union([image.names, kernel.names])
        self.bounded(node, names, tuple(out))
        work = math.prod(kernel.positional) * math.prod(self._range(node, name)[1]
                                                        for name in names) * math.prod(out)
        if work > MAX_WORK:
            self.fail(node, f"a correlation of {work} products, more than the {MAX_WORK} "
                            "symbp verify evaluates")
        return _correlate(image, kernel, stride, out, names)

    # -------------------------------------------------------- alignment
    def _elementwise(self, node, op, left_node, right_node):
        return self._combine(node, op, self.run(left_node), self.run(right_node))

    def bounded(self, node, names: tuple, positional: tuple = ()) -> None:
        """Refuse an array over ``names`` (and ``positional`` axes) larger than MAX_ENTRIES."""
        size = math.prod(self._range(node, name)[1] for name in names) * math.prod(positional)
        if size > MAX_ENTRIES:
            self.fail(node, f"the indices here span {size} entries, more than the "
                            f"{MAX_ENTRIES} symbp verify evaluates")

    def _combine(self, node, op, left: Value, right: Value) -> Value:
        names = _union([left.names, right.names])
        left, right = _rows_of(left, right, self.scope.batch), _rows_of(right, left,
                                                                        self.scope.batch)
        rank = max(len(left.positional), len(right.positional))
        a, b = spread(left, names, rank), spread(right, names, rank)
        vector = (left.vector or left.scalar) and (right.vector or right.scalar) and (
            left.vector or right.vector)
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise Mismatch(f"{self.scope_text(node)}: the shapes {left.positional} and "
                           f"{right.positional} do not fit") from None
        self.bounded(node, (), shape)
        with np.errstate(all="ignore"):
            return Value(op(a, b), names, vector=bool(vector))


def _rows_of(value: Value, other: Value, batch: bool) -> Value:
    """In a batch formula a vector quantity meets a matrix as a row: added to each row."""
    if batch and value.vector and not other.vector and len(other.positional) == 2 and \
            not value.names and other.positional[1] == value.array.shape[0]:
        return Value(value.array.T)
    return value


_GEOMETRY_MEANING = {"K": "kernel size", "S": "stride", "P": "padding", "H": "input height",
                     "W": "input width", "H'": "output height", "W'": "output width",
                     "L": "input length", "L'": "output length"}


@dataclass(frozen=True)
class _Index:
    """An exact index over the grid of ``names``: ``num / den``."""

    num: np.ndarray
    den: int
    names: tuple

    def spread(self, names: tuple) -> tuple:
        return spread(Value(np.asarray(self.num), self.names), names), self.den

    def combine(self, other: "_Index", sign: int) -> "_Index":
        den = math.lcm(self.den, other.den)
        names = _union([self.names, other.names])
        a = spread(Value(np.asarray(self.num) * (den // self.den), self.names), names)
        b = spread(Value(np.asarray(other.num) * (den // other.den), other.names), names)
        return _Index(a + sign * b, den, names)

    def times(self, other: "_Index") -> "_Index":
        names = _union([self.names, other.names])
        a = spread(Value(np.asarray(self.num), self.names), names)
        b = spread(Value(np.asarray(other.num), other.names), names)
        return _Index(a * b, self.den * other.den, names)

    def over(self, other: "_Index", node, evaluator) -> "_Index":
        if other.names:
            evaluator.fail(node, "an index is divided by an integer, not by an index")
        divisor = Fraction(int(other.num), other.den)
        if divisor == 0:
            evaluator.fail(node, "an index divided by 0")
        num = np.asarray(self.num) * divisor.denominator * (1 if divisor > 0 else -1)
        return _Index(num, self.den * abs(divisor.numerator), self.names)


def _largest(index: _Index) -> int:
    """The largest magnitude of ``index.num`` (a Python int)."""
    return int(np.max(np.abs(index.num))) if np.size(index.num) else 0


_INDEX_NODES = ("Num", "Letter", "Add", "Sub", "Neg", "MatMul", "Div", "Floor", "Mod")


def _index_only(node) -> bool:
    """Is ``node`` an index expression (letters, integers, + - * /, floor, mod)?"""
    return all(type(part).__name__ in _INDEX_NODES or (
        isinstance(part, C.Leaf) and part.name == "n") for _, part in C.walk(node))


def _compare(left: _Index, right: _Index, op: str) -> tuple:
    difference = right.combine(left, -1)  # right - left, compared with 0
    holds = difference.num >= 0 if op == "<=" else difference.num > 0
    return np.asarray(holds, dtype=float), difference.names


def _both(first: tuple, second: tuple) -> tuple:
    names = _union([first[1], second[1]])
    a = spread(Value(np.asarray(first[0]), first[1]), names)
    b = spread(Value(np.asarray(second[0]), second[1]), names)
    return a * b, names


def _union(name_lists) -> tuple:
    seen = []
    for names in name_lists:
        for name in names:
            if name not in seen:
                seen.append(name)
    return tuple(seen)


def spread(value: Value, names: tuple, rank: int = 0) -> np.ndarray:
    """``value.array`` with its named axes moved to ``names``' order (size 1 where absent),
    followed by its positional axes (at least ``rank`` of them: size 1 in front)."""
    array = np.asarray(value.array)
    own = list(value.names)
    positional = array.ndim - len(own)
    order = [own.index(n) for n in names if n in own]
    array = np.transpose(array, order + list(range(len(own), array.ndim)))
    shape = []
    present = iter(array.shape[:len(order)])
    for name in names:
        shape.append(next(present) if name in own else 1)
    trailing = array.shape[len(order):len(order) + positional]
    return array.reshape(tuple(shape) + (1,) * max(rank - positional, 0) + trailing)


def _divide(a, b):
    with np.errstate(all="ignore"):
        return np.divide(a, b)


def _vec(value: Value, batched: bool) -> np.ndarray:
    array = value.array
    if batched:
        return array.reshape(array.shape[0], -1)
    return array.reshape(-1, 1)


def _per_axis(params: list, rank: int, node, evaluator) -> list:
    if len(params) == 1:
        return params * rank
    if len(params) != rank:
        evaluator.fail(node, f"{node.func.name} takes one amount or one per axis ({rank})")
    return params


def dilate(array: np.ndarray, strides: list) -> np.ndarray:
    rank = len(strides)
    lead = array.shape[:array.ndim - rank]
    extents = array.shape[array.ndim - rank:]
    out = np.zeros(lead + tuple((n - 1) * s + 1 for n, s in zip(extents, strides, strict=True)))
    out[(Ellipsis, *[slice(None, None, s) for s in strides])] = array
    return out


def _correlate(image: Value, kernel: Value, stride: int, out: list, names: tuple) -> Value:
    """``(x \\star_S k)_{i,j} = \\sum_{p,q} x_{iS+p, jS+q} k_{p,q}`` over the trailing axes
    (``out`` their extents); the named axes of both are aligned (``names``)."""
    sizes = kernel.positional
    rank = len(sizes)
    x, k = spread(image, names), spread(kernel, names)
    lead = np.broadcast_shapes(x.shape[:len(names)], k.shape[:len(names)])
    total = np.zeros(lead + tuple(out))
    for offsets in np.ndindex(*sizes):
        window = tuple(slice(o, o + (m - 1) * stride + 1, stride) for o, m in zip(
            offsets, out, strict=True))
        total = total + x[(Ellipsis, *window)] * k[(Ellipsis, *offsets)].reshape(
            k.shape[:len(names)] + (1,) * rank)
    return Value(total, names)
