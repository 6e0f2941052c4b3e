"""The round trip: every row that ``symbp derive --format latex`` prints verifies as correct.

For each example spec and the MLPs of the tests, the derivation's LaTeX document is split into its ``align*`` blocks and
each row (per sample, batch and index form; general layer l and concrete layers; the
activation derivatives, also in the printer's ``\\quad (a = f(z))`` form) is verified
against the same spec in symbp's own convention: on a plain MLP it must be ``correct``;
on a network with other ops it is correct or refused, never ``incorrect``. The forward
pass (training and evaluation mode, with the running statistics' updates), the
gradient-descent step and the ``+=`` rows (one contribution of several to a
gradient) are not claims of an equality: ``symbp verify`` refuses them (cannot parse),
never a verdict.
"""

import tomllib

import pytest
from conftest import EXAMPLES, ISSUE_SPEC
from derivation_rows import printed_rows

from symbp.errors import SymbpError
from symbp.spec import Dense, Network, load_spec, network_from_dict
from symbp.verify.check import verify
from symbp.verify.tensors import has_tensor_ops

DEFINITIONS = ("Forward pass", "Evaluation mode", "Gradient descent step", "Notation")
ACCUMULATES = r"\mathrel{+}="  # one contribution to a gradient read by several ops


def _strict(net) -> bool:
    """Every row must be correct: plain MLPs and networks with convolutions, pooling or
    flatten (whose claims are all read as tensor claims)."""
    mlp = all(layer.type == "dense" for layer in net.layers) and not net.training.get(
        "weight_decay")
    return mlp or has_tensor_ops(net)


def _networks():
    specs = {path.stem: load_spec(path) for path in EXAMPLES}
    specs["issue_s"] = network_from_dict(tomllib.loads(ISSUE_SPEC))
    specs["sig_mse"] = Network(inputs=3, layers=[Dense(4, "sigmoid"), Dense(2, "sigmoid")],
                               loss="mse")
    specs["relu_bce"] = Network(inputs=3, layers=[Dense(5, "relu"), Dense(4, "softplus"),
                                                  Dense(1, "sigmoid")], loss="bce")
    specs["tanh3_mse"] = Network(inputs=2, layers=[Dense(3, "tanh"), Dense(4, "tanh"),
                                                   Dense(2, "identity")], loss="mse")
    specs["conv1d_strided"] = network_from_dict({
        "inputs": [2, 9], "loss": "cross_entropy", "layers": [
            {"type": "conv1d", "channels": 3, "kernel": 3, "stride": 2, "padding": 1,
             "activation": "tanh"},
            {"type": "avg_pool1d", "kernel": 2}, {"units": 2, "activation": "softmax"}]})
    specs["conv2d_rectangular"] = network_from_dict({
        "inputs": [2, 7, 6], "loss": "cross_entropy", "layers": [
            {"type": "conv2d", "channels": 3, "kernel": [3, 2], "stride": [2, 1],
             "padding": [1, 0], "activation": "sigmoid"},
            {"type": "max_pool2d", "kernel": 2, "stride": 1}, {"type": "flatten"},
            {"units": 3, "activation": "softmax"}]})
    return specs


NETWORKS = _networks()


def _rows(network):
    return printed_rows(network)


def _decide(row, network):
    """The verdict, or None where verify refuses the network for this claim (a SymbpError
    naming the layer: per-sample claims on a network with batch norm)."""
    try:
        return verify(row, network)
    except SymbpError:
        return None


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_every_printed_row_verifies_as_correct(name):
    """On a plain MLP and on a network with convolutions, pooling or flatten every
    derivation row is correct. On a network with other ops (layer norm, residual,
    dropout, batch norm) a row the decision does not read yet may be refused (cannot
    parse, or the network refused), but is never called incorrect."""
    network = NETWORKS[name]
    strict = _strict(network)
    correct, wrong = 0, []
    for section, row in _rows(network):
        verdict = _decide(row, network)
        if section.startswith(DEFINITIONS) or ACCUMULATES in row:
            assert verdict is None or verdict.verdict != "incorrect", (row, str(verdict))
            continue
        if verdict is not None and verdict.ok:
            correct += 1
        elif strict or (verdict is not None and verdict.verdict == "incorrect"):
            wrong.append(f"{row}\n{verdict}")
    assert correct >= (20 if strict else 1)
    assert not wrong, "\n\n".join(wrong)


def test_the_rows_cover_every_form():
    """The round trip is over per-sample, batch and index rows, general and concrete."""
    rows = [row for _, row in _rows(NETWORKS["digits_mlp"])]
    for needle in (r"\delta^{(l)} &=", r"\delta^{(l)}_{i} &=", r"\Delta^{(l)}_{s,i} &=",
                   r"\Delta^{(1)} &=", r"\frac{\partial L}{\partial W^{(l)}_{ij}}",
                   r"\frac{\partial \ell}{\partial W^{(2)}} &=", r"\quad (a = f(z))"):
        assert any(needle in row for row in rows), needle
