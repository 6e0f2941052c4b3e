"""Reliability of the derivation engine on the inputs of issue 9.

Each reproducer goes through the public API (the graph engine's
:func:`~symbp.engine.derivation.derive_graph` and
:func:`~symbp.engine.activation.activation_derivative`, ``render``, the
generated module) and, where the promise is about the command line, through
:func:`symbp.cli.main` in-process with a spec in ``tmp_path``:

- losses with ``abs``/``max``/``min`` and losses linear in ``a`` derive, print,
  generate and give the gradients of an independent PyTorch oracle (float64,
  1e-9, at points away from any kink);
- constant activations, expressions nested too deep and exponents that combine
  past the limit are refused naming the field;
- activations whose rewrite search used to hang finish (``solve`` is never
  reached for them);
- activations and losses that are undefined or overflow at the self-check's
  sample points are the user's error (exit 2, one line, no NumPy warning);
- the softmax error term of any loss is the compact ``a ⊙ (g - a^T g)``;
- the JSON index form of an activation indexes ``z``.

The derived gradients are evaluated by the engine's NumPy reading of index
notation (:func:`symbp.engine.numeric.run`), the oracle is torch.autograd.
"""

from __future__ import annotations

import dataclasses
import json
import re
import warnings

import numpy as np
import pytest
import sympy as sp
import torch
from conftest import make_network, toml_spec

from symbp.cli import main
from symbp.codegen import generate_source, load_module
from symbp.engine.activation import activation_derivative
from symbp.engine.derivation import GraphDerivation, derive_graph, self_check
from symbp.engine.indices import BOUND, FREE
from symbp.engine.numeric import run
from symbp.errors import ExpressionError, InternalError, SpecError
from symbp.expressions import MAX_DEPTH, parse_expression
from symbp.ops.base import BATCH
from symbp.printing import render
from symbp.registry import X, custom_activation
from symbp.spec import load_spec

RTOL = 1e-9
INTERNALS = ("re(", "im(", "Derivative", "Subs(", "Sum(", "Dummy", "fprime_output")


# ------------------------------------------------------------------ helpers
def spec_text(activation="tanh", loss="mse", output="identity", activations=(), losses=()):
    lines = ['name = "net"', "inputs = 4", f'loss = "{loss}"']
    if activations:
        lines += ["[activations]"] + [f'{name} = "{text}"' for name, text in activations]
    if losses:
        lines += ["[losses]"] + [f'{name} = "{text}"' for name, text in losses]
    for units, act in ((5, activation), (3, output)):
        lines += ["[[layers]]", f"units = {units}", f'activation = "{act}"']
    return "\n".join(lines) + "\n"


def run_cli(tmp_path, capsys, command, text):
    path = tmp_path / "spec.toml"
    path.write_text(toml_spec(text), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy RuntimeWarning would fail the test
        status = main([command, str(path)])
    return status, capsys.readouterr()


def derive_text(tmp_path, text):
    """derive_graph() of a spec file with NumPy warnings as errors (the engine's modules)."""
    path = tmp_path / "spec.toml"
    path.write_text(toml_spec(text), encoding="utf-8")
    with warnings.catch_warnings():  # warnings raised in the engine's modules are errors
        warnings.filterwarnings("error", module=r"symbp\.(engine|ops|registry|expressions)")
        return derive_graph(load_spec(path))


def assert_one_error_line(captured, *fragments):
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("symbp: error: "), captured.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def torch_gradients(params, inputs, targets, activations, loss):
    """Gradients of the mean per-sample loss, by torch.autograd (shares no code with symbp)."""
    leaves = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True)
              for name, value in params.items()}
    a = torch.tensor(inputs, dtype=torch.float64)
    for layer, activation in enumerate(activations, start=1):
        a = activation(a @ leaves[f"W{layer}"].T + leaves[f"b{layer}"])
    value = loss(a, torch.tensor(targets, dtype=torch.float64)).sum(dim=1).mean()
    value.backward()
    return {name: leaf.grad.numpy() for name, leaf in leaves.items()}


def assert_close(got, expected, rtol=RTOL):
    scale = max(float(np.max(np.abs(v))) for v in expected.values())
    assert scale > 1e-6
    for name, value in expected.items():
        error = float(np.max(np.abs(np.asarray(got[name]) - value))) / scale
        assert error < rtol, f"{name}: relative error {error:.2e}"


def generated_module(network):
    return load_module(generate_source(network, "float64"), name="reliability_generated")


def problem(module, rng, batch=6):
    params = module.init_params(seed=3)
    params = {name: value + rng.normal(0.0, 0.3, value.shape) for name, value in params.items()}
    return params, rng.normal(0.0, 1.0, (batch, 4))


def engine_values(derivation, params, inputs, targets) -> dict:
    """Every tensor and gradient of the derivation at one point (the engine's NumPy reading)."""
    sizes = {**derivation.sizes, BATCH: len(inputs)}
    return run(derivation.graph, {**params, "X": inputs, "Y": targets}, sizes,
               derivation.gradients)


def engine_gradients(derivation, params, inputs, targets) -> dict:
    values = engine_values(derivation, params, inputs, targets)
    return {name: values[f"g_{name}"] for name in params}


def assert_derived_and_generated_match(network, activations, loss, targets_from):
    """The derived gradients (evaluated by the engine) and the generated module against torch."""
    derivation = derive_graph(network)
    module = generated_module(network)
    rng = np.random.default_rng(7)
    params, inputs = problem(module, rng)
    targets = targets_from(np.asarray(module.forward(params, inputs)), rng)
    expected = torch_gradients(params, inputs, targets, activations, loss)
    assert_close(module.gradients(params, inputs, targets), expected)
    assert_close(engine_gradients(derivation, params, inputs, targets), expected)
    return derivation


def assert_float32_module_matches(network, activations, loss, targets_from):
    """The float32 module (its step functions included) computes in float32 and agrees
    with torch's float64 gradients to float32 accuracy."""
    module = load_module(generate_source(network, "float32"), name="reliability_float32")
    rng = np.random.default_rng(7)
    params, inputs = problem(module, rng)
    params = {name: value.astype(np.float32) for name, value in params.items()}
    inputs = inputs.astype(np.float32)
    targets = targets_from(np.asarray(module.forward(params, inputs), dtype=np.float64), rng)
    got = module.gradients(params, inputs, targets.astype(np.float32))
    assert {name: np.asarray(value).dtype for name, value in got.items()} == {
        name: np.dtype(np.float32) for name in params}
    assert_close(got, torch_gradients(params, inputs, targets, activations, loss), rtol=1e-4)


def away_from_kinks(kinks):
    """Targets with ``|a - y|`` at least 0.1 from each kink of the loss in ``|a - y|``."""
    def targets(outputs, rng):
        gaps = rng.uniform(0.1, 0.4, outputs.shape) + rng.choice(kinks, outputs.shape)
        return outputs + rng.choice([-1.0, 1.0], outputs.shape) * gaps
    return targets


def normal_targets(outputs, rng):
    return rng.normal(0.0, 1.0, outputs.shape)


def _huber(a, y):
    d = torch.abs(a - y)
    return torch.clamp(d, max=1.0) ** 2 / 2 + torch.clamp(d - 1.0, min=0.0)


HUBER = "min(abs(a - y), 1)**2/2 + max(abs(a - y) - 1, 0)"


# ---------------------------------------------- 1. abs, max, min in losses
@pytest.mark.parametrize("name, text, oracle, kinks", [
    ("l1", "abs(a - y)", lambda a, y: torch.abs(a - y), [0.0]),
    ("huber", HUBER, _huber, [0.0, 1.0, 1.5]),
    ("hinge", "max(1 - a*y, 0) + min(a, y)", lambda a, y: torch.clamp(1 - a * y, min=0)
     + torch.minimum(a, y), [0.0]),
])
def test_piecewise_losses_derive_print_and_match_torch(name, text, oracle, kinks):
    network = make_network(4, ((5, "tanh"), (3, "identity")), name, losses=((name, text),))
    targets = away_from_kinks(kinks)
    if name == "hinge":  # kinks at a*y = 1 and a = y: targets far from both
        targets = lambda outputs, rng: -np.sign(outputs) * rng.uniform(0.5, 1.5, outputs.shape)  # noqa: E731
    derivation = assert_derived_and_generated_match(
        network, (torch.tanh, lambda z: z), oracle, targets)
    assert_float32_module_matches(network, (torch.tanh, lambda z: z), oracle, targets)
    for fmt in ("latex", "text"):  # (json carries srepr forms by design)
        text_out = render(derivation, fmt)
        for internal in INTERNALS:
            assert internal not in text_out, (fmt, internal)


def test_abs_loss_through_the_command_line(tmp_path, capsys):
    for command in ("derive", "generate"):
        status, captured = run_cli(tmp_path, capsys, command, spec_text(
            loss="huber", losses=(("huber", HUBER),)))
        assert status == 0, captured.err
        assert captured.err == ""
    assert "sign" in captured.out


# ---------------------------------------------------- 2. losses linear in a
LINEAR = [("a", lambda a, y: a, 1), ("-a", lambda a, y: -a, -1),
          ("a + a", lambda a, y: a + a, 2), ("a*y - a", lambda a, y: a * y - a, None)]


@pytest.mark.parametrize("text, oracle, constant", LINEAR)
def test_losses_linear_in_a_derive(text, oracle, constant):
    """The derived gradients against torch; a constant delta^(L) (``constant/B``, no
    index) takes the shape of a^(L) when evaluated."""
    network = make_network(4, ((5, "tanh"), (3, "identity")), "linear",
                           losses=(("linear", text),))
    derivation = derive_graph(network)
    rng = np.random.default_rng(7)
    params = {f"W{n}": rng.normal(0, 0.6, shape) for n, shape in ((1, (5, 4)), (2, (3, 5)))}
    params |= {"b1": rng.normal(0, 0.3, 5), "b2": rng.normal(0, 0.3, 3)}
    inputs, targets = rng.normal(0, 1, (6, 4)), rng.normal(0, 1, (6, 3))
    expected = torch_gradients(params, inputs, targets, (torch.tanh, lambda z: z), oracle)
    assert_close(engine_gradients(derivation, params, inputs, targets), expected)
    if constant is not None:
        delta = derivation.gradient_of("z2")
        assert delta.expr == sp.Integer(constant) / BATCH, delta.expr
        assert delta.adjoint.shape == derivation.graph.tensors["a2"].shape
        values = engine_values(derivation, params, inputs, targets)
        np.testing.assert_array_equal(values["g_z2"], np.full((6, 3), constant / 6))


@pytest.mark.parametrize("text, oracle, constant", LINEAR)
def test_losses_linear_in_a_generate(text, oracle, constant):
    network = make_network(4, ((5, "tanh"), (3, "identity")), "linear",
                           losses=(("linear", text),))
    assert_derived_and_generated_match(network, (torch.tanh, lambda z: z), oracle,
                                       normal_targets)


def test_linear_loss_through_a_sigmoid_output():
    network = make_network(4, ((5, "tanh"), (3, "sigmoid")), "neg", losses=(("neg", "-a"),))
    assert_derived_and_generated_match(network, (torch.tanh, torch.sigmoid),
                                       lambda a, y: -a, normal_targets)


# -------------------------------------------------- 3. constant activations
@pytest.mark.parametrize("text", ["1", "x - x", "0.0/x", "sqrt(0.0)", "2*x - x - x + 3"])
def test_constant_activation_is_refused(text):
    with pytest.raises(SpecError, match=r"^activations\.flat: the activation does not "
                                        r"depend on 'x'$"):
        custom_activation("flat", text)


@pytest.mark.parametrize("command", ["derive", "check"])
def test_constant_activation_exits_2(tmp_path, capsys, command):
    status, captured = run_cli(tmp_path, capsys, command, spec_text(
        activation="flat", activations=(("flat", "x - x"),)))
    assert status == 2
    assert_one_error_line(captured, "activations.flat", "does not depend on 'x'")


# ------------------------------------------------------ 4. nesting depth
def tower(count: int) -> str:
    return "x" + "**x" * (count - 1)


def nested(function: str, depth: int) -> str:
    return f"{function}(" * depth + "x" + ")" * depth


@pytest.mark.parametrize("text", [tower(161), nested("tanh", 80), nested("exp", 60),
                                  "-" * 40 + "x", nested("sin", MAX_DEPTH)])
def test_deep_expressions_are_refused_before_sympy(text):
    with pytest.raises(ExpressionError, match=rf"^activations\.deep: expression nested "
                                              rf"deeper than {MAX_DEPTH} levels$"):
        parse_expression(text, {"x": X}, "activations.deep")


def test_power_tower_exits_2(tmp_path, capsys):
    status, captured = run_cli(tmp_path, capsys, "derive", spec_text(
        activation="tower", activations=(("tower", tower(161)),)))
    assert status == 2
    assert_one_error_line(captured, "activations.tower", "nested deeper than")


def test_long_chains_count_as_one_level():
    """A sum of 90 terms is shallow for SymPy (one Add), so it is accepted and parsed
    without recursing along the chain."""
    text = "+".join(f"x/{n}" for n in range(1, 90)) + "-x*x*x*x*x*x*x*x*x*x*x/7"
    assert len(text) < 500
    expr = parse_expression(text, {"x": X}, "activations.long")
    assert expr.free_symbols == {X}


@pytest.mark.parametrize("text, printed", [
    (nested("atan", MAX_DEPTH - 1), True), (nested("tanh", MAX_DEPTH - 1), True),
    ("x" + "*tanh(x" * ((MAX_DEPTH - 1) // 2) + ")" * ((MAX_DEPTH - 1) // 2), False)],
    ids=["atan", "tanh", "x_tanh_chain"])
def test_the_deepest_accepted_expressions_derive_and_print_in_sympy(text, printed):
    """At the depth limit SymPy's diff, LaTeX printing and lambdify still work, and the
    network derives (self-checked numerically); the nests also print as documents (the
    chain's f' has quadratically many terms: its document takes seconds, kept out)."""
    forward = parse_expression(text, {"x": X}, "activations.deep")
    derivative = activation_derivative("deep", forward)
    assert r"\tanh" in sp.latex(derivative.in_input) or r"\operatorname{atan}" in \
        sp.latex(derivative.forward)
    values = sp.lambdify(X, derivative.in_input, "numpy")(np.linspace(-2, 2, 5))
    assert np.all(np.isfinite(values))
    network = make_network(4, ((5, "deep"), (3, "identity")), "mse",
                           activations=(("deep", text),))
    derivation = derive_graph(network)  # self-checked against finite differences
    for fmt in ("latex", "text") if printed else ():
        assert "deep" in render(derivation, fmt)


def test_exponents_that_combine_past_the_limit_are_refused():
    with pytest.raises(ExpressionError, match="constant exponent larger than 64"):
        parse_expression("(x**64)**64", {"x": X}, "activations.p")
    assert parse_expression("(x**8)**8", {"x": X}, "activations.p") == X**64


# ----------------------------------------------------- 5. the rewrite search
@pytest.mark.parametrize("name, text", [
    ("p64", "x**64"), ("p5", "x**5 + x"), ("towerx", tower(12)),
    ("exps", nested("exp", 12)), ("tanhs", nested("tanh", 20)),
    ("sines", nested("sin", 6)),
])
def test_rewrite_search_never_solves_these(monkeypatch, name, text):
    """x**64 has 64 complex roots, a tower or a nest of exp/tanh has no algebraic
    inverse: solve is not reached, and f'(z) is used when no cheaper rewrite agrees."""
    def refuse(*args, **kwargs):
        raise AssertionError("sympy.solve called")

    monkeypatch.setattr(sp, "solve", refuse)
    forward = parse_expression(text, {"x": X}, f"activations.{name}")
    derivative = activation_derivative(f"budget_{name}", forward)
    assert derivative.in_input.has(X)


@pytest.mark.parametrize("text, outcome", [
    ("x**64", None), ("(x**64)**64", "constant exponent"),
    (nested("exp", 60), "nested deeper"), (nested("tanh", 80), "nested deeper"),
    (nested("exp", 12), "overflow"), (nested("tanh", 6), None),
])
def test_former_hangs_finish(tmp_path, text, outcome):
    if outcome is None:
        derive_text(tmp_path, spec_text(activation="slow", activations=(("slow", text),)))
        return
    with pytest.raises((SpecError, ExpressionError), match=outcome) as error:
        derive_text(tmp_path, spec_text(activation="slow", activations=(("slow", text),)))
    assert str(error.value).startswith("activations.slow")


@pytest.mark.parametrize("text, outcome", [
    (nested("exp", 60), "nested deeper"), (nested("tanh", 80), "nested deeper"),
    ("(x**64)**64", "constant exponent"),
])
@pytest.mark.parametrize("command", ["derive", "generate"])
def test_former_hangs_refused_by_the_parser_on_the_command_line(tmp_path, capsys, text,
                                                               outcome, command):
    status, captured = run_cli(tmp_path, capsys, command, spec_text(
        activation="slow", activations=(("slow", text),)))
    assert status == 2
    assert_one_error_line(captured, "activations.slow", outcome)


# ----------------------------------- 6. outside the domain at sample points
DOMAIN = [("activation", "log(x)"), ("activation", "sqrt(x)"), ("activation", "x**x"),
          ("loss", "log(a - y)"), ("loss", "sqrt(a)*(a - y)")]


def _partial_spec(kind, text):
    if kind == "activation":
        return spec_text(activation="partial", activations=(("partial", text),)), \
            "activations.partial"
    return spec_text(loss="partial", losses=(("partial", text),)), "losses.partial"


@pytest.mark.parametrize("kind, text", DOMAIN)
def test_undefined_on_the_reals_is_a_user_error_without_warnings(tmp_path, kind, text):
    spec, field = _partial_spec(kind, text)
    with pytest.raises(SpecError, match="not defined on the real numbers") as error:
        derive_text(tmp_path, spec)
    assert str(error.value).startswith(field + ": ")
    assert "sample" in str(error.value)


@pytest.mark.parametrize("kind, text", DOMAIN[:1] + DOMAIN[3:4])
def test_undefined_on_the_reals_exits_2_on_the_command_line(tmp_path, capsys, kind, text):
    spec, field = _partial_spec(kind, text)
    status, captured = run_cli(tmp_path, capsys, "derive", spec)
    assert status == 2
    assert_one_error_line(captured, field, "not defined on the real numbers")


# ------------------------------------------------------------ 7. overflow
OVERFLOW = [("activation", "exp(exp(exp(x + 3)))", "too large for float64 (overflow)"),
            ("loss", "exp(exp(exp(a + 3)))", "too large for float64 (overflow)"),
            ("loss", "(a - y)**2 + 10**20", "too large to check its gradients in float64")]


@pytest.mark.parametrize("kind, text, fragment", OVERFLOW)
def test_overflow_is_named_and_a_user_error(tmp_path, kind, text, fragment):
    """Overflow at every one of the self-check's points, or an objective so large that
    finite differences see only rounding: the user's error naming the field."""
    spec, field = _partial_spec(kind, text)
    with pytest.raises(SpecError, match=re.escape(fragment)) as error:
        derive_text(tmp_path, spec)
    assert str(error.value).startswith(field + ": ")


@pytest.mark.parametrize("text", ["2**64*x", "x**40", "exp(exp(exp(x)))"])
def test_large_values_that_can_be_checked_derive(tmp_path, text):
    """Large but finite at the self-check's points (it retries with smaller parameters
    before blaming the spec): the derivation is checked and accepted."""
    derivation = derive_text(tmp_path, spec_text(activation="huge",
                                                 activations=(("huge", text),)))
    assert derivation.gradient_of("z1") is not None


@pytest.mark.parametrize("kind, text, fragment", OVERFLOW)
def test_overflow_exits_2_on_the_command_line(tmp_path, capsys, kind, text, fragment):
    spec, field = _partial_spec(kind, text)
    status, captured = run_cli(tmp_path, capsys, "derive", spec)
    assert status == 2
    assert_one_error_line(captured, field, fragment)


def test_a_genuine_mismatch_on_large_values_stays_internal():
    """Values large but well inside float64's resolution: a wrong output delta is still
    symbp's own failure."""
    network = make_network(4, ((5, "big"), (3, "identity")), "mse",
                           activations=(("big", "1000*x"),))
    derived = derive_graph(network, check=False)  # cached: build a wrong copy beside it
    gradients = [dataclasses.replace(g, expr=2 * g.expr) if g.of.name == "z2" else g
                 for g in derived.gradients]
    assert gradients != derived.gradients
    self_check(derived)  # the true derivation passes
    with pytest.raises(InternalError, match="self-check failed"):
        self_check(GraphDerivation(network, derived.train, derived.eval, gradients))


# --------------------------------------------- 8. the compact softmax delta
def assert_a_times_g_minus_weighted_mean(expr, a, width):
    """``expr`` is ``(1/B) a_i (g_i - sum_k a_k g_k)`` with one row sum: the
    ``a ⊙ (g - a^T g)`` of a softmax output, whatever ``g = dl/da`` is."""
    row, column = FREE[:2]
    k = BOUND[0]
    assert expr.count(sp.Sum) == 1, expr
    assert sp.Mul.make_args(expr).count(a[row, column]) == 1 and sp.Mul.make_args(expr).count(
        1 / BATCH) == 1, expr
    rest = sp.Mul(*[f for f in sp.Mul.make_args(expr) if f not in (a[row, column], 1 / BATCH)])
    assert isinstance(rest, sp.Add), rest
    (mean,) = [t for t in rest.args if t.has(sp.Sum)]
    g = rest - mean
    coefficient, total = mean.as_coeff_Mul()
    assert isinstance(total, sp.Sum) and total.limits == ((k, 0, width - 1),), mean
    assert sp.simplify(coefficient * total.function + a[row, k] * g.xreplace({column: k})) == 0


@pytest.mark.parametrize("loss, text, oracle", [
    ("mse", None, lambda a, y: (a - y) ** 2 / 2),
    ("logcosh", "log(cosh(a - y))", lambda a, y: torch.log(torch.cosh(a - y))),
    ("quartic", "(a - y)**4 + a**2*y", lambda a, y: (a - y) ** 4 + a**2 * y),
    ("huber", HUBER, _huber),
])
def test_softmax_delta_is_a_times_g_minus_its_weighted_mean(loss, text, oracle):
    losses = ((loss, text),) if text else ()
    network = make_network(4, ((5, "tanh"), (3, "softmax")), loss, losses=losses)
    targets = away_from_kinks([0.0, 1.0]) if loss == "huber" else normal_targets
    derivation = assert_derived_and_generated_match(
        network, (torch.tanh, lambda z: torch.softmax(z, dim=1)), oracle, targets)
    tensors = derivation.graph.tensors
    assert_a_times_g_minus_weighted_mean(derivation.gradient_of("z2").expr, tensors["a2"].base,
                                         tensors["a2"].shape[1])
    printed = render(derivation, "text").splitlines()
    for lhs, a in (("delta^(2) = ", "a^(2)"), ("delta^(L) = ", "a^(L)")):  # one sample, layer l
        (line,) = [line.strip() for line in printed if line.strip().startswith(lhs)]
        assert re.match(rf"{re.escape(lhs)}(-?[0-9/]+ \()?{re.escape(a)} ⊙ \(", line), line
        assert line.count(f"({a})^T") == 1, line


def test_softmax_cross_entropy_is_still_a_minus_y():
    network = make_network(4, ((5, "tanh"), (3, "softmax")), "cross_entropy")
    derivation = derive_graph(network)
    a, y = derivation.graph.tensors["a2"].base, derivation.graph.tensors["Y"].base
    row, column = FREE[:2]
    assert sp.simplify(derivation.gradient_of("z2").expr
                       - (a[row, column] - y[row, column]) / BATCH) == 0
    assert "delta^(L) = a^(L) - y" in render(derivation, "text")


# ------------------------------------------- 9. index form of an activation
def test_json_index_form_of_an_activation_indexes_z(tmp_path, capsys):
    status, captured = run_cli(tmp_path, capsys, "derive", spec_text(
        activation="mish", activations=(("mish", "x*tanh(log(1 + exp(x)))"),)))
    assert status == 0, captured.err
    path = tmp_path / "spec.toml"
    assert main(["derive", str(path), "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for section in payload["sections"] for row in section["quantities"]}
    lhs, rhs = rows["a1"]["index_latex"].split(" = ", 1)
    indices = re.fullmatch(r"a\^\{\(1\)\}_\{([^{}]+)\}", lhs)
    assert indices, lhs
    assert f"z^{{(1)}}_{{{indices[1]}}}" in rhs and r"\tanh" in rhs
    assert "z^{(1)} " not in rhs and r"\odot" not in rhs
    assert rows["a2"]["index_latex"] == f"a^{{(2)}}_{{{indices[1]}}} = z^{{(2)}}_{{{indices[1]}}}"
    network = load_spec(path)
    assert network.activation_of(1).name == "mish"
