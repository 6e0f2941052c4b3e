"""Tests for ``symbp derive`` and the command line's error contract (CONVENTIONS §4).

A few runs go through a real subprocess (``python -m symbp``) to see exactly
what a user sees; the rest call :func:`symbp.cli.main` in-process, which is
much faster.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import EXAMPLES, REPO, VALID_SPEC, toml_spec

import symbp
from symbp.cli import main

DIGITS = next(p for p in EXAMPLES if p.stem == "digits_mlp")


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "symbp", *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=cwd or REPO)


def assert_one_error_line(stderr, *fragments):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("symbp: error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def spec(write_spec):
    return write_spec(VALID_SPEC, "tiny.toml")


# ------------------------------------------------------------- subprocess
def test_subprocess_derive_prints_latex():
    result = run("derive", DIGITS)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("% Forward pass")
    assert r"\begin{align*}" in result.stdout and r"\odot" in result.stdout


def test_subprocess_bad_spec_exits_2_with_one_line(write_spec, tmp_path):
    target = tmp_path / "pwned"
    path = write_spec(f"""
        inputs = 2
        loss = "mse"
        [activations]
        evil = "__import__('os').system('touch {target}')"
        [[layers]]
        units = 1
        activation = "evil"
    """)
    result = run("derive", path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert_one_error_line(result.stderr, "activations.evil", "column 1")
    assert not target.exists()


def test_subprocess_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"symbp {symbp.__version__}"


def test_subprocess_help():
    result = run("--help")
    assert result.returncode == 0
    assert "derive" in result.stdout and result.stdout.startswith("usage: symbp")
    result = run("derive", "--help")
    assert result.returncode == 0
    for option in ("--format", "--standalone", "--output", "--force"):
        assert option in result.stdout


# -------------------------------------------------------------- in-process
def derive_output(capsys, *args):
    status = main(["derive", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def test_default_format_is_latex(capsys, spec):
    status, out, err = derive_output(capsys, spec)
    assert status == 0 and err == ""
    status, explicit, _ = derive_output(capsys, spec, "--format", "latex")
    assert status == 0 and explicit == out
    assert r"\begin{align*}" in out and not out.startswith(r"\documentclass")


def test_format_markdown(capsys, spec):
    status, out, err = derive_output(capsys, spec, "--format", "markdown")
    assert status == 0 and err == ""
    assert out.startswith("# Gradients of `tiny`")
    assert "$$" in out and r"\begin{align*}" in out


def test_format_text(capsys, spec):
    status, out, err = derive_output(capsys, spec, "--format", "text")
    assert status == 0 and err == ""
    assert out.startswith("Gradients of tiny")
    assert "delta^(2) = " in out and "\\" not in out


def test_format_json(capsys, spec):
    status, out, err = derive_output(capsys, spec, "--format", "json")
    assert status == 0 and err == ""
    payload = json.loads(out)
    assert payload["network"] == "tiny"
    quantities = [q for section in payload["sections"] for q in section["quantities"]]
    assert quantities
    for quantity in quantities:
        assert {"name", "latex", "sympy"} <= set(quantity), quantity
    names = {q["name"] for q in quantities}
    assert {"g_W1", "g_z2", "sample_g_z1", "output_delta", "delta", "dW"} <= names
    assert {g["name"] for g in payload["gradients"]} == {"g_z2", "g_W2", "g_b2", "g_a1", "g_z1",
                                                         "g_W1", "g_b1"}


ACTIVATION_LAYERS_SPEC = """
    name = "activations"
    inputs = 4
    loss = "cross_entropy"
    [[layers]]
    units = 5
    activation = "tanh"
    [[layers]]
    units = 4
    [[layers]]
    type = "activation"
    activation = "relu"
    [[layers]]
    units = 3
    activation = "softmax"
"""


def test_json_index_form_of_activations_indexes_both_sides(capsys, write_spec):
    """An activation's index form reads a^{(l)}_{s,i} = f(z^{(l)}_{s,i}): every tensor
    on either side carries its indices, and no matrix-form operator appears in it."""
    status, out, err = derive_output(capsys, write_spec(ACTIVATION_LAYERS_SPEC), "--format",
                                     "json")
    assert status == 0 and err == ""
    payload = json.loads(out)
    forward = {row["name"]: row["index_latex"] for row in payload["sections"][0]["quantities"]}
    assert forward["a1"] == r"a^{(1)}_{s,i} = \tanh{\left(z^{(1)}_{s,i} \right)}"
    assert forward["a3"].startswith(r"a^{(3)}_{s,i} = \begin{cases} a^{(2)}_{s,i} & ")
    assert forward["a4"] == r"a^{(4)}_{s,i} = \frac{e^{z^{(4)}_{s,i}}}{\sum_{k} e^{z^{(4)}_{s,k}}}"
    rows = [row for section in payload["sections"] for row in section["quantities"]
            if row["index_latex"]] + payload["gradients"]
    for row in rows:
        index = row["index_latex"]
        assert r"\odot" not in index and r"^{\top}" not in index, (row["name"], index)
        bare = re.findall(r"(?:[a-zA-Z]|\\hat\{x\})\^\{\(\d+\)\}(?![_}])", index)
        assert not bare, (row["name"], index)


README_LATEX = (  # the README's worked example: the general layer of examples/digits_mlp.toml
    r"\delta^{(L)} &= a^{(L)} - y",
    r"\delta^{(l)} &= \left(\left(W^{(l + 1)}\right)^{\top} \delta^{(l + 1)}\right) \odot "
    r"f_{l}'\left(z^{(l)}\right)",
    r"\delta^{(l)}_{i} &= f_{l}'\left(z^{(l)}_{i}\right) \sum_{k} \delta^{(l + 1)}_{k} "
    r"W^{(l + 1)}_{ki}",
    r"\frac{\partial \ell}{\partial W^{(l)}} &= \delta^{(l)} \left(a^{(l - 1)}\right)^{\top}",
    r"\frac{\partial \ell}{\partial W^{(l)}_{ij}} &= \delta^{(l)}_{i} a^{(l - 1)}_{j}",
    r"\frac{\partial \ell}{\partial b^{(l)}} &= \delta^{(l)}",
    r"\Delta^{(L)} &= \frac{1}{B} \left(A^{(L)} - Y\right)",
    r"\frac{\partial L}{\partial W^{(l)}} &= \left(\Delta^{(l)}\right)^{\top} A^{(l - 1)}",
)
README_TEXT = (
    "delta^(L) = a^(L) - y",
    "delta^(l) = ((W^(l + 1))^T delta^(l + 1)) ⊙ f_l'(z^(l))",
    "dl/dW^(l) = delta^(l) (a^(l - 1))^T",
    "dl/db^(l) = delta^(l)",
    "delta^(1) = ((W^(2))^T delta^(2)) ⊙ (1 - a^(1)**2)",
    "Delta^(1) = (Delta^(2) W^(2)) ⊙ (1 - A^(1)**2)",
)


def test_digits_example_prints_what_the_readme_shows(capsys):
    status, out, err = derive_output(capsys, DIGITS)
    assert status == 0 and err == ""
    lines = [line.removesuffix(r" \\") for line in out.splitlines()]
    for line in README_LATEX:
        assert line in lines, line
    status, out, _ = derive_output(capsys, DIGITS, "--format", "text")
    assert status == 0
    lines = [line.strip() for line in out.splitlines()]
    for line in README_TEXT:
        assert line in lines, line


GRAPH_SPECS = {  # every layer type of CONVENTIONS §3 the engine takes, and weight decay
    "layer_norm_residual": """
        name = "layer_norm_residual"
        inputs = 3
        loss = "cross_entropy"
        [[layers]]
        units = 4
        activation = "gelu"
        name = "h"
        [[layers]]
        type = "layer_norm"
        [[layers]]
        type = "residual"
        from = "h"
        [[layers]]
        units = 2
        activation = "softmax"
    """,
    "batch_norm_dropout_decay": """
        name = "batch_norm_dropout_decay"
        inputs = 3
        loss = "mse"
        [[layers]]
        units = 4
        [[layers]]
        type = "batch_norm"
        momentum = 0.2
        [[layers]]
        type = "activation"
        activation = "elu"
        [[layers]]
        type = "dropout"
        rate = 0.5
        [[layers]]
        units = 2
        [training]
        weight_decay = 0.001
    """,
}
OPS = {"layer_norm_residual": ("dense", "gelu", "layer_norm", "normalize", "affine", "residual",
                               "softmax", "objective"),
       "batch_norm_dropout_decay": ("dense", "batch_norm", "normalize", "affine", "elu",
                                    "dropout", "identity", "objective")}


@pytest.mark.parametrize("key", sorted(GRAPH_SPECS))
def test_every_layer_type_derives_in_every_format(capsys, write_spec, key):
    path = write_spec(GRAPH_SPECS[key], f"{key}.toml")
    status, latex, err = derive_output(capsys, path)
    assert status == 0 and err == ""
    for op in OPS[key]:
        assert f"% Backward formulas of the op {op} " in latex, op
    assert "% Backward pass (training mode" in latex
    status, text, _ = derive_output(capsys, path, "--format", "text")
    assert status == 0 and "\\" not in text and "Backward pass" in text
    status, markdown, _ = derive_output(capsys, path, "--format", "markdown")
    assert status == 0 and markdown.startswith(f"# Gradients of `{key}`")
    status, out, _ = derive_output(capsys, path, "--format", "json")
    assert status == 0
    gradients = {g["of"] for g in json.loads(out)["gradients"]}
    parameters = {"W1", "b1", "W4", "b4", "gamma2", "beta2"} if key.startswith("layer") \
        else {"W1", "b1", "W5", "b5", "gamma2", "beta2"}
    assert parameters <= gradients


def test_standalone_output_compiles(capsys, spec, tmp_path, pdflatex):
    target = tmp_path / "grads.tex"
    status, _, _ = derive_output(capsys, spec, "--standalone", "-o", target)
    assert status == 0
    result = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error",
                             "-no-shell-escape", target.name], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]


def test_standalone(capsys, spec):
    status, out, err = derive_output(capsys, spec, "--standalone")
    assert status == 0 and err == ""
    assert out.startswith(r"\documentclass") and out.rstrip().endswith(r"\end{document}")


def test_standalone_needs_latex(capsys, spec):
    status, out, err = derive_output(capsys, spec, "--standalone", "--format", "markdown")
    assert status == 2 and out == ""
    assert_one_error_line(err, "--standalone")


def test_output_file_is_written(capsys, spec, tmp_path):
    target = tmp_path / "grads.tex"
    status, out, err = derive_output(capsys, spec, "-o", target)
    assert status == 0 and out == ""
    assert str(target) in err and "Traceback" not in err
    _, printed, _ = derive_output(capsys, spec)
    assert target.read_text(encoding="utf-8") == printed
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_output_is_not_overwritten_without_force(capsys, spec, tmp_path):
    target = tmp_path / "grads.md"
    target.write_text("precious\n", encoding="utf-8")
    status, out, err = derive_output(capsys, spec, "--format", "markdown", "--output", target)
    assert status == 2 and out == ""
    assert_one_error_line(err, str(target), "--force")
    assert target.read_text(encoding="utf-8") == "precious\n"
    status, out, err = derive_output(capsys, spec, "--format", "markdown", "-o", target, "--force")
    assert status == 0
    assert target.read_text(encoding="utf-8").startswith("# Gradients of `tiny`")


def test_output_into_a_missing_directory(capsys, spec, tmp_path):
    target = tmp_path / "no" / "such" / "grads.tex"
    status, _, err = derive_output(capsys, spec, "-o", target)
    assert status == 2
    assert_one_error_line(err, str(target))
    assert not (tmp_path / "no").exists()


def test_bad_spec_writes_no_output_file(capsys, write_spec, tmp_path):
    bad = write_spec(VALID_SPEC.replace('"tanh"', '"tanhh"'))
    target = tmp_path / "grads.tex"
    status, out, err = derive_output(capsys, bad, "-o", target)
    assert status == 2 and out == ""
    assert_one_error_line(err, "layers[1].activation", "tanhh")
    assert not target.exists()


BAD_INVOCATIONS = [
    # (id, spec text or None for a missing file, extra arguments, fragments)
    ("missing-file", None, [], ["nope.toml"]),
    ("invalid-toml", 'inputs = 3\nloss = "mse\n', [], ["invalid TOML", "line"]),
    ("unknown-activation", VALID_SPEC.replace('"tanh"', '"tanhh"'), [],
     ["layers[1].activation", "tanhh"]),
    ("unknown-top-level-key", VALID_SPEC.replace("inputs = 3", "inputs = 3\nloss_fn = 1"), [],
     ["loss_fn"]),
    ("bad-units", VALID_SPEC.replace("units = 4", "units = 0"), [], ["layers[1].units"]),
    ("wrong-loss-for-output", VALID_SPEC.replace('"mse"', '"cross_entropy"'), [],
     ["loss", "softmax"]),
    ("bad-expression", VALID_SPEC.replace('"tanh"', '"f"') + '\n[activations]\nf = "x.real"\n',
     [], ["activations.f", "column"]),
    ("unknown-format", VALID_SPEC, ["--format", "html"], ["--format", "html"]),
    ("unknown-option", VALID_SPEC, ["--frobnicate"], ["--frobnicate"]),
]


@pytest.mark.parametrize("text, extra, fragments", [case[1:] for case in BAD_INVOCATIONS],
                         ids=[case[0] for case in BAD_INVOCATIONS])
def test_bad_input_exits_2_with_one_error_line(capsys, write_spec, tmp_path, text, extra,
                                               fragments):
    path = write_spec(text) if text is not None else tmp_path / "nope.toml"
    status, out, err = derive_output(capsys, path, *extra)
    assert status == 2
    assert out == ""
    assert_one_error_line(err, *fragments)


def test_missing_spec_argument(capsys):
    assert main(["derive"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_error_line(err, "spec")


def test_unknown_command(capsys):
    assert main(["derivee", "x.toml"]) == 2
    assert_one_error_line(capsys.readouterr().err, "derivee")


def test_version_and_help_in_process(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"symbp {symbp.__version__}"
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "derive" in capsys.readouterr().out


# ------------------------- specs that used to crash, and bugs still open
def _custom(expression):
    """VALID_SPEC with its hidden activation replaced by ``f = expression``."""
    return VALID_SPEC.replace('"tanh"', '"f"') + f'\n[activations]\nf = "{expression}"\n'


CRASHING_SPECS = [
    pytest.param(VALID_SPEC.replace('"sigmoid"', '"relu"'), 0, id="relu-output"),
    pytest.param(_custom("x*1e400"), 2, id="overflowing-float"),
    pytest.param(_custom("x + 0**-1"), 2, id="zoo-constant"),
    pytest.param(_custom("x + ((9**64)**64)**2"), 2, id="huge-constant"),
    pytest.param(_custom("x*sqrt(-1)"), 2, id="imaginary-constant"),
    pytest.param(_custom("log(x)"), 2, id="log-activation"),
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore:Casting complex values")
@pytest.mark.parametrize("text, expected", CRASHING_SPECS)
def test_no_traceback_for_odd_specs(capsys, write_spec, text, expected):
    path = write_spec(text)
    status, out, err = derive_output(capsys, path)
    assert status == expected
    if expected == 2:
        assert_one_error_line(err, "activations.f")
    else:
        assert r"\begin{align*}" in out


@pytest.mark.parametrize("depth", [12, 20])
def test_deeply_nested_activation_prints_in_linear_time(capsys, write_spec, depth):
    """tanh nested 12 and 20 deep: the matrix reading once re-evaluated the nest at
    every level (8 deep 6 s, 10 deep 58 s, 12 deep minutes); now it derives in seconds.
    The forward row, the derivative and the hidden delta are all printed."""
    nest = "tanh(" * depth + "x" + ")" * depth
    status, out, err = derive_output(capsys, write_spec(_custom(nest)), "--format", "text")
    assert status == 0 and err == ""
    assert "A^(1) = " + "tanh(" * depth + "Z^(1)" + ")" * depth + "\n" in out
    derivative = next(line for line in out.splitlines() if line.startswith("  f'(z) = "))
    assert derivative.count("(1 - tanh(") == depth
    assert "(1 - " + "tanh(" * depth + "z" + ")" * depth + "**2)" in derivative
    assert "Delta^(1) = (Delta^(2) W^(2)) ⊙ " in out


def test_the_replacements_above_change_the_valid_spec():
    """Guard: the bad specs are built by str.replace on VALID_SPEC."""
    for fragment in ("units = 4", '"tanh"', '"sigmoid"', '"mse"', "inputs = 3"):
        assert toml_spec(VALID_SPEC).count(fragment) == 1, fragment


CNN_SPECS = {  # the convolution and pooling layer types, with norms and weight decay
    "conv2d_pools_flatten": ("""
        name = "conv2d_pools_flatten"
        inputs = [2, 8, 7]
        loss = "cross_entropy"
        [[layers]]
        type = "conv2d"
        channels = 3
        kernel = [3, 2]
        stride = [2, 1]
        padding = 1
        activation = "relu"
        [[layers]]
        type = "max_pool2d"
        kernel = 2
        [[layers]]
        type = "avg_pool2d"
        kernel = [2, 1]
        stride = 1
        [[layers]]
        type = "flatten"
        [[layers]]
        units = 2
        activation = "softmax"
        [training]
        weight_decay = 0.01
    """, ("conv2d", "relu", "max_pool2d", "avg_pool2d", "flatten", "dense", "softmax"),
        {"W1", "b1", "W5", "b5"}),
    "conv1d_norms": ("""
        name = "conv1d_norms"
        inputs = [1, 9]
        loss = "mse"
        [[layers]]
        type = "conv1d"
        channels = 2
        kernel = 3
        [[layers]]
        type = "batch_norm"
        [[layers]]
        type = "conv1d"
        channels = 2
        kernel = 2
        stride = 2
        activation = "tanh"
        [[layers]]
        type = "layer_norm"
        [[layers]]
        type = "max_pool1d"
        kernel = 3
        [[layers]]
        units = 1
    """, ("conv1d", "batch_norm", "normalize", "affine", "tanh", "layer_norm", "max_pool1d",
          "dense"), {"W1", "b1", "gamma2", "beta2", "W3", "b3", "gamma4", "beta4", "W6", "b6"}),
}


@pytest.mark.parametrize("key", sorted(CNN_SPECS))
def test_cnn_layer_types_derive_in_every_format(capsys, write_spec, key):
    text, ops, parameters = CNN_SPECS[key]
    path = write_spec(text, f"{key}.toml")
    status, latex, err = derive_output(capsys, path)
    assert status == 0 and err == ""
    for op in ops:
        assert f"% Backward formulas of the op {op} " in latex, op
    assert "% Notation (convolution and pooling)" in latex
    assert r"\sum_{p=0}^{" in latex and r"\in \{0, \dots, " in latex  # the borders
    status, text_out, _ = derive_output(capsys, path, "--format", "text")
    assert status == 0 and "\\" not in text_out and "Inside" not in text_out
    status, markdown, _ = derive_output(capsys, path, "--format", "markdown")
    assert status == 0 and markdown.startswith(f"# Gradients of `{key}`")
    status, out, _ = derive_output(capsys, path, "--format", "json")
    assert status == 0
    payload = json.loads(out)
    assert parameters <= {g["of"] for g in payload["gradients"]}
    assert all(g["index_latex"] for g in payload["gradients"])


README_CONV_LATEX = (  # the README's backward pass of a convolution layer (examples/digits_cnn)
    r"z^{(3)}_{s,c,i,j} &= \sum_{c'=0}^{n_{1} - 1} \sum_{p=0}^{2} \sum_{q=0}^{2} \left[0 \le i + "
    r"p - 1 \le 3\right] \left[0 \le j + q - 1 \le 3\right] W^{(3)}_{c,c',p,q} "
    r"a^{(2)}_{s,c',i + p - 1,j + q - 1} + b^{(3)}_{c}",
    r"z^{(3)}_{s,c} &= \sum_{c'} \operatorname{pad}_{1}\left(a^{(2)}_{s,c'}\right) \star "
    r"W^{(3)}_{c,c'} + b^{(3)}_{c}",
    r"\Delta^{(3)}_{s,c,i,j} &= \left[z^{(3)}_{s,c,i,j} > 0\right] \frac{\partial L}"
    r"{\partial a^{(3)}_{s,c,i,j}}",
    r"\frac{\partial L}{\partial b^{(3)}_{c}} &= \sum_{r} \sum_{i=0}^{3} \sum_{j=0}^{3} "
    r"\Delta^{(3)}_{r,c,i,j}",
    r"\frac{\partial L}{\partial W^{(3)}_{c,c',p,q}} &= \sum_{r} \sum_{i=0}^{3} \sum_{j=0}^{3} "
    r"\left[0 \le i + p - 1 \le 3\right] \left[0 \le j + q - 1 \le 3\right] "
    r"\Delta^{(3)}_{r,c,i,j} a^{(2)}_{r,c',i + p - 1,j + q - 1}",
    r"\frac{\partial L}{\partial W^{(3)}_{c,c'}} &= \sum_{r} \operatorname{pad}_{1}\left("
    r"a^{(2)}_{r,c'}\right) \star \Delta^{(3)}_{r,c}",
    r"\frac{\partial L}{\partial a^{(2)}_{s,c,i,j}} &= \sum_{c'=0}^{n_{3} - 1} \sum_{p=0}^{2} "
    r"\sum_{q=0}^{2} \left[0 \le i - p + 1 \le 3\right] \left[0 \le j - q + 1 \le 3\right] "
    r"\Delta^{(3)}_{s,c',i - p + 1,j - q + 1} W^{(3)}_{c',c,p,q}",
    r"\frac{\partial L}{\partial a^{(2)}_{s,c}} &= \sum_{c'} \widetilde{\Delta}^{(3)}_{s,c'} "
    r"\star \operatorname{rot}_{180^{\circ}}\left(W^{(3)}_{c',c}\right) \quad \text{(full "
    r"correlation, a transposed convolution)}",
    r"\frac{\partial L}{\partial a^{(2)}_{s,c,i,j}} &= \sum_{c'=0}^{n_{3} - 1} \sum_{p=0}^{2} "
    r"\sum_{q=0}^{2} \widetilde{\Delta}^{(3)}_{s,c',i + p,j + q} W^{(3)}_{c',c,2 - p,2 - q}",
    r"\widetilde{\Delta}^{(3)}_{s,c,i,j} &= \left[0 \le i - 1 \le 3\right] \left[0 \le j - 1 "
    r"\le 3\right] \Delta^{(3)}_{s,c,i - 1,j - 1} \quad \text{(zero-padded by 1)}",
)


def test_digits_cnn_prints_what_the_readme_shows(capsys):
    """The rows the README shows are what symbp derive prints for the example, and the
    README shows them."""
    status, out, err = derive_output(capsys, REPO / "examples" / "digits_cnn.toml")
    assert status == 0 and err == ""
    lines = [line.removesuffix(r" \\") for line in out.splitlines()]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for line in README_CONV_LATEX:
        assert line in lines, line
        assert line in readme, line
