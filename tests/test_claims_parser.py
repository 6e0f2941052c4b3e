"""Tests for symbp.claims: the LaTeX grammar, the AST, error columns, and fuzzing."""

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbp.claims import (
    Add,
    Apply,
    ClaimParseError,
    Deriv,
    Div,
    Func,
    Grad,
    Hadamard,
    Indexed,
    LayerRef,
    Leaf,
    MatMul,
    Neg,
    Num,
    Ones,
    Power,
    Star,
    Sub,
    Sum,
    Transpose,
    parse_claim,
    to_latex,
)
from symbp.errors import SymbpError

L_ = LayerRef("l")
L1 = LayerRef("l", 1)
LM1 = LayerRef("l", -1)


def rhs(text):
    return parse_claim(r"\delta^{(l)} = " + text).rhs


def W(ref=L1):
    return Leaf("W", ref)


def delta(ref=L1):
    return Leaf("delta", ref)


# ------------------------------------------------------------ notations
@pytest.mark.parametrize("text", [
    r"(W^{(l+1)})^T", r"(W^{(l+1)})^{T}", r"(W^{(l+1)})^\top", r"(W^{(l+1)})^{\top}",
    r"W^{(l+1)T}", r"W^{(l+1)\top}", r"\left(W^{(l+1)}\right)^{\top}", r"{W^{(l+1)}}^T",
    r"[W^{(l+1)}]^T", r"W^{l+1}^T", r"W^{(l+1)}^{\intercal}", r"\mathbf{W}^{(l+1)T}",
])
def test_transpose_notations_are_one_node(text):
    assert rhs(text) == Transpose(W())


@pytest.mark.parametrize("text", [
    r"((W^{(l+1)})^T \delta^{(l+1)}) \odot f'(z^{(l)})",
    r"\left( (W^{(l+1)})^{\top} \delta^{(l+1)} \right) \odot f'\left(z^{(l)}\right)",
    r"(W^{(l+1)})^T \delta^{(l+1)} \odot f'(z^{(l)})",  # odot binds looser than juxtaposition
    r"(W^{(l+1)})^T \cdot \delta^{(l+1)} \circ f'(z^{(l)})",
    r"W^{(l+1)T}\delta^{(l+1)}\odot f'(z^{(l)})",
])
def test_recursion_spellings_give_the_same_tree(text):
    expected = Hadamard(MatMul(Transpose(W()), delta()), Apply(Func("generic", 1), Leaf("z", L_)))
    assert rhs(text) == expected


@pytest.mark.parametrize("text, func", [
    (r"f'(z^{(l)})", Func("generic", 1)),
    (r"f_l'(z^{(l)})", Func("generic", 1, layer=L_)),
    (r"f_{l}'(z^{(l)})", Func("generic", 1, layer=L_)),
    (r"f'_{l}(z^{(l)})", Func("generic", 1, layer=L_)),
    (r"f^{\prime}_l(z^{(l)})", Func("generic", 1, layer=L_)),
    (r"\sigma'(z^{(l)})", Func("sigmoid", 1)),
    (r"\sigma^{\prime}(z^{(l)})", Func("sigmoid", 1)),
    (r"\tanh'(z^{(l)})", Func("tanh", 1)),
    (r"\tanh^2(z^{(l)})", Func("tanh", 0, power=2)),
    (r"\operatorname{softmax}(z^{(l)})", Func("softmax")),
    (r"\mathrm{ReLU}'(z^{(l)})", Func("relu", 1)),
    (r"\operatorname{softplus}(z^{(l)})", Func("softplus")),
    (r"\exp(z^{(l)})", Func("exp")),
    (r"\log z^{(l)}", Func("log")),
])
def test_function_notations(text, func):
    node = rhs(text)
    assert isinstance(node, Apply) and node.func == func
    assert node.arg == Leaf("z", L_)


@pytest.mark.parametrize("text, loss", [
    (r"\frac{\partial L}{\partial W^{(l)}}", "L"),
    (r"\frac{\partial \ell}{\partial W^{(l)}}", r"\ell"),
    (r"\frac{\partial C}{\partial W^{(l)}}", "C"),
    (r"\frac{\partial E}{\partial W^{(l)}}", "E"),
    (r"\partial L / \partial W^{(l)}", "L"),
    (r"\nabla_{W^{(l)}} L", "L"),
    (r"\frac{\partial \mathcal{L}}{\partial W^{(l)}}", "L"),
    (r"\dfrac{\partial L}{\partial \mathbf{W}^{(l)}}", "L"),
])
def test_gradient_left_hand_sides(text, loss):
    claim = parse_claim(text + r" = \delta^{(l)} (a^{(l-1)})^T")
    assert claim.lhs == Grad(loss, Leaf("W", L_))
    assert claim.rhs == MatMul(Leaf("delta", L_), Transpose(Leaf("a", LM1)))


@pytest.mark.parametrize("text, ref", [
    (r"\delta^{(l)}", LayerRef("l")), (r"\delta^{(L)}", LayerRef("L")),
    (r"\delta^{(2)}", LayerRef(None, 2)), (r"\delta^{(l+1)}", LayerRef("l", 1)),
    (r"\delta^{(l-1)}", LayerRef("l", -1)), (r"\delta^{(L-1)}", LayerRef("L", -1)),
    (r"\delta^{l}", LayerRef("l")), (r"\delta^l", LayerRef("l")),
])
def test_layer_indices(text, ref):
    assert parse_claim(text + " = x").lhs == Leaf("delta", ref)


def test_scalars_powers_fractions_and_ones():
    one, two = Num(Fraction(1)), Num(Fraction(2))
    assert rhs(r"\frac{1}{2} (a^{(l)})^2") == MatMul(Div(one, two), Power(Leaf("a", L_), 2))
    assert rhs(r"\frac12 a^{(l)}") == MatMul(Div(one, two), Leaf("a", L_))
    assert rhs(r"1 - (a^{(l)})^{2}") == Sub(one, Power(Leaf("a", L_), 2))
    assert rhs(r"\frac{1}{B} (\Delta^{(l)})^T \mathbf{1}") == MatMul(
        MatMul(Div(one, Leaf("B")), Transpose(Leaf("delta", L_, batch=True))), Ones())
    assert rhs("0.5 a^{(l)}") == MatMul(Num(Fraction(1, 2)), Leaf("a", L_))


def test_precedence_of_plus_odot_and_juxtaposition():
    node = rhs(r"a^{(l)} + b^{(l)} \odot z^{(l)} W^{(l)}")
    assert node == Add(Leaf("a", L_), Hadamard(Leaf("b", L_), MatMul(Leaf("z", L_), W(L_))))


def test_scalar_claims():
    claim = parse_claim(r"\frac{d}{dz}\sigma(z) = \sigma(z)(1-\sigma(z))")
    assert claim.lhs == Deriv("z", Apply(Func("sigmoid"), Leaf("z")))
    assert claim.rhs == MatMul(Apply(Func("sigmoid"), Leaf("z")),
                               Sub(Num(Fraction(1)), Apply(Func("sigmoid"), Leaf("z"))))
    assert parse_claim(r"\frac{d\sigma}{dz} = 1").lhs == Apply(Func("sigmoid", 1), Leaf("z"))
    assert parse_claim(r"\frac{d}{dx} \log(1 + e^{x}) = \sigma(x)").lhs == Deriv(
        "x", Apply(Func("log"), Add(Num(Fraction(1)), Apply(Func("exp"), Leaf("x")))))


def test_chains_align_markup_and_trailing_punctuation():
    claim = parse_claim(r"\delta^{(l)} &= \frac{\partial L}{\partial z^{(l)}} = x \quad ,")
    assert len(claim.sides) == 3
    assert claim.sides[1] == Grad("L", Leaf("z", L_))


def test_source_text_and_latex_round_trip():
    claim = parse_claim(r"\delta^{(l)} = ((W^{(l+1)})^T \delta^{(l+1)} + b^{(l+1)}) \odot f'(z^{(l)})")
    add = claim.rhs.left
    assert claim.source(add.left) == r"(W^{(l+1)})^T \delta^{(l+1)}"
    assert claim.source(add.right) == r"b^{(l+1)}"
    again = parse_claim(r"\delta^{(l)} = " + to_latex(claim.rhs))
    assert again.rhs == claim.rhs
    assert to_latex(claim.rhs, l_value=2).startswith(r"\left(\left(W^{(3)}\right)^{\top}")


# ------------------------------------------------- the sources' notations (letters as written)
LJ = LayerRef("l")


def entry(name, ref, *idx, batch=False):
    return Indexed(Leaf(name, ref, batch), tuple(idx))


@pytest.mark.parametrize("text, lhs, rhs_", [
    # Nielsen ch. 2, BP2 and BP4: superscript layers without parentheses, lowercase w
    (r"\delta^l_j = \sum_k w^{l+1}_{kj} \delta^{l+1}_k \sigma'(z^l_j)", entry("delta", LJ, "j"),
     Sum("k", MatMul(MatMul(entry("w", L1, "k", "j"), entry("delta", L1, "k")),
                     Apply(Func("sigmoid", 1), entry("z", LJ, "j"))))),
    (r"\frac{\partial C}{\partial w^l_{jk}} = a^{l-1}_k \delta^l_j",
     Indexed(Grad("C", Leaf("w", LJ)), ("j", "k")),
     MatMul(entry("a", LM1, "k"), entry("delta", LJ, "j"))),
    # Bishop §5.3: unlayered units, h' the activation's derivative
    (r"\delta_j = h'(a_j) \sum_k w_{kj} \delta_k", entry("delta", None, "j"),
     MatMul(Apply(Func("generic", 1), entry("a", None, "j")),
            Sum("k", MatMul(entry("w", None, "k", "j"), entry("delta", None, "k"))))),
    # UFLDL: sums with limits, n_l the output layer
    (r"\delta^{(n_l)}_i = -(y_i - a^{(n_l)}_i)", entry("delta", LayerRef("L"), "i"),
     Neg(Sub(entry("y", None, "i"), entry("a", LayerRef("L"), "i")))),
    # the printer's batch index form: sample and unit
    (r"\frac{\partial L}{\partial b^{(l)}_{i}} = \sum_{r=1}^{B} \Delta^{(l)}_{r,i}",
     Indexed(Grad("L", Leaf("b", LJ)), ("i",)),
     Sum("r", entry("delta", LJ, "r", "i", batch=True), lower=1, upper="B")),
])
def test_component_forms_keep_indices_and_letters(text, lhs, rhs_):
    claim = parse_claim(text)
    assert claim.lhs == lhs and claim.rhs == rhs_


@pytest.mark.parametrize("text, lhs, rhs_", [
    # Ng: d-gradients, [l] layers, * elementwise, g^{[l]\prime}
    (r"dz^{[l]} = W^{[l+1]T} dz^{[l+1]} * g^{[l]\prime}(z^{[l]})", Grad("d", Leaf("z", LJ)),
     Star(MatMul(Transpose(W()), Grad("d", Leaf("z", L1))),
          Apply(Func("generic", 1, layer=LJ), Leaf("z", LJ)))),
    (r"dW^{[l]} = \frac{1}{m} dZ^{[l]} A^{[l-1]T}", Grad("d", Leaf("W", LJ)),
     MatMul(MatMul(Div(Num(Fraction(1)), Leaf("m")), Grad("d", Leaf("z", LJ, True))),
            Transpose(Leaf("a", LM1, True)))),
    # Wikipedia: (f^l)' without its argument, \circ and \cdot
    (r"\delta^l = (f^l)' \circ (W^{l+1})^T \cdot \delta^{l+1}", Leaf("delta", LJ),
     Hadamard(Apply(Func("generic", 1, layer=LJ), Leaf("z", LJ)),
              MatMul(Transpose(W()), delta()))),
    # Goodfellow: layer k, h and g kept as written
    (r"\nabla_{W^{(k)}} J = g \, h^{(k-1)\top}", Grad("J", Leaf("W", LayerRef("k"))),
     MatMul(Leaf("g"), Transpose(Leaf("h", LayerRef("k", -1))))),
    (r"\nabla_{\hat{y}} J = \hat{y} - y", Grad("J", Leaf("yhat")), Sub(Leaf("yhat"), Leaf("y"))),
    # Nielsen's Sigma'(z) is diag(sigma'(z)); \nabla_a C keeps a unlayered
    (r"\delta^L = \Sigma'(z^L) \nabla_a C", Leaf("delta", LayerRef("L")),
     MatMul(Apply(Func("diag"), Apply(Func("sigmoid", 1), Leaf("z", LayerRef("L")))),
            Grad("C", Leaf("a")))),
    # UFLDL's \bullet; d2l's bold letters
    (r"\delta^{(l)} = W^{(l)T} \delta^{(l+1)} \bullet f'(z^{(l)})", Leaf("delta", LJ),
     Hadamard(MatMul(Transpose(W(LJ)), delta()), Apply(Func("generic", 1), Leaf("z", LJ)))),
    (r"\frac{\partial J}{\partial \mathbf{h}} = {\mathbf{W}^{(2)}}^\top \frac{\partial J}{\partial \mathbf{o}}",
     Grad("J", Leaf("h")), MatMul(Transpose(W(LayerRef(None, 2))), Grad("J", Leaf("o")))),
])
def test_source_vector_notations(text, lhs, rhs_):
    claim = parse_claim(text)
    assert claim.lhs == lhs and claim.rhs == rhs_


@pytest.mark.parametrize("text, node", [
    (r"\log\cosh x", Apply(Func("log"), Apply(Func("cosh"), Leaf("x")))),
    (r"\mu^{(l)}", Leaf("mu", LJ)), (r"\sigma^{2(l)}", Leaf("sigma2", LJ)),
    (r"\sigma^{(l)2}", Leaf("sigma2", LJ)), (r"(\sigma^{(l)})^2", Leaf("sigma2", LJ)),
    (r"\sigma^{(l)}", Leaf("sigma", LJ)), (r"\sigma^{2}(z)", Apply(Func("sigmoid", power=2),
                                                                   Leaf("z"))),
    (r"\hat{X}^{(l)}", Leaf("xhat", LJ, True)), (r"\gamma^{(l)}", Leaf("gamma", LJ)),
    (r"m^{(l)}", Leaf("mask", LJ)), (r"M^{(l)}", Leaf("mask", LJ, True)), ("m", Leaf("m")),
    (r"\lambda", Leaf("lambda")), (r"\epsilon", Leaf("eps")), ("p", Leaf("p")),
    ("n_{l+1}", Leaf("n", L1)), ("n_2", Leaf("n", LayerRef(None, 2))),
    (r"(\sigma^{(l)})^{-3/2}", Power(Apply(Func("sqrt"), Leaf("sigma", LJ)), -3)),
    ("x^{1/2}", Apply(Func("sqrt"), Leaf("x"))),
    (r"\Phi(x)", Apply(Func("normal_cdf"), Leaf("x"))), (r"\pi", Leaf("pi")),
    (r"\operatorname{erf}(x)", Apply(Func("erf"), Leaf("x"))),
])
def test_quantities_of_other_ops_and_bare_arguments(text, node):
    assert parse_claim(r"\delta^{(l)} = " + text).rhs == node


# --------------------------------------------------------------- errors
@pytest.mark.parametrize("text, column, expected", [
    (r"\delta^{(l)} = (W^{(l+1)})^T \delta^{(l+1)} +", 46, "a quantity"),
    (r"\delta^{(l)} = q", 16, "a quantity"),
    (r"\delta^{(l)} = (W^{(l+1)})^T \delta^{(l+1)}} + 2", 44, "'='"),
    (r"\delta^{(l) = x", 13, "'}'"),
    (r"\delta^{(l)} = \foo(z^{(l)})", 16, "a function"),
    (r"\delta^{(l)} = ((W^{(l+1)})^T \delta^{(l+1)}", 45, "')'"),
    (r"\delta^{(l)} \delta^{(l+1)}", 28, "'='"),
    (r"\delta^{(l)} = W^{(l)} ^ ^ 2", 26, "'T'"),
    ("", 1, "a claim"),
    ("   ", 1, "a claim"),
])
def test_errors_point_at_the_column(text, column, expected):
    with pytest.raises(ClaimParseError) as info:
        parse_claim(text)
    error = info.value
    assert isinstance(error, SymbpError)
    assert error.column == column, str(error)
    assert any(expected in item for item in error.expected), error.expected


@pytest.mark.parametrize("text, message", [
    (r"\delta^{(l)} = (a^{(l)})^{(l)}", "a second layer index"),
    (r"\delta^{(l)} = (a^{(l)} + 1)^{(l)}", "layer index belongs"),
    (r"\delta^{(l)} = a^{(l)} ^{99}", "exponent"),
    (r"\delta^{(l)} = \sigma_l(z^{(l)})", "subscript"),
    (r"\frac{\partial L}{\partial \delta^{(l)}} = x", "with respect to W, b, z, a or x"),
    (r"\delta^l_j = w^l_{jk}_{i}", "a second subscript"),
    (r"\delta^l = (a^l + b^l)_j", "belongs on a quantity"),
    (r"\delta^l = h'", "needs its argument"),
    (r"\delta^l = h' + 1", "needs its argument"),
    (r"\delta^l = z' ", "a prime belongs on a function"),
    (r"\delta^l_j = \sum_{k=2}^{n} w_{kj}", "from 0 or 1"),
    (r"\delta^l = (\sigma)'", "only (f^l)'"),
    (r"\delta^l = (f)'", "needs the layer"),
    (r"\delta^l = \Sigma(z^l)", "diagonal matrix"),
    (r"\delta^l_j = a^l_{j}^T", "transpose of an entry"),
    (r"\delta^{(l)} = \mathbf{2}", "vector of ones"),
    ("(" * 60 + "x" + ")" * 60 + " = x", "nested"),
    (r"\tanh'(z) = 1 - a^2 \quad (a = " + "{" * 60 + "z" + "}" * 60 + ")", "nested"),
    (r"\tanh'(z) = " + " = ".join([" + ".join(["a"] * 30)] * 5) + r" \quad (a = "
     + " + ".join(["z"] * 30) + ")", "more than 4000 terms"),
    ("x" * 3000, "longer"),
])
def test_semantic_errors_are_parse_errors(text, message):
    with pytest.raises(ClaimParseError) as info:
        parse_claim(text)
    assert message in info.value.reason
    assert info.value.column >= 1


# ------------------------------------------------------------------ fuzz
TOKENS = [
    r"\delta", r"\Delta", "W", "b", "z", "a", "x", "y", "A", "B", "L", "l", "T", "f", "g",
    "e", "d", "^", "_", "{", "}", "(", ")", "[", "]", r"\left(", r"\right)", "+", "-", "=",
    "'", "/", "1", "2", "0.5", r"\odot", r"\cdot", r"\top", r"\frac", r"\partial", r"\sigma",
    r"\tanh", r"\exp", r"\log", r"\operatorname{softmax}", r"\mathbf{1}", r"\nabla", r"\ell",
    r"\prime", "(l)", "(l+1)", "(L)", "(2)", " ", r"\,", "&", r"\\", "%", "$", r"\foo", "é",
    r"\sum", "_k", "_{jk}", "_{s,i}", "^{[l]}", "w", "h", "dz", "dW", "*", r"\bullet",
    r"\hat{y}", r"\Sigma", "k", "j", "=1", "n_l", r"\mu", r"\sigma^{(l)}", r"\gamma",
]
VALID = [
    r"\delta^{(l)} = ((W^{(l+1)})^T \delta^{(l+1)}) \odot f'(z^{(l)})",
    r"\delta^l_j = \sum_k w^{l+1}_{kj} \delta^{l+1}_k \sigma'(z^l_j)",
    r"dZ^{[l]} = W^{[l+1]T} dZ^{[l+1]} * g^{[l]\prime}(Z^{[l]})",
    r"\frac{\partial L}{\partial W^{(l)}} = \delta^{(l)} (a^{(l-1)})^T",
    r"\delta^{(L)} = (a^{(L)} - y) \odot \sigma'(z^{(L)})",
    r"\frac{d}{dz}\sigma(z) = \sigma(z)(1-\sigma(z))",
]

token_soup = st.lists(st.sampled_from(TOKENS), min_size=0, max_size=25).map("".join)
mutated = st.tuples(st.sampled_from(VALID), st.integers(0, 200), st.integers(0, 3),
                    st.sampled_from(TOKENS)).map(
    lambda t: t[0][:t[1] % (len(t[0]) + 1)] + t[3] + t[0][t[1] % (len(t[0]) + 1) + t[2]:])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(token_soup, mutated, st.text(max_size=60)))
def test_fuzz_parser_either_parses_or_reports_a_column(text):
    try:
        claim = parse_claim(text)
    except ClaimParseError as error:
        assert 1 <= error.column <= len(text) + 1
        assert error.reason
        return
    assert len(claim.sides) >= 2
