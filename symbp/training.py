"""Training generated code on real data (``symbp train`` and ``symbp demo``).

Contract: :func:`train_on_data` generates the spec's module in memory,
loads a data set through :mod:`symbp.data` (checked against the spec's
inputs, a number of features or a sample shape such as ``[1, 8, 8]``, and
its outputs), trains with the spec's ``[training]`` settings
(overridable), prints per-epoch train and test loss, and returns a
:class:`TrainingResult` with the loss curves and the final train/test metric
(accuracy, or RMSE in the targets' units). The curves are what Keras reports
as ``loss`` and ``val_loss``: the train loss of an epoch is the generated
``train``'s history, the mean of the minibatch losses during that epoch (no
extra pass over the training set); the test loss is ``loss()`` on the whole
test set after the epoch. Networks with running statistics (batch norm) train
with a ``state`` that the generated ``train`` updates; the test loss and the
metrics are taken in evaluation mode with it (running statistics, no dropout),
and the result carries it (``TrainingResult.state``, to be saved with the
parameters). :func:`plot_losses` saves the curves with
matplotlib, written atomically.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from symbp.errors import SymbpError


@dataclass
class TrainingResult:
    params: dict
    state: dict  # the running statistics (empty without batch norm)
    train_loss: list  # per epoch: the mean minibatch loss during the epoch
    test_loss: list  # per epoch: the loss on the test set after the epoch
    metric_name: str
    train_metric: float
    test_metric: float
    seconds: float


def train_on_data(network, source: str, *, epochs=None, learning_rate=None, batch_size=None,
                  optimizer=None, seed=None, dtype="float64", out=None) -> TrainingResult:
    import numpy as np

    from symbp.codegen import generate_source, load_module
    from symbp.data import load_dataset, metric

    out = out or sys.stdout
    settings = {**network.training}
    for key, value in (("epochs", epochs), ("learning_rate", learning_rate),
                       ("batch_size", batch_size), ("optimizer", optimizer), ("seed", seed)):
        if value is not None:
            settings[key] = value
    dataset = load_dataset(source, n_inputs=network.inputs, n_outputs=network.widths[-1],
                           task=network.task, seed=settings["seed"])
    module = load_module(generate_source(network, dtype))
    params = module.init_params(settings["seed"], dtype=getattr(np, dtype))
    state = module.init_state(getattr(np, dtype))
    test_loss = []
    epochs_total = settings["epochs"]

    def after_epoch(epoch, current, train_value):
        test_loss.append(module.loss(current, dataset.X_test, dataset.Y_test, state=state))
        if epoch == 1 or epoch == epochs_total or epoch % max(1, epochs_total // 10) == 0:
            print(f"epoch {epoch:4d}/{epochs_total}  train loss {train_value:.4f}"
                  f"  test loss {test_loss[-1]:.4f}", file=out, flush=True)

    samples = "rows" if dataset.X_train.ndim == 2 else \
        f"samples of shape {dataset.X_train.shape[1:]}"
    print(f"training {network.name} on {dataset.name}: {len(dataset.X_train)} train / "
          f"{len(dataset.X_test)} test {samples}, {settings['optimizer']}, "
          f"learning rate {settings['learning_rate']}, batch {settings['batch_size']}, "
          f"{epochs_total} epochs", file=out, flush=True)
    start = time.perf_counter()
    train_loss = module.train(
        params, dataset.X_train, dataset.Y_train, state=state, epochs=epochs_total,
        batch_size=settings["batch_size"], learning_rate=settings["learning_rate"],
        optimizer=settings["optimizer"], seed=settings["seed"], callback=after_epoch)
    seconds = time.perf_counter() - start
    name, train_value = metric(dataset, module.forward(params, dataset.X_train, state=state),
                               split="train")
    _, test_value = metric(dataset, module.forward(params, dataset.X_test, state=state),
                           split="test")
    print(f"final {name}: train {train_value:.4f}, test {test_value:.4f} "
          f"({seconds:.2f} s)", file=out, flush=True)
    return TrainingResult(params, state, train_loss, test_loss, name, train_value, test_value, seconds)


def plot_losses(result: TrainingResult, path: str, title: str, force: bool = False) -> None:
    """Save the train/test loss curves as an image, atomically."""
    target = Path(path)
    if target.exists() and not force:
        raise SymbpError(f"{path}: already exists (use --force to overwrite)")
    if not target.parent.is_dir() and str(target.parent):
        raise SymbpError(f"{path}: directory {target.parent} does not exist")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SymbpError("--plot needs matplotlib: pip install matplotlib") from None
    figure, axes = plt.subplots(figsize=(6, 4))
    epochs = range(1, len(result.train_loss) + 1)
    axes.plot(epochs, result.train_loss, label="train (mean over the epoch's batches)")
    axes.plot(epochs, result.test_loss, label="test (after the epoch)")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix or ".png",
                                         dir=target.parent if str(target.parent) else ".")
    os.close(handle)
    try:
        figure.savefig(temporary)
        os.replace(temporary, target)
    except (OSError, ValueError) as exc:
        Path(temporary).unlink(missing_ok=True)
        raise SymbpError(f"{path}: cannot write the plot ({exc})") from None
    finally:
        plt.close(figure)
