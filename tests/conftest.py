"""Shared fixtures for the tests: the examples, networks from hashable pieces, spec files.

Derivations are cached per spec content by the engine itself
(:func:`symbp.engine.derivation.derive_graph`); tests must not mutate one.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

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
