"""Tests for the printing of CNN graphs: convolutions, pooling, flatten, norms after convs.

Every CNN graph prints in every format with no SymPy internals, and its LaTeX
compiles with pdflatex. The index forms are the engine's gradients: the
printer's rearrangement (nested sums merged, indices in kind order) and its
readings (the transposed convolution with the padded, dilated delta and the
rotated kernel) evaluate, with the engine's NumPy reading of index notation,
to the engine's gradients; the per-sample view of a convolution is the batch
gradient per row. The textbook forms are checked on the printed text: index
letters by axis kind, sums with their ranges, the borders as Iverson
brackets, the window argmax and its ties, flatten as a reshape.
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import lru_cache

import numpy as np
import pytest
import sympy as sp

from symbp.engine.derivation import derive_graph, random_point, small_sizes
from symbp.engine.indices import FREE
from symbp.engine.numeric import compile_expression, run
from symbp.ops.base import BATCH
from symbp.printing import FORMATS, render
from symbp.printing.general_conv import general_forms
from symbp.printing.indexing import arranged
from symbp.printing.names import gradient_quantity
from symbp.printing.readings import reading
from symbp.printing.sections import Document
from symbp.spec import network_from_dict

INTERNALS = ("KroneckerDelta", "Piecewise", "Indexed", "Sum(", "IndexedBase", "Dummy",
             "Inside", "IsArgmax", "i0", "i1", "i2", "k0", "k1", "k2", "tilde_",
             "\\mathtt", "\\text{Sum}", "{row", "row}", "\\delta_{i, ")  # a printed Kronecker delta


def conv(channels, kernel, **extra):
    return {"type": "conv2d", "channels": channels, "kernel": kernel, **extra}


CNNS = {
    "digits-like": ([1, 8, 8], [conv(2, 3, padding=1, activation="relu"),
                                {"type": "max_pool2d", "kernel": 2},
                                conv(3, 3, padding=1, activation="relu"),
                                {"type": "max_pool2d", "kernel": 2},
                                {"units": 3, "activation": "softmax"}], "cross_entropy"),
    "strided-nonsquare": ([2, 7, 6], [conv(2, 3, padding=1),
                                      conv(3, [3, 2], stride=[2, 1], padding=[1, 0],
                                           activation="tanh"),
                                      {"type": "flatten"}, {"units": 2}], "mse"),
    "conv1d-avg": ([2, 9], [{"type": "conv1d", "channels": 2, "kernel": 3, "activation": "tanh"},
                            {"type": "conv1d", "channels": 3, "kernel": 3, "stride": 2,
                             "padding": 1, "activation": "relu"},
                            {"type": "avg_pool1d", "kernel": 2}, {"units": 2}], "mse"),
    "norms-after-convs": ([1, 6, 6], [conv(2, 3), {"type": "batch_norm"},
                                      {"type": "activation", "activation": "relu"},
                                      conv(2, 2, stride=2), {"type": "layer_norm"},
                                      {"units": 2, "activation": "softmax"}], "cross_entropy"),
    "general-strided": ([1, 7, 6], [conv(2, 3, padding=1, activation="relu"),
                                    conv(2, [3, 2], stride=[2, 1], padding=1, activation="tanh"),
                                    {"units": 2}], "mse"),
    "pool-stride-residual": ([2, 7, 7], [{"type": "max_pool2d", "kernel": 3, "stride": 2},
                                         conv(2, 3, padding=1, name="h"),
                                         conv(2, 3, padding=1, activation="tanh"),
                                         {"type": "residual", "from": "h"},
                                         {"type": "avg_pool2d", "kernel": [2, 1]},
                                         {"type": "dropout", "rate": 0.25}, {"units": 2}],
                             "mse"),
}


ACTIVATIONS = ("identity", "relu", "tanh", "sigmoid", "gelu", "leaky_relu", "elu")


def random_cnn(seed: int) -> tuple:
    """A seeded random CNN: conv1d or conv2d layers (kernels, strides, paddings), pooling,
    norms, dropout, activations, a residual, perhaps a flatten, a softmax output."""
    rng = np.random.default_rng(seed)
    axes = int(rng.integers(1, 3))
    inputs = [int(rng.integers(1, 3)), *[int(rng.integers(5, 9)) for _ in range(axes)]]
    layers = []
    for position in range(int(rng.integers(1, 4))):
        kind = str(rng.choice(["conv", "conv", "max", "avg", "batch_norm", "layer_norm",
                               "dropout", "activation", "residual"]))
        if kind == "conv" or position == 0:
            kernel = [int(rng.integers(1, 4)) for _ in range(axes)]
            layers.append({"type": f"conv{axes}d", "channels": int(rng.integers(1, 4)),
                           "kernel": kernel,
                           "stride": [int(rng.integers(1, 3)) for _ in range(axes)],
                           "padding": [int(rng.integers(0, k)) for k in kernel],
                           "activation": str(rng.choice(ACTIVATIONS)), "name": f"h{position}"})
        elif kind in ("max", "avg"):
            layers.append({"type": f"{kind}_pool{axes}d", "kernel": int(rng.integers(1, 3)),
                           "stride": int(rng.integers(1, 3))})
        elif kind == "dropout":
            layers.append({"type": "dropout", "rate": 0.3})
        elif kind == "activation":
            layers.append({"type": "activation", "activation": str(rng.choice(ACTIVATIONS))})
        elif kind == "residual":
            layers.append({"type": "residual", "from": "h0"})
        else:
            layers.append({"type": kind})
    if rng.random() < 0.5:
        layers.append({"type": "flatten"})
    return inputs, [*layers, {"units": 2, "activation": "softmax"}], "cross_entropy"


# seeds whose CNN has a convolution after another layer (strides, paddings, a residual, pooling,
# batch and layer norm between them, three convolutions)
SWEEP = tuple(f"random-{seed}" for seed in (2, 4, 7, 16, 39, 53, 82, 151))


@lru_cache(maxsize=None)
def derived(key):
    inputs, layers, loss = random_cnn(int(key.split("-")[1])) if key in SWEEP else CNNS[key]
    return derive_graph(network_from_dict({"name": key.replace("-", "_"), "inputs": inputs,
                                           "loss": loss, "layers": layers}))


@lru_cache(maxsize=None)
def outputs_of(key):
    derivation = derived(key)
    outputs = {fmt: render(derivation, fmt) for fmt in FORMATS}
    outputs["standalone"] = render(derivation, "latex", standalone=True)
    return outputs


@lru_cache(maxsize=None)
def evaluated(key):
    """``(sizes, point, values)``: the engine's NumPy values of every tensor and gradient."""
    derivation = derived(key)
    sizes = small_sizes(derivation.sizes)
    point = random_point(derivation.graph, sizes, np.random.default_rng(3),
                         derivation.network.loss_definition)
    return sizes, point, run(derivation.graph, point, sizes, derivation.gradients)


def evaluate(expr, sizes, arrays, shape, scalars=frozenset()):
    """``expr`` (a tensor of ``shape`` in FREE indices) as an array of that shape;
    ``scalars`` names the rank-0 stand-ins of the per-sample view."""
    shape = tuple(int(sp.sympify(n).xreplace(sizes)) for n in shape)
    function, indices = compile_expression(expr, sizes, scalars, shape)
    value = np.asarray(function(arrays), dtype=float)
    free = FREE[:len(shape)]
    for index in free:
        if index not in indices:
            value, indices = value[..., None], (*indices, index)
    return np.broadcast_to(np.transpose(value, [list(indices).index(i) for i in free]), shape)


# --------------------------------------------------------------- every format
@pytest.mark.parametrize("key", [*sorted(CNNS), *SWEEP])
@pytest.mark.parametrize("fmt", [*FORMATS, "standalone"])
def test_no_sympy_internals(key, fmt):
    text = outputs_of(key)[fmt]
    if fmt == "json":  # the printed fields (not the code names, not the engine's srepr)
        payload = json.loads(text)
        printed = [item for section in payload["sections"] for item in section["quantities"]]
        text = json.dumps([[item[k] for k in ("latex", "index_latex", "text") if k in item]
                           for item in printed + payload["gradients"]])
    for internal in INTERNALS:
        assert internal not in text, f"{internal!r} in {fmt} of {key}"
    assert not re.search(r"(?<![A-Za-z])g_", text)  # an adjoint's code name


@pytest.mark.parametrize("key", sorted(CNNS))
def test_text_is_plain_and_json_has_every_gradient(key):
    outputs, derivation = outputs_of(key), derived(key)
    assert "\\" not in outputs["text"] and "{(" not in outputs["text"]
    payload = json.loads(outputs["json"])
    assert {g["of"] for g in payload["gradients"]} >= {
        t.name for t in derivation.graph.given("parameter")}
    for gradient in payload["gradients"]:
        assert gradient["index_latex"].count("=") >= 1 and "Inside" not in gradient["sympy"] \
            or "Inside" in gradient["sympy"]  # the SymPy string is the engine's own
    for section in payload["sections"]:
        for quantity in section["quantities"]:
            assert quantity["latex"] and quantity["text"]


@pytest.mark.parametrize("key", sorted(CNNS))
def test_every_gradient_is_printed(key):
    document = Document(derived(key))
    printed = {row.name for section in document.sections() for row in section.rows}
    for gradient in derived(key).gradients:
        name = gradient.adjoint.name
        assert name in printed or f"paths_{name}" in printed or name not in document.shown


@pytest.mark.parametrize("key", sorted(CNNS))
def test_latex_compiles_with_pdflatex(pdflatex, tmp_path, key):
    tex = tmp_path / f"{key}.tex"
    tex.write_text(outputs_of(key)["standalone"], encoding="utf-8")
    result = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", tex.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]


# ------------------------------------------------------ the printed values
@pytest.mark.parametrize("key", [*sorted(CNNS), *SWEEP])
def test_arranged_sums_are_the_engines_gradients(key):
    """Merging nested sums and ordering their indices changes no value."""
    derivation = derived(key)
    sizes, _, values = evaluated(key)
    document = Document(derivation)
    checked = 0
    for gradient in derivation.gradients:
        expr = document.shown.get(gradient.adjoint.name, gradient.expr)
        rearranged = arranged(expr, document.batch.axes)
        if rearranged == expr:
            continue
        got = evaluate(rearranged, sizes, values, gradient.of.shape)
        want = evaluate(expr, sizes, values, gradient.of.shape)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13,
                                   err_msg=gradient.adjoint.name)
        checked += 1
    assert checked


def _input_gradient_readings(key):
    derivation, document = derived(key), Document(derived(key))
    found = []
    for gradient in derivation.gradients:
        consumers = derivation.graph.consumers(gradient.of.name)
        if not any(c.op in ("conv1d", "conv2d") for c in consumers) or \
                gradient.of.role == "input":
            continue
        expr = document.shown.get(gradient.adjoint.name, gradient.expr)
        target = gradient_quantity(derivation.graph, gradient.of, gradient.adjoint, "batch")
        result = reading(target, expr, gradient.of.shape, document.batch)
        if result is not None and result.forms:
            found.append((gradient, result))
    return found


@pytest.mark.parametrize("key", ["digits-like", "strided-nonsquare", "conv1d-avg",
                                 "norms-after-convs"])
def test_transposed_convolution_reading_is_the_input_gradient(key):
    """The full correlation of the padded, dilated delta with the rotated kernel, evaluated
    from its printed index form and its printed definition of the padded delta, is the
    engine's input gradient (strides, asymmetric padding, non-square kernels)."""
    sizes, _, values = evaluated(key)
    found = _input_gradient_readings(key)
    assert found
    for gradient, result in found:
        (_, rotated, shape, view, _), (tilde, definition, tilde_shape, _, _) = result.forms
        padded = evaluate(definition, sizes, values, tilde_shape)
        got = evaluate(rotated, sizes, {**values, tilde.code: padded}, shape)
        np.testing.assert_allclose(got, values[gradient.adjoint.name], rtol=1e-12,
                                   atol=1e-13, err_msg=gradient.adjoint.name)


@pytest.mark.parametrize("key", [*sorted(CNNS), *SWEEP])
def test_per_sample_view_is_the_batch_gradient_per_row(key):
    """Row s of a per-sample gradient is B times the batch gradient's row; a kernel's
    per-sample gradients (still summed over the positions) average to the batch gradient."""
    derivation = derived(key)
    document = Document(derivation)
    graph = derivation.graph
    sizes, _, values = evaluated(key)
    batch = sizes[BATCH]
    scalars = frozenset(n for n, t in {**graph.tensors, **document.adjoints}.items()
                        if t.rank == 1 and t.shape[0] == BATCH)
    assert document.samples
    for name, expr in document.samples.items():
        gradient = document.kept[name]
        parameter = gradient.of.role == "parameter"
        shape = gradient.of.shape if parameter else gradient.of.shape[1:]
        rows = []
        for s in range(batch):
            arrays = {}
            for key_, value in values.items():
                tensor = graph.tensors.get(key_) or document.adjoints.get(key_)
                batched = tensor is not None and tensor.rank and tensor.shape[0] == BATCH
                arrays[key_] = value[s] * (batch if key_ in document.adjoints else 1) \
                    if batched else value
            rows.append(evaluate(expr, sizes, arrays, shape, scalars))
        want = values[name] if parameter else batch * values[name]
        got = np.mean(rows, axis=0) if parameter else np.array(rows)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=name)


# -------------------------------------------------------- textbook forms
def latex_of(key):
    return outputs_of(key)["latex"]


def test_conv_forward_with_ranges_and_borders():
    latex = latex_of("digits-like")
    assert (r"z^{(3)}_{s,c,i,j} &= \sum_{c'=0}^{n_{1} - 1} \sum_{p=0}^{2} \sum_{q=0}^{2} "
            r"\left[0 \le i + p - 1 \le 3\right] \left[0 \le j + q - 1 \le 3\right] "
            r"W^{(3)}_{c,c',p,q} a^{(2)}_{s,c',i + p - 1,j + q - 1} + b^{(3)}_{c}") in latex
    assert (r"z^{(3)}_{s,c} &= \sum_{c'} \operatorname{pad}_{1}\left(a^{(2)}_{s,c'}\right) "
            r"\star W^{(3)}_{c,c'} + b^{(3)}_{c}") in latex


def test_conv_input_gradient_as_a_transposed_convolution():
    latex = latex_of("digits-like")
    assert (r"\frac{\partial L}{\partial a^{(2)}_{s,c,i,j}} &= \sum_{c'=0}^{n_{3} - 1} "
            r"\sum_{p=0}^{2} \sum_{q=0}^{2} \left[0 \le i - p + 1 \le 3\right] "
            r"\left[0 \le j - q + 1 \le 3\right] \Delta^{(3)}_{s,c',i - p + 1,j - q + 1} "
            r"W^{(3)}_{c',c,p,q}") in latex
    assert (r"\frac{\partial L}{\partial a^{(2)}_{s,c}} &= \sum_{c'} "
            r"\widetilde{\Delta}^{(3)}_{s,c'} \star \operatorname{rot}_{180^{\circ}}\left("
            r"W^{(3)}_{c',c}\right)") in latex
    assert (r"\widetilde{\Delta}^{(3)}_{s,c,i,j} &= \left[0 \le i - 1 \le 3\right] "
            r"\left[0 \le j - 1 \le 3\right] \Delta^{(3)}_{s,c,i - 1,j - 1} \quad "
            r"\text{(zero-padded by 1)}") in latex
    assert r"\widetilde{\Delta}^{(3)}_{s,c',i + p,j + q} W^{(3)}_{c',c,2 - p,2 - q}" in latex


def test_strided_input_gradient_reads_delta_at_a_fraction():
    latex = latex_of("strided-nonsquare")
    assert (r"\left[(i - p + 1)/2 \in \{0, \dots, 3\}\right] \left[0 \le j - q \le 4\right] "
            r"\Delta^{(2)}_{s,c',(i - p + 1)/2,j - q} W^{(2)}_{c',c,p,q}") in latex
    # K - 1 - P = 1 zero before; 7 + P - (4 - 1) 2 - 1 = 1 and 6 - (5 - 1) - 1 = 1 after
    assert (r"\widetilde{\Delta}^{(2)}_{s,c,i,j} &= \left[(i - 1)/2 \in \{0, \dots, 3\}\right] "
            r"\left[0 \le j - 1 \le 4\right] \Delta^{(2)}_{s,c,(i - 1)/2,j - 1} \quad \text{("
            r"dilated by (2,1) (stride - 1 zeros between entries), zero-padded by 1)}") in latex
    assert r"W^{(2)}_{c',c,2 - p,1 - q}" in latex
    assert (r"\operatorname{pad}_{(1,0)}\left(a^{(1)}_{s,c'}\right) \star_{(2,1)} "
            r"W^{(2)}_{c,c'}") in latex


def test_kernel_gradient_as_a_correlation_of_the_input_with_delta():
    latex = latex_of("digits-like")
    assert (r"\frac{\partial L}{\partial W^{(3)}_{c,c',p,q}} &= \sum_{r} \sum_{i=0}^{3} "
            r"\sum_{j=0}^{3} \left[0 \le i + p - 1 \le 3\right] \left[0 \le j + q - 1 \le 3"
            r"\right] \Delta^{(3)}_{r,c,i,j} a^{(2)}_{r,c',i + p - 1,j + q - 1}") in latex
    assert (r"\frac{\partial L}{\partial W^{(3)}_{c,c'}} &= \sum_{r} \operatorname{pad}_{1}"
            r"\left(a^{(2)}_{r,c'}\right) \star \Delta^{(3)}_{r,c}") in latex
    strided = latex_of("conv1d-avg")
    assert r"\operatorname{dil}_{2}\left(\Delta^{(2)}_{r,c}\right)" in strided
    # one sample: the summand of the sum over the batch, still summed over the positions
    assert (r"\frac{\partial \ell}{\partial W^{(3)}_{c,c',p,q}} &= \sum_{i=0}^{3} "
            r"\sum_{j=0}^{3}") in latex
    assert r"\frac{\partial \ell}{\partial b^{(3)}_{c}} &= \sum_{i=0}^{3} \sum_{j=0}^{3} " \
        r"\delta^{(3)}_{c,i,j}" in latex


def test_max_pooling_routes_through_the_argmax_indicator():
    latex = latex_of("digits-like")
    assert (r"\chi^{(2)}_{s,c,i,j,p,q} &= \left[(p, q) = \operatorname*{argmax}_{(p', q')} "
            r"a^{(1)}_{s,c,2i + p',2j + q'}\right]") in latex
    assert (r"\frac{\partial L}{\partial a^{(1)}_{s,c,i,j}} &= \sum_{p=0}^{1} \sum_{q=0}^{1} "
            r"\left[(i - p)/2 \in \{0, \dots, 3\}\right] \left[(j - q)/2 \in \{0, \dots, 3\}"
            r"\right]") in latex
    assert "the first maximum of a window in row-major order (ties resolved as PyTorch on " \
        "the CPU)" in latex
    # chi is read by no gradient: the pool's input gradient is not a sum of paths
    assert r"\frac{\partial L}{\partial a^{(1)}_{s,c,i,j}} &\mathrel{+}=" not in latex


def test_average_pooling_offsets_are_window_letters():
    text = outputs_of("conv1d-avg")["text"]
    assert "dL/da^(2)[s,c,i] = (1/2) (sum_{p=0..1} ([(i - p)/2 in {0..1}] " in text


def test_flatten_is_a_reshape_and_its_gradient_a_vec_inverse():
    latex = latex_of("digits-like")
    assert (r"\operatorname{vec}(a^{(4)})_{s,4c + 2i + j} &= a^{(4)}_{s,c,i,j} \quad "
            r"\text{(a reshape, C order)}") in latex
    assert r"Z^{(5)} &= \operatorname{vec}(A^{(4)}) \left(W^{(5)}\right)^{\top} + b^{(5)}" in latex
    assert (r"\frac{\partial L}{\partial a^{(4)}} &= \operatorname{vec}^{-1}\left("
            r"\Delta^{(5)} W^{(5)}\right)") in latex
    assert r"\frac{\partial L}{\partial a^{(4)}_{s,c,i,j}} &= \sum_{k=0}^{n_{5} - 1} " \
        r"\Delta^{(5)}_{s,k} W^{(5)}_{k,4c + 2i + j}" in latex


def test_norms_after_convs_print_per_channel_and_per_sample_statistics():
    latex = latex_of("norms-after-convs")
    assert re.search(r"\\mu\^\{\(2\)\}_\{c\} &= \\frac\{1\}\{16 B\} \\sum_\{r\} "
                     r"\\sum_\{i=0\}\^\{3\} \\sum_\{j=0\}\^\{3\}", latex)
    assert re.search(r"\\mu\^\{\(5\)\}_\{s\} &= \\frac\{1\}\{4 n_\{4\}\} "
                     r"\\sum_\{c=0\}\^\{n_\{4\} - 1\}", latex)


def test_conv_layers_use_delta_and_letters_by_axis():
    text = outputs_of("digits-like")["text"]
    assert "Delta^(1)[s,c,i,j] = " in text and "delta^(3)[c,i,j] = " in text
    assert "dL/dW^(1)[c,c',p,q] = " in text and "dL/db^(1)[c] = " in text


# ------------------------------------------------------ the general layer
@pytest.mark.parametrize("key", ["digits-like", "general-strided"])
def test_general_conv_layer_is_the_derived_layer_with_its_numbers_named(key):
    """Putting the numbers back into the general formulas gives the derived ones exactly."""
    layer, forms, numbers = general_forms(Document(derived(key)))
    assert {form.label for form in forms} == {"forward", f"g_z{layer}", f"g_W{layer}",
                                              f"g_b{layer}", f"g_a{layer - 1}"}
    for form in forms:  # the delta has no geometry: only its layer's f' is renamed in print
        assert (form.general != form.concrete) == (form.label != f"g_z{layer}"), form.label
        assert form.general.xreplace(numbers) == form.concrete, form.label


def test_general_conv_layer_prints_with_symbols():
    text = outputs_of("digits-like")["text"]
    assert "general convolution layer l for one sample (the formulas of layer 3 renamed" in text
    assert ("dl/da^(l - 1)[c,i,j] = sum_{c'=0..n_l - 1} sum_{p=0..K - 1} sum_{q=0..K - 1} "
            "([(i - p + P)/S in {0..H' - 1}] [(j - q + P)/S in {0..W' - 1}] "
            "W^(l)[c',c,p,q]*delta^(l)[c',(i - p + P)/S,(j - q + P)/S])") in text
    assert ("dl/dW^(l)[c,c',p,q] = sum_{i=0..H' - 1} sum_{j=0..W' - 1} ([0 <= S i + p - P <= "
            "H - 1] [0 <= S j + q - P <= W - 1] a^(l - 1)[c',S i + p - P,S j + q - P]"
            "*delta^(l)[c,i,j])") in text
    assert "delta^(l)[c,i,j] = f_l'(z^(l)[c,i,j])*dl/da^(l)[c,i,j]" in text
    strided = outputs_of("general-strided")["latex"]
    assert r"\left[(i - p + P)/S_{1} \in \{0, \dots, H' - 1\}\right]" in strided
    assert r"\sum_{q=0}^{K_{2} - 1}" in strided
    assert "general convolution" not in outputs_of("strided-nonsquare")["text"]  # unpadded


@pytest.mark.parametrize("key", SWEEP)
def test_random_cnn_readings_are_the_engines_gradients(key):
    """On random CNNs every transposed-convolution reading evaluates to its gradient."""
    sizes, _, values = evaluated(key)
    found = _input_gradient_readings(key)
    assert found
    for gradient, result in found:
        (_, rotated, shape, _, _), (tilde, definition, tilde_shape, _, _) = result.forms
        padded = evaluate(definition, sizes, values, tilde_shape)
        got = evaluate(rotated, sizes, {**values, tilde.code: padded}, shape)
        np.testing.assert_allclose(got, values[gradient.adjoint.name], rtol=1e-12,
                                   atol=1e-13, err_msg=gradient.adjoint.name)


def _by_entries(expr, sizes, values, shape):
    """``expr`` evaluated entry by entry (floor and Mod of integers as SymPy has them)."""
    shape = tuple(int(sp.sympify(n).xreplace(sizes)) for n in shape)
    out = np.empty(shape)
    for position in np.ndindex(*shape):
        entry = expr.xreplace(dict(zip(FREE, map(sp.Integer, position), strict=False)))
        out[position] = float(entry.replace(
            lambda e: isinstance(e, sp.Indexed),
            lambda e: sp.Float(values[e.base.label.name][tuple(int(i) for i in e.indices)])))
    return out


@pytest.mark.parametrize("key", ["digits-like", "conv1d-avg"])
def test_tiled_pooling_reading_is_the_input_gradient(key):
    """Where the windows tile the input, the reading with floor(i/K) and i mod K (one window
    per position, no sum) is the engine's gradient of the pooling's input."""
    derivation, document = derived(key), Document(derived(key))
    sizes, _, values = evaluated(key)
    checked = 0
    for gradient in derivation.gradients:
        if not any(c.op.endswith(("pool1d", "pool2d")) for c in
                   derivation.graph.consumers(gradient.of.name)):
            continue
        target = gradient_quantity(derivation.graph, gradient.of, gradient.adjoint, "batch")
        result = reading(target, document.shown.get(gradient.adjoint.name, gradient.expr),
                         gradient.of.shape, document.batch)
        assert result is not None and len(result.forms) == 1, gradient.adjoint.name
        (_, tiled, shape, _, _), = result.forms
        assert not tiled.has(sp.Sum)
        np.testing.assert_allclose(_by_entries(tiled, sizes, values, shape),
                                   values[gradient.adjoint.name], rtol=1e-12, atol=1e-13)
        checked += 1
    assert checked
    latex = latex_of(key)
    assert r"\lfloor i/2 \rfloor" in latex
    assert (r"i \bmod 2" in latex) == key.startswith("digits")  # max pooling's position


def test_entries_over_positions_have_commas():
    """One sample of a 1-d convolution: entries ``a_{c,i}``, never ``a_{ci}``."""
    latex = latex_of("conv1d-avg")
    assert r"\delta^{(2)}_{c,i} &= \left[z^{(2)}_{c,i} > 0\right]" in latex
    assert not re.search(r"\^\{\(\d\)\}_\{c[a-z]\}", latex)
