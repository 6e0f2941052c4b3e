"""Shared fixtures for the tests: the examples, networks from hashable pieces, spec files.

Derivations are cached per spec content by the engine itself
(:func:`symbp.engine.derivation.derive_graph`); tests must not mutate one.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from symbp.spec import Dense, Network

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.toml"))


def make_network(inputs, layers, loss, activations=(), losses=(), name="net") -> Network:
    """A Network from hashable pieces: ``layers`` is ``((units, activation), ...)``."""
    return Network(inputs=inputs, layers=[Dense(u, a) for u, a in layers], loss=loss,
                   name=name, activations=dict(activations), losses=dict(losses))


def toml_spec(text: str) -> str:
    return textwrap.dedent(text).lstrip()


@pytest.fixture
def write_spec(tmp_path):
    """Write a TOML spec (dedented) into tmp_path and return its path."""
    counter = iter(range(10_000))

    def write(text: str, name: str | None = None) -> Path:
        path = tmp_path / (name or f"spec{next(counter)}.toml")
        path.write_text(toml_spec(text), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def pdflatex():
    """The pdflatex executable; missing is a failure under CI and a skip elsewhere."""
    found = shutil.which("pdflatex")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("pdflatex is not installed but CI is set (CI installs texlive)")
        pytest.skip("pdflatex is not installed")
    return found


VALID_SPEC = """
    name = "tiny"
    inputs = 3
    loss = "mse"

    [[layers]]
    units = 4
    activation = "tanh"

    [[layers]]
    units = 2
    activation = "sigmoid"
"""


# The spec S of issue 9's reproducers: 4 inputs, tanh 5, softmax 3, cross-entropy.
ISSUE_SPEC = """\
name = "s"
inputs = 4
loss = "cross_entropy"

[[layers]]
units = 5
activation = "tanh"

[[layers]]
units = 3
activation = "softmax"
"""


SWEEP_ACTIVATIONS = ["tanh", "relu", "sigmoid", "identity", "softplus", "silu", "elu",
                     "leaky_relu", "gelu"]


def random_graph(seed: int) -> Network:
    """A seeded random stack of every op with every activation and loss (the sweeps' graphs)."""
    rng = np.random.default_rng(seed)
    width, layers = int(rng.integers(2, 6)), []
    for position in range(int(rng.integers(2, 6))):
        kind = rng.choice(["dense", "layer_norm", "batch_norm", "residual", "dropout",
                           "activation"])
        if kind == "dense" or position == 0:
            layers.append(Dense(width, str(rng.choice(SWEEP_ACTIVATIONS)), name=f"h{position}"))
        elif kind == "residual":
            layers.append({"type": "residual", "from": f"h{len(layers) - 1}"
                           if isinstance(layers[-1], Dense) else "h0"})
        elif kind == "dropout":
            layers.append({"type": "dropout", "rate": float(rng.uniform(0, 0.9))})
        elif kind == "activation":
            layers.append({"type": "activation",
                           "activation": str(rng.choice(SWEEP_ACTIVATIONS))})
        else:
            layers.append({"type": kind, "eps": float(rng.choice([1e-5, 0.1]))})
    loss_name = str(rng.choice(["mse", "cross_entropy", "bce"]))
    output = {"mse": "identity", "cross_entropy": "softmax", "bce": "sigmoid"}[loss_name]
    layers.append(Dense(3, output))
    return Network(inputs=width, layers=layers, loss=loss_name, name=f"sweep{seed}",
                   training={"weight_decay": float(rng.choice([0.0, 0.1]))})
