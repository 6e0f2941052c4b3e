"""Tests for symbp.printing: LaTeX, Markdown, text and JSON renderings.

The printed formulas use the notation of CONVENTIONS §1 and never leak SymPy
internals; the standalone LaTeX document compiles with pdflatex.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from conftest import EXAMPLES, derived

from symbp.derive import derive
from symbp.printing import FORMATS, render
from symbp.spec import load_spec

INTERNALS = ("ArrayAdd", "PermuteDims", "Lambda", "KroneckerDelta", "Piecewise", "Indexed",
             "Sum(", "IndexedBase", "Dummy", "_Dummy", "ONE", "MatMul", "Hadamard", "Leaf(",
             "Tensor(", "Elementwise", "fprime", "\\mathtt", "\\text{Sum}")

ALL_ACTIVATIONS = tuple(zip((4, 3, 5, 2, 4, 3, 2, 4, 3, 3),
                            ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu",
                             "softplus", "silu", "gelu", "softmax"), strict=True))

NETWORKS = {
    "tanh-softmax-ce": (4, ((3, "tanh"), (2, "softmax")), "cross_entropy", (), ()),
    "relu-sigmoid-mse": (3, ((5, "relu"), (2, "sigmoid")), "mse", (), ()),
    "sigmoid-bce": (3, ((4, "sigmoid"), (1, "sigmoid")), "bce", (), ()),
    "every-activation": (3, ALL_ACTIVATIONS, "cross_entropy", (), ()),
    "softmax-mse": (4, ((3, "tanh"), (3, "softmax")), "mse", (), ()),
    "custom": (2, ((3, "mish"), (1, "identity")), "logcosh",
               (("mish", "x*tanh(log(1 + exp(x)))"),), (("logcosh", "log(cosh(a - y))"),)),
}


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def rendered(request):
    """Every format of one network's derivation (derived once per module)."""
    derivation = derived(*NETWORKS[request.param])
    outputs = {fmt: render(derivation, fmt) for fmt in FORMATS}
    outputs["standalone"] = render(derivation, "latex", standalone=True)
    return request.param, derivation, outputs


# ----------------------------------------------------------- LaTeX / Markdown
@pytest.mark.parametrize("fmt", ["latex", "markdown", "standalone"])
def test_no_sympy_internals(rendered, fmt):
    _, _, outputs = rendered
    text = outputs[fmt]
    for internal in INTERNALS:
        assert internal not in text, f"{internal!r} in {fmt} output"


@pytest.mark.parametrize("fmt", ["latex", "markdown", "standalone"])
def test_notation_is_used(rendered, fmt):
    text = rendered[2][fmt]
    for needed in (r"\odot", r"^{\top}", "^{(l)}", r"\begin{align*}", r"\end{align*}",
                   r"\delta^{(L)}", r"\Delta^{(l)}", r"\frac{\partial \ell}{\partial W^{(l)}}",
                   r"\frac{\partial L}{\partial b^{(l)}}", r"\leftarrow", r"\eta"):
        assert needed in text, needed


def test_index_form_of_the_weight_gradient_is_printed_exactly(rendered):
    _, _, outputs = rendered
    assert (r"\frac{\partial \ell}{\partial W^{(l)}_{ij}} &= \delta^{(l)}_{i} a^{(l - 1)}_{j}"
            in [line.removesuffix(r" \\") for line in outputs["latex"].splitlines()])
    quantities = {q["name"]: q for s in json.loads(outputs["json"])["sections"]
                  for q in s["quantities"]}
    assert quantities["dW"]["index_latex"] == (
        r"\frac{\partial \ell}{\partial W^{(l)}_{ij}} = \delta^{(l)}_{i} a^{(l - 1)}_{j}")
    assert quantities["dW"]["latex"] == (
        r"\frac{\partial \ell}{\partial W^{(l)}} = \delta^{(l)} \left(a^{(l - 1)}\right)^{\top}")
    assert quantities["delta"]["latex"] == (
        r"\delta^{(l)} = \left(\left(W^{(l + 1)}\right)^{\top} \delta^{(l + 1)}\right)"
        r" \odot f_{l}'\left(z^{(l)}\right)")
    assert quantities["db"]["latex"] == r"\frac{\partial \ell}{\partial b^{(l)}} = \delta^{(l)}"


def test_layer_sections_name_every_layer(rendered):
    _, derivation, outputs = rendered
    for layer in derivation.layers:
        assert f"% Layer {layer.layer} ({layer.activation.name})" in outputs["latex"]
        assert rf"\delta^{{({layer.layer})}} &= " in outputs["latex"]
        assert rf"\frac{{\partial \ell}}{{\partial W^{{({layer.layer})}}}} &= " in outputs["latex"]


def test_latex_is_balanced(rendered):
    _, _, outputs = rendered
    for fmt in ("latex", "standalone"):
        text = outputs[fmt]
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
    name, derivation, outputs = rendered
    document = outputs["standalone"]
    assert document.startswith(r"\documentclass")
    assert document.rstrip().endswith(r"\end{document}")
    assert r"\begin{document}" in document and r"\usepackage{amsmath" in document
    assert not outputs["latex"].lstrip().startswith(r"\documentclass")


def test_markdown_has_a_title_and_display_math(rendered):
    _, derivation, outputs = rendered
    text = outputs["markdown"]
    assert text.startswith(f"# Gradients of `{derivation.network.name}`")
    assert text.count("$$") % 2 == 0 and text.count("$$") >= 2
    assert "## Backpropagation, general layer l" in text


# ------------------------------------------------------------- text and JSON
def test_text_is_plain(rendered):
    _, derivation, outputs = rendered
    text = outputs["text"]
    assert text.startswith(f"Gradients of {derivation.network.name}")
    for latex in (r"\frac", r"\left", r"\begin", r"\odot", "align*"):
        assert latex not in text
    for internal in ("KroneckerDelta", "Indexed", "Sum(", "ArrayAdd", "PermuteDims", "Dummy"):
        assert internal not in text
    assert "delta^(l) = ((W^(l + 1))^T delta^(l + 1)) ⊙ f_l'(z^(l))" in text


def test_json_has_name_latex_sympy_for_every_quantity(rendered):
    _, derivation, outputs = rendered
    payload = json.loads(outputs["json"])
    assert payload["network"] == derivation.network.name
    names = []
    for section in payload["sections"]:
        assert section["title"] and section["quantities"]
        for quantity in section["quantities"]:
            assert {"name", "latex", "sympy"} <= set(quantity)
            assert quantity["name"] and quantity["latex"]
            names.append(quantity["name"])
    assert len(names) == len(set(names))  # a name identifies one quantity
    expected = {"output_delta", "delta", "dW", "db", "batch_delta", "batch_dW", "batch_db"}
    expected |= {f"layer{layer.layer}_{q}" for layer in derivation.layers
                 for q in ("delta", "dW", "db")}
    assert expected <= set(names)


def test_unknown_format_is_refused():
    derivation = derived(*NETWORKS["tanh-softmax-ce"])
    with pytest.raises(ValueError, match="format"):
        render(derivation, "html")


# ----------------------------------------------------------- specific forms
def test_hidden_sigmoid_and_tanh_use_the_output_form():
    tanh = render(derived(*NETWORKS["tanh-softmax-ce"]), "latex")
    assert (r"\delta^{(1)} &= \left(\left(W^{(2)}\right)^{\top} \delta^{(2)}\right)"
            r" \odot \left(1 - \left(a^{(1)}\right)^{2}\right)") in tanh
    sigmoid = render(derived(*NETWORKS["sigmoid-bce"]), "latex")
    assert r"\delta^{(2)} &= a^{(2)} - y" in sigmoid
    assert r"a^{(1)} \odot \left(1 - a^{(1)}\right)" in sigmoid


def test_batch_form_uses_capital_letters_and_the_mean():
    latex = render(derived(*NETWORKS["tanh-softmax-ce"]), "latex")
    assert r"\Delta^{(L)} &= A^{(L)} - Y" in latex
    assert (r"\frac{\partial L}{\partial W^{(l)}} &= \frac{1}{B} "
            r"\left(\Delta^{(l)}\right)^{\top} A^{(l - 1)}") in latex


@pytest.mark.parametrize("fmt", ["latex", "text"])
def test_signs_are_printed_as_operators(rendered, fmt):
    """A negative term reads ``x - y``: never ``x + -y`` or a factor ``- 1``."""
    text = rendered[2][fmt]
    assert not re.search(r"\+\s*-", text), text
    assert not re.search(r"-\s*1\s*[(\\]", text), text


def test_softmax_mse_output_delta_is_compact():
    """a ⊙ (g - a^T g) with g = a - y: one row sum, not four terms and two sums."""
    derivation = derived(*NETWORKS["softmax-mse"])
    text, latex = render(derivation, "text"), render(derivation, "latex")
    assert "delta^(L) = a^(L) ⊙ (a^(L) - y - (a^(L))^T (a^(L) - y))" in text
    assert "Delta^(L) = A^(L) ⊙ (A^(L) - Y - (A^(L)*(A^(L) - Y)) 1)" in text
    assert (r"\delta^{(L)} &= a^{(L)} \odot \left(a^{(L)} - y - \left(a^{(L)}\right)^{\top} "
            r"\left(a^{(L)} - y\right)\right)") in latex


def test_odot_never_joins_a_scalar_constant():
    latex = render(derived(*NETWORKS["every-activation"]), "latex")
    constant = r"(\\sqrt\{\d+\}|\\pi|\d+)"
    assert not re.search(constant + r"\s*\\odot|\\odot\s*" + constant, latex)


def test_derivation_displays_as_latex_in_jupyter(rendered):
    _, derivation, outputs = rendered
    text = derivation._repr_latex_()
    assert text.startswith("$$") and text.rstrip().endswith("$$")
    assert text.count("$$") % 2 == 0
    for internal in INTERNALS:
        assert internal not in text
    for block in re.findall(r"\$\$(.*?)\$\$", text, re.S):
        assert block.strip().startswith(r"\begin{align*}")
        assert block.strip().endswith(r"\end{align*}")
    index_form = r"\frac{\partial \ell}{\partial W^{(l)}_{ij}} &= \delta^{(l)}_{i} a^{(l - 1)}_{j}"
    assert index_form in text
    for layer in derivation.layers:  # the same formulas as the printed document
        assert rf"\delta^{{({layer.layer})}} &= " in text


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
    document = render(derive(load_spec(spec)), "latex", standalone=True)
    tex = tmp_path / f"{spec.stem}.tex"
    tex.write_text(document, encoding="utf-8")
    _compile(pdflatex, tex)


@pytest.mark.parametrize("network", ["relu-sigmoid-mse", "every-activation", "custom"])
def test_other_networks_compile_with_pdflatex(pdflatex, tmp_path, network):
    tex = tmp_path / f"{network}.tex"
    tex.write_text(render(derived(*NETWORKS[network]), "latex", standalone=True),
                   encoding="utf-8")
    _compile(pdflatex, tex)
