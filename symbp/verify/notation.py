"""Component forms: a claim about entries (index subscripts and sums) read as matrices.

Contract: :func:`to_matrix` takes a :class:`~symbp.claims.Claim` whose quantities are
already symbp's (``W b z a x y delta B``, with layers: :mod:`symbp.verify.conventions`
maps the user's letters first) and returns the same claim in the vector/matrix
AST that the decision reads, so that the evaluator never sees an index. A claim
without subscripts or sums comes back unchanged. A component claim's left side is
an entry, ``\\delta^l_j``, ``\\partial C/\\partial w^l_{jk}``, ``\\Delta^{(l)}_{s,i}``;
(or an elementwise expression of entries, UFLDL's ``f'(z^{(l)}_i)``); its free
indices name the rows (and columns) of the matrix claim:

- a vector quantity takes one index (``a_j``), ``W`` two (``W_{jk}``, row ``j``,
  column ``k``), a batch quantity two (``\\Delta_{s,i}``, ``a_{s,i}``: row ``s`` the
  sample); a gradient's entry is indexed as its target;
- a product of entries with the same indices is the elementwise product, of two
  vectors' entries with different indices the outer product (``a_k \\delta_j`` for
  the entry ``jk`` is ``\\delta a^T``), a scalar scales;
- ``\\sum_k`` over two factors sharing ``k`` is a matrix product with the transposes
  the positions of ``k`` ask for (``\\sum_k w_{kj} \\delta_k`` is entry ``j`` of
  ``W^T \\delta``), over one factor a sum of rows or columns (``\\sum_r \\Delta_{r,i}``
  is entry ``i`` of ``\\Delta^T \\mathbf{1}``); the sum's limits, when written, must
  run over the whole range (from 0 or 1: the range itself is the width's);
- elementwise functions, sums, differences, powers and quotients keep the indices;
- ``\\sum_x`` (Nielsen's sum over the training inputs x) makes each per-sample entry
  under it a row of the batch: ``\\sum_x a_k \\delta_j`` is entry ``jk`` of
  ``\\Delta^T A`` up to the batch's scaling, which the claim writes (``\\frac{1}{n}``).

:func:`piecewise` reads ``\\begin{cases}``, ``\\max`` and ``\\mathbb{1}[\\cdot]`` as the
functions the decision knows (steps are relu's derivative), before a convention maps
the letters.

Anything without such a reading (an index on one side only, a vector without an
index among entries, a trace, three factors sharing a summed index with no vector
to merge) raises :class:`~symbp.claims.ClaimParseError` naming the construct and
why: never a guessed matrix. Nothing is evaluated here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from fractions import Fraction

from symbp import claims as C

SAMPLES = "x"  # the index of a sum over the training inputs (Nielsen's \\sum_x)
# An upper limit that is a whole width: n, n_l, n_{l+1}, m, N, B, s_{l} (UFLDL), maybe - 1.
_WIDTH_LIMIT = re.compile(r"[A-Za-z](_([A-Za-z]|\{[A-Za-z]([+-]\d+)?\}))?(-\d+)?")
_SCALAR_NAMES = {"B", "n", "eps", "p", "lambda", "pi"}  # the batch size, a width, the ops' constants
_STATISTICS = {"mu", "sigma2", "sigma"}  # a scalar per sample, or a vector along one index
_VECTOR_NAMES = {"b", "z", "a", "x", "y", "delta", "xhat", "gamma", "beta", "mask"}


@dataclass(frozen=True)
class _T:
    """A translated subexpression: ``expr`` whose rows (and columns) carry ``idx``;
    ``native``: a norm's statistic (or an elementwise function of one), whose vector
    the decision already lays out along its own axis (layer norm's B x 1 column, batch
    norm's 1 x n row), where any other vector is a column."""

    expr: C.Node
    idx: tuple
    native: bool = False


class _Unreadable(Exception):
    def __init__(self, node: C.Node, reason: str):
        super().__init__(reason)
        self.node, self.reason = node, reason


def letter_indices_only(claim: C.Claim) -> None:
    """Refuse an entry read at an index expression (``a_{i + p - 1}``, ``\\lfloor i/2
    \\rfloor``): it has no matrix reading (the entrywise reading of
    :mod:`symbp.verify.tensors` decides it)."""
    for side in claim.sides:
        for _, node in C.walk(side):
            if isinstance(node, C.Indexed) and not all(isinstance(i, str) for i in node.indices):
                raise C.ClaimParseError(
                    "an entry read at an index expression has no matrix reading (write it "
                    "with index letters, or on a network with convolutions it is read entry "
                    "by entry)", node.span[0] + 1, text=claim.text)


def piecewise(claim: C.Claim) -> C.Claim:
    """``\\begin{cases}``, ``\\max`` and ``\\mathbb{1}[...]`` in the functions the decision
    reads: a condition ``u > v`` is the step ``relu'(u - v)`` (1 where it holds, 0 at the
    border, as relu's derivative); the first case that holds is taken, elementwise;
    ``\\max(u, v)`` is ``v + relu(u - v)`` (``relu(v)`` for ``\\max(0, v)``)."""
    sides = tuple(_steps(side) for side in claim.sides)
    memo: dict = {}
    if sum(_size(side, memo) for side in sides) > C.MAX_NODES:  # nested \max, cases in cases
        raise C.ClaimParseError(f"with its cases and maxima spelled out the claim has more "
                                f"than {C.MAX_NODES} terms", 1, text=claim.text)
    return C.Claim(sides, claim.text)


def _size(node, memo: dict) -> int:
    """The number of nodes of ``node`` as a tree, counted once per shared subtree (so
    that a tree of 2^50 nodes built from shared parts is measured in linear time)."""
    key = id(node)
    if key not in memo:
        memo[key] = 1 + sum(_size(child, memo) for _, child in C.children(node))
    return memo[key]


def _steps(node):
    if isinstance(node, C.Cases):
        rows = [(_steps(value), cond and _indicator(cond)) for value, cond in node.rows]
        value, cond = rows[-1]
        result = value if cond is None else _product(value, cond)
        for value, cond in reversed(rows[:-1]):
            result = _plus(_product(value, cond), _product(C.Sub(_one(), cond), result))
        return _spanned(result, node.span)
    if isinstance(node, C.Indicator):
        return _spanned(_indicator(node.condition), node.span)
    if isinstance(node, C.Max):
        left, right = _steps(node.left), _steps(node.right)
        for zero, other in ((left, right), (right, left)):
            if zero == C.Num(Fraction(0)):
                return C.Apply(C.Func("relu"), other, span=node.span)
        return C.Add(right, C.Apply(C.Func("relu"), C.Sub(left, right)), span=node.span)
    changes = {name: _steps(child) for name, child in C.children(node)}
    return replace(node, **changes) if changes else node


def _indicator(cond: C.Compare) -> C.Node:
    if not isinstance(cond, C.Compare):  # 0 <= e <= n, e \in \{..\}: ranges of an index
        raise C.ClaimParseError(f"an Iverson bracket on an index ({type(cond).__name__.lower()}"
                                ") has no matrix reading (a condition u > v does)",
                                cond.span[0] + 1)
    left, right = _steps(cond.left), _steps(cond.right)
    rising = cond.op in (">", ">=")
    high, low = (left, right) if rising else (right, left)
    difference = high if low == C.Num(Fraction(0)) else C.Sub(high, low)
    if cond.op in (">", "<"):  # strict: 0 on the border
        return _step(difference)
    negated = C.Neg(difference) if not isinstance(difference, C.Sub) else C.Sub(
        difference.right, difference.left)
    return C.Sub(_one(), _step(negated))


def _step(arg: C.Node) -> C.Node:
    return C.Apply(C.Func("relu", 1), arg)


def _one() -> C.Node:
    return C.Num(Fraction(1))


def _product(value: C.Node, cond: C.Node) -> C.Node:
    if value == _one():
        return cond
    if value == C.Num(Fraction(0)):
        return value
    return C.Hadamard(value, cond)


def _plus(left: C.Node, right: C.Node) -> C.Node:
    if right == C.Num(Fraction(0)):
        return left
    if left == C.Num(Fraction(0)):
        return right
    return C.Add(left, right)


def _spanned(node: C.Node, span) -> C.Node:
    return replace(node, span=span)


def has_components(claim: C.Claim) -> bool:
    """Does the claim use index subscripts or sums anywhere?"""
    return any(isinstance(node, (C.Indexed, C.Sum)) for side in claim.sides
               for _, node in C.walk(side))


def to_matrix(claim: C.Claim) -> C.Claim:
    """The claim in matrix form (see the module docstring); unchanged without indices."""
    if not has_components(claim):
        return claim
    lhs = claim.lhs
    try:
        # the left side is an entry (\\delta^l_j), or an elementwise expression of entries
        # (UFLDL's f'(z^{(l)}_i)): its free indices name the rows and columns
        target = _entry(lhs) if isinstance(lhs, C.Indexed) else _Reader(()).side(lhs)
        if target.native:
            raise _Unreadable(lhs, "an entry of a norm's statistic on the left: write the "
                                   "claim with whole vectors (its layout is the op's)")
        if not target.idx:
            raise _Unreadable(lhs, "the right-hand side is written with entries (index "
                                   "subscripts or sums) but the left-hand side has no index: "
                                   "write both sides with indices, e.g. \\delta^l_j = ..., "
                                   "or neither")
        sides = [target.expr]
        for side in claim.sides[1:]:
            sides.append(_orient(_Reader(target.idx).side(side), target, side))
    except _Unreadable as error:
        raise C.ClaimParseError(f"cannot read this component form as matrices: {error.reason}",
                                error.node.span[0] + 1, text=claim.text) from None
    return C.Claim(tuple(sides), claim.text)


def _orient(result: _T, target: _T, side: C.Node) -> C.Node:
    """``result`` with its indices in the order of the left-hand side's."""
    if result.native and len(result.idx) == 1:
        raise _Unreadable(side, "a vector of a norm's statistics on the right of an entry: "
                                "write the claim with whole vectors (its layout is the op's)")
    if result.idx == target.idx:
        return result.expr
    if sorted(result.idx) == sorted(target.idx) and len(result.idx) == 2:
        return transpose(result.expr)
    missing = [i for i in target.idx if i not in result.idx]
    extra = [i for i in result.idx if i not in target.idx]
    if extra:
        raise _Unreadable(side, f"the index {extra[0]} is free on the right but not on the "
                                f"left (sum over it with \\sum_{extra[0]}, or index the left "
                                f"side with it)")
    raise _Unreadable(side, f"the right-hand side does not depend on the index {missing[0]} "
                            "of the left-hand side")


def _entry(node: C.Indexed) -> _T:
    """An indexed quantity or gradient: the whole matrix, rows (columns) named by its indices."""
    base, idx = node.arg, tuple(node.indices)
    if len(set(idx)) != len(idx):
        raise _Unreadable(node, f"a repeated index in {'_'.join(idx)} (a diagonal or a "
                                "trace has no matrix reading here)")
    if any(i.isdigit() for i in idx):
        raise _Unreadable(node, "a numbered entry such as w_{12} is one number; write the "
                                "entry with index letters (w_{jk})")
    leaf = base.target if isinstance(base, C.Grad) else base
    if not isinstance(leaf, C.Leaf):
        raise _Unreadable(node, "an index subscript belongs on a quantity such as w^l_{jk}")
    name = leaf.name
    if name == "W":
        if len(idx) != 2:
            raise _Unreadable(node, "a weight entry takes two indices, W_{jk} (row j of "
                                    "layer l, column k of layer l-1)")
        return _T(base, idx)
    if name in _STATISTICS and len(idx) == 1:  # layer norm's mu_s, batch norm's mu_i
        return _T(base, idx, native=True)
    if name not in _VECTOR_NAMES:
        raise _Unreadable(node, f"{C.leaf_latex(leaf)} takes no index")
    if len(idx) == 1:
        if leaf.batch:
            raise _Unreadable(node, f"the batch quantity {C.leaf_latex(leaf)} takes two "
                                    "indices, sample and unit: _{s,i}")
        return _T(base, idx)
    if len(idx) == 2 and name != "b":  # a_{s,i}: row s of the batch matrix
        batch = replace(leaf, batch=True)
        return _T(replace(base, target=batch) if isinstance(base, C.Grad) else batch, idx)
    raise _Unreadable(node, f"{C.leaf_latex(leaf)} takes one index (two in a batch "
                            "formula: sample and unit)")


class _Reader:
    """Reads one side: every vector quantity must be an entry, sums contract."""

    def __init__(self, free: tuple):
        self.free = free
        self.sample = None  # inside \\sum_x: per-sample entries are rows of the batch

    def side(self, node) -> _T:
        return self.read(node)

    def read(self, node) -> _T:
        method = getattr(self, "r_" + type(node).__name__, None)
        if method is None:
            raise _Unreadable(node, f"{type(node).__name__.lower()} has no reading among "
                                    "entries")
        return method(node)

    # ----- leaves
    def r_Num(self, node):
        return _T(node, ())

    def r_Leaf(self, node):
        if node.name in _SCALAR_NAMES or node.name in _STATISTICS:
            return _T(node, ())
        raise _Unreadable(node, f"{C.leaf_latex(node)} appears without an index among entries: "
                                f"write its entry, e.g. {C.leaf_latex(node)}_j")

    def r_Grad(self, node):
        raise _Unreadable(node, "a whole gradient among entries: write its entry, e.g. "
                                "\\frac{\\partial C}{\\partial a^L_j}")

    def r_Indexed(self, node):
        entry = _entry(node)
        base = entry.expr.target if isinstance(entry.expr, C.Grad) else entry.expr
        if self.sample and len(entry.idx) == 1 and isinstance(entry.expr, C.Leaf) \
                and base.name in _VECTOR_NAMES - {"b", "gamma", "beta"}:
            return _T(replace(entry.expr, batch=True), (self.sample,) + entry.idx)
        return entry

    def r_Ones(self, node):
        raise _Unreadable(node, "\\mathbf{1} among entries: write the sum, \\sum_k")

    def r_Transpose(self, node):
        raise _Unreadable(node, "a transpose among entries: swap the indices instead")

    # ----- elementwise
    def r_Neg(self, node):
        inner = self.read(node.arg)
        return _T(C.Neg(inner.expr, span=node.span), inner.idx, inner.native)

    def r_Add(self, node):
        return self._combine(node, C.Add)

    def r_Sub(self, node):
        return self._combine(node, C.Sub)

    def _combine(self, node, kind):
        left, right = self.read(node.left), self.read(node.right)
        if left.idx and right.idx and left.idx != right.idx:
            if sorted(left.idx) == sorted(right.idx) and len(left.idx) == 2:
                right = _T(transpose(right.expr), left.idx)
            elif _broadcasts(left.idx, right.idx) or _broadcasts(right.idx, left.idx):
                # a batch matrix and a vector along one of its axes: the vector is added
                # to each row (a row vector) or each column (a column vector)
                wide = left.idx if len(left.idx) == 2 else right.idx
                return _T(kind(_along(left, wide), _along(right, wide), span=node.span), wide)
            else:
                raise _Unreadable(node, f"the terms have different free indices "
                                        f"({_names(left.idx)} and {_names(right.idx)})")
        if left.idx and right.idx and left.native != right.native and len(left.idx) == 1:
            raise _Unreadable(node, "a norm's statistic and another vector side by side: "
                                    "write the claim with whole vectors")
        return _T(kind(left.expr, right.expr, span=node.span), left.idx or right.idx,
                  left.native or right.native)

    def r_Power(self, node):
        inner = self.read(node.arg)
        return _T(replace(node, arg=inner.expr), inner.idx, inner.native)

    def r_Apply(self, node):
        if node.func.name in ("softmax", "diag"):
            raise _Unreadable(node, f"{node.func.name} of an entry: it reads a whole vector")
        inner = self.read(node.arg)
        return _T(replace(node, arg=inner.expr), inner.idx, inner.native)

    def r_Div(self, node):
        num, den = self.read(node.num), self.read(node.den)
        if den.idx and not num.idx:  # 1 / a_j: a power of the entry
            return self._product(node, [num, _T(C.Power(den.expr, -1), den.idx)])
        if num.idx and den.idx and num.idx != den.idx:
            if not (_broadcasts(num.idx, den.idx) or _broadcasts(den.idx, num.idx)):
                raise _Unreadable(node, "a quotient of entries with different indices")
            wide = num.idx if len(num.idx) == 2 else den.idx  # a batch matrix by a vector
            return _T(C.Div(_along(num, wide), _along(den, wide), span=node.span), wide)
        if num.idx and den.idx and num.native != den.native and len(num.idx) == 1:
            raise _Unreadable(node, "a norm's statistic and another vector side by side: "
                                    "write the claim with whole vectors")
        return _T(C.Div(num.expr, den.expr, span=node.span), num.idx or den.idx,
                  num.native or den.native)

    # ----- products and sums
    def r_MatMul(self, node):
        return self._product(node, [self.read(f) if not isinstance(f, C.Sum) else f
                                    for f in _factors(node)])

    r_Hadamard = r_MatMul

    def r_Sum(self, node):
        return self._product(node, [node])

    def _product(self, node, factors) -> _T:
        """Multiply entries: contract each sum, then merge what is left."""
        done = []
        for factor in factors:
            done.append(self._sum(factor) if isinstance(factor, C.Sum) else factor)
        return _merge(node, done)

    def _sum(self, node: C.Sum) -> _T:
        if node.index == SAMPLES and self.sample is None:  # Nielsen's sum over the inputs x
            self.sample = SAMPLES
            try:
                return self._sum(node)
            finally:
                self.sample = None
        parts = [self.read(f) if not isinstance(f, C.Sum) else self._sum(f)
                 for f in _factors(node.body)]
        index = node.index or self._implied_index(node, parts)
        if index in self.free:
            raise _Unreadable(node, f"\\sum_{index} sums over {index}, a free index of the "
                                    "left-hand side")
        self._check_limits(node)
        inside = [p for p in parts if index in p.idx]
        outside = [p for p in parts if index not in p.idx]
        if not inside:
            raise _Unreadable(node, f"nothing under \\sum_{index} depends on {index}")
        return _merge(node, outside + [_contract(node, index, inside)])

    def _implied_index(self, node, parts) -> str:
        bound = sorted({i for p in parts for i in p.idx if i not in self.free})
        if len(bound) != 1:
            raise _Unreadable(node, "\\sum without its index: write \\sum_k")
        return bound[0]

    def _check_limits(self, node: C.Sum) -> None:
        if node.upper is not None and not _WIDTH_LIMIT.fullmatch(node.upper.replace(" ", "")):
            raise _Unreadable(node, f"\\sum up to {node.upper}: a matrix reading needs a sum "
                                    "over a whole width (up to n_l, m, N or B; expected an "
                                    "index letter there)")
        if node.upper is not None and node.upper.replace(" ", "").endswith("-1") \
                and node.lower != 0:
            raise _Unreadable(node, f"\\sum up to {node.upper}: symbp reads sums over the "
                                    "whole range (0 to n-1, or 1 to n)")


def _along(part: _T, wide: tuple) -> C.Node:
    """``part`` laid out to broadcast over a matrix with indices ``wide``: a vector along
    the columns is a row (a statistic is already laid out along its axis)."""
    if len(part.idx) != 1 or part.native or part.idx[0] != wide[1]:
        return part.expr
    return transpose(part.expr)


def _broadcasts(wide: tuple, narrow: tuple) -> bool:
    return len(wide) == 2 and len(narrow) == 1 and narrow[0] in wide


def _factors(node) -> list:
    """The factors of a product of entries (juxtaposition, \\cdot, \\odot)."""
    if isinstance(node, (C.MatMul, C.Hadamard)):
        return _factors(node.left) + _factors(node.right)
    return [node]


def _names(idx) -> str:
    return ", ".join(idx) if idx else "none"


def _contract(node, index: str, parts: list) -> _T:
    """``\\sum_index`` of the product of ``parts``, each of which has ``index``."""
    parts = _merge_same(node, parts)
    if any(part.native for part in parts):
        raise _Unreadable(node, f"a norm's statistic under \\sum_{index}: write the claim "
                                "with whole vectors")
    if len(parts) > 2:
        raise _Unreadable(node, f"more than two factors share the summed index {index}")
    if any(len(part.idx) > 2 for part in parts):  # pragma: no cover - entries have <= 2
        raise _Unreadable(node, "an entry with more than two indices")
    if len(parts) == 1:
        (part,) = parts
        if len(part.idx) == 1:  # sum_k v_k = v^T 1
            return _T(C.MatMul(transpose(part.expr), C.Ones()), ())
        rows = part.expr if part.idx[0] == index else transpose(part.expr)
        return _T(C.MatMul(transpose(rows), C.Ones()), _without(part.idx, index))
    first, second = parts
    if len(first.idx) == 1 and len(second.idx) == 1:  # sum_k u_k v_k = u^T v
        return _T(C.MatMul(transpose(first.expr), second.expr), ())
    if len(first.idx) == 1:
        first, second = second, first
    left = first.expr if first.idx[1] == index else transpose(first.expr)
    if len(second.idx) == 1:  # sum_k M_{jk} v_k = (M v)_j
        return _T(C.MatMul(left, second.expr), _without(first.idx, index))
    right = second.expr if second.idx[0] == index else transpose(second.expr)
    return _T(C.MatMul(left, right), _without(first.idx, index) + _without(second.idx, index))


def _without(idx: tuple, index: str) -> tuple:
    return tuple(i for i in idx if i != index)


def _merge_same(node, parts: list) -> list:
    """Elementwise products of the factors with the same indices (in any order)."""
    merged: list[_T] = []
    for part in parts:
        for n, other in enumerate(merged):
            if sorted(other.idx) == sorted(part.idx):
                if len(part.idx) == 1 and part.native != other.native:
                    raise _Unreadable(node, "a norm's statistic and another vector side by "
                                            "side: write the claim with whole vectors")
                expr = part.expr if part.idx == other.idx else transpose(part.expr)
                merged[n] = _T(_times(other, expr), other.idx, other.native)
                break
        else:
            merged.append(part)
    return merged


def _times(left: _T, right: C.Node) -> C.Node:
    if not left.idx:
        return C.MatMul(left.expr, right)
    return C.Hadamard(left.expr, right)


def _merge(node, parts: list) -> _T:
    """The product of entries with no summed index left: scalars scale, equal indices
    multiply elementwise, two vectors' different indices make an outer product."""
    scalars = [p for p in parts if not p.idx]
    tensors = _merge_same(node, [p for p in parts if p.idx])
    if len(tensors) == 2 and sorted(len(t.idx) for t in tensors) == [1, 2]:
        matrix, vector = sorted(tensors, key=lambda t: -len(t.idx))
        tensors = [_scaled_rows(node, matrix, vector)]
    if len(tensors) > 2 or (len(tensors) == 2 and (len(tensors[0].idx) != 1
                                                   or len(tensors[1].idx) != 1)):
        raise _Unreadable(node, "a product of entries with different indices that is not "
                                "an outer product of two vectors (a sum over a shared "
                                "index may be missing)")
    if len(tensors) == 2:
        u, v = tensors
        if u.native or v.native:
            raise _Unreadable(node, "an outer product with a norm's statistic: write the "
                                    "claim with whole vectors")
        tensors = [_T(C.MatMul(u.expr, transpose(v.expr)), u.idx + v.idx)]
    result = tensors[0] if tensors else None
    for scalar in reversed(scalars):
        result = scalar if result is None else _T(C.MatMul(scalar.expr, result.expr),
                                                  result.idx)
    if result is None:  # pragma: no cover - a product has a factor
        raise _Unreadable(node, "an empty product")
    return result


def _scaled_rows(node, matrix: _T, vector: _T) -> _T:
    """``M_{jk} v_j`` (or ``v_k``) without a sum: ``diag(v) M`` (or ``M diag(v)``)."""
    (index,) = vector.idx
    if index not in matrix.idx:
        raise _Unreadable(node, "a product of a matrix entry and a vector entry with no "
                                "index in common")
    if vector.native:  # a statistic, laid out along its axis: the elementwise product
        return _T(C.Hadamard(matrix.expr, vector.expr), matrix.idx)
    diag = C.Apply(C.Func("diag"), vector.expr)
    if matrix.idx[0] == index:
        return _T(C.MatMul(diag, matrix.expr), matrix.idx)
    return _T(C.MatMul(matrix.expr, diag), matrix.idx)


def transpose(node: C.Node) -> C.Node:
    """``node^T``, pushed through products and elementwise operations so that the matrix
    claim reads as one writes it (``(u v^T)^T`` is ``v u^T``)."""
    if isinstance(node, C.Transpose):
        return node.arg
    if isinstance(node, C.Num) or (isinstance(node, C.Leaf) and node.name in _SCALAR_NAMES):
        return node
    if isinstance(node, C.MatMul):
        if _scalar(node.left):
            return C.MatMul(node.left, transpose(node.right))
        return C.MatMul(transpose(node.right), transpose(node.left))
    if isinstance(node, (C.Hadamard, C.Add, C.Sub)):
        return type(node)(transpose(node.left), transpose(node.right))
    if isinstance(node, C.Div) and _scalar(node.den):
        return C.Div(transpose(node.num), node.den)
    if isinstance(node, C.Neg):
        return C.Neg(transpose(node.arg))
    if isinstance(node, C.Apply) and node.func.name not in ("softmax", "diag"):
        return replace(node, arg=transpose(node.arg), span=(0, 0))
    if isinstance(node, C.Power):
        return replace(node, arg=transpose(node.arg), span=(0, 0))
    return C.Transpose(node)


def _scalar(node: C.Node) -> bool:
    if isinstance(node, C.Num):
        return True
    if isinstance(node, C.Leaf):
        return node.name in _SCALAR_NAMES
    if isinstance(node, (C.Div, C.MatMul)):
        left, right = (node.num, node.den) if isinstance(node, C.Div) else (node.left,
                                                                            node.right)
        return _scalar(left) and _scalar(right)
    if isinstance(node, C.Neg):
        return _scalar(node.arg)
    return False


