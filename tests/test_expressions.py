"""Tests for symbp.expressions: the safe parser of custom activations and losses.

Valid expressions become the expected SymPy objects; everything outside the
whitelist raises ExpressionError naming the field and the column, and nothing
in the string is ever executed.
"""

from __future__ import annotations

import builtins

import pytest
import sympy as sp

from symbp.errors import ExpressionError, SymbpError
from symbp.expressions import MAX_CONSTANT_EXPONENT, MAX_LENGTH, parse_expression
from symbp.registry import A, X, Y, custom_activation, custom_loss
from symbp.spec import Dense, Network, load_spec

WHERE = "activations.evil"


def parse(text, variables=None):
    return parse_expression(text, variables or {"x": X}, WHERE)


# ------------------------------------------------------------------ accepted
@pytest.mark.parametrize("text, expected", [
    ("x*tanh(log(1 + exp(x)))", X * sp.tanh(sp.log(1 + sp.exp(X)))),
    ("x / (1 + exp(-x))", X / (1 + sp.exp(-X))),
    ("-x**2", -(X**2)),  # ** binds tighter than unary minus, as in Python
    ("2**-1*x", X / 2),
    ("0.1*x", sp.Rational(1, 10) * X),  # exact, not a float
    ("1.5e-3*x", sp.Rational(3, 2000) * X),
    ("max(x, 0) + min(x, 0)/100", sp.Max(X, 0) + sp.Min(X, 0) / 100),
    ("abs(x) + sqrt(1 + x**2)", sp.Abs(X) + sp.sqrt(1 + X**2)),
    ("x*(1 + erf(x/sqrt(2)))/2", X * (1 + sp.erf(X / sp.sqrt(2))) / 2),
    ("sin(x) + cos(x) + sinh(x) + cosh(x)", sp.sin(X) + sp.cos(X) + sp.sinh(X) + sp.cosh(X)),
    ("atan(x) + asinh(x)", sp.atan(X) + sp.asinh(X)),
    ("pi*x + E", sp.pi * X + sp.E),
    ("+x", X),
    ("  x  ", X),
    (f"x**{MAX_CONSTANT_EXPONENT}", X**MAX_CONSTANT_EXPONENT),
    (f"x**-{MAX_CONSTANT_EXPONENT}", X**-MAX_CONSTANT_EXPONENT),
])
def test_valid_expressions_parse_exactly(text, expected):
    result = parse(text)
    assert sp.simplify(result - expected) == 0
    assert result.free_symbols <= {X}
    assert not result.has(sp.Float)


def test_loss_expression_uses_a_and_y():
    result = parse_expression("log(cosh(a - y))", {"a": A, "y": Y}, "losses.logcosh")
    assert result == sp.log(sp.cosh(A - Y))
    assert custom_loss("logcosh", "log(cosh(a - y))").expr == result


def test_custom_activation_has_the_parsed_expression():
    activation = custom_activation("mish", "x*tanh(log(1 + exp(x)))")
    assert activation.expr == X * sp.tanh(sp.log(1 + sp.exp(X)))
    assert not activation.builtin and not activation.is_softmax


def test_longest_allowed_expression(tmp_path):
    text = "x" + "+x" * ((MAX_LENGTH - 1) // 2)
    assert len(text) <= MAX_LENGTH
    assert parse(text) == ((MAX_LENGTH - 1) // 2 + 1) * X


def test_parser_never_calls_eval_or_exec(monkeypatch):
    calls = []

    def spy(name):
        def refuse(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} called")
        return refuse

    monkeypatch.setattr(builtins, "eval", spy("eval"))
    monkeypatch.setattr(builtins, "exec", spy("exec"))
    parse("x*tanh(log(1 + exp(x))) + 0.25*max(x, 0)")
    with pytest.raises(ExpressionError):
        parse("__import__('os').system('true')")
    assert calls == []


# ------------------------------------------------------------------ refused
# (id, text, fragments of the message besides the field name, column)
REFUSED = [
    ("attribute", "x.__class__", "Attribute", 1),
    ("attribute-later", "x + x.__class__.__bases__", "Attribute", 5),
    ("lambda", "lambda: 1", "Lambda", 1),
    ("subscript", "x[0]", "Subscript", 1),
    ("list-comprehension", "[x for x in (1, 2)]", "ListComp", 1),
    ("generator", "sum(x for x in (1, 2))", "sum", 1),
    ("keyword-argument", "exp(x=1)", "keyword", 1),
    ("keyword-argument-max", "max(x, y=1)", "keyword", 1),
    ("starred-argument", "exp(*(x,))", "Starred", 5),
    ("f-string", "f'{x}'", "JoinedStr", 1),
    ("eval", "eval('1')", "unknown function 'eval'", 1),
    ("exec", "exec('import os')", "unknown function 'exec'", 1),
    ("open", "open('/etc/passwd')", "unknown function 'open'", 1),
    ("open-later", "exp(x) + open('f')", "unknown function 'open'", 10),
    ("getattr", "getattr(x, 'real')", "unknown function 'getattr'", 1),
    ("dunder-import", "__import__('os')", "unknown function '__import__'", 1),
    ("import-call-chain", "__import__('os').system('true')", "plain function names", 1),
    ("unknown-name", "x + z", "unknown name 'z'", 5),
    ("builtins-name", "__builtins__", "unknown name '__builtins__'", 1),
    ("os-name", "os", "unknown name 'os'", 1),
    ("huge-exponent", "9**9**9**9", "exponent", 4),
    ("big-exponent", "exp(x)**100", "exponent", 1),
    ("big-negative-exponent", "x**-65", "exponent", 1),
    ("conditional", "x if x else 1", "IfExp", 1),
    ("comparison", "x < 1", "Compare", 1),
    ("boolean-op", "x and 1", "BoolOp", 1),
    ("tuple", "(x, x)", "Tuple", 1),
    ("dict", "{x: 1}", "Dict", 1),
    ("walrus", "(y := 1)", "NamedExpr", 2),
    ("matmul", "x @ x", "not allowed", 1),
    ("floor-division", "x // 2", "not allowed", 1),
    ("modulo", "x % 2", "not allowed", 1),
    ("bit-shift", "x << 1", "not allowed", 1),
    ("bitwise-not", "~x", "not allowed", 1),
    ("bool-constant", "True", "True", 1),
    ("string-constant", "'s'", "'s'", 1),
    ("complex-constant", "x*1j", "1j", 3),
    ("none-constant", "None", "None", 1),
    ("ellipsis", "...", "Ellipsis", 1),
    ("division-by-zero", "x/0", "division by zero", 1),
    ("division-by-folded-zero", "x/(1 - 1)", "division by zero", 1),
    ("wrong-arity", "exp(x, x)", "takes 1", 1),
    ("wrong-arity-max", "max(x)", "takes 2", 1),
    ("syntax-error", "x*(1 +", "syntax error", None),
    ("statement", "import os", "syntax error", None),
    ("two-statements", "x; import os", "syntax error", None),
    ("assignment", "x = 1", "syntax error", None),
]


@pytest.mark.parametrize("text, fragment, column",
                         [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_refused_expression_names_field_and_column(text, fragment, column):
    with pytest.raises(ExpressionError) as info:
        parse(text)
    message = str(info.value)
    assert message.startswith(WHERE + ":")
    assert fragment in message
    assert "column" in message
    if column is not None:
        assert message.endswith(f"at column {column}")


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("   ", "empty"),
    ("x" + "+x" * MAX_LENGTH, "longer than"),
])
def test_empty_or_too_long_expression(text, fragment):
    with pytest.raises(ExpressionError, match=fragment) as info:
        parse(text)
    assert str(info.value).startswith(WHERE + ":")


@pytest.mark.parametrize("value", [3, 1.5, None, ["x"], {"x": 1}])
def test_non_string_expression(value):
    with pytest.raises(ExpressionError, match=WHERE):
        parse(value)


INJECTIONS = [
    "__import__('os').system('touch {target}')",
    "open('{target}', 'w')",
    "exec(\"open('{target}', 'w')\")",
    "eval(\"open('{target}', 'w')\")",
    "(lambda: open('{target}', 'w'))()",
    "[open('{target}', 'w') for _ in (1,)]",
    "x.__class__.__init__.__globals__['__builtins__']['open']('{target}', 'w')",
    "f\"{{open('{target}', 'w')}}\"",
]


@pytest.mark.parametrize("template", INJECTIONS)
def test_injection_runs_nothing(tmp_path, template):
    target = tmp_path / "pwned"
    text = template.format(target=target)
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert "column" in str(info.value)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("template", INJECTIONS[:3])
def test_injection_through_a_spec_file_runs_nothing(tmp_path, template):
    target = tmp_path / "pwned"
    expression = template.format(target=target).replace("\\", "\\\\").replace('"', '\\"')
    spec = tmp_path / "evil.toml"
    spec.write_text(
        'inputs = 2\nloss = "mse"\n[activations]\n'
        f'evil = "{expression}"\n'
        '[[layers]]\nunits = 1\nactivation = "evil"\n', encoding="utf-8")
    with pytest.raises(ExpressionError) as info:
        load_spec(spec)
    assert str(info.value).startswith("activations.evil:")
    assert "column" in str(info.value)
    assert not target.exists()


def test_injection_in_a_custom_loss_names_the_loss(tmp_path):
    target = tmp_path / "pwned"
    with pytest.raises(ExpressionError) as info:
        custom_loss("evil", f"__import__('os').system('touch {target}')")
    assert str(info.value).startswith("losses.evil:") and "column 1" in str(info.value)
    assert not target.exists()


# ------------------------------------------ constants that must stay finite
@pytest.mark.parametrize("text, column", [
    ("x*1e400", 3),  # a float literal that overflows to inf
    ("x + ((9**64)**64)**64", 6),  # nested constant powers: 250,000 digits
    ("x + (((9**64)**64)**64)**64", 7),  # would take ~20 s and then exhaust memory
    ("x + 0**-1", 5),  # division by zero in disguise (zoo)
    ("x**(0**-1)", 5),
    ("log(0)", 1),
])
def test_non_finite_or_huge_constants_are_refused(text, column):
    with pytest.raises(ExpressionError) as info:
        parse(text)
    message = str(info.value)
    assert message.startswith(WHERE + ":") and f"column {column}" in message


def test_non_finite_constant_is_refused_by_the_spec():
    with pytest.raises(SymbpError, match="activations.f"):
        Network(inputs=2, layers=[Dense(2, "f")], loss="mse", activations={"f": "x + 0**-1"})


@pytest.mark.parametrize("text", ["x*sqrt(-1)", "x*(-1)**0.5", "x + log(-1)"])
def test_imaginary_constants_are_refused(text):
    with pytest.raises(ExpressionError, match="column"):
        parse(text)
