"""The round trip: every row that ``symbp derive --format latex`` prints verifies as correct.

For each spec whose layers ``symbp verify`` reads (the dense examples and the MLPs of
the tests), the derivation's LaTeX document is split into its ``align*`` blocks and
each row (per sample, batch and index form; general layer l and concrete layers; the
activation derivatives, also in the printer's ``\\quad (a = f(z))`` form) is verified
against the same spec in symbp's own convention: it must be ``correct``. The forward
pass and the gradient-descent step are definitions, not derivations: ``symbp verify``
refuses them with a ``cannot parse`` naming the left-hand side, never a verdict.
"""

import re
import tomllib

import pytest
from conftest import EXAMPLES, ISSUE_SPEC

from symbp.engine.derivation import derive_graph
from symbp.printing import render
from symbp.spec import Dense, Network, load_spec, network_from_dict
from symbp.verify.claim_files import read_claims
from symbp.verify.conventions import verify_written

DEFINITIONS = ("Forward pass", "Gradient descent step")
# Printed rows that are not matrix LaTeX as printed (reported against symbp/printing): the
# softplus backward row juxtaposes two B x n matrices where it means the elementwise product;
# verify rightly reads a matrix product. Each must still be refused, so that this goes
# when the printer writes \odot.
PRINTER_ISSUES = (r"- \frac{1}{e^{A^{(", )


def _networks():
    specs = {path.stem: load_spec(path) for path in EXAMPLES}
    specs = {name: net for name, net in specs.items()
             if all(layer.type == "dense" for layer in net.layers)
             and not net.training.get("weight_decay")}
    specs["issue_s"] = network_from_dict(tomllib.loads(ISSUE_SPEC))
    specs["sig_mse"] = Network(inputs=3, layers=[Dense(4, "sigmoid"), Dense(2, "sigmoid")],
                               loss="mse")
    specs["relu_bce"] = Network(inputs=3, layers=[Dense(5, "relu"), Dense(4, "softplus"),
                                                  Dense(1, "sigmoid")], loss="bce")
    specs["tanh3_mse"] = Network(inputs=2, layers=[Dense(3, "tanh"), Dense(4, "tanh"),
                                                   Dense(2, "identity")], loss="mse")
    return specs


NETWORKS = _networks()


def _blocks(document: str):
    """``(section comment, align block text)`` of a LaTeX derivation document."""
    return re.findall(r"^% ([^\n]*)\n(\\begin\{align\*\}.*?\\end\{align\*\})",
                      document, flags=re.MULTILINE | re.DOTALL)


def _rows(network):
    document = render(derive_graph(network), "latex")
    for section, block in _blocks(document):
        for row in _split(block):
            yield section, row


def _split(block: str) -> list[str]:
    """The rows of an align block: split at the ``\\\\`` outside ``\\begin{cases}`` (each
    row as read_claims reads a one-row block)."""
    body = block.removeprefix("\\begin{align*}").removesuffix("\\end{align*}")
    rows, depth, start = [], 0, 0
    for match in re.finditer(r"\\begin\{cases\}|\\end\{cases\}|\\\\", body):
        token = match.group(0)
        depth += {"\\begin{cases}": 1, "\\end{cases}": -1}.get(token, 0)
        if token == "\\\\" and depth == 0:
            rows.append(body[start:match.start()])
            start = match.end()
    rows.append(body[start:])
    return [text for row in rows for _, text in read_claims(row.strip())]


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_every_printed_row_verifies_as_correct(name):
    network = NETWORKS[name]
    checked, wrong = 0, []
    for section, row in _rows(network):
        verdict = verify_written(row, network)
        if section.startswith(DEFINITIONS):
            assert verdict.verdict == "cannot parse", (row, str(verdict))
            continue
        checked += 1
        if any(issue in row for issue in PRINTER_ISSUES):
            assert not verdict.ok and "side by side" in str(verdict), str(verdict)
            continue
        if not verdict.ok:
            wrong.append(f"{row}\n{verdict}")
    assert checked >= 20
    assert not wrong, "\n\n".join(wrong)


def test_the_rows_cover_every_form():
    """The round trip is over per-sample, batch and index rows, general and concrete."""
    rows = [row for _, row in _rows(NETWORKS["digits_mlp"])]
    for needle in (r"\delta^{(l)} &=", r"\delta^{(l)}_{i} &=", r"\Delta^{(l)}_{s,i} &=",
                   r"\Delta^{(1)} &=", r"\frac{\partial L}{\partial W^{(l)}_{ij}}",
                   r"\frac{\partial \ell}{\partial W^{(2)}} &=", r"\quad (a = f(z))"):
        assert any(needle in row for row in rows), needle
