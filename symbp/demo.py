"""``symbp demo``: the whole tour on the built-in digits example.

Contract: derives and prints the formulas of ``examples/digits_mlp.toml``
(a 64-32-10 tanh/softmax network), writes the generated module, checks its
gradients against finite differences, trains it on scikit-learn's bundled
digits data and reports the test accuracy. Exit 0 when every step worked, 1
when the gradient check failed. Nothing is fetched from the network.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

EXAMPLE = "digits_mlp.toml"


def example_path(name: str = EXAMPLE) -> Path:
    """A shipped example spec (``symbp/examples`` installed, ``examples/`` in a checkout)."""
    from symbp.codegen import package_data_directory

    return package_data_directory("examples") / name


def _heading(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 70 - len(text)))


def run_demo(output_dir: str | None = None, epochs: int | None = None) -> int:
    from symbp.codegen import generate_source, load_module
    from symbp.engine.derivation import derive_graph
    from symbp.files import write_atomic
    from symbp.gradcheck import check_module
    from symbp.printing import render
    from symbp.spec import load_spec
    from symbp.training import train_on_data

    if output_dir is not None and not Path(output_dir).is_dir():
        from symbp.errors import SymbpError

        raise SymbpError(f"--output-dir: {output_dir} is not a directory")
    spec = example_path()
    network = load_spec(spec)
    _heading(f"1. derive: the gradients of {spec.name}")
    print(render(derive_graph(network), "text"), end="")
    print(f"(LaTeX: symbp derive {spec} --format latex)")

    _heading("2. generate: a standalone NumPy module")
    source = generate_source(network, "float64", spec_name=spec.name)
    directory = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="symbp-demo-"))
    target = write_atomic(directory / f"{network.name}.py", source, force=True)
    print(f"wrote {target} ({len(source.splitlines())} lines, imports only numpy)")

    _heading("3. check: derived gradients against finite differences")
    report = check_module(load_module(source), seed=0)
    print(report.table())

    _heading("4. train: on scikit-learn's digits (8x8 images, 10 classes)")
    result = train_on_data(network, "digits", epochs=epochs)
    print(f"\ntest accuracy {result.test_metric:.2%} after {len(result.train_loss)} epochs "
          f"in {result.seconds:.2f} s")
    return 0 if report.passed else 1
