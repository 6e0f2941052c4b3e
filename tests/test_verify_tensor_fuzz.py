"""Fuzzing symbp verify on convolutional networks (and the entrywise reading of dense ones).

The rows that ``symbp derive --format latex`` prints for a few CNN specs are parsed, mutated
(index items swapped or replaced, signs flipped inside an index, Iverson brackets dropped or
added, a sum's limits changed, a quantity's layer changed, the operands of \\star swapped,
rot/pad/dil added, a factor deleted, the left side replaced) and printed again. Properties:

- ``verify`` returns a verdict for every mutant, or raises a SymbpError with a one-line
  message; ``symbp verify`` exits 0, 1 or 2 with at most one line on stderr (never 3);
- a mutant of an index-form row is called correct only where an independent oracle (a
  naive interpreter here: Python loops over every assignment of the letters, exact index
  arithmetic with Fractions, zero outside a tensor) finds its value equal to the truth, and
  incorrect only where the oracle finds it different;
- a rewrite that provably changes nothing stays correct: a consistent renaming of the index
  letters, commuting factors, nested sums and terms, and the 1-based reading of a row
  (every sum from 1 and every index shifted by one, as Goodfellow et al. write them);
- a claim whose evaluation would be huge (nested sums at the 4096 limit, huge numbers in
  an index, a huge padding, \\bmod 0, a zero stride) is refused (cannot parse, exit 2)
  without a large allocation and without a NumPy warning.
"""

import contextlib
import io
import itertools
import math
import random
import tracemalloc
import warnings
from dataclasses import fields, is_dataclass, replace
from fractions import Fraction

import numpy as np
import pytest
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_verify_roundtrip import ACCUMULATES, DEFINITIONS, NETWORKS, _rows
from test_verify_tensors import PADDED, POOLED, STRIDED, VALID

from symbp import claims as C
from symbp.cli import main
from symbp.errors import SymbpError
from symbp.spec import Dense, Network
from symbp.verify import verify
from symbp.verify.context import PER_SAMPLE_B, SEEDS, batch_rows
from symbp.verify.tensor_values import Absent
from symbp.verify.tensors import SAMPLE_LETTERS, TensorCheck, _Quantities

MLP = Network(inputs=3, layers=[Dense(4, "tanh"), Dense(2, "softmax")], loss="cross_entropy")
SMALL = {"valid": VALID, "padded": PADDED, "strided": STRIDED, "pooled": POOLED}
LARGE = {"digits_cnn": NETWORKS["digits_cnn"], "digits_mlp": NETWORKS["digits_mlp"],
         "conv2d_rectangular": NETWORKS["conv2d_rectangular"],
         "conv1d_strided": NETWORKS["conv1d_strided"], "mlp": MLP}
EXAMPLES_DIR = REPO / "examples"
FRESH = ("u", "v", "w", "m", "t", "g")  # letters no printed row uses
SETTINGS = settings(derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


def _backward(network) -> list:
    return [row for section, row in _rows(network)
            if not section.startswith(DEFINITIONS) and ACCUMULATES not in row]


ROWS = {name: _backward(net) for name, net in {**SMALL, **LARGE}.items()}


# ------------------------------------------------------------ tree surgery
def _sites(obj, path=()):
    """Every node, index item and Func of a claim's tree with its path (field names and
    tuple positions), index expressions included."""
    yield path, obj
    if isinstance(obj, tuple):
        for k, item in enumerate(obj):
            yield from _sites(item, path + (k,))
    elif is_dataclass(obj):
        for f in fields(obj):
            if f.name != "span":
                yield from _sites(getattr(obj, f.name), path + (f.name,))


def _put(obj, path, new):
    if not path:
        return new
    step, rest = path[0], path[1:]
    if isinstance(step, int):
        return obj[:step] + (_put(obj[step], rest, new),) + obj[step + 1:]
    return replace(obj, **{step: _put(getattr(obj, step), rest, new)})


def _map(obj, fn):
    """``obj`` rebuilt bottom-up with ``fn`` applied to every node, item and Func."""
    if isinstance(obj, tuple):
        obj = tuple(_map(item, fn) for item in obj)
    elif is_dataclass(obj) and not isinstance(obj, C.LayerRef):
        changes = {f.name: _map(getattr(obj, f.name), fn) for f in fields(obj)
                   if f.name != "span"}
        obj = replace(obj, **changes)
    return fn(obj)


def _text(sides) -> str:
    return " = ".join(C.to_latex(side) for side in sides)


def _index_paths(claim):
    """Paths of the index items and index-expression nodes (in Indexed items, limits,
    Between/Member operands)."""
    found = []
    for path, obj in _sites(claim.sides):
        if isinstance(obj, C.Indexed):
            for k, item in enumerate(obj.indices):
                found.append(path + ("indices", k))
                if isinstance(item, C.Node):
                    found += [path + ("indices", k) + sub for sub, _ in _sites(item)
                              if isinstance(_, C.Node) and sub]
    return found


def _letters(claim) -> list:
    """The index letters of a claim (items, index expressions' letters, sums' indices)."""
    seen = []
    for _, obj in _sites(claim.sides):
        names = [item for item in obj.indices if isinstance(item, str)] if isinstance(
            obj, C.Indexed) else [obj.name] if isinstance(obj, C.Letter) else [obj.index] if \
            isinstance(obj, C.Sum) and obj.index else []
        seen += [name for name in names if not name.isdigit() and name not in seen and
                 name not in GEOMETRY]
    return seen


def _get(obj, path):
    for step in path:
        obj = obj[step] if isinstance(step, int) else getattr(obj, step)
    return obj


def mutate(claim, rng: random.Random, other_lhs) -> tuple | None:
    """``(kind, sides)`` of one random mutation of ``claim`` (of a kind with a site in it)."""
    for _ in range(20):
        mutated = _mutate_once(claim, rng, other_lhs)
        if mutated is not None:
            return mutated
    return None


def _mutate_once(claim, rng: random.Random, other_lhs) -> tuple | None:
    sides = claim.sides
    kind = rng.choice(("swap items", "replace item", "flip sign", "drop bracket",
                       "add bracket", "limits", "layer", "swap star", "wrap operator",
                       "delete factor", "other lhs"))
    sites = list(_sites(sides))
    letters = _letters(claim) or ["i"]
    if kind == "swap items":
        found = [(p, o) for p, o in sites if isinstance(o, C.Indexed) and len(o.indices) > 1]
        if not found:
            return None
        path, node = rng.choice(found)
        a, b = rng.sample(range(len(node.indices)), 2)
        items = list(node.indices)
        items[a], items[b] = items[b], items[a]
        return kind, _put(sides, path, replace(node, indices=tuple(items)))
    if kind == "replace item":
        paths = _index_paths(claim)
        if not paths:
            return None
        path = rng.choice(paths)
        new = rng.choice([rng.choice(letters), str(rng.randrange(4)), rng.choice(FRESH)])
        if not isinstance(path[-1], int):  # inside an expression: a node
            new = C.Num(Fraction(int(new))) if new.isdigit() else C.Letter(new)
        return kind, _put(sides, path, new)
    if kind == "flip sign":
        found = [p for p in _index_paths(claim) if isinstance(_get(sides, p), (C.Add, C.Sub))]
        if not found:
            return None
        path = rng.choice(found)
        node = _get(sides, path)
        flipped = (C.Sub if isinstance(node, C.Add) else C.Add)(node.left, node.right)
        return kind, _put(sides, path, flipped)
    if kind == "drop bracket":
        found = [(p, o) for p, o in sites if isinstance(o, C.MatMul) and (
            isinstance(o.left, C.Indicator) or isinstance(o.right, C.Indicator))]
        if not found:
            return None
        path, node = rng.choice(found)
        keep = node.right if isinstance(node.left, C.Indicator) else node.left
        return kind, _put(sides, path, keep)
    if kind == "add bracket":
        found = [(p, o) for p, o in sites if isinstance(o, C.Indexed) and p[:1] == (1,)]
        if not found:
            return None
        path, node = rng.choice(found)
        letter = rng.choice(letters)
        bracket = C.Indicator(C.Between(C.Num(Fraction(0)), "<=", C.Letter(letter), "<=",
                                        C.Num(Fraction(rng.randrange(1, 4)))))
        return kind, _put(sides, path, C.MatMul(bracket, node))
    if kind == "limits":
        found = [(p, o) for p, o in sites if isinstance(o, C.Sum) and o.limit is not None]
        if not found:
            return None
        path, node = rng.choice(found)
        change = rng.choice((-1, 1))
        limit = C.Add(node.limit, C.Num(Fraction(1))) if change > 0 else \
            C.Sub(node.limit, C.Num(Fraction(1)))
        if rng.random() < 0.3:
            return kind, _put(sides, path, replace(node, lower=1 - (node.lower or 0)))
        return kind, _put(sides, path, replace(node, limit=limit, upper=None))
    if kind == "layer":
        found = [(p, o) for p, o in sites if isinstance(o, C.Leaf) and o.layer is not None
                 and o.name != "n"]
        if not found:
            return None
        path, node = rng.choice(found)
        return kind, _put(sides, path, replace(node, layer=node.layer.shifted(
            rng.choice((-1, 1)))))
    if kind == "swap star":
        found = [(p, o) for p, o in sites if isinstance(o, C.Correlate)]
        if not found:
            return None
        path, node = rng.choice(found)
        return kind, _put(sides, path, replace(node, left=node.right, right=node.left))
    if kind == "wrap operator":
        found = [(p, o) for p, o in sites if isinstance(o, C.Indexed) and p[:1] == (1,)]
        if not found:
            return None
        path, node = rng.choice(found)
        func = rng.choice((C.Func("rot180"), C.Func("pad", params=(C.Num(Fraction(1)),)),
                           C.Func("dil", params=(C.Num(Fraction(2)),))))
        return kind, _put(sides, path, C.Apply(func, node))
    if kind == "delete factor":
        found = [(p, o) for p, o in sites if isinstance(o, (C.MatMul, C.Hadamard))]
        if not found:
            return None
        path, node = rng.choice(found)
        return kind, _put(sides, path, rng.choice((node.left, node.right)))
    lhs = rng.choice(other_lhs)
    return kind, (lhs,) + sides[1:]


# ------------------------------------------------------- the naive oracle
class _Unsupported(Exception):
    """A form the naive oracle does not read (whole tensors, operators, cases)."""


class Oracle:
    """A claim's sides at every assignment of their letters, by Python loops: the reading
    of CONVENTIONS §1 and the tensor claims' contract, written independently of
    :mod:`symbp.verify.tensor_values` (the quantities' arrays are the engine's)."""

    def __init__(self, claim, quantities, geometry, base):
        self.claim, self.q, self.geometry, self.base = claim, quantities, geometry or {}, base

    def index(self, item, env) -> Fraction:
        if isinstance(item, str):
            return Fraction(int(item)) if item.isdigit() else Fraction(env[item])
        kind = type(item).__name__
        if kind == "Num":
            return Fraction(item.value)
        if kind == "Letter":
            return Fraction(self.geometry[item.name]) if item.name in self.geometry and \
                item.name not in env else Fraction(env[item.name])
        if kind == "Leaf" and item.name == "n":
            return Fraction(self.q.width(item.layer))
        if kind == "Add":
            return self.index(item.left, env) + self.index(item.right, env)
        if kind == "Sub":
            return self.index(item.left, env) - self.index(item.right, env)
        if kind == "Neg":
            return -self.index(item.arg, env)
        if kind == "MatMul":
            return self.index(item.left, env) * self.index(item.right, env)
        if kind == "Div":
            return self.index(item.num, env) / self.index(item.den, env)
        if kind == "Floor":
            return Fraction(math.floor(self.index(item.arg, env)))
        if kind == "Mod":
            value, modulus = self.index(item.arg, env), self.index(item.modulus, env)
            return value - modulus * math.floor(value / modulus)
        raise _Unsupported(kind)

    def entry(self, node, env) -> float:
        indices = _entry_indices(node)
        if indices is None:
            raise _Unsupported("a whole tensor")
        array = self.q.raw(node)
        if len(indices) != array.ndim:
            raise _Unsupported("slice")
        at = []
        for item, size in zip(indices, array.shape, strict=True):
            position = self.index(item, env) - self.base
            if position.denominator != 1 or not 0 <= position < size:
                return 0.0
            at.append(int(position))
        return float(array[tuple(at)])

    def range_of(self, node: C.Sum) -> range:
        if node.limit is not None:
            return range(node.lower or 0, int(self.index(node.limit, {})) + 1)
        for _, part in C.walk(node.body):
            indices = _entry_indices(part) or ()
            if node.index in indices:
                size = self.q.raw(part).shape[indices.index(node.index)]
                return range(self.base, self.base + size)
        raise _Unsupported("sum range")

    def value(self, node, env) -> float:
        kind = type(node).__name__
        if kind == "Num":
            return float(node.value)
        if kind in ("Indexed", "Grad"):
            return self.entry(node, env)
        if kind == "Leaf" and node.name == "B":
            return float(self.q.rows if self.q.batch else PER_SAMPLE_B)
        if kind in ("MatMul", "Hadamard"):
            return self.value(node.left, env) * self.value(node.right, env)
        if kind == "Add":
            return self.value(node.left, env) + self.value(node.right, env)
        if kind == "Sub":
            return self.value(node.left, env) - self.value(node.right, env)
        if kind == "Neg":
            return -self.value(node.arg, env)
        if kind == "Div":
            return self.value(node.num, env) / self.value(node.den, env)
        if kind == "Group":
            return self.value(node.expr, env)
        if kind == "Sum":
            return sum(self.value(node.body, {**env, node.index: k})
                       for k in self.range_of(node))
        if kind == "Indicator":
            return float(self.holds(node.condition, env))
        if kind == "Power":
            return self.value(node.arg, env) ** node.exponent
        if kind == "Apply" and node.func.name not in ("pad", "dil", "rot180", "vec", "unvec"):
            return float(self.q.function(node, np.array(self.value(node.arg, env))))
        raise _Unsupported(kind)

    def holds(self, cond, env) -> bool:
        kind = type(cond).__name__
        ops = {"<=": lambda a, b: a <= b, "<": lambda a, b: a < b}
        if kind == "Between":
            low, mid, high = (self.index(part, env) for part in (cond.low, cond.middle,
                                                                 cond.high))
            return ops[cond.low_op](low, mid) and ops[cond.high_op](mid, high)
        if kind == "Member":
            value = self.index(cond.expr, env)
            return value.denominator == 1 and self.index(cond.low, env) <= value <= \
                self.index(cond.high, env)
        if kind == "Equal":
            return self.index(cond.left, env) == self.index(cond.right, env)
        if kind == "Compare":
            left, right = self.value(cond.left, env), self.value(cond.right, env)
            return {">": left > right, "<": left < right, ">=": left >= right,
                    "<=": left <= right}[cond.op]
        raise _Unsupported(kind)


def _entry_indices(node) -> tuple | None:
    """The indices of an entry (``W_{c,c'}``, ``\\frac{\\partial L}{\\partial a_{s,c}}``),
    None for a whole tensor or an operator's entry."""
    if isinstance(node, C.Grad) and isinstance(node.target, C.Indexed):
        return node.target.indices
    if isinstance(node, C.Indexed) and isinstance(node.arg, (C.Leaf, C.Grad)):
        return node.indices
    return None


def oracle_agrees(claim, network) -> bool | None:
    """Does the claim hold at every layer and point verify checks it at (by the naive
    oracle)? None where the oracle does not read the claim."""
    try:
        check = TensorCheck(claim, network)
        layers = check.layers(claim)
    except Exception:  # noqa: BLE001 - a claim verify refuses: not the oracle's to judge
        return None
    lhs = claim.lhs
    indices = _entry_indices(lhs)
    if indices is None or not all(isinstance(i, str) and not i.isdigit() for i in indices):
        return None
    base = 1 if any(isinstance(n, C.Sum) and n.lower == 1 for side in claim.sides
                    for _, n in C.walk(side)) else 0
    for l_value in layers:
        for seed in SEEDS:
            batch = check.batch(claim, l_value)
            quantities = _Quantities(check, l_value, seed, batch_rows(seed) if batch else 1,
                                     batch)
            oracle = Oracle(claim, quantities, check._geometry(l_value), base)
            try:
                shape = quantities.raw(lhs).shape
                if len(shape) != len(indices):
                    return None
                for at in itertools.product(*(range(n) for n in shape)):
                    env = {letter: k + base for letter, k in zip(indices, at, strict=True)}
                    truth = float(quantities.raw(lhs)[at])
                    claimed = oracle.value(claim.rhs, env)
                    if not math.isclose(claimed, truth, rel_tol=1e-7, abs_tol=1e-9):
                        return False
            except (_Unsupported, Absent, KeyError, ZeroDivisionError):
                return None
    return True


# ------------------------------------------------------------ properties
def _decided(text, network):
    """verify's verdict; a SymbpError must be one line (then None)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return verify(text, network)
        except SymbpError as error:
            assert "\n" not in str(error), str(error)
            return None


def _cli(text, spec_path) -> tuple:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["verify", str(spec_path), "--claim", text])
    return status, err.getvalue()


def _lhs_pool(name):
    return [C.parse_claim(row).lhs for row in ROWS[name]]


@pytest.mark.parametrize("name", sorted(SMALL) + ["mlp"])
@settings(SETTINGS, max_examples=25)
@given(data=st.data())
def test_mutants_are_decided_as_the_oracle_decides(name, data):
    network, rows = {**SMALL, "mlp": MLP}[name], ROWS[name]
    row = data.draw(st.sampled_from(rows))
    claim = C.parse_claim(row)
    mutated = mutate(claim, data.draw(st.randoms(use_true_random=False)), _lhs_pool(name))
    if mutated is None:
        return
    kind, sides = mutated
    text = _text(sides)
    verdict = _decided(text, network)
    if verdict is None or verdict.verdict == "cannot parse":
        return
    agrees = oracle_agrees(C.parse_claim(text), network)
    if agrees is not None:
        assert verdict.ok == agrees, f"{kind}\n{row}\n{text}\n{verdict}"


# ------------------------------------------------- rewrites that change nothing
def rename(sides, mapping: dict):
    """Every index letter renamed by ``mapping`` (items, index expressions, sums)."""
    def fn(obj):
        if isinstance(obj, C.Indexed):
            return replace(obj, indices=tuple(mapping.get(i, i) if isinstance(i, str) else i
                                              for i in obj.indices))
        if isinstance(obj, C.Letter):
            return replace(obj, name=mapping.get(obj.name, obj.name))
        if isinstance(obj, C.Sum) and obj.index is not None:
            return replace(obj, index=mapping.get(obj.index, obj.index))
        return obj
    return _map(sides, fn)


def one_based(obj):
    """The 1-based reading of a row: every sum with limits from 1 to its limit + 1, every
    entry's index e(i, j, ...) written e(i - 1, j - 1, ...) + 1 and every bracket's letters
    shifted the same way (the operators' parameters and strides are not indices)."""
    if isinstance(obj, tuple):
        return tuple(one_based(item) for item in obj)
    if isinstance(obj, C.Indexed):
        return replace(obj, arg=one_based(obj.arg), indices=tuple(_position(i) for i in
                                                                  obj.indices))
    if isinstance(obj, C.Sum) and obj.limit is not None:
        return replace(obj, body=one_based(obj.body), lower=1, upper=None,
                       limit=C.Add(obj.limit, C.Num(Fraction(1))))
    if isinstance(obj, (C.Between, C.Member, C.Equal)):
        return _map(obj, _minus_one)
    if isinstance(obj, C.Apply):
        return replace(obj, arg=one_based(obj.arg))
    if isinstance(obj, C.Correlate):
        return replace(obj, left=one_based(obj.left), right=one_based(obj.right))
    if isinstance(obj, C.Node) and not isinstance(obj, C.Grad):
        return replace(obj, **{f.name: one_based(getattr(obj, f.name)) for f in fields(obj)
                               if f.name != "span"})
    if isinstance(obj, C.Grad):
        return replace(obj, target=one_based(obj.target))
    return obj


def _position(item):
    if isinstance(item, str):
        return str(int(item) + 1) if item.isdigit() else item
    return C.Add(_map(item, _minus_one), C.Num(Fraction(1)))


def _minus_one(obj):
    if isinstance(obj, C.Letter) and obj.name not in GEOMETRY:
        return C.Sub(obj, C.Num(Fraction(1)))
    return obj


def _entrywise(node) -> bool:
    """Is every quantity in ``node`` read as an entry (its products then commute)?"""
    whole = 0
    for _, part in C.walk(node):
        if isinstance(part, (C.Correlate, C.Transpose, C.Ones)) or (
                isinstance(part, C.Apply) and part.func.name in ("pad", "dil", "rot180", "vec",
                                                                 "unvec")):
            return False
        if isinstance(part, (C.Leaf, C.Grad)) and part.name not in ("B", "n") if isinstance(
                part, C.Leaf) else isinstance(part, C.Grad):
            whole += 1
    entries = sum(1 for _, part in C.walk(node) if isinstance(part, C.Indexed) or (
        isinstance(part, C.Grad) and isinstance(part.target, C.Indexed)))
    return whole <= entries


def commuted(sides, rng: random.Random):
    """Products of entries, terms and nested sums in another order."""
    def fn(obj):
        if isinstance(obj, (C.MatMul, C.Hadamard, C.Add)) and _entrywise(obj) and \
                rng.random() < 0.7:
            return replace(obj, left=obj.right, right=obj.left)
        if isinstance(obj, C.Sum) and isinstance(obj.body, C.Sum) and rng.random() < 0.7:
            inner = obj.body
            return replace(inner, body=replace(obj, body=inner.body))
        return obj
    return _map(sides, fn)


GEOMETRY = ("K", "S", "P", "H", "W", "H'", "W'", "L", "L'")
PRESERVING = {name: ROWS[name] for name in ("digits_cnn", "conv1d_strided",
                                            "conv2d_rectangular", "valid", "strided")}


@pytest.mark.parametrize("name", sorted(PRESERVING))
def test_renaming_commuting_and_one_based_rows_stay_correct(name):
    """Every printed row is still correct with its letters renamed (a random permutation
    onto fresh letters; the sample letters s and r say a row is the batch's, and stay) and
    its products, terms and sums commuted; with one sum's letter renamed in that sum alone;
    and, where a sum has limits, read 1-based."""
    network = {**SMALL, **LARGE}[name]
    rng = random.Random(name)
    failures = []
    for row in PRESERVING[name]:
        claim = C.parse_claim(row)
        letters = [name for name in _letters(claim) if name not in SAMPLE_LETTERS]
        fresh = rng.sample(FRESH + ("a'", "k", "o", "h", "x'"), len(letters)) if len(
            letters) <= 11 else letters
        variants = [_text(commuted(rename(claim.sides, dict(zip(letters, fresh,
                                                                  strict=True))), rng))]
        if any(isinstance(n, C.Sum) and n.limit is not None for side in claim.sides
               for _, n in C.walk(side)):
            variants.append(_text(one_based(claim.sides)))
        sums = [(path, node) for path, node in _sites(claim.sides) if isinstance(node, C.Sum)
                and node.index is not None]
        if sums:  # one sum's own letter renamed, in that sum alone
            path, node = rng.choice(sums)
            variants.append(_text(_put(claim.sides, path, rename(node, {node.index: "m'"}))))
        for text in variants:
            verdict = _decided(text, network)
            if verdict is None or not verdict.ok:
                failures.append(f"{row}\n{text}\n{verdict}")
    assert not failures, "\n\n".join(failures)


SPECS = {"digits_cnn": EXAMPLES_DIR / "digits_cnn.toml", "digits_mlp": EXAMPLES_DIR /
         "digits_mlp.toml"}


@pytest.mark.parametrize("name", sorted(SPECS))
@settings(SETTINGS, max_examples=20)
@given(data=st.data())
def test_the_cli_decides_every_mutant_with_exit_0_1_or_2(name, data):
    """symbp verify on a mutant: exit 0, 1 or 2, at most one line on stderr, never 3."""
    network = NETWORKS[name]
    row = data.draw(st.sampled_from(ROWS.get(name) or _backward(network)))
    mutated = mutate(C.parse_claim(row), data.draw(st.randoms(use_true_random=False)),
                     [C.parse_claim(r).lhs for r in _backward(network)[:30]])
    if mutated is None:
        return
    text = _text(mutated[1])
    status, err = _cli(text, SPECS[name])
    assert status in (0, 1, 2) and err.count("\n") <= 1, (text, status, err)
    assert (status == 2) == err.startswith("symbp: error: "), (text, status, err)


D = r"\frac{\partial L}{\partial b^{(1)}_{c}} = "
G = r"\frac{\partial L}{\partial W^{(1)}_{c,c'}} = \sum_{r} "
SUM = r"\sum_{r} \sum_{i=0}^{7} \sum_{j=0}^{7} "
HUGE = [
    (D + SUM + r"\Delta^{(1)}_{r,c,i + 1000000000000000000000000,j}", "an index beyond"),
    (D + SUM + r"\Delta^{(1)}_{r,c,i/1000000000000000000000000,j}", "an index beyond"),
    (D + SUM + r"\Delta^{(1)}_{r,c,i \cdot 1000000 \cdot 1000000 \cdot 1000000,j}",
     "an index beyond"),
    (D + SUM + r"\Delta^{(1)}_{r,c,i + 1000001,j}", "an index beyond"),
    (D + SUM + r"\Delta^{(1)}_{r,c,i \bmod 0,j}", "positive integer modulus"),
    (D + SUM + r"\Delta^{(1)}_{r,c,i \bmod (0 - 2),j}", "positive integer modulus"),
    (D + r"\sum_{r} \sum_{i=0}^{-5} \Delta^{(1)}_{r,c,i,0}", "a sum over -4 values"),
    (D + r"\sum_{u=0}^{4095} \sum_{v=0}^{4095} \sum_{w=0}^{4095} \Delta^{(1)}_{0,c,u + v + w,0}",
     "more than the 4000000"),
    (D + r"\sum_{u=0}^{4095} \sum_{v=0}^{4095} \left[0 \le u \le v\right] "
         r"\Delta^{(1)}_{0,c,0,0}", "more than the 4000000"),
    (D + r"\sum_{u=0}^{4095} \sum_{v=0}^{4095} \left[u = v\right] \Delta^{(1)}_{0,c,0,0}",
     "more than the 4000000"),
    (D + r"\sum_{u=0}^{4095} \sum_{v=0}^{4095} \Delta^{(1)}_{0,c,2u v,0}",
     "more than the 4000000"),
    (G + r"\operatorname{pad}_{100000}\left(X_{r,c'}\right) \star \Delta^{(1)}_{r,c}",
     "more than the 4000000"),
    (G + r"\operatorname{dil}_{100000}\left(X_{r,c'}\right) \star \Delta^{(1)}_{r,c}",
     "more than the 4000000"),
    (G + r"\operatorname{pad}_{0 - 3}\left(X_{r,c'}\right) \star \Delta^{(1)}_{r,c}",
     "at least 0"),
    (G + r"\operatorname{dil}_{0}\left(X_{r,c'}\right) \star \Delta^{(1)}_{r,c}",
     "at least 1"),
    (G + r"\operatorname{pad}_{1}\left(X_{r,c'}\right) \star_{0} \Delta^{(1)}_{r,c}",
     "stride is at least 1"),
    (G + r"\operatorname{pad}_{300}\left(X_{r,c'}\right) \star \operatorname{pad}_{250}"
         r"\left(X_{r,c'}\right)", "a correlation of"),
]


@pytest.mark.parametrize("claim, words", HUGE)
def test_claims_too_large_to_evaluate_are_refused_before_they_allocate(claim, words):
    """Refused at their column (cannot parse, exit 2, one line), with no NumPy warning and
    without allocating more than a few megabytes on the way."""
    network = NETWORKS["digits_cnn"]
    assert _decided(D + SUM + r"\Delta^{(1)}_{r,c,i,j}", network).ok  # the engine, warm
    tracemalloc.start()
    try:
        verdict = _decided(claim, network)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert verdict.verdict == "cannot parse" and words in verdict.summary, str(verdict)
    assert peak < 50_000_000, peak
    status, err = _cli(claim, SPECS["digits_cnn"])
    assert status == 2 and err.count("\n") == 1 and words in err, err


def test_a_geometry_letter_at_a_fixed_layer_is_refused_in_those_words():
    """K, S, P, H', ... are the general layer l's; at layer 1 (a convolution) the claim
    writes the number (not 'this layer has none')."""
    claim = (r"\frac{\partial \ell}{\partial b^{(1)}_{c}} = \sum_{i=0}^{H' - 1} "
             r"\sum_{j=0}^{W' - 1} \delta^{(1)}_{c,i,j}")
    verdict = verify(claim, VALID)
    assert verdict.verdict == "cannot parse" and "general layer l" in verdict.summary, \
        str(verdict)
    assert verify(claim.replace("H' - 1", "3").replace("W' - 1", "2"), VALID).ok


@pytest.mark.parametrize("claim, right", [
    (r"z^{(l)}_{c} = \sum_{c'} a^{(l-1)}_{c'} \star_{S} W^{(l)}_{c,c'} + b^{(l)}_{c}", True),
    (r"z^{(2)}_{c} = \sum_{c'} a^{(1)}_{c'} \star_{2} W^{(2)}_{c,c'} + b^{(2)}_{c}", True),
    (r"z^{(2)}_{c} = \sum_{c'} a^{(1)}_{c'} \star W^{(2)}_{c,c'} + b^{(2)}_{c}", False),
    (r"Z^{(2)}_{s,c} = \sum_{c'} A^{(1)}_{s,c'} \star_{2} W^{(2)}_{c,c'} + b^{(2)}_{c}", True),
    # a general claim about the convolutions' entries is not read at the dense softmax layer
    # as a batch's (sample c, unit i), where it would be wrong
    (r"a^{(l)}_{c,i} = \tanh\left(z^{(l)}_{c,i}\right)", True),
])
def test_a_lowercase_slice_is_one_samples(claim, right):
    """z^{(2)}_{c} (a lowercase quantity read at a channel) is one sample's channel c, not
    the batch's sample c."""
    verdict = verify(claim, STRIDED)
    assert verdict.verdict == ("correct" if right else "incorrect"), str(verdict)


@pytest.mark.parametrize("claim, right", [
    (r"\Delta^{(5)}_{s,i} = \frac{1}{B} \left(a^{(5)}_{s,i} - Y_{s,i}\right)", True),
    (r"\delta^{(5)}_{i} = a^{(5)}_{i} - y_{i}", True),
    (r"\delta^{(5)}_{i} = \frac{1}{B} \left(a^{(5)}_{i} - y_{i}\right)", False),
    (r"\delta^{(5)}_{i} = B \left(a^{(5)}_{i} - y_{i}\right)", False),
    (D + r"\sum_{r=0}^{B - 1} \sum_{i=0}^{7} \sum_{j=0}^{7} \Delta^{(1)}_{r,c,i,j}", True),
])
def test_a_per_sample_claims_batch_size_is_not_1(claim, right):
    """A per-sample claim's B is not 1 (one sample's gradient has no 1/B); a sum's limit may
    be B - 1."""
    verdict = verify(claim, NETWORKS["digits_cnn"])
    assert verdict.verdict == ("correct" if right else "incorrect"), str(verdict)


@pytest.mark.parametrize("claim, right", [
    (D + r"\sum_{r} \sum_{j=0}^{2} \sum_{i=0}^{3} \Delta^{(1)}_{r,c,i,j} + 0 \sum_{r} "
         r"\sum_{j=0}^{2} \sum_{i=0}^{1} \Delta^{(1)}_{r,c,i,j}", True),
    (D + r"\sum_{r} \sum_{j=0}^{2} \sum_{i=0}^{1} \Delta^{(1)}_{r,c,i,j} + 0 \sum_{r} "
         r"\sum_{j=0}^{2} \sum_{i=0}^{3} \Delta^{(1)}_{r,c,i,j}", False),
    (D + r"\sum_{r} \sum_{i=0}^{3} \sum_{j=0}^{1} \Delta^{(1)}_{r,c,i,j} + \sum_{r} "
         r"\sum_{i=0}^{3} \Delta^{(1)}_{r,c,i,2}", True),
])
def test_two_sums_over_one_letter_have_their_own_ranges(claim, right):
    """The second sum over i does not lend its limits to the first (a wrong claim was called
    correct, a right one incorrect)."""
    verdict = verify(claim, VALID)
    assert verdict.verdict == ("correct" if right else "incorrect"), str(verdict)
