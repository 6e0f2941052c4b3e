"""Tensor claims: every backward row ``symbp derive`` prints for convolutional networks parses.

The rows of three specs (examples/digits_cnn.toml; a strided, padded conv1d with average
pooling; a conv2d with a rectangular kernel, stride and padding and an overlapping max
pooling) are split as ``symbp verify`` reads a ``.tex`` file; each backward row (per
sample, batch, index and operator form, general layer l and concrete layers) parses into
the AST of the tensor claims, and its LaTeX parses back into an equal claim. Representative
rows are checked node by node; malformed index forms are refused at their column; the
limits hold for deep or long index expressions.
"""

import re
from fractions import Fraction

import pytest
from conftest import REPO
from derivation_rows import printed_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbp.claims import (
    Add,
    Apply,
    Between,
    ClaimParseError,
    Compare,
    Correlate,
    Div,
    Equal,
    Floor,
    Func,
    Grad,
    Indexed,
    Indicator,
    LayerRef,
    Leaf,
    Letter,
    MatMul,
    Member,
    Mod,
    Num,
    Prose,
    Sub,
    Sum,
    children,
    index_expressions,
    parse_claim,
    to_latex,
    walk,
)
from symbp.spec import load_spec, network_from_dict

BACKWARD = ("Backward", "Backpropagation", "Activation derivatives")
CONV1D = {"name": "conv1d_strided", "inputs": [2, 9], "loss": "cross_entropy", "layers": [
    {"type": "conv1d", "channels": 3, "kernel": 3, "stride": 2, "padding": 1,
     "activation": "tanh"},
    {"type": "avg_pool1d", "kernel": 2}, {"units": 2, "activation": "softmax"}]}
CONV2D = {"name": "conv2d_rectangular", "inputs": [2, 7, 6], "loss": "cross_entropy",
          "layers": [
              {"type": "conv2d", "channels": 3, "kernel": [3, 2], "stride": [2, 1],
               "padding": [1, 0], "activation": "tanh"},
              {"type": "max_pool2d", "kernel": 2, "stride": 1},
              {"units": 2, "activation": "softmax"}]}
NETWORKS = {"digits_cnn": load_spec(REPO / "examples" / "digits_cnn.toml"),
            "conv1d": network_from_dict(CONV1D), "conv2d": network_from_dict(CONV2D)}


def _rows(name, prefixes=BACKWARD):
    return [row for section, row in printed_rows(NETWORKS[name]) if section.startswith(prefixes)]


ROWS = {name: _rows(name) for name in NETWORKS}
ALL = sorted({row for rows in ROWS.values() for row in rows})


def test_the_rows_cover_every_form():
    """Per sample and batch, index and operator forms, general and concrete layers: the
    rows exercise every construct of the tensor notation."""
    assert len(ROWS["digits_cnn"]) >= 60 and len(ROWS["conv1d"]) >= 30
    assert len(ROWS["conv2d"]) >= 30 and len(ALL) >= 110
    text = "\n".join(ALL)
    for needle in (r"\lfloor", r"\bmod", r"\in \{0, \dots,", r"\le", r"\star",
                   r"\operatorname{pad}_{(1,0)}", r"\operatorname{dil}_{(2,1)}",
                   r"\operatorname{dil}_{2}", r"\operatorname{rot}_{180^{\circ}}",
                   r"\operatorname{vec}^{-1}", r"\partial \operatorname{vec}(a^{(4)})_{s,",
                   r"\widetilde{\Delta}^{(3)}", r"\widetilde{\delta}^{(3)}", r"\chi^{(2)}",
                   r"\sum_{c'=0}^{n_{3} - 1}", r"\sum_{i=0}^{H' - 1}", r"S i + p - P",
                   r"f_{l}'\left(", r"\quad \text{(", "_{s,c,i,j}", "_{c,i,j}", "W^{(5)}_{ij}"):
        assert needle in text, needle


@pytest.mark.parametrize("row", ALL)
def test_every_backward_row_parses_and_prints_back(row):
    claim = parse_claim(row)
    assert len(claim.sides) == 2
    again = parse_claim(" = ".join(to_latex(side) for side in claim.sides))
    assert again.sides == claim.sides


@pytest.mark.parametrize("prefix", ["Gradient descent step"])
def test_the_update_step_stays_refused(prefix):
    rows = _rows("digits_cnn", (prefix,))
    assert rows
    for row in rows:
        with pytest.raises(ClaimParseError):
            parse_claim(row)


@pytest.mark.parametrize("row", [
    r"\frac{\partial L}{\partial a^{(1)}_{s,c,i,j}} \mathrel{+}= \Delta^{(2)}_{s,c,i,j}",
    r"W^{(1)} \leftarrow W^{(1)} - \eta \frac{\partial L}{\partial W^{(1)}}",
])
def test_accumulations_and_assignments_do_not_parse(row):
    with pytest.raises(ClaimParseError):
        parse_claim(row)


# ------------------------------------------------------------- the AST of representative rows
def one(row):
    return parse_claim(row).sides


def find(name, start, *needles):
    """The first backward row of ``name`` that starts with ``start`` and holds ``needles``."""
    return next(row for row in ROWS[name] if row.startswith(start)
                and all(needle in row for needle in needles))


def at(layer):
    return LayerRef(None, layer)


L_ = LayerRef("l")
N1 = Num(Fraction(1))
N2 = Num(Fraction(2))
i, j, p, q, c = (Letter(name) for name in "ijpqc")


def test_an_entry_with_affine_indices_and_its_border_brackets():
    lhs, rhs = one(find("digits_cnn", r"\frac{\partial L}{\partial W^{(3)}_{c,c',p,q}}"))
    assert lhs == Indexed(Grad("L", Leaf("W", at(3))), ("c", "c'", "p", "q"))
    assert rhs.index == "r" and rhs.lower is None and rhs.limit is None
    over_i = rhs.body
    assert (over_i.index, over_i.lower, over_i.upper, over_i.limit) == ("i", 0, "3", Num(3))
    product = over_i.body.body
    (left, right) = (product.left, product.right)
    assert right == Indexed(Leaf("a", at(2)), ("r", "c'", Sub(Add(i, p), N1),
                                                     Sub(Add(j, q), N1)))
    border = left.left.left
    assert border == Indicator(Between(Num(0), "<=", Sub(Add(i, p), N1), "<=", Num(3)))
    assert left.right == Indexed(Leaf("delta", at(3), True), ("r", "c", "i", "j"))


def test_primed_sums_with_width_limits_and_a_flipped_kernel():
    lhs, rhs = one(find("digits_cnn", r"\frac{\partial L}", "2 - p,2 - q"))
    assert rhs.index == "c'" and rhs.upper == "n_{3} - 1"
    assert rhs.limit == Sub(Leaf("n", at(3)), N1)
    kernel = rhs.body.body.body.right
    assert kernel == Indexed(Leaf("W", at(3)), ("c'", "c", Sub(N2, p), Sub(N2, q)))
    tilde = rhs.body.body.body.left
    assert tilde.arg == Leaf("deltatilde", at(3), batch=True)
    assert tilde.indices == ("s", "c'", Add(i, p), Add(j, q))


def test_max_pooling_rows_floor_mod_member_and_chi():
    _, rhs = one(find("digits_cnn", r"\frac{\partial L}{\partial a^{(1)}", r"\lfloor"))
    half_i, half_j = Floor(Div(i, N2)), Floor(Div(j, N2))
    assert rhs == MatMul(
        Indexed(Grad("L", Leaf("a", at(2))), ("s", "c", half_i, half_j)),
        Indexed(Leaf("chi", at(2)), ("s", "c", half_i, half_j, Mod(i, N2), Mod(j, N2))))
    _, rhs = one(find("digits_cnn", r"\frac{\partial L}", r"\in \{0, \dots, 3\}"))
    bracket = rhs.body.body.left.left.left
    assert bracket == Indicator(Member(Div(Sub(i, p), N2), Num(0), Num(3)))


def test_relu_backward_is_a_compare_bracket():
    _, rhs = one(find("digits_cnn", r"\Delta^{(1)}_{s,c,i,j}"))
    z = Indexed(Leaf("z", at(1)), ("s", "c", "i", "j"))
    assert rhs.left == Indicator(Compare(">", z, Num(0)))


def test_the_operator_forms():
    _, rhs = one(find("conv2d", r"\frac{\partial L}", r"\operatorname{pad}_{(1,0)}"))
    assert rhs == Sum("r", Correlate(
        Apply(Func("pad", params=(N1, Num(0))), Indexed(Leaf("x", None, True), ("r", "c'"))),
        Apply(Func("dil", params=(N2, N1)), Indexed(Leaf("delta", at(1), True), ("r", "c")))))
    _, rhs = one(find("digits_cnn", r"\frac{\partial L}", r"\operatorname{rot}"))
    assert rhs.index == "c'" and isinstance(rhs.body, Correlate)
    assert rhs.body.right == Apply(Func("rot180"), Indexed(Leaf("W", at(3)), ("c'", "c")))


def test_stride_and_dilation_parameters():
    node = parse_claim(r"\delta^{(l)} = \operatorname{dil}_{S}\left(x\right) \star_{2} "
                       r"\operatorname{pad}_{P}(x)").rhs
    assert node == Correlate(Apply(Func("dil", params=(Letter("S"),)), Leaf("x")),
                             Apply(Func("pad", params=(Letter("P"),)), Leaf("x")), N2)
    again = parse_claim(r"\delta^{(l)} = " + to_latex(node)).rhs
    assert again == node


def test_flatten_rows_vec_targets_and_vec_inverse():
    lhs, rhs = one(find("digits_cnn", r"\frac{\partial L}{\partial a^{(4)}_{s,c,i,j}}",
                        r"\operatorname{vec}"))
    vec_a4 = Apply(Func("vec"), Leaf("a", at(4)))
    assert rhs == Indexed(Grad("L", vec_a4), ("s", Add(Add(MatMul(Num(4), c), MatMul(N2, i)),
                                                       j)))
    lhs, rhs = one(find("digits_cnn", "", r"\operatorname{vec}^{-1}\left(\frac"))
    assert lhs == Grad("L", Leaf("a", at(4)))
    assert rhs == Apply(Func("unvec"), Grad("L", Apply(Func("vec"), Leaf("a", at(4), True))))
    _, rhs = one(r"\frac{\partial L}{\partial W^{(5)}_{ij}} &= \sum_{r} \Delta^{(5)}_{r,i} "
                 r"\operatorname{vec}(a^{(4)})_{r,j}")
    assert rhs.body.right == Indexed(vec_a4, ("r", "j"))


def test_the_general_layer_letters():
    rows = _rows("digits_cnn", ("Backpropagation, general",))
    lhs, rhs = one(rows[2])  # dl/dW^{(l)}_{c,c',p,q}
    assert lhs == Indexed(Grad(r"\ell", Leaf("W", L_)), ("c", "c'", "p", "q"))
    assert (rhs.upper, rhs.limit) == ("H' - 1", Sub(Letter("H'"), N1))
    assert rhs.body.limit == Sub(Letter("W'"), N1)
    height, width = rhs.body.body.left.left.left, rhs.body.body.left.left.right
    affine = Sub(Add(MatMul(Letter("S"), i), p), Letter("P"))
    assert height == Indicator(Between(Num(0), "<=", affine, "<=", Sub(Letter("H"), N1)))
    assert width.condition.high == Sub(Letter("W"), N1)  # a bare W is the width
    assert rhs.body.body.right.arg == Leaf("a", LayerRef("l", -1))
    _, rhs = one(rows[1])
    assert rhs.right == Apply(Func("generic", 1, layer=L_),
                              Indexed(Leaf("z", L_), ("c", "i", "j")))
    _, rhs = one(rows[4])
    step = Div(Add(Sub(i, p), Letter("P")), Letter("S"))
    assert rhs.body.body.body.left.left.left == Indicator(
        Member(step, Num(0), Sub(Letter("H'"), N1)))
    one_d = parse_claim(r"\delta_{c,i} = \left[0 \le i - 1 \le L - 1\right] \delta_{c,i}")
    assert one_d.rhs.left.condition.high == Sub(Letter("L"), N1)  # the 1-d length


def test_remarks_are_dropped_and_plain_subscripts_stay_letters():
    row = find("digits_cnn", "", r"\text{(zero-padded by 1)}")
    claim = parse_claim(row)
    assert claim.text == row and "zero" not in to_latex(claim.rhs)
    assert parse_claim(r"\delta_j = w_{jk} a_{s,k}").rhs == MatMul(
        Indexed(Leaf("w"), ("j", "k")), Indexed(Leaf("a"), ("s", "k")))
    assert parse_claim(r"\delta_j = w_{2i} x_{12}").rhs.left.indices == ("2", "i")
    assert parse_claim(r"\delta_j = x_{12}").rhs.indices == ("12",)
    assert parse_claim(r"\delta_j = x_{c'} x_{s,0}").rhs == MatMul(
        Indexed(Leaf("x"), ("c'",)), Indexed(Leaf("x"), ("s", "0")))
    assert parse_claim(r"\delta_j = x_{i+1}").rhs.indices == (Add(i, N1),)
    node = parse_claim(r"\delta_j = x_{s,2i}").rhs
    assert node.indices == ("s", MatMul(N2, i))
    single = Indexed(Leaf("x"), (MatMul(N2, i),))  # one product item prints in brackets
    assert parse_claim(r"\delta_j = " + to_latex(single)).rhs == single


def test_index_expressions_are_not_children():
    """The values of a claim never meet an index: walk() skips the index expressions,
    index_expressions() lists those a node holds."""
    _, rhs = one(find("digits_cnn", r"\frac{\partial L}{\partial W^{(3)}_{c,c',p,q}}"))
    kinds = {type(node).__name__ for _, node in walk(rhs)}
    assert "Letter" not in kinds and "Between" in kinds
    between = next(node for _, node in walk(rhs) if isinstance(node, Between))
    assert children(between) == []
    assert index_expressions(between) == [Num(0), Sub(Add(i, p), N1), Num(3)]
    sum_i = rhs.body
    assert index_expressions(sum_i) == [Num(3)]


def test_a_sum_over_several_indices_is_one_sum_per_index():
    node = parse_claim(r"\delta_{c} = \sum_{i,j'} x_{c,i,j'}").rhs
    assert node == Sum("i", Sum("j'", Indexed(Leaf("x"), ("c", "i", "j'"))))
    with pytest.raises(ClaimParseError, match="no limits"):
        parse_claim(r"\delta_{c} = \sum_{i,j}^{3} x_{c,i,j}")


def test_descending_chains_are_turned_around():
    node = parse_claim(r"\delta_i = \left[7 \ge i + 1 > 0\right] x_{i}").rhs.left
    assert node == Indicator(Between(Num(0), "<", Add(i, N1), "<=", Num(7)))


def test_one_sided_brackets_on_positions_are_index_comparisons():
    """Where a side of a comparison holds an index letter both sides are positions: the
    bare W is the width; without an index letter the sides are quantities."""
    node = parse_claim(r"\delta_i = \left[i + p - 1 \ge 0\right] x_{i}").rhs.left
    assert node == Indicator(Compare(">=", Sub(Add(i, p), N1), Num(0)))
    node = parse_claim(r"\delta_i = \left[2i < W\right] x_{i}").rhs.left
    assert node == Indicator(Compare("<", MatMul(N2, i), Letter("W")))
    node = parse_claim(r"\delta_i = \left[W > 0\right] x_{i}").rhs.left
    assert node == Indicator(Compare(">", Leaf("W"), Num(0)))
    for text in (r"\delta_i = \left[2i < W\right] x_{i}", r"\delta_i = \left[W > 0\right] x_{i}"):
        claim = parse_claim(text)
        assert parse_claim(" = ".join(to_latex(side) for side in claim.sides)).sides == \
            claim.sides


# ---------------------------------------------------------------------- refusals
@pytest.mark.parametrize("text, column, message", [
    (r"\delta_i = \left[0 \le i \le 7 x_{i}", 37, "expected"),
    (r"\delta_i = x_{\lfloor i/2}", 26, "expected"),
    (r"\delta_i = x_{s,\sigma(i)}", 17, "expected"),
    (r"\delta_i = x_{s,\log i}", 17, "expected"),
    (r"\delta_i = \left[0 \le \tanh(i) \le 7\right] x_{i}", 24, "an index is made of"),
    (r"\delta_i = \left[0 \le W^{(1)} \le 7\right] x_{i}", 24, "an index is made of"),
    (r"\delta_i = \left[0 \le \delta \le 7\right] x_{i}", 24, "in an index"),
    (r"\delta_i = x_{s,1.5}", 18, "expected"),
    (r"\delta_i = \left[0 \le i - 0.5 \le 7\right] x_{i}", 28, "an integer"),
    (r"\delta_i = \left(z_{i} > 0\right) x_{i}", 12, "Iverson bracket"),
    (r"\delta_i = \left[0 \le i \ge 7\right] x_{i}", 26, "one way"),
    (r"\delta_i = \left[i \in (0, \dots, 7)\right] x_{i}", 24, "\\dots"),
    (r"\delta_i = x \star_{(2,1)} k", 19, "one stride"),
    (r"\delta_i = i", 12, "index letter"),
    (r"\delta_i = \lfloor z \rfloor", 12, "belongs in an index"),
    (r"\delta_i = z \bmod 2", 12, "belongs in an index"),
    (r"\delta_i = \sum_{i=0}^{\sigma} x_{i}", 24, "expected"),
    (r"\delta_i = \sum_{i=2}^{7} x_{i}", 20, "from 0 or 1"),
    (r"\delta_i = \operatorname{pad}(x)", 30, "'_'"),
    (r"\frac{\partial L}{\partial \operatorname{softmax}(z)} = x", 28, "with respect to"),
])
def test_malformed_index_forms_are_refused_at_their_column(text, column, message):
    with pytest.raises(ClaimParseError) as info:
        parse_claim(text)
    error = info.value
    assert error.column == column, str(error)
    assert message in str(error), str(error)


def test_the_limits_hold_for_deep_or_long_index_expressions():
    deep = "(" * 60 + "i" + ")" * 60
    for text in (r"\delta_i = x_{s," + deep + "}", r"\delta_i = \left[0 \le " + deep +
                 r" \le 7\right] x_{i}", r"\delta_i = \sum_{i=0}^{" + deep + "} x_{i}",
                 r"\delta_i = x_{" + r"\lfloor " * 60 + "i" + r" \rfloor" * 60 + "}"):
        with pytest.raises(ClaimParseError) as info:
            parse_claim(text)
        assert "nested deeper" in info.value.reason
    huge = "9" * 400
    for text in (r"\delta_i = x_{s,i + " + huge + "}", r"\delta_i = \sum_{i=0}^{" + huge +
                 "} x_{i}", r"\delta_i = \left[0 \le i \le " + huge + r"\right] x_{i}",
                 r"\delta_i = \operatorname{pad}_{" + huge + "}(x)"):
        with pytest.raises(ClaimParseError) as info:
            parse_claim(text)
        assert "digits" in info.value.reason
    wide = r"\delta_i = x_{" + ",".join(["i"] * 400) + "}"
    assert len(parse_claim(wide).rhs.indices) == 400
    with pytest.raises(ClaimParseError, match="longer"):
        parse_claim(r"\delta_i = x_{" + ",".join(["i + 1"] * 500) + "}")


TOKENS = ["x", "X", r"\Delta", r"\delta", "W", "^{(3)}", "_{", "}", ",", "c'", "i", "j", "p",
          "S", "H'", "+", "-", "/", "2", r"\lfloor", r"\rfloor", r"\bmod", r"\left[", r"\right]",
          r"\le", r"\in", r"\{", r"\}", r"\dots", r"\sum", "_{c'=0}", "^{K - 1}", r"\star",
          r"\star_{2}", r"\operatorname{pad}_{1}", r"\operatorname{vec}", "^{-1}",
          r"\operatorname{rot}_{180^{\circ}}", r"\chi", r"\widetilde{\Delta}", "(", ")", "=",
          " ", r"\frac{\partial L}{\partial ", r"\quad \text{(a remark)}", "n_{3}", ">", "0"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=30).map("".join))
def test_fuzz_tensor_tokens_parse_or_report_a_column(text):
    try:
        claim = parse_claim(text)
    except ClaimParseError as error:
        assert 1 <= error.column <= len(text) + 1 and error.reason
        return
    again = parse_claim(" = ".join(to_latex(side) for side in claim.sides))
    assert again.sides == claim.sides


# -------------------------------------------------- the sources' other notations (phase 2)
def test_ioffe_and_szegedy_batch_statistics_are_leaves():
    claim = parse_claim(
        r"\frac{\partial \ell}{\partial x_i} = \frac{\partial \ell}{\partial \hat{x}_i} \cdot "
        r"\frac{1}{\sqrt{\sigma_\mathcal{B}^2 + \epsilon}} + \frac{\partial \ell}{\partial "
        r"\sigma^2_{\mathcal{B}}} \cdot \frac{2(x_i - \mu_\mathcal{B})}{m} + "
        r"\frac{\partial \ell}{\partial \mu_\mathcal{B}} \cdot \frac{1}{m}")
    names = {node.name for side in claim.sides for _, node in walk(side)
             if isinstance(node, Leaf)}
    assert {"mu_B", "sigma2_B", "eps", "x", "m"} <= names
    grads = [node.target.name for _, node in walk(claim.rhs) if isinstance(node, Grad)]
    assert grads == ["xhat", "sigma2_B", "mu_B"]
    assert parse_claim(r"\delta = \sigma_\mathcal{B}").rhs == Leaf("sigma_B")
    again = parse_claim(" = ".join(to_latex(side) for side in claim.sides))
    assert again.sides == claim.sides


def test_cases_with_conditions_in_words():
    claim = parse_claim(
        r"\delta_j = \begin{cases} (o_j - t_j) o_j (1 - o_j) & \text{if } j \text{ is an output "
        r"neuron,} \\ (\sum_{\ell \in L} w_{j \ell} \delta_\ell) o_j (1 - o_j) & \text{if } j "
        r"\text{ is an inner neuron.} \end{cases}")
    (first, if_output), (second, if_inner) = claim.rhs.rows
    assert if_output == Prose("if j is an output neuron,")
    assert if_inner == Prose("if j is an inner neuron.")
    inner_sum = second.left.left
    assert inner_sum == Sum(r"\ell", MatMul(Indexed(Leaf("w"), ("j", r"\ell")),
                                            Indexed(Leaf("delta"), (r"\ell",))))
    again = parse_claim(" = ".join(to_latex(side) for side in claim.sides))
    assert again.sides == claim.sides
    assert parse_claim(r"y = \begin{cases} 1 & \text{for the output layer} \\ 0 & "
                       r"\text{otherwise} \end{cases}").rhs.rows[0][1] == Prose(
        "for the output layer")


def test_cs231n_scores_per_example_loss_and_label_indicator():
    claim = parse_claim(r"\frac{\partial L_i}{\partial f_k} = p_k - \mathbb{1}(y_i = k)")
    assert claim.lhs == Indexed(Grad("L_i", Leaf("f")), ("k",))
    assert claim.rhs == Sub(Indexed(Leaf("p"), ("k",)), Indicator(
        Equal(Indexed(Leaf("y"), ("i",)), Letter("k"))))
    again = parse_claim(" = ".join(to_latex(side) for side in claim.sides))
    assert again.sides == claim.sides
    assert parse_claim(r"\frac{\partial E_n}{\partial w_{ji}} = x").lhs.arg.loss == "E"


def test_the_grammar_has_no_new_conflicts():
    """LALR's shift/reduce conflicts (resolved as shifts) are only the known ones: a
    subscript or superscript after a gradient's target, a loss or a bare argument belongs to
    it, and a layer's ``l - 1`` is one layer."""
    import logging

    from lark import Lark, logger

    from symbp.claims.grammar import GRAMMAR

    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        Lark(GRAMMAR, parser="lalr", lexer="contextual", debug=True)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    rules = {re.sub(r"__\w+_star_\d+", "*", messages[n + 1]).strip()
             for n, message in enumerate(messages) if message.startswith("Shift/Reduce")}
    assert rules == {"* <fn_arg : leaf *>", "* <fn_arg : leaf>", "* <fn_arg : wrapped *>",
                     "* <fn_arg : wrapped>", "* <target : leaf *>", "* <target : leaf>",
                     "* <target : wrapped *>", "* <target : wrapped>", "* <loss : BIGL>",
                     "* <loss : LOSSNAME>", "* <leaf : LEAF>", "* <layer_var_expr : layer_var>"}


@pytest.mark.parametrize("text", [
    r"\delta^{(l)} = \gamma^{(l)} \hat{X}^{(l)} + \beta^{(l)} + \sigma^{2(l)} + \mu^{(l)}",
    r"\delta^{(l)} = M^{(l)} + r^{(l)} + \lambda + \epsilon + n + \pi",
    r"\delta = \mu_\mathcal{B} + \sigma^2_\mathcal{B} + \sigma_\mathcal{B}",
])
def test_quantities_print_as_the_grammar_reads_them(text):
    claim = parse_claim(text)
    printed = to_latex(claim.rhs)
    assert "gamma^" not in printed.replace(r"\gamma", "") and "xhat" not in printed
    assert parse_claim(r"\delta^{(l)} = " + printed).rhs == claim.rhs


def test_the_normal_distribution_prints_as_phi():
    assert to_latex(Apply(Func("normal_cdf"), Leaf("x"))) == r"\Phi\left(x\right)"
    assert to_latex(Apply(Func("normal_pdf"), Leaf("x"))) == r"\phi\left(x\right)"
