"""The derivation engine: backpropagation by the chain rule, in index notation.

Contract: :func:`derive` takes a validated :class:`~symbp.spec.Network` and
returns a :class:`Derivation` holding, for the general layer ``l`` and for
each concrete layer, every gradient formula in index form (SymPy ``Indexed``
expressions) and in matrix form (:mod:`symbp.forms` trees), per sample and
for a batch. Nothing here is a hand-written derivative:

- the dense layer ``z_i = sum_j W_ij a_j + b_i`` is differentiated by
  ``sympy.diff``, which yields Kronecker deltas; :func:`sum_out` sums them
  away, which is where transposes, outer products and the bias dropping out
  of the recursion come from;
- each activation's ``f'`` is ``sympy.diff`` of its forward definition,
  rewritten in terms of the layer's own output ``a`` when that is exact and
  cheaper (:func:`activation_derivative`);
- the output error term differentiates the loss through the output
  activation (softmax by its index definition) and simplifies, using the
  targets' sum-to-one constraint only when the loss declares it.

Widths stay symbolic (``n_l``), so the cost does not grow with layer width;
concrete layers are obtained by renaming, so it grows linearly with depth.
Before a :class:`Derivation` is returned it passes the numeric self-check of
:mod:`symbp.selfcheck`; a mismatch raises
:class:`~symbp.errors.InternalError` rather than returning a wrong formula.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache, partial

import sympy as sp
from sympy.core.function import AppliedUndef

from symbp import forms
from symbp.engine.activation import (
    ActivationDerivative,
    activation_derivative,
    expansion_is_small,
    positive_factors,
)
from symbp.forms import LAYER, Leaf, Tensor
from symbp.registry import A, Activation, Loss, X, Y, dense_forward, softmax_forward

OUTPUT = sp.Symbol("L", integer=True, positive=True)
BATCH = sp.Symbol("B", integer=True, positive=True)
i, j, k, m, r, s = sp.symbols("i j k m r s", integer=True, nonnegative=True)
_UNDEFINED_F = sp.Function("f")
_OUTPUT_FPRIME = sp.Function("fprime_output")


def width(layer) -> sp.Symbol:
    """The symbolic width ``n_{layer}``."""
    return sp.Symbol(f"n_{{{sp.latex(layer)}}}", integer=True, positive=True)


@lru_cache(maxsize=None)
def base(tensor: Tensor) -> sp.IndexedBase:
    """The IndexedBase of a tensor; its label is the tensor's LaTeX name. Every entry
    is real, so that ``sympy.diff`` of ``abs``, ``max`` and ``min`` is ``sign`` and
    ``Heaviside`` rather than the complex ``re``/``im`` forms."""
    return _real_base(tensor.latex)


def _real_base(label: str) -> sp.IndexedBase:
    return sp.IndexedBase(sp.Symbol(label), real=True)


def tensor_table(*tensors: Tensor) -> dict:
    return {base(t).label: t for t in tensors}


# ------------------------------------------------------------ Kronecker sums
def sum_out(expr: sp.Expr) -> sp.Expr:
    """Sum away Kronecker deltas: ``sum_k d_{kq} g(k) = g(q)``; pull constants out of sums.

    Indices are in range by construction, so no Piecewise range condition is kept.
    Piecewise factors (relu's derivative) are held opaque meanwhile, so that
    expanding a product does not push a Kronecker delta inside their branches.
    """
    hidden, table = _hide_piecewise(expr)
    summed = hidden.replace(lambda e: isinstance(e, sp.Sum), _reduce_sum)
    return summed.replace(
        lambda e: isinstance(e, AppliedUndef) and e.func in table,
        lambda e: table[e.func][0].xreplace(dict(zip(table[e.func][1], e.args, strict=True))))


def _hide_piecewise(expr):
    """Replace each Piecewise by an opaque function of the Indexed objects it uses."""
    table = {}

    def hide(piecewise):
        arguments = tuple(sorted(piecewise.atoms(sp.Indexed), key=sp.default_sort_key))
        function = sp.Function(f"piecewise{len(table)}")
        table[function] = (piecewise, arguments)
        return function(*arguments)

    return expr.replace(lambda e: isinstance(e, sp.Piecewise), hide), table


def _reduce_sum(total: sp.Sum) -> sp.Expr:
    expr = total.function
    for index, low, high in total.limits:
        expr = _sum_one_index(expr, index, low, high)
    return expr


def _sum_one_index(expr, index, low, high):
    terms = []
    for term in sp.Add.make_args(sp.expand(expr)):
        factors = sp.Mul.make_args(term)
        delta = next((f for f in factors if isinstance(f, sp.KroneckerDelta)
                      and index in f.args), None)
        if delta is not None:
            other = delta.args[0] if delta.args[1] == index else delta.args[1]
            rest = sp.Mul(*[f for f in factors if f is not delta])
            terms.append(rest.subs(index, other))
            continue
        constant = sp.Mul(*[f for f in factors if not f.has(index)])
        varying = sp.Mul(*[f for f in factors if f.has(index)])
        summed = (high - low + 1) if varying == 1 else sp.Sum(varying, (index, low, high))
        terms.append(constant * summed)
    return sp.Add(*terms)


# ----------------------------------------------------------------- formulas
@dataclass
class Formula:
    """One derived quantity: index form (with its free indices) and matrix form.

    A concrete layer's index form is built on first use (printing asks for it,
    code generation does not): ``make_index`` computes it.
    """

    name: str  # e.g. "delta", "dW", "db"
    layer: object  # LAYER, OUTPUT or an int
    batch: bool
    free: tuple
    matrix: object
    tensors: dict  # IndexedBase label -> Tensor, for printing the index form
    make_index: Callable[[], sp.Expr] = field(repr=False)

    @cached_property
    def index(self) -> sp.Expr:
        return self.make_index()

    def at_layer(self, mapping: dict, fprime=None) -> "Formula":
        """The same formula at a concrete layer; ``fprime`` replaces ``f_l'`` leaves."""
        def rename(tensor):
            concrete = _concrete(tensor, mapping)
            if tensor.letter == "fprime" and fprime is not None:
                return fprime(concrete)
            return Leaf(concrete)

        tensors = {base(_concrete(t, mapping)).label: _concrete(t, mapping)
                   for t in self.tensors.values()}
        return Formula(self.name, _substitute(self.layer, mapping), self.batch, self.free,
                       forms.map_tensors(self.matrix, rename), tensors,
                       partial(self._index_at_layer, mapping, tensors, fprime))

    def _index_at_layer(self, mapping: dict, tensors: dict, fprime) -> sp.Expr:
        renamed = {base(t).label: base(_concrete(t, mapping)).label for t in self.tensors.values()}
        index = self.index.xreplace({_real_base(old.name): _real_base(new.name)
                                     for old, new in renamed.items()})
        index = index.xreplace({**renamed, **_width_mapping(tuple(mapping.items()))})
        return _inline_fprime(index, tensors, fprime) if fprime is not None else index


def _inline_fprime(index: sp.Expr, tensors: dict, fprime) -> sp.Expr:
    """Replace ``f_l'(z_j)`` placeholders by the layer's derived derivative, elementwise."""
    def value(indexed):
        node = fprime(tensors[indexed.base.label])
        return node.expr.xreplace({symbol: base(tensor)[indexed.indices]
                                   for symbol, tensor in node.tensors})

    return index.replace(
        lambda e: isinstance(e, sp.Indexed) and tensors.get(e.base.label) is not None
        and tensors[e.base.label].letter == "fprime", value)


def _substitute(value, mapping):
    if not isinstance(value, sp.Basic):
        return value
    return _substitute_cached(value, tuple(sorted(mapping.items(), key=str)))


@lru_cache(maxsize=None)
def _substitute_cached(value, mapping):
    return value.subs(dict(mapping))


def _concrete(tensor: Tensor, mapping: dict) -> Tensor:
    return Tensor(tensor.letter, _substitute(tensor.layer, mapping), tensor.batch)


@lru_cache(maxsize=None)
def _width_mapping(mapping: tuple) -> dict:
    """``n_{l}``, ``n_{l+1}``, ... -> the concrete widths' symbols (``n_{3}``)."""
    return {width(e): width(e.subs(dict(mapping)))
            for e in (LAYER - 1, LAYER, LAYER + 1, OUTPUT)}


def _formula(name, layer, batch, index, free, tensors, like=None) -> Formula:
    """A formula from its index form; a constant one takes the shape of ``like``."""
    index = _tidy_index(index)
    matrix = forms.to_matrix(index, free, tensors, like)
    return Formula(name, layer, batch, free, matrix, tensors, lambda: index)


TIDY_BUDGET = 400  # nodes of an index formula (a batch delta) worth expanding and factoring


def _tidy_index(expr: sp.Expr) -> sp.Expr:
    """Pick the shortest of a few exact rewrites; keep the sign on the outside."""
    candidates = [expr]
    if expansion_is_small(expr, TIDY_BUDGET):
        candidates.append(sp.expand(expr))
        if not expr.has(sp.Sum):
            candidates.append(sp.factor(sp.cancel(expr)))
    best = min(candidates, key=lambda e: (sp.count_ops(e), sp.default_sort_key(e)))
    return positive_factors(best)


# -------------------------------------------------------- the dense layer
def _layer_tensors(layer, batch):
    names = dict(
        W=Tensor("W", layer), b=Tensor("b", layer),
        z=Tensor("z", layer, batch), a=Tensor("a", layer, batch),
        a_prev=Tensor("a", layer - 1, batch), delta=Tensor("delta", layer, batch),
        fprime=Tensor("fprime", layer, batch),
    )
    return names, {key: base(t) for key, t in names.items()}


def _row(indexed_base, batch, row, column):
    return indexed_base[row, column] if batch else indexed_base[column]


def hidden_delta(batch: bool) -> Formula:
    """``delta^{(l)}`` from ``delta^{(l+1)}``: differentiate layer ``l+1``'s dense map."""
    nxt, nxt_b = _layer_tensors(LAYER + 1, batch)
    cur, cur_b = _layer_tensors(LAYER, batch)
    z_next = dense_forward(nxt_b["W"], nxt_b["b"], cur_b["a"], i, m, width(LAYER),
                           sample=s if batch else None)
    # dl/da_j = sum_i delta_i dz_i/da_j   (batch: over the same sample row s)
    dl_da = sum_out(sp.Sum(_row(nxt_b["delta"], batch, s, i)
                           * sp.diff(z_next, _row(cur_b["a"], batch, s, k)),
                           (i, 0, width(LAYER + 1) - 1)))
    # a_k = f(z_k) elementwise: da_k/dz_j comes out as a Kronecker delta times f'(z_k)
    activation = _UNDEFINED_F(_row(cur_b["z"], batch, s, k))
    da_dz = sp.diff(activation, _row(cur_b["z"], batch, s, j)).replace(
        lambda e: isinstance(e, sp.Derivative), lambda e: _row(cur_b["fprime"], batch, s, k))
    delta = sum_out(sp.Sum(dl_da * da_dz, (k, 0, width(LAYER) - 1)))
    free = (s, j) if batch else (j,)
    return _formula("delta", LAYER, batch, delta, free,
                    tensor_table(*nxt.values(), *cur.values()))


def parameter_gradients(batch: bool) -> list[Formula]:
    """``dl/dW^{(l)}`` and ``dl/db^{(l)}`` from ``delta^{(l)}`` (batch: mean over rows)."""
    cur, cur_b = _layer_tensors(LAYER, batch)
    z = dense_forward(cur_b["W"], cur_b["b"], cur_b["a_prev"], k, m, width(LAYER - 1),
                      sample=r if batch else None)
    delta_k = _row(cur_b["delta"], batch, r, k)
    limits = [(k, 0, width(LAYER) - 1)] + ([(r, 0, BATCH - 1)] if batch else [])
    scale = 1 / BATCH if batch else 1
    table = tensor_table(*cur.values())
    gradients = []
    for name, parameter, free in (("dW", cur_b["W"][i, j], (i, j)), ("db", cur_b["b"][i], (i,))):
        expr = sum_out(scale * sp.Sum(delta_k * sp.diff(z, parameter), *limits))
        gradients.append(_formula(name, LAYER, batch, expr, free, table))
    return gradients


# --------------------------------------------------------- the output layer
def output_delta(activation: Activation, derivative: ActivationDerivative | None,
                 loss: Loss, batch: bool) -> Formula:
    """``delta^{(L)} = dl/dz^{(L)}`` for this loss through this output activation."""
    out, out_b = _layer_tensors(OUTPUT, batch)
    y_tensor = Tensor("y", None, batch)
    y_b = base(y_tensor)
    n_out = width(OUTPUT)

    def at(indexed_base, index):
        return _row(indexed_base, batch, s, index)

    loss_sum = sp.Sum(loss.expr.subs({A: at(out_b["a"], m), Y: at(y_b, m)}), (m, 0, n_out - 1))
    dl_da = sum_out(sp.diff(loss_sum, at(out_b["a"], k)))
    if activation.is_softmax:
        delta = _softmax_delta(dl_da, out_b, at, n_out)
    else:  # f'(z_k) stays opaque while summing (Sum would fold a Piecewise around deltas)
        da_dz = sp.diff(_UNDEFINED_F(at(out_b["z"], k)), at(out_b["z"], j)).replace(
            lambda e: isinstance(e, sp.Derivative), lambda e: _OUTPUT_FPRIME(at(out_b["z"], k)))
        delta = sum_out(sp.Sum(dl_da * da_dz, (k, 0, n_out - 1)))
    if not activation.is_softmax:
        delta = delta.replace(
            lambda e: isinstance(e, AppliedUndef) and e.func == _OUTPUT_FPRIME,
            lambda e: derivative.best.subs({X: e.args[0],
                                            A: out_b["a"][e.args[0].indices]}))
    if loss.targets_sum_to_one:
        delta = delta.replace(lambda e: _is_target_sum(e, y_b), lambda e: sp.Integer(1))
    free = (s, j) if batch else (j,)
    return _formula("delta", OUTPUT, batch, delta, free,
                    tensor_table(*out.values(), y_tensor), like=out["a"])


def _softmax_delta(dl_da, out_b, at, n_out):
    """``delta_j = sum_k g_k da_k/dz_j`` with ``g = dl/da`` held as a named quantity
    while summing, so that collecting terms gives ``a_j (g_j - sum_k a_k g_k)`` for
    any loss; ``g`` is substituted afterwards and constants leave the sums (for
    cross-entropy ``sum_k a_k g_k = -sum_k y_k``)."""
    g_b = _real_base("g")
    jacobian = _softmax_jacobian(out_b["z"], out_b["a"], at, n_out)
    delta = sp.factor_terms(sum_out(sp.Sum(at(g_b, k) * jacobian, (k, 0, n_out - 1))))
    delta = delta.replace(lambda e: isinstance(e, sp.Indexed) and e.base == g_b,
                          lambda e: dl_da.xreplace({k: e.indices[-1]}))
    return delta.replace(lambda e: isinstance(e, sp.Sum), _constants_out_of_sum)


def _constants_out_of_sum(total: sp.Sum) -> sp.Expr:
    (index, *_), = total.limits
    factors = sp.Mul.make_args(total.function)
    constant = sp.Mul(*[f for f in factors if not f.has(index)])
    return constant * total.func(sp.Mul(*[f for f in factors if f.has(index)]), *total.limits)


def _softmax_jacobian(z_b, a_b, at, n_out):
    """``da_k/dz_j`` of softmax by ``sympy.diff``, rewritten in its outputs ``a``."""
    forward = softmax_forward(_RowBase(z_b, at), k, i, n_out)
    jacobian = sum_out(sp.diff(forward, at(z_b, j)))
    normaliser = forward.as_numer_denom()[1]
    total = sp.Dummy("S", positive=True)
    jacobian = jacobian.subs(normaliser, total)
    # invert the forward definition a_k = exp(z_k) / S for exp(z_k)
    unknown = sp.Dummy("u")
    solved, exp_zk = sp.solve_linear(at(a_b, k) - unknown / total, symbols=[unknown])
    if solved != unknown:
        raise AssertionError("softmax: cannot invert a_k = exp(z_k) / S")
    jacobian = jacobian.replace(
        lambda e: isinstance(e, sp.exp) and isinstance(e.args[0], sp.Indexed)
        and e.args[0].base == z_b,
        lambda e: exp_zk.subs(at(a_b, k), a_b[e.args[0].indices]))
    jacobian = sp.expand(jacobian)
    if jacobian.has(total):
        raise AssertionError("softmax Jacobian did not reduce to its outputs")
    return jacobian


class _RowBase:
    """``z[k]`` that means ``z[s, k]`` in batch form."""

    def __init__(self, indexed_base, at):
        self.indexed_base, self.at = indexed_base, at

    def __getitem__(self, index):
        return self.at(self.indexed_base, index)


def _is_target_sum(expr, y_b) -> bool:
    if not isinstance(expr, sp.Sum) or len(expr.limits) != 1:
        return False
    body = expr.function
    return isinstance(body, sp.Indexed) and body.base == y_b and expr.limits[0][0] in body.indices


# --------------------------------------------------------------- derivation
@dataclass
class LayerFormulas:
    """All formulas of one concrete layer, per sample and for a batch."""

    layer: int
    activation: Activation
    derivative: ActivationDerivative | None  # None for softmax
    delta: Formula
    dW: Formula
    db: Formula
    batch_delta: Formula
    batch_dW: Formula
    batch_db: Formula


@dataclass
class Derivation:
    """The derived formulas of a network: general layer ``l`` and every concrete layer."""

    network: object
    general: dict = field(default_factory=dict)  # name -> Formula (per sample and batch_*)
    derivatives: dict = field(default_factory=dict)  # activation name -> ActivationDerivative
    layers: list = field(default_factory=list)  # LayerFormulas, layer 1 first

    def _repr_latex_(self) -> str:
        """Jupyter shows a derivation as its formulas."""
        from symbp.printing import document, text_block

        return "\n".join(f"$${text_block(section).strip()}$$"
                         for section in document(self) if section.rows)


def _fprime_node(derivative: ActivationDerivative, batch: bool):
    def node(tensor: Tensor):
        layer = tensor.layer
        a_t, z_t = Tensor("a", layer, batch), Tensor("z", layer, batch)
        expr = derivative.best.subs({A: sp.Symbol(a_t.code, real=True),
                                     X: sp.Symbol(z_t.code, real=True)})
        tensors = [(sp.Symbol(a_t.code, real=True), a_t), (sp.Symbol(z_t.code, real=True), z_t)]
        return forms.canonical_elementwise(expr, tensors)
    return node


@lru_cache(maxsize=None)
def _general_hidden():
    formulas = {}
    for batch in (False, True):
        prefix = "batch_" if batch else ""
        formulas[prefix + "delta"] = hidden_delta(batch)
        dW, db = parameter_gradients(batch)
        formulas[prefix + "dW"], formulas[prefix + "db"] = dW, db
    return formulas


@lru_cache(maxsize=None)
def _output_deltas(activation: Activation, loss: Loss):
    derivative = None if activation.is_softmax else activation_derivative(
        activation.name, activation.expr)
    return (output_delta(activation, derivative, loss, False),
            output_delta(activation, derivative, loss, True))


_DERIVED: dict = {}


def derive(network, check: bool = True) -> Derivation:
    """Derive every gradient of ``network``; with ``check``, self-check numerically first.

    Results are cached per spec content, so generating and training in one
    process derive once.
    """
    if not network.is_mlp:  # until the graph engine (symbp.engine) prints and generates them
        from symbp.errors import SpecError

        layer = next((n for n, item in enumerate(network.layers, 1) if item.type != "dense"),
                     None)
        where = f"layers[{layer}].type" if layer else "training.weight_decay"
        raise SpecError(f"{where}: this symbp derives, prints and generates dense layers "
                        "without weight decay only")
    key = (repr(network.to_dict()), check)
    if key not in _DERIVED:
        _DERIVED[key] = _derive(network, check)
    return _DERIVED[key]


def _derive(network, check: bool) -> Derivation:
    general = dict(_general_hidden())
    depth = network.depth
    output_activation = network.activation_of(depth)
    delta_out, batch_delta_out = _output_deltas(output_activation, network.loss_definition)
    general["delta_output"], general["batch_delta_output"] = delta_out, batch_delta_out
    derivation = Derivation(network, general)
    for layer in range(1, depth + 1):
        activation = network.activation_of(layer)
        derivative = None if activation.is_softmax else activation_derivative(
            activation.name, activation.expr)
        if derivative is not None:
            derivation.derivatives[activation.name] = derivative
        derivation.layers.append(_concrete_layer(general, layer, depth, activation, derivative))
    if check:
        from symbp.selfcheck import self_check

        self_check(derivation)
    return derivation


def _concrete_layer(general, layer, depth, activation, derivative) -> LayerFormulas:
    mapping = {LAYER: layer, OUTPUT: depth}
    concrete = {}
    for batch in (False, True):
        prefix = "batch_" if batch else ""
        fprime = _fprime_node(derivative, batch) if derivative else None
        delta = general[prefix + ("delta_output" if layer == depth else "delta")]
        concrete[prefix + "delta"] = delta.at_layer(mapping, fprime)
        concrete[prefix + "dW"] = general[prefix + "dW"].at_layer(mapping)
        concrete[prefix + "db"] = general[prefix + "db"].at_layer(mapping)
    return LayerFormulas(layer, activation, derivative, **concrete)
