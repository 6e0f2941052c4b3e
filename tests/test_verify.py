"""Tests for symbp.verify and ``symbp verify``: a table of right and wrong hand derivations.

Each case is (network, claim, verdict, what the explanation must contain). The
networks cover sigmoid, tanh, relu, softplus and softmax activations and the
mse, bce and cross_entropy losses; the wrong claims cover the usual mistakes.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbp.cli import main
from symbp.errors import SymbpError
from symbp.spec import Dense, Network
from symbp.verify import VERDICTS, read_claims, verify, verify_file

NETWORKS = {
    # tanh hidden layers, softmax output, cross-entropy
    "tanh_ce": Network(inputs=4, layers=[Dense(5, "tanh"), Dense(6, "tanh"), Dense(3, "softmax")],
                       loss="cross_entropy"),
    # sigmoid everywhere, mse
    "sig_mse": Network(inputs=3, layers=[Dense(4, "sigmoid"), Dense(2, "sigmoid")], loss="mse"),
    # relu and softplus hidden layers, one sigmoid output, bce
    "relu_bce": Network(inputs=3, layers=[Dense(5, "relu"), Dense(4, "softplus"),
                                          Dense(1, "sigmoid")], loss="bce"),
    # every width equal: a missing transpose would hide behind square matrices
    "square": Network(inputs=4, layers=[Dense(4, "tanh"), Dense(4, "tanh"), Dense(4, "sigmoid")],
                      loss="mse"),
    # a tanh and a sigmoid hidden layer: sigma' is right at one layer only
    "mixed": Network(inputs=3, layers=[Dense(4, "tanh"), Dense(5, "sigmoid"),
                                       Dense(2, "softmax")], loss="cross_entropy"),
}

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits_mlp.toml"
RECURSION = r"\delta^{(l)} = ((W^{(l+1)})^T \delta^{(l+1)}) \odot f'(z^{(l)})"
TUTORIAL = r"\delta^{(l)} = ((W^{(l+1)})^T \delta^{(l+1)} + b^{(l+1)}) \odot f'(z^{(l)})"

CORRECT = [
    ("tanh_ce", RECURSION),
    ("tanh_ce", r"\delta^{(l)} = \left(W^{(l+1)}\right)^\top \delta^{(l+1)} \odot f_l'\left(z^{(l)}\right)"),
    ("tanh_ce", r"\delta^{(l)} = ((W^{(l+1)})^{T} \delta^{(l+1)}) \odot (1 - (a^{(l)})^2)"),
    ("tanh_ce", r"\delta^{(l)} = W^{(l+1)T} \delta^{(l+1)} \circ (1 - \tanh^2(z^{(l)}))"),
    ("tanh_ce", r"\delta^{(L)} = a^{(L)} - y"),
    ("tanh_ce", r"\delta^{(3)} = \operatorname{softmax}(z^{(3)}) - y"),
    ("tanh_ce", r"\frac{\partial L}{\partial W^{(l)}} = \delta^{(l)} (a^{(l-1)})^T"),
    ("tanh_ce", r"\frac{\partial \ell}{\partial b^{(l)}} = \delta^{(l)}"),
    ("tanh_ce", r"\frac{\partial L}{\partial W^{(1)}} = \delta^{(1)} x^T"),
    ("tanh_ce", r"\frac{\partial C}{\partial a^{(l)}} = (W^{(l+1)})^T \delta^{(l+1)}"),
    ("tanh_ce", r"\frac{\partial E}{\partial z^{(l)}} = \frac{\partial E}{\partial a^{(l)}} \odot f'(z^{(l)})"),
    ("sig_mse", r"\delta^{(L)} = (a^{(L)} - y) \odot \sigma'(z^{(L)})"),
    ("sig_mse", r"\delta^{(L)} = (a^{(L)} - y) \odot a^{(L)} \odot (1 - a^{(L)})"),
    ("sig_mse", r"\delta^{(1)} = ((W^{(2)})^T \delta^{(2)}) \odot \sigma(z^{(1)}) \odot (1 - \sigma(z^{(1)}))"),
    ("relu_bce", r"\delta^{(L)} = a^{(L)} - y"),
    ("relu_bce", RECURSION),
    ("relu_bce", r"\delta^{(2)} = ((W^{(3)})^T \delta^{(3)}) \odot \sigma(z^{(2)})"),
    ("relu_bce", r"\frac{\partial L}{\partial b^{(l)}} = \delta^{(l)}"),
    ("relu_bce", r"\frac{\partial L}{\partial W^{(l)}} = (\Delta^{(l)})^T A^{(l-1)}"),
    ("relu_bce", r"\frac{\partial L}{\partial b^{(l)}} = (\Delta^{(l)})^T \mathbf{1}"),
    ("relu_bce", r"\Delta^{(L)} = \frac{1}{B} (A^{(L)} - Y)"),
    ("square", RECURSION),
    ("mixed", r"\delta^{(2)} = ((W^{(3)})^T\delta^{(3)}) \odot \sigma'(z^{(2)})"),
    (None, r"\frac{d}{dz}\sigma(z) = \sigma(z)(1-\sigma(z))"),
    (None, r"\tanh'(z) = 1 - \tanh^2(z)"),
    (None, r"\frac{d}{dx}\log(1 + e^{x}) = \sigma(x)"),
]

# (network, claim, [substrings of the report]) - the first is the key explanation
INCORRECT = [
    ("tanh_ce", TUTORIAL, [r"b^{(l+1)} has n_{l+1} rows, (W^{(l+1)})^T \delta^{(l+1)} has n_l",
                           "bias term in the recursion"]),
    ("tanh_ce", r"\delta^{(l)} = (W^{(l+1)} \delta^{(l+1)}) \odot f'(z^{(l)})",
     [r"W^{(l+1)} has n_l columns, \delta^{(l+1)} has n_{l+1} rows",
      r"missing transpose: W^{(l+1)} should be (W^{(l+1)})^T"]),
    ("square", r"\delta^{(l)} = (W^{(l+1)} \delta^{(l+1)}) \odot f'(z^{(l)})",
     ["unequal widths", "missing transpose"]),
    ("tanh_ce", r"\delta^{(l)} = ((W^{(l)})^T \delta^{(l+1)}) \odot f'(z^{(l)})",
     [r"wrong layer index: W^{(l)} should be W^{(l+1)}"]),
    ("tanh_ce", r"\delta^{(l)} = ((W^{(l+1)})^T \delta^{(l+1)}) \odot f'(z^{(l+1)})",
     [r"f'(z^{(l+1)}) has n_{l+1} rows", r"wrong layer index: z^{(l+1)} should be z^{(l)}"]),
    ("sig_mse", r"\delta^{(L)} = (y - a^{(L)}) \odot \sigma'(z^{(L)})", ["sign flipped"]),
    ("tanh_ce", r"\delta^{(l)} = (W^{(l+1)})^T \delta^{(l+1)}", ["missing the factor f_{l}'"]),
    ("sig_mse", r"\delta^{(L)} = a^{(L)} - y", ["missing the factor f_{L}'"]),
    ("tanh_ce", r"\delta^{(l)} = ((W^{(l+1)})^T \delta^{(l+1)}) \odot \sigma'(z^{(l)})",
     ["derivative of the wrong activation", "layers 1, 2 are tanh"]),
    ("mixed", r"\delta^{(l)} = ((W^{(l+1)})^T\delta^{(l+1)}) \odot \sigma'(z^{(l)})",
     ["at layer 1 (they agree at layer 2)", "layer 1 is tanh"]),
    ("relu_bce", r"\delta^{(1)} = ((W^{(2)})^T \delta^{(2)}) \odot \sigma'(z^{(1)})",
     ["derivative of the wrong activation", "layer 1 is relu"]),
    ("tanh_ce", r"\delta^{(l)} = ((W^{(l+1)})^T \delta^{(l+1)}) \odot a^{(l)} \odot (1 - a^{(l)})",
     ["is the derivative of sigmoid", "layers 1, 2 are tanh"]),
    ("tanh_ce", r"\frac{\partial L}{\partial W^{(l)}} = a^{(l-1)} (\delta^{(l)})^T",
     [r"is n_l \times n_{l-1}, but the right-hand side a^{(l-1)} (\delta^{(l)})^T is "
      r"n_{l-1} \times n_l", "transposed outer product"]),
    ("tanh_ce", r"\delta^{(l)} = ((W^{(l+1)})^T \delta^{(l+1)}) \odot f'(a^{(l)})",
     ["f' taken at a^{(l)} instead of z^{(l)}"]),
    ("tanh_ce", r"\delta^{(L)} = (a^{(L)} - y) \odot f'(z^{(L)})",
     ["shape mismatch", r"an extra factor f'(z^{(L)})"]),
    ("relu_bce", r"\delta^{(L)} = (a^{(L)} - y) \odot \sigma'(z^{(L)})",
     [r"an extra factor \sigma'(z^{(L)})", "already includes"]),
    ("sig_mse", r"\delta^{(L)} = 2 (a^{(L)} - y) \odot \sigma'(z^{(L)})", ["factor 2 too many"]),
    ("tanh_ce", r"\frac{\partial L}{\partial W^{(l)}} = \frac{1}{B} \delta^{(l)} (a^{(l-1)})^T",
     ["an extra 1/B"]),
    ("relu_bce", r"\Delta^{(L)} = A^{(L)} - Y", ["the 1/B of the mean loss is missing"]),
    ("tanh_ce", r"\frac{\partial L}{\partial b^{(l)}} = \delta^{(l+1)}",
     [r"wrong layer index: \delta^{(l+1)} should be \delta^{(l)}"]),
    ("tanh_ce", r"\frac{\partial L}{\partial W^{(l)}} = \delta^{(l)} (a^{(l)})^T",
     [r"wrong layer index: a^{(l)} should be a^{(l-1)}"]),
    ("tanh_ce", r"\frac{\partial L}{\partial a^{(l)}} = W^{(l+1)} \delta^{(l+1)}",
     ["missing transpose"]),
    ("sig_mse", r"\delta^{(l)} = ((W^{(l+2)})^T \delta^{(l+2)}) \odot f'(z^{(l)})",
     ["does not exist"]),
    (None, r"\tanh'(z) = 1 + \tanh^2(z)", [r"claim - truth = 2 \tanh^{2}"]),
    (None, r"\frac{d}{dz}\sigma(z) = \sigma(z)(\sigma(z) - 1)", ["sign flipped"]),
]


def _network(key):
    return NETWORKS[key] if key else None


def test_the_table_is_big_and_balanced():
    assert len(CORRECT) + len(INCORRECT) >= 40
    assert len(CORRECT) >= 20 and len(INCORRECT) >= 20
    used = {NETWORKS[k].loss for k, *_ in CORRECT + INCORRECT if k}
    assert used == {"mse", "bce", "cross_entropy"}
    activations = {d.activation for k, *_ in CORRECT + INCORRECT if k for d in NETWORKS[k].layers}
    assert {"sigmoid", "tanh", "relu", "softplus", "softmax"} <= activations


@pytest.mark.parametrize("key, claim", CORRECT)
def test_correct_claims(key, claim):
    verdict = verify(claim, _network(key))
    assert verdict.verdict == "correct", str(verdict)
    assert verdict.ok and not verdict.mistakes
    if key:  # never on a single point: nine points per layer, three width sets
        assert "9 random points per layer" in verdict.evidence[0]
        assert "unequal widths" in verdict.evidence[0]
    else:
        assert "equal at 7 points" in " ".join(verdict.evidence)


@pytest.mark.parametrize("key, claim, explanation", INCORRECT)
def test_incorrect_claims_are_explained(key, claim, explanation):
    verdict = verify(claim, _network(key))
    assert verdict.verdict == "incorrect", str(verdict)
    report = str(verdict)
    for text in explanation:
        assert text in report, report
    assert verdict.correct and "=" in verdict.correct
    assert verdict.shape or verdict.counterexample  # the evidence a person needs


def test_tutorial_mistake_in_full():
    verdict = verify(TUTORIAL, NETWORKS["tanh_ce"])
    assert verdict.verdict == "incorrect"
    assert verdict.shape.startswith(
        r"b^{(l+1)} has n_{l+1} rows, (W^{(l+1)})^T \delta^{(l+1)} has n_l, so they cannot be "
        "added")
    assert verdict.likely_mistake.startswith("bias term in the recursion")
    assert verdict.correct == (
        r"\delta^{(l)} = \left(\left(W^{(l + 1)}\right)^{\top} \delta^{(l + 1)}\right) "
        r"\odot f_{l}'\left(z^{(l)}\right)")
    assert verdict.correct_at_layer.startswith(r"\delta^{(1)} = ")
    data = verdict.to_dict()
    assert data["verdict"] == "incorrect" and data["likely_mistake"] == verdict.likely_mistake


def test_counterexample_and_difference():
    verdict = verify(r"\delta^{(l)} = (W^{(l+1)})^T \delta^{(l+1)}", NETWORKS["tanh_ce"])
    example = verdict.counterexample
    assert example["layer"] in (1, 2) and example["claim"] != example["truth"]
    assert r"\delta^{(2)}" in example["point"] and r"W^{(2)}" in example["point"]
    assert verdict.difference == (r"\left(\left(W^{(2)}\right)^{\top} \delta^{(2)}\right) "
                                  r"\odot \left(a^{(1)}\right)^{2}")


def test_scalar_verdict_details():
    verdict = verify(r"\tanh'(z) = 1 + \tanh^2(z)")
    assert verdict.counterexample["where"] == "z = 0.5"
    assert verdict.correct.startswith(r"\tanh'\left(z\right) = 1 - \tanh(z)^{2}")
    right = verify(r"\frac{d}{dz}\sigma(z) = \sigma(z)(1-\sigma(z))")
    assert right.evidence[0].startswith("symbolically equal")


@pytest.mark.parametrize("claim", [
    r"\delta^{(l)} = (W^{(l+1)})^T \delta^{(l+1)",
    r"\delta^{(l)} = \relu(z^{(l)})",
    r"\delta^{(l)} = \operatorname{swoosh}(z^{(l)})",
    r"\delta^{(l)} = z",
    r"\delta^{(2)} = (W^{(l+1)})^T \delta^{(l+1)}",
    r"\delta^{(l)} = X",
    r"W^{(l)} = 3",
])
def test_cannot_parse_gives_column(claim):
    verdict = verify(claim, NETWORKS["tanh_ce"])
    assert verdict.verdict == "cannot parse", str(verdict)
    assert verdict.column >= 1 and verdict.summary
    assert "^" in str(verdict).splitlines()[-1]


def test_usage_errors():
    with pytest.raises(SymbpError, match="give the network spec"):
        verify(RECURSION)
    shallow = Network(inputs=2, layers=[Dense(3, "sigmoid")], loss="mse")
    with pytest.raises(SymbpError, match="no hidden layer"):
        verify(RECURSION, shallow)


def test_spec_path_is_accepted(tmp_path):
    spec = tmp_path / "net.toml"
    spec.write_text('inputs = 3\nloss = "mse"\n[[layers]]\nunits = 4\nactivation = "tanh"\n'
                    '[[layers]]\nunits = 2\nactivation = "identity"\n')
    assert verify(RECURSION, str(spec)).ok
    assert verify(r"\delta^{(L)} = a^{(L)} - y", spec).ok


# ------------------------------------------------- the truth: the graph engine
GENERAL = [  # the general-layer formula of the verdict, from a concrete layer of the engine's
    ("tanh_ce", RECURSION, r"\delta^{(l)} = \left(\left(W^{(l + 1)}\right)^{\top} "
                           r"\delta^{(l + 1)}\right) \odot f_{l}'\left(z^{(l)}\right)"),
    ("tanh_ce", r"\Delta^{(l)} = (\Delta^{(l+1)} W^{(l+1)}) \odot f'(Z^{(l)})",
     r"\Delta^{(l)} = \left(\Delta^{(l + 1)} W^{(l + 1)}\right) \odot f_{l}'\left(Z^{(l)}\right)"),
    ("relu_bce", r"\delta^{(L-1)} = ((W^{(L)})^T \delta^{(L)}) \odot f'(z^{(L-1)})",
     r"\delta^{(L-1)} = \left(\left(W^{(L)}\right)^{\top} \delta^{(L)}\right) "
     r"\odot f_{L - 1}'\left(z^{(L - 1)}\right)"),
    ("sig_mse", r"\delta^{(L)} = a^{(L)} - y",
     r"\delta^{(L)} = a^{(L)} \odot \left(1 - a^{(L)}\right) \odot \left(a^{(L)} - y\right)"),
    ("mixed", r"\frac{\partial L}{\partial W^{(l)}} = \delta^{(l)} (a^{(l-1)})^T",
     r"\frac{\partial \ell}{\partial W^{(l)}} = \delta^{(l)} \left(a^{(l - 1)}\right)^{\top}"),
    ("mixed", r"\frac{\partial L}{\partial b^{(l)}} = \frac{1}{B} (\Delta^{(l)})^T \mathbf{1}",
     r"\frac{\partial L}{\partial b^{(l)}} = \left(\Delta^{(l)}\right)^{\top} \mathbf{1}"),
    ("mixed", r"\Delta^{(L)} = A^{(L)} - Y", r"\Delta^{(L)} = \frac{1}{B} \left(A^{(L)} - Y\right)"),
    ("tanh_ce", r"\frac{\partial L}{\partial a^{(L)}} = -y / a^{(L)}",
     r"\frac{\partial \ell}{\partial a^{(L)}} = - \frac{y}{a^{(L)}}"),
    ("relu_bce", r"\delta^{(2)} = 0",
     r"\delta^{(2)} = \left(\left(W^{(3)}\right)^{\top} \delta^{(3)}\right) \odot "
     r"\left(1 - e^{- a^{(2)}}\right)"),
]


@pytest.mark.parametrize("key, claim, correct", GENERAL)
def test_the_correct_formula_is_the_engines(key, claim, correct):
    assert verify(claim, NETWORKS[key]).correct == correct


def test_softmax_jacobian_is_the_engines_vjp():
    """softmax'(z) in a claim is the Jacobian: here against its textbook form."""
    from symbp.verify.truth import softmax, softmax_jacobian

    z = np.array([[0.3], [-1.2], [2.0], [0.1]])
    s = softmax(z, axis=0)
    assert np.allclose(s, np.exp(z) / np.exp(z).sum(), rtol=1e-14)
    assert np.allclose(softmax_jacobian(s), np.diagflat(s) - s @ s.T, rtol=1e-13, atol=1e-16)
    claim = r"\delta^{(L)} = \operatorname{softmax}'(z^{(L)}) \frac{\partial \ell}{\partial a^{(L)}}"
    assert verify(claim, NETWORKS["tanh_ce"]).ok
    assert not verify(claim.replace(r"\frac{\partial \ell}{\partial a^{(L)}}", "y"),
                      NETWORKS["tanh_ce"]).ok


CONV = """\
inputs = [2, 6]
loss = "cross_entropy"
[[layers]]
type = "conv1d"
channels = 2
kernel = 3
activation = "tanh"
[[layers]]
type = "flatten"
[[layers]]
units = 3
activation = "softmax"
"""


@pytest.mark.parametrize("spec", [CONV, CONV.replace(
    'type = "flatten"', 'type = "max_pool1d"\nkernel = 2\n[[layers]]\ntype = "flatten"')])
def test_networks_with_convolutions_are_decided(spec, tmp_path, capsys):
    """A network with convolutions is no longer refused: its claims are decided (the
    tensor claims' own tests are in test_verify_tensors.py), and a claim about layers it
    does not have is refused in one line."""
    path = tmp_path / "net.toml"
    path.write_text(spec)
    assert verify(r"\delta^{(L)} = a^{(L)} - y", path).ok
    assert not verify(r"\delta^{(L)} = a^{(L)} + y", path).ok
    unread = verify(RECURSION, path)
    assert unread.verdict == "cannot parse" and "no layer" in unread.summary
    assert main(["verify", str(path), "--claim", r"\delta^{(L)} = a^{(L)} - y"]) == 0
    assert main(["verify", str(path), "--claim", r"\tanh'(z) = 1 - \tanh^2(z)"]) == 0
    capsys.readouterr()


def test_verify_does_not_read_the_old_pattern_engine():
    blocked = ("import sys; sys.modules['symbp.derive'] = None; "
               "sys.modules['symbp.selfcheck'] = None; from symbp.verify import verify; "
               f"raise SystemExit(0 if verify({RECURSION!r}, {str(EXAMPLE)!r}).ok else 1)")
    assert subprocess.run([sys.executable, "-c", blocked], check=False).returncode == 0


def test_verify_parsed_decides_a_parsed_claim_and_quotes_the_given_text():
    """The decision for a claim parsed (or rewritten) elsewhere: the same verdict as
    verify's, quoting the text the user wrote."""
    from symbp.claims import parse_claim
    from symbp.verify import verify_parsed

    network = NETWORKS["tanh_ce"]
    for text in (RECURSION, TUTORIAL, r"\tanh'(z) = 1 - \tanh^2(z)"):
        direct, parsed = verify(text, network), verify_parsed(parse_claim(text), network, text)
        assert (parsed.verdict, parsed.mistakes, parsed.claim) == (direct.verdict,
                                                                   direct.mistakes, text)
    rewritten = verify_parsed(parse_claim(RECURSION), network, "dZ1 = W2.T dZ2 * g'(Z1)")
    assert rewritten.ok and rewritten.claim == "dZ1 = W2.T dZ2 * g'(Z1)"
    batch_mix = verify_parsed(parse_claim(r"\Delta^{(l)} = \delta^{(l)}"), network, "D = d")
    assert batch_mix.verdict == "cannot parse" and batch_mix.claim == "D = d"


def test_the_convention_and_the_symbols_are_in_the_json_and_the_report_when_set():
    verdict = verify(RECURSION, NETWORKS["tanh_ce"])
    assert "convention" not in verdict.to_dict() and "symbols" not in verdict.to_dict()
    verdict.convention, verdict.symbols = "cs231n", {"h": "a^{(l)}"}
    data = json.loads(json.dumps(verdict.to_dict()))
    assert data["convention"] == "cs231n" and data["symbols"] == {"h": "a^{(l)}"}
    assert "cs231n" in str(verdict) and "h = a^{(l)}" in str(verdict)


# ------------------------------------------------------------------ files
ALIGN = r"""
% a hand derivation
\begin{align*}
\delta^{(L)} &= a^{(L)} - y \\
\delta^{(l)} &= \left((W^{(l+1)})^T \delta^{(l+1)} + b^{(l+1)}\right) \odot f'(z^{(l)}) \label{eq:wrong} \\
\frac{\partial L}{\partial W^{(l)}} &= \delta^{(l)} (a^{(l-1)})^T \\
  &= \delta^{(l)} \left(a^{(l-1)}\right)^{\top}
\end{align*}
"""


def test_read_claims_from_align_rows():
    claims = read_claims(ALIGN)
    assert [line for line, _ in claims] == [4, 5, 6, 7]
    assert claims[3][1].startswith(r"\frac{\partial L}{\partial W^{(l)}} = \delta^{(l)}")
    assert r"\label" not in claims[1][1]
    assert read_claims("a = b\n\n# comment\nc = d\n") == [(1, "a = b"), (4, "c = d")]


def test_verify_file(tmp_path):
    path = tmp_path / "derivation.tex"
    path.write_text(ALIGN)
    verdicts = verify_file(path, NETWORKS["tanh_ce"])
    assert [v.verdict for v in verdicts] == ["correct", "incorrect", "correct", "correct"]
    assert verdicts[1].line == 5


# -------------------------------------------------------------------- CLI
@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "digits.toml"
    path.write_text('inputs = 6\nloss = "cross_entropy"\n[[layers]]\nunits = 5\n'
                    'activation = "tanh"\n[[layers]]\nunits = 3\nactivation = "softmax"\n')
    return str(path)


def test_cli_exit_codes_and_output(spec_file, capsys, tmp_path):
    assert main(["verify", spec_file, "--claim", RECURSION]) == 0
    assert capsys.readouterr().out.startswith("correct:")
    assert main(["verify", spec_file, "--claim", TUTORIAL]) == 1
    out = capsys.readouterr().out
    assert out.startswith("incorrect:") and "bias term in the recursion" in out
    assert r"b^{(l+1)} has n_{l+1} rows" in out
    assert main(["verify", spec_file, "--claim", r"\delta^{(l)} = (W^{(l+1)}"]) == 2
    assert "at column" in capsys.readouterr().out
    assert main(["verify", "--claim", r"\tanh'(z) = 1 - \tanh^2(z)"]) == 0
    capsys.readouterr()
    derivation = tmp_path / "d.tex"
    derivation.write_text(ALIGN)
    assert main(["verify", spec_file, "--file", str(derivation)]) == 1
    assert "line 5: incorrect" in capsys.readouterr().out


def test_cli_json(spec_file, capsys):
    assert main(["verify", spec_file, "--claim", TUTORIAL, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "incorrect" and "bias term" in data["likely_mistake"]
    assert main(["verify", spec_file, "--claim", RECURSION, "--claim", "x = (", "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "cannot parse"
    assert [c["verdict"] for c in data["claims"]] == ["correct", "cannot parse"]
    assert data["claims"][1]["column"] == 6


@pytest.mark.parametrize("argv, message", [
    (["verify"], "give a claim"),
    (["verify", "--claim", RECURSION], "give the network spec"),
    (["verify", "missing.toml", "--claim", RECURSION], "no such spec file"),
    (["verify", "--claim", "x = 1", "--file", "f.tex"], "not both"),
    (["verify", "--file", "nowhere.tex"], "no such file"),
])
def test_cli_usage_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("symbp: error:") and message in err
    assert len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ fuzz
FUZZ_NETWORK = Network(inputs=2, layers=[Dense(3, "tanh"), Dense(2, "sigmoid")], loss="mse")
PIECES = [
    r"\delta^{(l)}", r"\delta^{(L)}", r"W^{(l+1)}", r"W^{(l)}", r"b^{(l+1)}", r"z^{(l)}",
    r"a^{(l)}", r"a^{(l-1)}", r"\delta^{(l+1)}", "x", "y", "^T", "^{2}", "(", ")", "{", "}",
    "+", "-", "=", r"\odot", r"\cdot", "f'", r"\sigma'", r"\tanh", r"\exp", r"\log", "1", "2",
    r"\frac{1}{2}", r"\frac{\partial L}{\partial W^{(l)}}", r"\mathbf{1}", "B", r"\left(",
    r"\right)", r"\operatorname{softmax}", "z", "^", "_", "'", r"\foo", " ",
]
claims = st.lists(st.sampled_from(PIECES), min_size=1, max_size=14).map(" ".join)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(claims, claims.map(lambda c: r"\delta^{(l)} = " + c),
                 claims.map(lambda c: r"\frac{\partial L}{\partial W^{(l)}} = " + c)))
def test_fuzz_every_claim_ends_in_a_verdict(text):
    verdict = verify(text, FUZZ_NETWORK)
    assert verdict.verdict in VERDICTS
    json.dumps(verdict.to_dict())
    str(verdict)


def test_a_literal_batch_size_is_not_the_batch_size():
    """The points' batches differ in size, so 1/4 written for 1/B holds at one of them only
    (and no mistake is named from that one point)."""
    verdict = verify(r"\Delta^{(2)} = \frac{1}{4} (A^{(2)} - Y)", EXAMPLE)
    assert verdict.verdict == "incorrect" and not verdict.mistakes, str(verdict)
    assert verify(r"\Delta^{(2)} = \frac{1}{B} (A^{(2)} - Y)", EXAMPLE).ok
