"""Every notation symbp verify reads, right and wrong, classified right.

Each row is a claim in one notation (the source that prints it is cited), the
convention it is read in, the verdict, and for a wrong claim a word of the mistake
the report must name. Component forms (index subscripts, sums) are read as matrices
by symbp.verify.notation; what has no matrix reading is ``cannot parse`` with the
reason, never a verdict.
"""

import pytest

from symbp import claims as C
from symbp.claims import parse_claim
from symbp.spec import Dense, Network
from symbp.verify.conventions import read, verify_written
from symbp.verify.notation import to_matrix

NETS = {
    "tanh": Network(inputs=3, layers=[Dense(4, "tanh"), Dense(5, "tanh"), Dense(2, "identity")],
                    loss="mse"),
    "sigmoid": Network(inputs=3, layers=[Dense(4, "sigmoid"), Dense(2, "sigmoid")], loss="mse"),
    "sigmoid_ce": Network(inputs=3, layers=[Dense(4, "sigmoid"), Dense(2, "sigmoid")],
                          loss="bce"),
    "relu": Network(inputs=3, layers=[Dense(4, "relu"), Dense(2, "sigmoid")], loss="bce"),
    "softmax": Network(inputs=4, layers=[Dense(5, "tanh"), Dense(3, "softmax")],
                       loss="cross_entropy"),
}

CASES = [
    # Nielsen, NNDL ch. 2: BP1-BP4 in components and vectors, superscripts without parentheses
    ("nielsen BP2", "sigmoid", None,
     r"\delta^l_j = \sum_k w^{l+1}_{kj} \delta^{l+1}_k \sigma'(z^l_j)", "correct", None),
    ("nielsen BP2, indices swapped", "sigmoid", None,
     r"\delta^l_j = \sum_k w^{l+1}_{jk} \delta^{l+1}_k \sigma'(z^l_j)", "incorrect", "transpose"),
    ("nielsen BP4", "tanh", None,
     r"\frac{\partial C}{\partial w^l_{jk}} = a^{l-1}_k \delta^l_j", "correct", None),
    ("nielsen BP4, layer of a", "tanh", None,
     r"\frac{\partial C}{\partial w^l_{jk}} = a^{l}_k \delta^l_j", "incorrect", None),
    ("nielsen BP3", "tanh", None, r"\frac{\partial C}{\partial b^l_j} = \delta^l_j", "correct",
     None),
    ("nielsen BP1", "sigmoid", "nielsen",
     r"\delta^L_j = \frac{\partial C}{\partial a^L_j} \sigma'(z^L_j)", "correct", None),
    ("nielsen BP1 vector", "sigmoid", "nielsen", r"\delta^L = \nabla_a C \odot \sigma'(z^L)",
     "correct", None),
    ("nielsen BP1 Sigma'", "sigmoid", "nielsen", r"\delta^L = \Sigma'(z^L) \nabla_a C",
     "correct", None),
    ("nielsen BP2 vector", "sigmoid", "nielsen",
     r"\delta^l = ((w^{l+1})^T \delta^{l+1}) \odot \sigma'(z^l)", "correct", None),
    ("nielsen BP2 vector, no transpose", "sigmoid", "nielsen",
     r"\delta^l = (w^{l+1} \delta^{l+1}) \odot \sigma'(z^l)", "incorrect", "transpose"),
    # Nielsen ch. 3, eqs. (67), (68): the mean over the n training inputs x
    ("nielsen 67", "sigmoid_ce", "nielsen",
     r"\frac{\partial C}{\partial w^L_{jk}} = \frac{1}{n} \sum_x a^{L-1}_k (a^L_j-y_j)", "correct",
     None),
    ("nielsen 68", "sigmoid_ce", "nielsen",
     r"\frac{\partial C}{\partial b^L_{j}} = \frac{1}{n} \sum_x (a^L_j-y_j)", "correct", None),
    ("nielsen 67 without 1/n", "sigmoid_ce", "nielsen",
     r"\frac{\partial C}{\partial w^L_{jk}} = \sum_x a^{L-1}_k (a^L_j-y_j)", "incorrect", "1/B"),
    # Bishop, PRML §5.3, eqs. (5.54)-(5.56): unlayered units i, j, k
    ("bishop 5.56", "tanh", "bishop", r"\delta_j = h'(a_j) \sum_k w_{kj} \delta_k", "correct",
     None),
    ("bishop 5.56 swapped", "tanh", "bishop", r"\delta_j = h'(a_j) \sum_k w_{jk} \delta_k",
     "incorrect", "transpose"),
    ("bishop 5.53", "tanh", "bishop", r"\frac{\partial E_n}{\partial w_{ji}} = \delta_j z_i",
     "correct", None),
    ("bishop 5.54", "tanh", "bishop", r"\delta_k = y_k - t_k", "correct", None),
    ("bishop 5.54 sign", "tanh", "bishop", r"\delta_k = t_k - y_k", "incorrect", "sign"),
    ("bishop 5.3.2 first layer", "tanh", "bishop",
     r"\frac{\partial E_n}{\partial w^{(1)}_{ji}} = \delta_j x_i", "correct", None),
    ("bishop 5.3.2 second layer", "tanh", "bishop",
     r"\frac{\partial E_n}{\partial w^{(2)}_{kj}} = \delta_k z_j", "correct", None),
    # Goodfellow et al., Algorithm 6.4
    ("goodfellow 6.4 f'", "tanh", "goodfellow",
     r"\nabla_{a^{(k)}} J = \nabla_{h^{(k)}} J \odot f'(a^{(k)})", "correct", None),
    ("goodfellow 6.4 W", "tanh", "goodfellow",
     r"\nabla_{W^{(k)}} J = \nabla_{a^{(k)}} J \, h^{(k-1)\top}", "correct", None),
    ("goodfellow 6.4 h", "tanh", "goodfellow",
     r"\nabla_{h^{(k-1)}} J = W^{(k)\top} \nabla_{a^{(k)}} J", "correct", None),
    ("goodfellow 6.4 h, no transpose", "tanh", "goodfellow",
     r"\nabla_{h^{(k-1)}} J = W^{(k)} \nabla_{a^{(k)}} J", "incorrect", "transpose"),
    # Ng, deeplearning.ai course 1 week 4: d-names, [l], *, g', 1/m, samples as columns
    ("ng g' prime inside the braces", "tanh", "ng",
     r"dZ^{[1]} = W^{[2]T} dZ^{[2]} * g^{[1]'}(Z^{[1]})", "correct", None),
    ("ng dz", "tanh", "ng", r"dz^{[l]} = W^{[l+1]T} dz^{[l+1]} * g^{[l]\prime}(z^{[l]})",
     "correct", None),
    ("ng dZ", "tanh", "ng", r"dZ^{[l]} = W^{[l+1]T} dZ^{[l+1]} * g'^{[l]}(Z^{[l]})", "correct",
     None),
    ("ng dW", "tanh", "ng", r"dW^{[l]} = \frac{1}{m} dZ^{[l]} A^{[l-1]T}", "correct", None),
    ("ng dW without 1/m", "tanh", "ng", r"dW^{[l]} = dZ^{[l]} A^{[l-1]T}", "incorrect", "1/B"),
    ("ng db", "tanh", "ng", r"db^{[l]} = \frac{1}{m} dZ^{[l]} \mathbf{1}", "correct", None),
    ("ng db as a sum of examples", "tanh", "ng",
     r"db^{[l]} = \frac{1}{m} \sum_{i=1}^{m} dZ^{[l](i)}", "correct", None),
    ("ng db as a sum, without 1/m", "tanh", "ng", r"db^{[l]} = \sum_{i=1}^{m} dZ^{[l](i)}",
     "incorrect", "1/B"),
    ("ng dZ output", "sigmoid", "ng", r"dZ^{[L]} = A^{[L]} - Y", "incorrect", None),
    ("ng dA", "tanh", "ng", r"dA^{[l-1]} = W^{[l]T} dZ^{[l]}", "correct", None),
    ("ng da bare", "relu", "ng", r"da^{[L]} = -\frac{y}{a} + \frac{1-y}{1-a}", "correct", None),
    ("ng dz transposed", "sigmoid_ce", "ng", r"dz^{[L]T} = a^{[L]T} - y^T", "correct", None),
    ("ng dz transposed, mse", "sigmoid", "ng", r"dz^{[L]T} = a^{[L]T} - y^T", "incorrect", None),
    ("cs229 ell as the layer", "tanh", "ng",
     r"\nabla_{W^{[\ell]}} J(W,b) = \delta^{[\ell]} a^{[\ell-1]T}", "correct", None),
    ("cs229 ell, wrong layer", "tanh", "ng",
     r"\nabla_{W^{[\ell]}} J(W,b) = \delta^{[\ell]} a^{[\ell]T}", "incorrect", None),
    # CS231n: W is n_{l-1} x n_l, Z = XW + b, dZ the mean loss's gradient
    ("cs231n dW", "tanh", "cs231n", r"dW = X^T dZ", "correct", None),
    ("cs231n dW transposed", "tanh", "cs231n", r"dW = dZ^T X", "incorrect", None),
    ("cs231n dX", "tanh", "cs231n", r"dX = dZ W^T", "correct", None),
    ("cs231n dX, no transpose", "tanh", "cs231n", r"dX = dZ W", "incorrect", None),
    ("cs231n db, b a row", "tanh", "cs231n",
     r"\frac{\partial L}{\partial b^{(2)}} = \mathbf{1}^T \frac{\partial L}{\partial Z^{(2)}}",
     "correct", None),
    ("cs231n dL/dW", "tanh", "cs231n",
     r"\frac{\partial L}{\partial W^{(l)}} = (A^{(l-1)})^T \frac{\partial L}{\partial Z^{(l)}}",
     "correct", None),
    # Wikipedia, Backpropagation: matrix form and the derivation's w_{ij} from i to j
    ("wikipedia matrix", "tanh", None,
     r"\delta^l = (f^l)' \circ (W^{l+1})^T \cdot \delta^{l+1}", "correct", None),
    ("wikipedia matrix, wrong layer", "tanh", None,
     r"\delta^l = (f^l)' \circ (W^{l})^T \cdot \delta^{l+1}", "incorrect", None),
    ("wikipedia derivation", "tanh", "wikipedia",
     r"\frac{\partial E}{\partial w_{ij}} = o_i \delta_j", "correct", None),
    # d2l.ai §5.3 (one hidden layer, no output activation)
    ("d2l dJ/dh", "softmax", "d2l",
     r"\frac{\partial J}{\partial \mathbf{h}} = {\mathbf{W}^{(2)}}^\top \frac{\partial J}{\partial \mathbf{o}}",
     "correct", None),
    ("d2l dJ/dz", "softmax", "d2l",
     r"\frac{\partial J}{\partial \mathbf{z}} = \frac{\partial J}{\partial \mathbf{h}} \odot \phi'(\mathbf{z})",
     "correct", None),
    ("d2l dJ/dz at h", "softmax", "d2l",
     r"\frac{\partial J}{\partial \mathbf{z}} = \frac{\partial J}{\partial \mathbf{h}} \odot \phi'(\mathbf{h})",
     "incorrect", None),
    # UFLDL: layer 1 is the input, W^{(l)} maps l to l+1, \bullet, n_l, sums with limits
    ("ufldl vector", "sigmoid", "ufldl",
     r"\delta^{(l)} = ((W^{(l)})^T \delta^{(l+1)}) \bullet f'(z^{(l)})", "correct", None),
    ("ufldl symbp's index", "sigmoid", "ufldl",
     r"\delta^{(l)} = ((W^{(l+1)})^T \delta^{(l+1)}) \bullet f'(z^{(l)})", "incorrect", None),
    ("ufldl components", "sigmoid", "ufldl",
     r"\delta^{(l)}_i = \left(\sum_{j=1}^{s_{l+1}} W^{(l)}_{ji} \delta^{(l+1)}_j\right) f'(z^{(l)}_i)",
     "correct", None),
    ("ufldl output", "sigmoid", "ufldl",
     r"\delta^{(n_l)}_i = -(y_i - a^{(n_l)}_i) \cdot f'(z^{(n_l)}_i)", "correct", None),
    ("ufldl weights", "sigmoid", "ufldl",
     r"\frac{\partial}{\partial W^{(l)}_{ij}} J(W,b; x, y) = a^{(l)}_j \delta^{(l+1)}_i", "correct",
     None),
    ("ufldl last weights", "sigmoid", "ufldl",
     r"\nabla_{W^{(n_l-1)}} J = \delta^{(n_l)} (a^{(n_l-1)})^T", "correct", None),
    # symbp derive's index forms, per sample and batch
    ("symbp index", "tanh", None,
     r"\delta^{(l)}_{i} = f_{l}'\left(z^{(l)}_{i}\right) \sum_{k} \delta^{(l + 1)}_{k} W^{(l + 1)}_{ki}",
     "correct", None),
    ("symbp batch index", "tanh", None,
     r"\Delta^{(l)}_{s,i} = f_{l}'\left(z^{(l)}_{s,i}\right) \sum_{k} \Delta^{(l + 1)}_{s,k} W^{(l + 1)}_{ki}",
     "correct", None),
    ("symbp batch dW", "tanh", None,
     r"\frac{\partial L}{\partial W^{(l)}_{ij}} = \sum_{r=1}^{B} \Delta^{(l)}_{r,i} a^{(l - 1)}_{r,j}",
     "correct", None),
    ("symbp batch db", "tanh", None,
     r"\frac{\partial L}{\partial b^{(l)}_{i}} = \sum_{r=0}^{B-1} \Delta^{(l)}_{r,i}", "correct", None),
    ("symbp batch dW, sum over the unit", "tanh", None,
     r"\frac{\partial L}{\partial W^{(l)}_{ij}} = \sum_{r} \Delta^{(l)}_{r,j} a^{(l - 1)}_{r,i}",
     "incorrect", None),
    # general notations: cases, max, indicators, \log\cosh x, \ln, \hat{y}
    ("relu' cases", "relu", None,
     r"\operatorname{relu}'(z) = \begin{cases} 1 & \text{if } z > 0 \\ 0 & \text{otherwise} \end{cases}",
     "correct", None),
    ("relu' cases, wrong value", "relu", None,
     r"\operatorname{relu}'(z) = \begin{cases} 1 & z > 0 \\ 1 & \text{otherwise} \end{cases}",
     "incorrect", None),
    ("relu delta with an indicator", "relu", None,
     r"\delta^{(1)} = ((W^{(2)})^T \delta^{(2)}) \odot \mathbb{1}[z^{(1)} > 0]", "correct", None),
    ("relu delta with the indicator at a", "relu", None,
     r"\delta^{(1)} = ((W^{(2)})^T \delta^{(2)}) \odot \mathbb{1}[z^{(1)} < 0]", "incorrect", None),
    ("relu as max", "relu", None, r"\frac{d}{dz} \max(0, z) = \mathbb{1}[z > 0]", "correct", None),
    ("log cosh without parentheses", None, None, r"\frac{d}{dx} \log\cosh x = \tanh x", "correct",
     None),
    ("log cosh, wrong", None, None, r"\frac{d}{dx} \ln\cosh x = \cosh x", "incorrect", None),
    ("the printer's where clause", None, None,
     r"\operatorname{tanh}'(z) = 1 - a^{2} \quad (a = f(z))", "correct", None),
    ("y hat", "sigmoid", "goodfellow", r"\nabla_{\hat{y}} J = (\hat{y} - y)", "correct", None),
]


@pytest.mark.parametrize("source, net, convention, claim, expected, mistake", CASES,
                         ids=[case[0] for case in CASES])
def test_notation_is_classified_right(source, net, convention, claim, expected, mistake):
    verdict = verify_written(claim, NETS.get(net), convention)
    assert verdict.verdict == expected, str(verdict)
    if mistake:
        assert mistake in str(verdict), str(verdict)


def test_the_table_is_balanced():
    verdicts = [case[4] for case in CASES]
    assert verdicts.count("correct") >= 30 and verdicts.count("incorrect") >= 15


@pytest.mark.parametrize("claim, reason", [
    (r"\delta^l_j = w^{l+1}_{kj} \delta^{l+1}_k", "free on the right"),
    (r"\delta^l_j = w^{l+1}_{kj} a^{l}_i", "no index in common"),
    (r"\delta^l_j = \sum_j w^{l+1}_{kj}", "a free index of the left-hand side"),
    (r"\delta^l_j = \sum_k w^{l+1}_{kk} \delta^{l+1}_k", "repeated index"),
    (r"\delta^l_j = \sum_k w^{l+1}_{kj} \delta^{l+1}", "without an index"),
    (r"\delta^l = \sum_k w^{l+1}_{kj} \delta^{l+1}_k", "appears without an index"),
    (r"\delta^l_j = \delta^l", "appears without an index"),
    (r"\delta^l_j = \sum_{k=1}^{n-1} w^{l+1}_{kj} \delta^{l+1}_k", "whole range"),
    (r"\delta^l_j = \sum_{k=1}^{10} w^{l+1}_{kj} \delta^{l+1}_k", "index letter"),
    (r"\delta^l_j = w^{l+1}_{j} \delta^{l+1}_j", "two indices"),
    (r"\delta^l_j = w^{l+1}_{12}", "one number"),
    (r"\delta^l_{jk} = \delta^l_j", "does not depend on the index k"),
    (r"\delta^l_{j} = \sum_k a^l_k", "does not depend on the index j"),
    (r"\delta^l_{j} = dZ^{[l](i)}", "in a sum over the examples"),
])
def test_component_forms_without_a_matrix_reading_cannot_be_read(claim, reason):
    verdict = verify_written(claim, NETS["tanh"])
    assert verdict.verdict == "cannot parse" and reason in verdict.summary, str(verdict)


@pytest.mark.parametrize("component, matrix", [
    (r"\delta^{(l)}_j = \sum_k W^{(l+1)}_{kj} \delta^{(l+1)}_k",
     r"\delta^{(l)} = (W^{(l+1)})^T \delta^{(l+1)}"),
    (r"\delta^{(l)}_j = \sum_k \delta^{(l+1)}_k W^{(l+1)}_{kj}",
     r"\delta^{(l)} = (W^{(l+1)})^T \delta^{(l+1)}"),
    (r"\frac{\partial \ell}{\partial W^{(l)}_{jk}} = a^{(l-1)}_k \delta^{(l)}_j",
     r"\frac{\partial \ell}{\partial W^{(l)}} = \delta^{(l)} (a^{(l-1)})^T"),
    (r"\frac{\partial L}{\partial W^{(l)}_{ij}} = \sum_r \Delta^{(l)}_{r,i} A^{(l-1)}_{r,j}",
     r"\frac{\partial L}{\partial W^{(l)}} = (\Delta^{(l)})^T A^{(l-1)}"),
    (r"\frac{\partial L}{\partial b^{(l)}_{i}} = \sum_r \Delta^{(l)}_{r,i}",
     r"\frac{\partial L}{\partial b^{(l)}} = (\Delta^{(l)})^T \mathbf{1}"),
    (r"\Delta^{(l)}_{s,i} = \sum_k \Delta^{(l+1)}_{s,k} W^{(l+1)}_{ki}",
     r"\Delta^{(l)} = \Delta^{(l+1)} W^{(l+1)}"),
    (r"f'(z^{(l)}_i) = a^{(l)}_i (1 - a^{(l)}_i)", r"f'(z^{(l)}) = a^{(l)} \odot (1 - a^{(l)})"),
    (r"\delta^{(l)}_j = \frac{1}{2} (a^{(l)}_j)^2 - \tanh(z^{(l)}_j) \delta^{(l)}_j",
     r"\delta^{(l)} = \frac{1}{2} (a^{(l)})^2 - \tanh(z^{(l)}) \odot \delta^{(l)}"),
])
def test_component_forms_are_the_matrix_claims_one_writes(component, matrix):
    assert to_matrix(parse_claim(component)).sides == parse_claim(matrix).sides


def test_phi_is_the_normal_density_in_a_scalar_identity_and_the_activation_in_a_network():
    """gelu'(x) = \\Phi(x) + x \\phi(x): \\Phi the normal CDF, \\phi its density; d2l's
    \\phi'(z) in a claim about a network is the layer's activation."""
    scalar = read(r"\frac{d}{dx} \operatorname{gelu}(x) = \Phi(x) + x \phi(x)").claim.rhs
    assert scalar == C.Add(C.Apply(C.Func("normal_cdf"), C.Leaf("x")),
                           C.MatMul(C.Leaf("x"), C.Apply(C.Func("normal_pdf"), C.Leaf("x"))))
    network = read(r"\delta^{(l)} = ((W^{(l+1)})^T \delta^{(l+1)}) \odot \phi'(z^{(l)})").claim
    assert network.rhs.right.func == C.Func("generic", 1)


def test_star_is_elementwise_unless_the_network_convolves():
    """Ng's ``*`` is the elementwise product; on a network with convolutions ``*`` may be a
    convolution, so the claim must say which (never a guessed verdict)."""
    claim = r"\delta^{(l)} = ((W^{(l+1)})^T \delta^{(l+1)}) * f'(z^{(l)})"
    assert verify_written(claim, NETS["tanh"]).ok
    conv = Network(inputs=[1, 6, 6], layers=[{"type": "conv2d", "channels": 2, "kernel": 3},
                                             {"type": "flatten"}, Dense(2, "identity")],
                   loss="mse")
    verdict = verify_written(claim, conv)
    assert verdict.verdict == "cannot parse" and "'*' on a network with convolutions" in (
        verdict.summary)


BN_ROW = (r"\Delta^{(1)}_{s,i} = \frac{1}{\sqrt{\sigma^{2(2)}_{i} + 10^{-5}}} \left("
          r"\frac{\partial L}{\partial \hat{x}^{(2)}_{s,i}} - \frac{1}{B} \hat{x}^{(2)}_{s,i} "
          r"\sum_{r} \frac{\partial L}{\partial \hat{x}^{(2)}_{r,i}} \hat{x}^{(2)}_{r,i} - "
          r"\frac{1}{B} \sum_{r} \frac{\partial L}{\partial \hat{x}^{(2)}_{r,i}}\right)")


@pytest.mark.parametrize("claim, expected", [
    (BN_ROW, "correct"),  # symbp derive's batch-norm row: per-feature sums over the samples
    (BN_ROW.replace(r" - \frac{1}{B} \sum_{r} \frac{\partial L}{\partial \hat{x}^{(2)}_{r,i}}", ""),
     "incorrect"),  # the mean's path missing
])
def test_batch_norm_index_forms_broadcast_along_the_features(claim, expected):
    """A sum over the samples r of entries (r, i) is a vector along the features i: it is
    subtracted from each row (a row vector, 1^T G), and batch norm's sigma^2_i is its own
    row; a column there would be a wrong verdict."""
    from symbp.spec import load_spec

    network = load_spec("tests/verify_sources/batchnorm_mlp.toml")
    assert verify_written(claim, network).verdict == expected


def test_a_sum_over_the_rows_broadcast_is_a_row_of_ones():
    reading = read(r"\Delta^{(l)}_{s,i} = \Delta^{(l)}_{s,i} - \frac{1}{B} \sum_r \Delta^{(l)}_{r,i}")
    assert reading.claim.rhs.right == C.MatMul(C.Div(C.Num(1), C.Leaf("B")), C.MatMul(
        C.Transpose(C.Ones()), C.Leaf("delta", C.LayerRef("l"), True)))


def test_nested_maxima_are_bounded():
    """\\max(u, v) spells v twice; forty nested maxima would be 2^40 terms."""
    text = r"\frac{d}{dz} z = " + r"\max(z, " * 40 + "z" + ")" * 40
    verdict = verify_written(text)
    assert verdict.verdict == "cannot parse" and "more than" in verdict.summary


def test_cases_and_the_printers_where_clause_together():
    claim = (r"\operatorname{relu}'(z) = \begin{cases} b & z > 0 \\ 0 & \text{otherwise} "
             r"\end{cases} \quad (b = 1)")
    assert verify_written(claim).ok


def test_a_reading_keeps_the_users_text_for_the_report():
    text = r"\delta^l_j = \sum_k w^{l+1}_{kj} \delta^{l+1}_k \sigma'(z^l_j)"
    reading = read(text)
    assert reading.claim.text == text and reading.symbols == {"w": "W"}
    verdict = verify_written(text, NETS["tanh"])
    assert verdict.claim == text and "sigma" in verdict.likely_mistake


# ------------------------------------------------------------------ fuzz
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from symbp.claims import ClaimParseError  # noqa: E402
from symbp.verify.conventions import PRESETS  # noqa: E402

PIECES = [r"\delta", "^l", "^{l+1}", "^{[l]}", "^{(k)}", "^{(n_l)}", "_j", "_k", "_{jk}", "_{kj}",
          "_{s,i}", "_{r,i}", r"\sum_k", r"\sum_{r=1}^{B}", r"\sum_x", "w", "W", "a", "z", "b", "x",
          "y", "h", "o", "t", "g", "m", "N", r"\hat{y}", "A", "Z", r"\Delta", "dz", "dW", "dZ",
          "dA", r"\frac{\partial C}{\partial w^l_{jk}}", r"\nabla_a C", r"\nabla_{W^{(l)}} J",
          r"\frac{\partial L}{\partial Z^{(l)}}", "^T", "^{\\top}", "*", r"\odot", r"\cdot",
          r"\bullet", "+", "-", "(", ")", "{", "}", "=", " = ", r"\sigma'", "f'", "h'", "g'",
          r"(f^l)'", r"\Sigma'", "(", r"\mathbf{1}", r"\mathbb{1}[", ">", "0", "1", r"\frac{1}{m}",
          r"\begin{cases}", "&", r"\\", r"\end{cases}", r"\max(", ",", r"\text{otherwise}",
          r"\log\cosh", r"\quad (a = f(z))", "J(W,b;x,y)", r"\mu^{(l)}", r"\sigma^{2(l)}",
          "^{[l](i)}", r"\sum_{i=1}^{m}", r"\frac{1}{n}"]
SEEDS = [case[3] for case in CASES[:40:3]]

soup = st.lists(st.sampled_from(PIECES), min_size=1, max_size=20).map(" ".join)
mutated = st.tuples(st.sampled_from(SEEDS), st.integers(0, 300), st.integers(0, 4),
                    st.sampled_from(PIECES)).map(
    lambda t: t[0][:t[1] % (len(t[0]) + 1)] + t[3] + t[0][t[1] % (len(t[0]) + 1) + t[2]:])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(soup, mutated), st.sampled_from(sorted(PRESETS)))
def test_fuzz_reading_either_reads_or_says_where(text, convention):
    """Parsing, the convention's rewrite and the matrix reading never fail otherwise than
    with a ClaimParseError at a column of the claim."""
    try:
        reading = read(text, convention)
    except ClaimParseError as error:
        assert 1 <= error.column <= len(text) + 1 and error.reason
        return
    assert not any(isinstance(node, (C.Indexed, C.Sum, C.Cases, C.Max, C.Indicator))
                   for side in reading.claim.sides for _, node in C.walk(side))
