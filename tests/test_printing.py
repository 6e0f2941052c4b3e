"""Tests for symbp.printing: LaTeX, Markdown, text and JSON renderings of any graph.

The printed formulas use the notation of CONVENTIONS §1 and never leak SymPy
internals; every op's derived backward formulas appear; the matrix forms the
printer reads are the engine's gradients (evaluated against its NumPy reading
of the index notation), and so is the per-sample view; the standalone LaTeX
document compiles with pdflatex.
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import lru_cache

import numpy as np
import pytest
import sympy as sp
from conftest import EXAMPLES

from symbp import forms
from symbp.engine.derivation import derive_graph, random_point, small_sizes
from symbp.engine.indices import FREE
from symbp.engine.numeric import compile_expression, run
from symbp.ops.base import BATCH
from symbp.printing import FORMATS, render, repr_latex
from symbp.printing.names import quantities
from symbp.printing.sections import Document
from symbp.spec import load_spec, network_from_dict

INTERNALS = ("ArrayAdd", "PermuteDims", "Lambda", "KroneckerDelta", "Piecewise", "Indexed",
             "Sum(", "IndexedBase", "Dummy", "_Dummy", "ONE", "MatMul", "Hadamard", "Leaf(",
             "Tensor(", "Elementwise", "fprime", "\\mathtt", "\\text{Sum}", "AsRow", "_row",
             "i0", "i1", "k0", "k1", "g_", "{row", "row}")

ALL_ACTIVATIONS = [{"units": u, "activation": a} for u, a in zip(
    (4, 3, 5, 2, 4, 3, 2, 4, 3, 3),
    ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "silu", "gelu",
     "softmax"), strict=True)]


def dense(units, activation="identity", **extra):
    return {"units": units, "activation": activation, **extra}


NETWORKS = {
    "tanh-softmax-ce": (4, [dense(3, "tanh"), dense(2, "softmax")], "cross_entropy", {}),
    "relu-sigmoid-mse": (3, [dense(5, "relu"), dense(2, "sigmoid")], "mse", {}),
    "sigmoid-bce": (3, [dense(4, "sigmoid"), dense(1, "sigmoid")], "bce", {}),
    "every-activation": (3, ALL_ACTIVATIONS, "cross_entropy", {}),
    "softmax-mse": (4, [dense(3, "tanh"), dense(3, "softmax")], "mse", {}),
    "custom": (2, [dense(3, "mish"), dense(1)], "logcosh",
               {"activations": {"mish": "x*tanh(log(1 + exp(x)))"},
                "losses": {"logcosh": "log(cosh(a - y))"}}),
    "layer-norm-residual": (4, [dense(3, "tanh", name="h"), {"type": "layer_norm"},
                                {"type": "residual", "from": "h"}, dense(2, "softmax")],
                            "cross_entropy", {}),
    "batch-norm-dropout-decay": (3, [dense(4), {"type": "batch_norm"},
                                     {"type": "activation", "activation": "relu"},
                                     {"type": "dropout", "rate": 0.25}, dense(2, "softmax")],
                                 "cross_entropy", {"training": {"weight_decay": 0.01}}),
    "residual-from-input": (3, [dense(3, "sigmoid"), {"type": "residual", "from": "input"},
                                dense(2)], "mse", {}),
}
MLPS = ("tanh-softmax-ce", "relu-sigmoid-mse", "sigmoid-bce", "every-activation",
        "softmax-mse", "custom")


@lru_cache(maxsize=None)
def derived(key):
    inputs, layers, loss, extra = NETWORKS[key]
    return derive_graph(network_from_dict({"name": key.replace("-", "_"), "inputs": inputs,
                                           "loss": loss, "layers": layers, **extra}))


@lru_cache(maxsize=None)
def outputs_of(key):
    derivation = derived(key)
    outputs = {fmt: render(derivation, fmt) for fmt in FORMATS}
    outputs["standalone"] = render(derivation, "latex", standalone=True)
    return outputs


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def rendered(request):
    """Every format of one network's derivation (derived once per session)."""
    return request.param, derived(request.param), outputs_of(request.param)


def latex_lines(text):
    return [line.removesuffix(r" \\") for line in text.splitlines()]


# ----------------------------------------------------------- LaTeX / Markdown
@pytest.mark.parametrize("fmt", ["latex", "markdown", "standalone"])
def test_no_sympy_internals(rendered, fmt):
    text = rendered[2][fmt]
    for internal in INTERNALS:
        assert internal not in text, f"{internal!r} in {fmt} output"


def test_latex_is_balanced(rendered):
    for fmt in ("latex", "standalone"):
        text = rendered[2][fmt]
        assert text.count("{") == text.count("}")
        assert (len(re.findall(r"\\left(?![a-z])", text))
                == len(re.findall(r"\\right(?![a-z])", text)))
        assert text.count(r"\begin{align*}") == text.count(r"\end{align*}") > 0
        assert text.count(r"\begin{cases}") == text.count(r"\end{cases}")
        for block in re.findall(r"\\begin\{align\*\}(.*?)\\end\{align\*\}", text, re.S):
            block = re.sub(r"\\begin\{cases\}.*?\\end\{cases\}", "", block)
            for line in block.strip().split("\\\\\n"):
                assert line.count("&") == 1, line  # one alignment point per row


def test_standalone_document_wraps_the_formulas(rendered):
    document, plain = rendered[2]["standalone"], rendered[2]["latex"]
    assert document.startswith(r"\documentclass")
    assert document.rstrip().endswith(r"\end{document}")
    assert r"\begin{document}" in document and r"\usepackage{amsmath" in document
    assert not plain.lstrip().startswith(r"\documentclass")


def test_markdown_has_a_title_and_display_math(rendered):
    _, derivation, outputs = rendered
    text = outputs["markdown"]
    assert text.startswith(f"# Gradients of `{derivation.network.name}`")
    assert text.count("$$") % 2 == 0 and text.count("$$") >= 2
    assert "## Backward pass (training mode" in text


@pytest.mark.parametrize("fmt", ["latex", "text"])
def test_signs_are_printed_as_operators(rendered, fmt):
    """A negative term reads ``x - y``: never ``x + -y`` or a factor ``- 1``."""
    text = rendered[2][fmt]
    assert not re.search(r"\+\s*-", text), text
    assert not re.search(r"[=(+&{]\s*-\s*1\s*[(\\]", text), text


def test_every_op_has_its_backward_formulas(rendered):
    """Each op family of the graph has a section with the VJP of each of its inputs."""
    _, derivation, outputs = rendered
    document = Document(derivation)
    for op in {e.op for e in derivation.graph.equations}:
        assert f"% Backward formulas of the op {op} " in outputs["latex"], op
    for section in document.op_sections():
        for row in section.rows:
            assert row.lines and row.index, row


def test_every_gradient_is_printed(rendered):
    """Each gradient of the engine is a row of the backward pass, or folded into the dense
    layer's delta that is its one reader."""
    _, derivation, _ = rendered
    document = Document(derivation)
    names = {row.name for s in document.sections() for row in s.rows}
    for gradient in derivation.gradients:
        name = gradient.adjoint.name
        folded = name not in document.shown
        assert (name in names or f"paths_{name}" in names) != folded, name
        if folded:
            readers = [g for g in derivation.gradients if g.expr.has(gradient.adjoint.base)]
            assert len(readers) == 1 and derivation.graph.definition(
                readers[0].of.name).op == "dense"


def test_matrix_forms_are_the_engines_gradients(rendered):
    """Every matrix tree the printer reads evaluates to the engine's NumPy values."""
    _, derivation, _ = rendered
    graph = derivation.graph
    table = quantities(graph, derivation.gradients, "batch")
    sizes = small_sizes(derivation.sizes)
    point = random_point(graph, sizes, np.random.default_rng(1), derivation.network.loss_definition)
    values = run(graph, point, sizes, derivation.gradients)
    arrays = {k: v.reshape(-1, 1) if v.ndim == 1 else v for k, v in values.items()}
    arrays["__ones__"] = {sp.latex(s): n for s, n in sizes.items()}
    arrays["__scalars__"] = dict(sizes)
    items = [(e.out, e.expr) for e in graph.equations if 0 < e.out.rank <= 2]
    items += [(g.adjoint, g.expr) for g in derivation.gradients]
    read = 0
    for tensor, expr in items:
        try:
            tree = forms.to_matrix(expr, FREE[:tensor.rank], table)
        except forms.NotMatrixForm:
            continue  # printed in index form only (softmax's normalising sum)
        got = np.broadcast_to(forms.evaluate(tree, arrays), arrays[tensor.name].shape)
        np.testing.assert_allclose(got, arrays[tensor.name], rtol=1e-10, atol=1e-12,
                                   err_msg=tensor.name)
        read += 1
    assert read >= len(derivation.gradients)  # every gradient has a matrix form


def test_per_sample_view_is_the_batch_gradient_per_row(rendered):
    """Row s of a per-sample gradient is B times the batch gradient's row; a parameter's
    per-sample gradients average to the batch gradient without the weight decay."""
    _, derivation, _ = rendered
    document = Document(derivation)
    graph = derivation.graph
    sizes = small_sizes(derivation.sizes)
    batch = sizes[BATCH]
    point = random_point(graph, sizes, np.random.default_rng(2), derivation.network.loss_definition)
    values = run(graph, point, sizes, derivation.gradients)
    decay = float(derivation.network.training["weight_decay"])
    scalars = frozenset(n for n, t in {**graph.tensors, **document.adjoints}.items()
                        if t.rank == 1 and t.shape[0] == BATCH)
    assert document.samples
    for name, expr in document.samples.items():
        gradient = document.kept[name]
        function, indices = compile_expression(expr, sizes, scalars)
        rows = []
        for s in range(batch):
            arrays = {}
            for key, value in values.items():
                tensor = graph.tensors.get(key) or document.adjoints.get(key)
                if tensor is not None and tensor.rank and tensor.shape[0] == BATCH:
                    arrays[key] = value[s] * (batch if key in document.adjoints else 1)
                else:
                    arrays[key] = value
            shape = values[name].shape[1 if gradient.of.role != "parameter" else 0:]
            rows.append(_aligned(function(arrays), indices, shape))
        if gradient.of.role == "parameter":
            want = values[name] - (decay * point[gradient.of.name] if gradient.of.name.startswith(
                "W") else 0)
            np.testing.assert_allclose(np.mean(rows, axis=0), want, rtol=1e-9, atol=1e-12)
        else:
            np.testing.assert_allclose(np.array(rows), batch * values[name], rtol=1e-9,
                                       atol=1e-12, err_msg=name)


def _aligned(value, indices, shape):
    """An array whose axes carry ``indices``, in the order FREE[:len(shape)]."""
    value = np.asarray(value, dtype=float)
    free = FREE[:len(shape)]
    for index in free:
        if index not in indices:
            value, indices = value[..., None], (*indices, index)
    return np.broadcast_to(np.transpose(value, [list(indices).index(i) for i in free]), shape)


# ------------------------------------------------------------- text and JSON
def test_text_is_plain(rendered):
    _, derivation, outputs = rendered
    text = outputs["text"]
    assert text.startswith(f"Gradients of {derivation.network.name}")
    for latex in (r"\frac", r"\left", r"\begin", r"\odot", "align*", "\\"):
        assert latex not in text
    for internal in ("KroneckerDelta", "Indexed", "Sum(", "ArrayAdd", "PermuteDims", "Dummy",
                     "i0", "k0", "_row"):
        assert internal not in text


def test_json_has_every_quantity_and_every_gradient(rendered):
    _, derivation, outputs = rendered
    payload = json.loads(outputs["json"])
    assert payload["network"] == derivation.network.name
    names = []
    for section in payload["sections"]:
        assert section["title"] and section["quantities"]
        for quantity in section["quantities"]:
            assert {"name", "latex", "index_latex", "text", "sympy"} <= set(quantity)
            assert quantity["name"] and quantity["latex"]
            names.append(quantity["name"])
    assert len(names) == len(set(names))  # a name identifies one quantity
    gradients = {g["name"]: g for g in payload["gradients"]}
    assert set(gradients) == {g.adjoint.name for g in derivation.gradients}
    for gradient in derivation.gradients:
        entry = gradients[gradient.adjoint.name]
        assert entry["of"] == gradient.of.name
        assert sp.sympify(entry["sympy"]) == gradient.expr  # srepr: exact
        assert entry["index_latex"].count("=") >= 1


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="format"):
        render(derived("tanh-softmax-ce"), "html")


def test_jupyter_display_is_the_document():
    derivation = derived("layer-norm-residual")
    text = repr_latex(derivation)
    assert text.startswith("$$") and text.rstrip().endswith("$$")
    for internal in INTERNALS:
        assert internal not in text
    blocks = re.findall(r"\$\$(.*?)\$\$", text, re.S)
    assert len(blocks) == outputs_of("layer-norm-residual")["latex"].count(r"\begin{align*}")
    assert all(b.strip().startswith(r"\begin{align*}") for b in blocks)


# ----------------------------------------------------------- specific forms
@pytest.mark.parametrize("key", MLPS)
def test_mlp_general_layer(key):
    latex = latex_lines(outputs_of(key)["latex"])
    for line in (r"\delta^{(l)} &= \left(\left(W^{(l + 1)}\right)^{\top} \delta^{(l + 1)}\right)"
                 r" \odot f_{l}'\left(z^{(l)}\right)",
                 r"\frac{\partial \ell}{\partial W^{(l)}} &= \delta^{(l)} "
                 r"\left(a^{(l - 1)}\right)^{\top}",
                 r"\frac{\partial \ell}{\partial W^{(l)}_{ij}} &= \delta^{(l)}_{i} a^{(l - 1)}_{j}",
                 r"\frac{\partial \ell}{\partial b^{(l)}} &= \delta^{(l)}",
                 r"\Delta^{(l)} &= \left(\Delta^{(l + 1)} W^{(l + 1)}\right) \odot "
                 r"f_{l}'\left(Z^{(l)}\right)",
                 r"\frac{\partial L}{\partial W^{(l)}} &= \left(\Delta^{(l)}\right)^{\top} "
                 r"A^{(l - 1)}"):
        assert line in latex, line
    assert "delta^(l) = ((W^(l + 1))^T delta^(l + 1)) ⊙ f_l'(z^(l))" in outputs_of(key)["text"]


def test_output_delta_of_matching_losses_is_a_minus_y():
    for key in ("tanh-softmax-ce", "sigmoid-bce"):
        latex = latex_lines(outputs_of(key)["latex"])
        assert r"\delta^{(L)} &= a^{(L)} - y" in latex
        assert r"\Delta^{(L)} &= \frac{1}{B} \left(A^{(L)} - Y\right)" in latex
        assert r"\delta^{(2)} &= a^{(2)} - y" in latex


def test_hidden_sigmoid_and_tanh_use_the_output_form():
    tanh = outputs_of("tanh-softmax-ce")["latex"]
    assert (r"\delta^{(1)} &= \left(\left(W^{(2)}\right)^{\top} \delta^{(2)}\right)"
            r" \odot \left(1 - \left(a^{(1)}\right)^{2}\right)") in tanh
    sigmoid = outputs_of("sigmoid-bce")["latex"]
    assert r"a^{(1)} \odot \left(1 - a^{(1)}\right)" in sigmoid


def test_forward_pass_in_index_and_matrix_form():
    latex = latex_lines(outputs_of("tanh-softmax-ce")["latex"])
    for line in (r"Z^{(1)} &= X \left(W^{(1)}\right)^{\top} + b^{(1)}",
                 r"z^{(1)} &= W^{(1)} x + b^{(1)}",
                 r"z^{(1)}_{s,i} &= \sum_{k} W^{(1)}_{ik} X_{s,k} + b^{(1)}_{i}",
                 r"a^{(2)}_{s,i} &= \frac{e^{z^{(2)}_{s,i}}}{\sum_{k} e^{z^{(2)}_{s,k}}}"):
        assert line in latex, line


def test_softmax_mse_output_delta_is_compact():
    """a ⊙ (g - a^T g) with g = a - y: one row sum, not four terms and two sums."""
    text = outputs_of("softmax-mse")["text"]
    assert "delta^(2) = a^(2) ⊙ (a^(2) - y - (a^(2))^T (a^(2) - y))" in text


def test_odot_never_joins_a_scalar_constant():
    latex = outputs_of("every-activation")["latex"]
    constant = r"(\\sqrt\{\d+\}|\\pi|\d+|B|n_\{\d+\})"
    assert not re.search(constant + r"\s*\\odot|\\odot\s*" + constant, latex)


def test_residual_gradient_is_the_sum_of_its_two_paths():
    latex = latex_lines(outputs_of("layer-norm-residual")["latex"])
    paths = next(line for line in latex if line.startswith(
        r"\frac{\partial L}{\partial A^{(1)}} &= \frac{\partial L}{\partial A^{(3)}} + "))
    assert r"\hat{X}^{(2)}" in paths  # the second path is layer norm's
    from_input = latex_lines(outputs_of("residual-from-input")["latex"])
    assert any(line.startswith(r"\frac{\partial L}{\partial A^{(1)}} &= ") for line in from_input)


def test_layer_norm_backward_reads_its_named_statistics():
    document = Document(derived("layer-norm-residual"))
    section = next(s for s in document.sections() if s.title.startswith(
        "Backward formulas of the op normalize"))
    assert {row.name for row in section.rows} == {"vjp_xhat2_a1", "vjp_xhat2_mu2",
                                                  "vjp_xhat2_sigma22"}
    assert all(r"\sigma^{2(2)}" in row.lines[0][2] for row in section.rows)
    sample = {row.name for s in document.sections() for row in s.rows}
    assert "sample_g_z1" in sample  # layer norm keeps the rows apart: a per-sample form


def test_batch_norm_has_no_per_sample_form_before_it():
    document = Document(derived("batch-norm-dropout-decay"))
    assert "g_z5" in document.samples and "g_a2" in document.samples
    assert "g_z1" not in document.samples and "g_W1" not in document.samples
    latex = outputs_of("batch-norm-dropout-decay")["latex"]
    assert r"\frac{\partial L}{\partial W^{(5)}} &= \left(\Delta^{(5)}\right)^{\top} A^{(4)} + " \
           r"\frac{1}{100} W^{(5)}" in latex
    assert r"\hat{\mu}^{(2)} &\leftarrow 0.9 \hat{\mu}^{(2)} + 0.1 \mu^{(2)}" in latex
    assert r"M^{(4)}" in latex  # the dropout mask


# --------------------------------------------------------------- pdflatex
def _compile(pdflatex, tex_path):
    result = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
         tex_path.name], cwd=tex_path.parent, capture_output=True, text=True, timeout=120)
    log = result.stdout[-3000:]
    assert result.returncode == 0, f"pdflatex failed on {tex_path.name}:\n{log}"
    assert tex_path.with_suffix(".pdf").stat().st_size > 0


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_specs_compile_with_pdflatex(pdflatex, tmp_path, spec):
    document = render(derive_graph(load_spec(spec)), "latex", standalone=True)
    tex = tmp_path / f"{spec.stem}.tex"
    tex.write_text(document, encoding="utf-8")
    _compile(pdflatex, tex)


@pytest.mark.parametrize("key", sorted(NETWORKS))
def test_every_network_compiles_with_pdflatex(pdflatex, tmp_path, key):
    tex = tmp_path / f"{key}.tex"
    tex.write_text(outputs_of(key)["standalone"], encoding="utf-8")
    _compile(pdflatex, tex)


@pytest.mark.parametrize("package", ["printing", "codegen"])
def test_sources_have_no_invalid_or_control_escapes(package):
    """Every module compiles with escape warnings as errors, and no docstring holds a
    control character (``\\frac`` written in a plain string is a form feed)."""
    import ast
    import warnings
    from pathlib import Path

    import symbp
    for path in sorted((Path(symbp.__file__).parent / package).glob("*.py")):
        source = path.read_text(encoding="utf-8")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tree = compile(source, str(path), "exec", ast.PyCF_ONLY_AST)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)):
                doc = ast.get_docstring(node, clean=False) or ""
                bad = [c for c in doc if ord(c) < 32 and c != "\n"]
                assert not bad, (path.name, getattr(node, "name", "module"), bad)


def test_an_elementwise_quotient_by_a_matrix_prints_with_odot():
    """softplus' in terms of its output is 1 - e^{-a}: the batch delta divides by the
    matrix e^{A} entrywise, which must read as an elementwise product, not as two
    matrices side by side (a matrix product)."""
    network = network_from_dict({"name": "sp", "inputs": 3, "loss": "mse", "layers": [
        {"units": 4, "activation": "softplus"}, {"units": 2}]})
    rows = [line for line in render(derive_graph(network), "latex").splitlines()
            if line.startswith(r"\Delta^{(1)} &=") and "e^{A^{(1)}}" in line]
    assert rows
    for row in rows:
        assert r"\odot \frac{1}{e^{A^{(1)}}}" in row, row
        assert not re.search(r"\\frac\{1\}\{e\^\{A\^\{\(1\)\}\}\} \\frac", row), row
