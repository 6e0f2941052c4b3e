"""``symbp demo``: the whole tour on the built-in digits examples.

Contract: for each of :data:`TOURS`, in order, derives and prints the formulas
of the example spec, writes the generated module, checks its gradients against
finite differences, trains it on scikit-learn's bundled digits data and
reports the test accuracy. First ``examples/digits_mlp.toml`` (a 64-32-10
tanh/softmax network, every formula), then ``examples/digits_cnn.toml`` (two
3x3 convolutions with relu and 2x2 max pooling, then dense softmax; an
excerpt: the derived backward formulas of its convolution and max pooling).
``epochs`` overrides every training's epochs. Exit 0 when every step worked,
1 when a gradient check failed. Nothing is fetched from the network.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

EXAMPLE = "digits_mlp.toml"


@dataclass(frozen=True)
class Tour:
    spec: str  # the example's file name
    about: str  # what the network is, for the headings
    excerpt: tuple = ()  # the ops whose backward formulas are printed; () prints everything


TOURS = (
    Tour(EXAMPLE, "a 64-32-10 multilayer perceptron"),
    Tour("digits_cnn.toml", "a convolutional network on the 8x8 images",
         excerpt=("conv2d", "max_pool2d")),
)


def example_path(name: str = EXAMPLE) -> Path:
    """A shipped example spec (``symbp/examples`` installed, ``examples/`` in a checkout)."""
    from symbp.codegen import package_data_directory

    return package_data_directory("examples") / name


def _heading(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 70 - len(text)))


def _derived_text(network, excerpt: tuple) -> str:
    """The derived formulas as text: all of them, or the backward formulas of the
    ``excerpt`` ops."""
    from symbp.engine.derivation import derive_graph
    from symbp.printing import document, render
    from symbp.printing.formats import render_text

    derivation = derive_graph(network)
    if not excerpt:
        return render(derivation, "text")
    wanted = tuple(f"Backward formulas of the op {op} " for op in excerpt)
    sections = [s for s in document(derivation) if s.title.startswith(wanted)]
    return render_text(sections, f"{network.name} (excerpt: {', '.join(excerpt)})")


def _tour(tour: Tour, first_step: int, directory: Path, epochs: int | None):
    """Steps ``first_step``.. of the demo for one example; returns (passed, result)."""
    from symbp.codegen import generate_source, load_module
    from symbp.files import write_atomic
    from symbp.gradcheck import check_module
    from symbp.spec import load_spec
    from symbp.training import train_on_data

    spec = example_path(tour.spec)
    network = load_spec(spec)
    step = iter(range(first_step, first_step + 4))
    what = "an excerpt of the gradients" if tour.excerpt else "the gradients"
    _heading(f"{next(step)}. derive: {what} of {spec.name}, {tour.about}")
    print(_derived_text(network, tour.excerpt), end="")
    print(f"(all of them in LaTeX: symbp derive {spec} --format latex)")

    _heading(f"{next(step)}. generate: a standalone NumPy module")
    source = generate_source(network, "float64", spec_name=spec.name)
    target = write_atomic(directory / f"{network.name}.py", source, force=True)
    print(f"wrote {target} ({len(source.splitlines())} lines, imports only numpy)")

    _heading(f"{next(step)}. check: derived gradients against finite differences")
    report = check_module(load_module(source), seed=0)
    print(report.table())

    _heading(f"{next(step)}. train: on scikit-learn's digits (8x8 images, 10 classes)")
    result = train_on_data(network, "digits", epochs=epochs)
    print(f"\n{network.name}: test accuracy {result.test_metric:.2%} after "
          f"{len(result.train_loss)} epochs in {result.seconds:.2f} s")
    return report.passed, result


def run_demo(output_dir: str | None = None, epochs: int | None = None) -> int:
    if output_dir is not None and not Path(output_dir).is_dir():
        from symbp.errors import SymbpError

        raise SymbpError(f"--output-dir: {output_dir} is not a directory")
    directory = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="symbp-demo-"))
    passed, summary = True, []
    for number, tour in enumerate(TOURS):
        checked, result = _tour(tour, 4 * number + 1, directory, epochs)
        passed = passed and checked
        summary.append(f"{Path(tour.spec).stem} {result.test_metric:.2%}")
    _heading("summary")
    print(f"test accuracy on digits: {', '.join(summary)}; modules in {directory}")
    return 0 if passed else 1
