"""Conventions: presets, --let, unknown symbols, and "correct in another convention".

A claim right in its book and wrong in symbp's notation must not get a bare
"incorrect": the verdict says which convention makes it right and what the formula
is in the spec's. A letter no convention in force maps is refused naming it and what
it means in the sources. The command line takes ``--convention NAME`` and ``--let``
(bad values exit 2 naming the flag) and ``--json`` carries the convention and the
mapping of the user's symbols.
"""

import contextlib
import io
import json

import pytest

from symbp.cli import main
from symbp.errors import SymbpError
from symbp.spec import Dense, Network
from symbp.verify import conventions as K
from symbp.verify.conventions import parse_let, read, verify_written

NET = Network(inputs=3, layers=[Dense(4, "tanh"), Dense(5, "tanh"), Dense(2, "identity")],
              loss="mse")
EXAMPLE = "examples/digits_mlp.toml"


def test_every_source_has_a_preset():
    assert set(K.PRESETS) == {"symbp", "nielsen", "wikipedia", "bishop", "goodfellow", "ng",
                              "cs231n", "d2l", "ufldl", "ioffe"}
    assert K.get(None) is K.PRESETS["symbp"] and K.get("CS231n") is K.PRESETS["cs231n"]
    assert all(conv.condition and conv.source for conv in K.PRESETS.values())
    with pytest.raises(SymbpError, match="--convention pytorch: unknown convention"):
        K.get("pytorch")


@pytest.mark.parametrize("claim, convention, symbols", [
    (r"\nabla_{a^{(k)}} J = \nabla_{h^{(k)}} J \odot f'(a^{(k)})", "goodfellow",
     {"a": "z", "h": "a", "k (the layer)": "l"}),
    (r"\delta_j = h'(a_j) \sum_k w_{kj} \delta_k", "bishop", {"a": "z", "w": "W"}),
    (r"\delta_k = y_k - t_k", "bishop", {"y": "a^{(L)}", "t": "y"}),
    (r"dW = X^T dZ", "cs231n",
     {"dW": r"\left(\frac{\partial \ell}{\partial W}\right)^{\top}", "dZ": r"\Delta",
      "the layer of the unlayered quantities": "1"}),
    (r"dW^{[l]} = \frac{1}{m} dZ^{[l]} A^{[l-1]T}", "ng",
     {"m": "B", "A": "A^{\\top}", "dZ": r"B \left(\Delta\right)^{\top}"}),
    (r"\frac{\partial L}{\partial W^{(l)}} = (A^{(l-1)})^T \frac{\partial L}{\partial Z^{(l)}}",
     "cs231n", {r"\partial L/\partial W": r"\left(\frac{\partial L}{\partial W}\right)^{\top}"}),
])
def test_a_reading_names_the_users_symbols(claim, convention, symbols):
    reading = read(claim, convention)
    for mine, ours in symbols.items():
        assert reading.symbols.get(mine) == ours, reading.symbols


@pytest.mark.parametrize("claim, preset, condition", [
    # CS231n's layout read in symbp's: right in CS231n's
    (r"\frac{\partial L}{\partial W^{(l)}} = (A^{(l-1)})^T \frac{\partial L}{\partial Z^{(l)}}",
     "cs231n", r"W^{(l)} is n_{l-1} \times n_l, b^{(l)} a row and Z = XW + b"),
    # Bishop's (and Goodfellow's) a is symbp's z: the first preset that reads it right is named
    (r"\nabla_{W^{(l)}} J = \nabla_{a^{(l)}} J \, (f(a^{(l-1)}))^\top", "bishop",
     "a is the pre-activation"),
    # UFLDL's W^{(l)} maps layer l to l+1
    (r"\delta^{(l)} = ((W^{(l)})^T \delta^{(l+1)}) \odot f'(z^{(l)})", "ufldl",
     "W^{(l)} maps layer l to layer l+1"),
])
def test_a_claim_right_in_another_convention_says_so(claim, preset, condition):
    verdict = verify_written(claim, NET)
    assert verdict.verdict == "incorrect"
    note = verdict.likely_mistake
    assert note.startswith("convention: correct if ") and condition in note, note
    assert f"--convention {preset}" in note and "in this spec's convention the formula is" in note
    assert verify_written(claim, NET, preset).ok


def test_a_wrong_claim_in_every_convention_gets_no_convention_note():
    verdict = verify_written(r"\delta^{(l)} = ((W^{(l+1)})^T \delta^{(l+1)} + b^{(l+1)}) \odot "
                             r"f'(z^{(l)})", NET)
    assert verdict.verdict == "incorrect" and "bias" in verdict.likely_mistake
    assert not any(m.startswith("convention:") for m in verdict.mistakes)


@pytest.mark.parametrize("claim, letter, fix", [
    (r"\nabla_{h^{(k-1)}} J = W^{(k)\top} \nabla_{a^{(k)}} J", "h", "--convention goodfellow"),
    (r"\delta^{(L)} = a^{(L)} - t", "t", "--let t=y"),
    (r"\frac{\partial J}{\partial \mathbf{o}} = \mathbf{o} - y", "o", "--convention d2l"),
    (r"\frac{\partial L}{\partial W^{(l)}} = \frac{1}{m} (\Delta^{(l)})^T A^{(l-1)}", "m",
     "--let m=B"),
    (r"\frac{\partial L}{\partial W^{(l)}} = \frac{1}{N} (\Delta^{(l)})^T A^{(l-1)}", "N",
     "--convention cs231n"),
    (r"\nabla_{W^{(k)}} J = g \, h^{(k-1)\top}", "g", "--let g=delta"),
    (r"\frac{\partial C}{\partial b^L_{j}} = \frac{1}{n} \sum_x (a^L_j-y_j)", "n",
     "--convention nielsen"),
])
def test_an_unknown_symbol_is_named_with_what_it_may_mean(claim, letter, fix):
    verdict = verify_written(claim, NET)
    assert verdict.verdict == "cannot parse"
    assert verdict.summary.startswith(f"{letter} is not defined") and fix in verdict.summary


def test_let_declares_a_letter():
    claim = r"\delta^{(L)} = a^{(L)} - t"
    assert verify_written(claim, NET, lets=["t=y"]).ok
    assert verify_written(r"\frac{\partial J}{\partial \mathbf{o}} = \mathbf{o} - y", NET,
                          lets=["o=z^{(L)}"]).ok
    verdict = verify_written(claim, NET, lets=[parse_let("t=y")])
    assert verdict.symbols == {"t": "y"} and verdict.convention == "symbp"


@pytest.mark.parametrize("text, message", [
    ("h", "expected LETTER=QUANTITY"),
    ("h=q", "is not a single letter"),
    ("h=A^{(1)}", "not one of symbp's quantities"),
    ("W=a", "a letter that symbp does not define"),
    ("h=a=b", "expected LETTER=QUANTITY"),
])
def test_bad_let_names_the_flag(text, message):
    with pytest.raises(SymbpError) as info:
        parse_let(text)
    assert str(info.value).startswith(f"--let {text}") and message in str(info.value)


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv, message", [
    (["--convention", "pytorch"], "--convention pytorch: unknown convention"),
    (["--let", "h"], "--let h: expected LETTER=QUANTITY"),
    (["--let", "h=q"], "--let h=q:"),
])
def test_the_command_line_refuses_bad_flags_with_exit_2(argv, message):
    status, out, err = _cli("verify", EXAMPLE, *argv, "--claim", r"\delta^{(L)} = a^{(L)} - y")
    assert status == 2 and out == ""
    assert err.startswith("symbp: error: ") and message in err and err.count("\n") == 1


def test_json_carries_the_convention_and_the_symbols():
    status, out, _ = _cli("verify", EXAMPLE, "--convention", "goodfellow", "--json", "--claim",
                          r"\nabla_{W^{(k)}} J = \nabla_{a^{(k)}} J \, h^{(k-1)\top}")
    data = json.loads(out)
    assert status == 0 and data["verdict"] == "correct"
    assert data["convention"] == "goodfellow"
    assert data["symbols"]["h"] == "a" and data["symbols"]["a"] == "z"


def test_the_report_and_the_exit_status_of_a_convention_note():
    status, out, _ = _cli("verify", EXAMPLE, "--claim", r"dW = X^T dZ")
    assert status == 1 and "likely mistake: convention: correct if W^{(l)} is" in out
    status, out, _ = _cli("verify", EXAMPLE, "--convention", "cs231n", "--claim", r"dW = X^T dZ")
    assert status == 0 and "read in the convention: cs231n" in out


@pytest.mark.parametrize("claim, verdict", [
    (r"\frac{\partial E_n}{\partial w_{ji}} = \delta_j x_i", "correct"),  # PRML 5.53, z_i = x_i
    (r"\frac{\partial E_n}{\partial w_{ji}} = \delta_j z_i", "correct"),
    (r"\frac{\partial E_n}{\partial w_{ji}} = - \delta_j x_i", "incorrect"),
])
def test_bishops_input_unit_pins_the_first_layer(claim, verdict):
    """Bishop's unlayered units: x_i is an input unit, so w_{ji} there is a first-layer
    weight (it was read as a general layer and called incorrect at layer 2)."""
    network = Network(inputs=2, layers=[Dense(2, "softplus"), Dense(1, "sigmoid")], loss="bce")
    assert verify_written(claim, network, convention="bishop").verdict == verdict
