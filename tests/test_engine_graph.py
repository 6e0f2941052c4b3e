"""The graph engine against PyTorch: every op's derived gradients, alone and mixed.

Each network is built from its spec into a graph of index-notation ops
(:mod:`symbp.ops`), its gradients derived by reverse mode over the graph
(:mod:`symbp.engine.backward`: ``sympy.diff`` of each consumer's forward
definition, contracted) and evaluated by a direct NumPy reading of the index
notation (:mod:`symbp.engine.numeric`). The oracle is the same network written
with ``torch.nn.functional``, differentiated by autograd, in float64; the
agreement asked for is 1e-9 relative (it is about 1e-15).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch
from conftest import random_graph

from symbp.engine.backward import backward
from symbp.engine.graph import Tensor
from symbp.engine.indices import BOUND, FREE
from symbp.engine.numeric import run
from symbp.ops.base import BATCH, LAYER_TYPES, Builder, Option, layer_type
from symbp.ops.network import build_graph
from symbp.spec import Dense, Network

F = torch.nn.functional
BATCH_SIZE = 7
TOLERANCE = 1e-9


def torch_activation(name):
    return {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
            "identity": lambda t: t, "softplus": F.softplus, "silu": F.silu,
            "elu": F.elu, "leaky_relu": F.leaky_relu, "gelu": F.gelu}[name]


def torch_forward(network, P, X, masks, training=True):
    """The network written with torch ops (the independent oracle); ``P`` are tensors."""
    a, named = X, {"input": X}
    for index, layer in enumerate(network.layers, 1):
        options = layer.options
        if layer.type == "dense":
            z = a @ P[f"W{index}"].T + P[f"b{index}"]
            a = torch.softmax(z, 1) if options["activation"] == "softmax" else \
                torch_activation(options["activation"])(z)
        elif layer.type == "activation":
            a = torch_activation(options["activation"])(a)
        elif layer.type == "layer_norm":
            a = F.layer_norm(a, a.shape[1:], P[f"gamma{index}"], P[f"beta{index}"],
                             eps=options["eps"])
        elif layer.type == "batch_norm":
            a = F.batch_norm(a, None, None, P[f"gamma{index}"], P[f"beta{index}"],
                             training=True, eps=options["eps"])
        elif layer.type == "residual":
            a = a + named[options["from"]]
        elif layer.type == "dropout":
            a = a * masks[f"mask{index}"] / (1 - options["rate"])
        if layer.name:
            named[layer.name] = a
    return a


def torch_loss(network, a, Y, P):
    name = network.loss
    if name == "cross_entropy":
        per_sample = -(Y * torch.log(a)).sum(1)
    elif name == "bce":
        per_sample = -(Y * torch.log(a) + (1 - Y) * torch.log(1 - a)).sum(1)
    else:
        per_sample = ((a - Y) ** 2 / 2).sum(1)
    decay = network.training["weight_decay"] / 2 * sum(
        (value**2).sum() for key, value in P.items() if key.startswith("W"))
    return per_sample.mean() + decay


def given_arrays(builder, rng):
    sizes = {**builder.sizes, BATCH: BATCH_SIZE}
    arrays = {}
    for tensor in builder.graph.tensors.values():
        shape = tuple(int(sp.sympify(d).xreplace(sizes)) for d in tensor.shape)
        if tensor.role in ("input", "parameter"):
            arrays[tensor.name] = rng.normal(size=shape)
        elif tensor.role == "mask":
            arrays[tensor.name] = (rng.random(shape) > 0.3).astype(float)
        elif tensor.role == "target":
            arrays[tensor.name] = rng.dirichlet(np.ones(shape[1]), shape[0]) \
                if builder.network.loss == "cross_entropy" else rng.random(shape)
    return arrays, sizes


def assert_matches_torch(network, seed=0):
    builder = build_graph(network)
    gradients = backward(builder.graph, ("parameter", "input"))
    arrays, sizes = given_arrays(builder, np.random.default_rng(seed))
    values = run(builder.graph, arrays, sizes, gradients)
    leaves = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
              for k, v in arrays.items() if builder.graph.tensors[k].role in ("input", "parameter")}
    masks = {k: torch.tensor(v) for k, v in arrays.items() if k.startswith("mask")}
    params = {k: v for k, v in leaves.items() if k != "X"}
    output = torch_forward(network, params, leaves["X"], masks)
    loss = torch_loss(network, output, torch.tensor(arrays["Y"]), params)
    loss.backward()
    assert values["L"] == pytest.approx(loss.item(), rel=TOLERANCE)
    for name, leaf in leaves.items():
        expected = leaf.grad.numpy()
        # a gradient that is exactly 0 (a bias before batch norm) is rounding noise in both
        error = np.abs(values[f"g_{name}"] - expected).max() / max(np.abs(expected).max(), 1e-6)
        assert error < TOLERANCE, (name, error)


CASES = {
    "mlp": [Dense(5, "tanh"), Dense(3, "softmax")],
    "layer_norm": [Dense(5, "relu"), {"type": "layer_norm"}, Dense(3, "softmax")],
    "batch_norm": [Dense(5, "identity"), {"type": "batch_norm", "eps": 1e-3},
                   {"type": "activation", "activation": "tanh"}, Dense(2, "sigmoid")],
    "residual": [Dense(4, "tanh", name="h"), Dense(4, "tanh"), {"type": "residual", "from": "h"},
                 Dense(3, "softmax")],
    "residual_from_input": [Dense(4, "softplus"), {"type": "residual", "from": "input"},
                            Dense(2)],
    "dropout": [Dense(6, "relu"), {"type": "dropout", "rate": 0.25}, Dense(3, "softmax")],
    "everything": [Dense(6, "tanh", name="h"), {"type": "batch_norm"},
                   {"type": "dropout", "rate": 0.2}, {"type": "residual", "from": "h"},
                   {"type": "layer_norm"}, Dense(3, "softmax")],
}
LOSSES = {"mlp": "cross_entropy", "layer_norm": "cross_entropy", "batch_norm": "bce",
          "residual": "cross_entropy", "residual_from_input": "mse", "dropout": "cross_entropy",
          "everything": "cross_entropy"}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("weight_decay", [0.0, 0.03])
def test_every_op_matches_torch(case, weight_decay):
    network = Network(inputs=4, layers=CASES[case], loss=LOSSES[case],
                      training={"weight_decay": weight_decay})
    assert_matches_torch(network)


@pytest.mark.parametrize("seed", range(12))
def test_random_graphs_match_torch(seed):
    """Random stacks of every op with every activation (a sweep, not one picked case)."""
    assert_matches_torch(random_graph(seed), seed)


def test_softmax_vjp_is_derived_in_its_output():
    """No exp(z) is left in softmax's VJP: it reads a, as a ⊙ (g - sum_k a_k g_k)."""
    builder = build_graph(Network(inputs=3, layers=[Dense(4, "softmax")], loss="mse"))
    (gradient,) = [g for g in backward(builder.graph) if g.of.name == "z1"]
    a, g = (builder.graph.tensors["a1"].base, sp.IndexedBase("g_a1", real=True))
    i0, i1, k0 = FREE[0], FREE[1], BOUND[0]
    expected = a[i0, i1] * (g[i0, i1] - sp.Sum(a[i0, k0] * g[i0, k0], (k0, 0, 3)))
    assert not gradient.expr.has(sp.exp)
    assert sp.simplify((gradient.expr - expected).subs(builder.sizes).doit()) == 0


# ------------------------------------------------- a new op, from its definition alone
@pytest.fixture
def rms_norm():
    """RMS norm, ``a = g ⊙ x / sqrt(mean(x²) + eps)``, registered from its forward definition."""
    def build(builder: Builder, layer):
        x = builder.previous
        s, i = FREE[:2]
        k = BOUND[0]
        n = x.shape[-1]
        gain = builder.given("g", (n,), "parameter", init="ones")
        out = builder.output()
        rms = sp.sqrt(sp.Sum(x[s, k] ** 2, (k, 0, n - 1)) / n + sp.Float(layer.options["eps"]))
        builder.graph.define(out, gain[i] * x[s, i] / rms, "rms_norm")
        return out

    layer_type("rms_norm", "root-mean-square normalization", eps=Option(1e-6))(build)
    yield
    del LAYER_TYPES["rms_norm"]


def test_a_new_op_from_its_forward_definition_alone(rms_norm):
    network = Network(inputs=4, layers=[Dense(5, "tanh"), {"type": "rms_norm"},
                                        Dense(3, "softmax")], loss="cross_entropy")
    builder = build_graph(network)
    gradients = backward(builder.graph, ("parameter", "input"))
    arrays, sizes = given_arrays(builder, np.random.default_rng(3))
    values = run(builder.graph, arrays, sizes, gradients)
    P = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items() if k != "Y"}
    h = torch.tanh(P["X"] @ P["W1"].T + P["b1"])
    r = P["g2"] * h / torch.sqrt((h**2).mean(1, keepdim=True) + 1e-6)
    z = r @ P["W3"].T + P["b3"]
    loss = -(torch.tensor(arrays["Y"]) * torch.log_softmax(z, 1)).sum(1).mean()
    loss.backward()
    for name, leaf in P.items():
        expected = leaf.grad.numpy()
        assert np.abs(values[f"g_{name}"] - expected).max() < TOLERANCE * np.abs(expected).max()
    # ... and its formulas print, its LaTeX has its section, and its generated code is exact
    from symbp.codegen import generate_source, load_module
    from symbp.engine.derivation import derive_graph
    from symbp.printing import render

    latex = render(derive_graph(network), "latex")
    assert "op rms_norm" in latex and r"\frac{\partial L}{\partial g^{(2)}_{i}}" in latex
    module = load_module(generate_source(network))
    params = {name: arrays[name] for name in module.PARAM_NAMES}
    generated = module.gradients(params, arrays["X"], arrays["Y"])
    for name, leaf in P.items():
        if name != "X":
            np.testing.assert_allclose(generated[name], leaf.grad.numpy(), rtol=1e-9,
                                       atol=1e-12)


def test_a_graph_reads_any_earlier_tensor():
    builder = build_graph(Network(inputs=3, layers=[Dense(3, "tanh", name="h"), Dense(3, "tanh"),
                                                    {"type": "residual", "from": "h"}],
                                  loss="mse"))
    (equation,) = [e for e in builder.graph.equations if e.op == "residual"]
    assert [t.name for t in equation.inputs] == ["a1", "a2"]
    consumers = [e.out.name for e in builder.graph.consumers("a1")]
    assert consumers == ["z2", "a3"]
    gradient = next(g for g in backward(builder.graph) if g.of.name == "a1")
    assert len(gradient.paths) == 2  # the sum of its two paths


def test_tensor_roles_are_checked():
    with pytest.raises(ValueError):
        Tensor("q", (), "nonsense")


# ------------------------------------------------------- simplified derivations
def test_simplified_gradients_still_match_torch():
    from symbp.engine.derivation import derive_graph

    network = Network(inputs=4, layers=CASES["everything"], loss="cross_entropy",
                      training={"weight_decay": 0.01})
    derivation = derive_graph(network)  # self-checked against finite differences
    assert derivation.gradient_of("a6") is None  # dL/da^(L) was inlined into softmax's VJP
    builder = derivation.train
    arrays, sizes = given_arrays(builder, np.random.default_rng(5))
    values = run(builder.graph, arrays, sizes, derivation.gradients)
    unsimplified = run(builder.graph, arrays, sizes, backward(builder.graph))
    for gradient in derivation.gradients:
        if gradient.of.role == "parameter":
            np.testing.assert_allclose(values[gradient.adjoint.name],
                                       unsimplified[gradient.adjoint.name], rtol=1e-12,
                                       atol=1e-14)


@pytest.mark.parametrize("output, loss", [("softmax", "cross_entropy"), ("sigmoid", "bce")])
def test_output_delta_of_the_matching_loss_is_a_minus_y_over_b(output, loss):
    from symbp.engine.derivation import derive_graph

    derivation = derive_graph(Network(inputs=3, layers=[Dense(4, "tanh"), Dense(2, output)],
                                      loss=loss))
    delta = derivation.gradient_of("z2").expr
    a, Y = (derivation.graph.tensors[name].entry() for name in ("a2", "Y"))
    assert sp.simplify(delta - (a - Y) / BATCH) == 0
    assert not delta.has(sp.Sum)


def test_a_statistic_read_backwards_removes_a_zero_path():
    """Layer norm's μ reaches σ² too, through sum_k (x_k - μ) = 0: no such term is left."""
    from symbp.engine.derivation import derive_graph

    derivation = derive_graph(Network(inputs=3, layers=[Dense(4, "tanh"), {"type": "layer_norm"},
                                                        Dense(2, "sigmoid")], loss="bce"))
    assert derivation.gradient_of("mu2") is None  # inlined into the input's gradient
    read = {e.base.label.name for e in derivation.gradient_of("a1").expr.atoms(sp.Indexed)}
    assert "mu2" not in read and "a1" not in read  # x − μ was read back as σ x̂


@pytest.mark.parametrize("kind, count, axis", [("layer_norm", sp.Symbol("n_{1}", integer=True,
                                                                           positive=True), 1),
                                               ("batch_norm", BATCH, 0)])
def test_normalization_input_gradient_is_the_textbook_form(kind, count, axis):
    """(1/σ)(g − mean(g) − x̂ ⊙ mean(g ⊙ x̂)), g = γ ⊙ dL/da: reached by simplification
    (statistics inlined, x − μ read back as σ x̂, sum_k (x_k − μ) = 0), means over the
    features for layer norm and over the batch for batch norm."""
    from symbp.engine.derivation import derive_graph

    derivation = derive_graph(Network(inputs=3, layers=[Dense(4, "tanh"), {"type": kind},
                                                        Dense(2, "sigmoid")], loss="bce"))
    tensors = derivation.graph.tensors
    g, xhat, sigma2 = (sp.IndexedBase("g_xhat2", real=True), tensors["xhat2"].base,
                       tensors["sigma22"].base)
    i0, i1, k = FREE[0], FREE[1], BOUND[0]

    def at(base, row, column):
        return base[row, column]

    def mean(body):
        return sp.Sum(body, (k, 0, count - 1)) / count

    row = (lambda base: at(base, i0, k)) if axis == 1 else (lambda base: at(base, k, i1))
    stat = sigma2[i0] if axis == 1 else sigma2[i1]
    expected = (g[i0, i1] - mean(row(g)) - xhat[i0, i1] * mean(row(g) * row(xhat))) / \
        sp.sqrt(stat + sp.Float(1e-5))
    assert sp.simplify(derivation.gradient_of("a1").expr - expected) == 0
    assert {g.of.name for g in derivation.gradients}.isdisjoint({"mu2", "sigma22"})
