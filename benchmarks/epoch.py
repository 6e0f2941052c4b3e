#!/usr/bin/env python
"""One training epoch: the generated ``train()`` against hand-written NumPy and a
PyTorch eager loop (issue 9).

Network 64-128-64-10 (tanh hidden layers, softmax output, cross-entropy),
plain SGD, batch 64, float64 by default, one thread per library. Every peer
starts from the same parameters (``common.make_params``), trains on the same
synthetic data (``common.make_batch`` with ``--rows`` rows) and visits the rows
in the same order: ``np.random.default_rng(seed).permutation(rows)``, which is
what ``train(..., epochs=1, seed=seed)`` draws. Each peer returns the epoch's
mean minibatch loss (per-sample mean over the epoch, each batch's loss taken
before its update):

* ``generated``      ``train(params, X, Y, epochs=1, batch_size=B, learning_rate=lr,
                     optimizer="sgd", seed=seed)`` of the module that
                     ``python -m symbp generate`` writes;
* ``hand-written``   ``reference_numpy.ReferenceMLP.step`` on batches gathered with
                     ``np.take(..., out=)`` into preallocated arrays, plus
                     ``batch_loss`` from the probabilities the step computed;
* ``hand-written, steps only``  the same without the loss (for reference);
* ``generated + loss(X, Y)``    ``train`` followed by a full-data ``loss()``, which is
                     what ``train`` did every epoch before issue 9 (for reference);
* ``torch``          a PyTorch eager loop: index the batch, ``addmm`` + ``tanh``,
                     ``F.cross_entropy`` with class-index targets, ``backward()``,
                     ``torch.optim.SGD``, ``total += loss.item() * len(batch)``.

After a correctness check (from the same start, one epoch of each peer must give
the same parameters and loss as the hand-written one), the peers run interleaved:
each repeat times one epoch of every peer, in a rotated order, with the garbage
collector off; the table shows medians.

Usage::

    python benchmarks/epoch.py [--repeats 25] [--rows 1920] [--threads 1]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_threads  # noqa: E402

bench_threads.configure_from_argv(sys.argv[1:])

import common  # noqa: E402
import numpy as np  # noqa: E402
from reference_numpy import ReferenceMLP  # noqa: E402

SIZES = (64, 128, 64, 10)


class GeneratedEpochs:
    name = "generated"

    def __init__(self, module, params, batch_size, lr):
        self.module, self.params, self.batch_size, self.lr = module, params, batch_size, lr

    def epoch(self, X, Y, labels, seed) -> float:
        (loss,) = self.module.train(self.params, X, Y, epochs=1, batch_size=self.batch_size,
                                    learning_rate=self.lr, optimizer="sgd", seed=seed)
        return loss

    def numpy_params(self):
        return self.params


class GeneratedWithFullLoss(GeneratedEpochs):
    name = "generated + loss(X, Y)"

    def epoch(self, X, Y, labels, seed) -> float:
        super().epoch(X, Y, labels, seed)
        return self.module.loss(self.params, X, Y)


class HandWrittenEpochs:
    name = "hand-written"

    def __init__(self, params, batch_size, lr, dtype, with_loss=True):
        self.mlp = ReferenceMLP(params, batch_size, dtype)
        self.batch_size, self.lr, self.with_loss = batch_size, lr, with_loss
        self.X_batch = np.empty((batch_size, SIZES[0]), dtype)
        self.Y_batch = np.empty((batch_size, SIZES[-1]), dtype)
        if not with_loss:
            self.name = "hand-written, steps only"

    def epoch(self, X, Y, labels, seed) -> float:
        order = np.random.default_rng(seed).permutation(len(X))
        total = 0.0
        for start in range(0, len(X), self.batch_size):
            rows = order[start:start + self.batch_size]
            X_batch = np.take(X, rows, axis=0, out=self.X_batch[: len(rows)])
            Y_batch = np.take(Y, rows, axis=0, out=self.Y_batch[: len(rows)])
            self.mlp.step(X_batch, Y_batch, self.lr)
            if self.with_loss:
                total += len(rows) * self.mlp.batch_loss(Y_batch)
        return total / len(X)

    def numpy_params(self):
        return self.mlp.params


class TorchEpochs:
    name = "torch"

    def __init__(self, params, batch_size, lr):
        import torch

        self.torch = torch
        layers = len(params) // 2
        self.W = [torch.tensor(params[f"W{n}"], requires_grad=True) for n in range(1, layers + 1)]
        self.b = [torch.tensor(params[f"b{n}"], requires_grad=True) for n in range(1, layers + 1)]
        self.optimizer = torch.optim.SGD(self.W + self.b, lr=lr, momentum=0.0)
        self.batch_size = batch_size

    def epoch(self, X, Y, labels, seed) -> float:
        torch = self.torch
        X, labels = torch.from_numpy(X), torch.from_numpy(labels)
        order = torch.from_numpy(np.random.default_rng(seed).permutation(len(X)))
        total = 0.0
        for start in range(0, len(X), self.batch_size):
            rows = order[start:start + self.batch_size]
            a = X[rows]
            for W, b in zip(self.W[:-1], self.b[:-1], strict=True):
                a = torch.tanh(torch.addmm(b, a, W.t()))
            logits = torch.addmm(self.b[-1], a, self.W[-1].t())
            loss = torch.nn.functional.cross_entropy(logits, labels[rows])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(rows)
        return total / len(X)

    def numpy_params(self):
        return {**{f"W{n}": W.detach().numpy() for n, W in enumerate(self.W, 1)},
                **{f"b{n}": b.detach().numpy() for n, b in enumerate(self.b, 1)}}


def make_peers(module, params0, batch_size, lr, dtype, with_torch):
    peers = [GeneratedEpochs(module, common.copy_params(params0), batch_size, lr),
             HandWrittenEpochs(common.copy_params(params0), batch_size, lr, dtype),
             HandWrittenEpochs(common.copy_params(params0), batch_size, lr, dtype,
                               with_loss=False),
             GeneratedWithFullLoss(module, common.copy_params(params0), batch_size, lr)]
    if with_torch:
        peers.append(TorchEpochs(common.copy_params(params0), batch_size, lr))
    return peers


def check_same_epoch(peers, X, Y, labels) -> list[str]:
    """One epoch of each fresh peer from the same start: parameters and the epoch's mean
    minibatch loss against the hand-written peer's. Returns the failures."""
    reference = next(p for p in peers if p.name == "hand-written")
    expected_loss = reference.epoch(X, Y, labels, seed=0)
    expected = common.copy_params(reference.numpy_params())
    failures = []
    for peer in peers:
        if peer is reference:
            continue
        loss = peer.epoch(X, Y, labels, seed=0)
        error = max(float(np.max(np.abs(peer.numpy_params()[name] - value))
                          / np.max(np.abs(value))) for name, value in expected.items())
        print(f"- {peer.name}: parameters after one epoch differ by {error:.1e} (relative)"
              + ("" if "steps only" in peer.name or "+" in peer.name
                 else f", epoch loss {loss:.12f} vs {expected_loss:.12f}"))
        if error > 1e-9:
            failures.append(f"{peer.name}: parameters differ by {error:.1e}")
        if peer.name in ("generated", "torch") and abs(loss - expected_loss) > 1e-9:
            failures.append(f"{peer.name}: epoch loss {loss!r} != {expected_loss!r}")
    return failures


def time_interleaved(peers, X, Y, labels, repeats: int) -> dict:
    for peer in peers:  # warm-up: work arrays, torch's allocator and kernels
        peer.epoch(X, Y, labels, seed=1)
    samples = {peer.name: [] for peer in peers}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for repeat in range(repeats):
            shift = repeat % len(peers)
            for peer in peers[shift:] + peers[:shift]:
                start = time.perf_counter()
                peer.epoch(X, Y, labels, seed=repeat + 2)
                samples[peer.name].append(time.perf_counter() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=25, help="timed epochs per peer")
    parser.add_argument("--rows", type=int, default=1920, help="rows of the training set")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument("--threads", default="1",
                        help="threads per library (default 1, pinned); 'all' = defaults")
    args = parser.parse_args(argv)
    dtype, lr, batch_size = np.dtype(args.dtype), common.LEARNING_RATE, args.batch_size

    try:
        import torch
    except ImportError:
        torch = None
    for line in bench_threads.apply_to_loaded_libraries() + common.blas_info():
        print(f"- {line}")
    print(f"- numpy {np.__version__}" + (f", torch {torch.__version__}" if torch else
                                        ", torch not installed"))
    X, Y = common.make_batch(SIZES, args.rows, dtype, seed=1)
    labels = np.argmax(Y, axis=1)
    params0 = common.make_params(SIZES, dtype, seed=0)
    print(f"- network {common.shape_name(SIZES)}, {args.dtype}, SGD lr {lr}, {args.rows} rows, "
          f"batch {batch_size} ({-(-args.rows // batch_size)} steps per epoch)\n")

    workdir = common.new_workdir()
    try:
        module, _ = common.generate_module(SIZES, args.dtype, workdir.name,
                                           batch_size=batch_size, learning_rate=lr)
    except common.GenerationFailed as exc:
        print(f"cannot benchmark: {exc}")
        return 1
    finally:
        workdir.cleanup()

    failures = check_same_epoch(make_peers(module, params0, batch_size, lr, dtype,
                                           torch is not None), X, Y, labels)
    peers = make_peers(module, params0, batch_size, lr, dtype, torch is not None)
    samples = time_interleaved(peers, X, Y, labels, args.repeats)

    medians = {name: statistics.median(times) for name, times in samples.items()}
    steps = -(-args.rows // batch_size)
    base = medians["generated"]
    print("\n| peer | median ms / epoch | µs / step | time / generated's |")
    print("|---|---:|---:|---:|")
    for name, median in medians.items():
        print(f"| {name} | {median * 1e3:.2f} | {median / steps * 1e6:.0f} | "
              f"{median / base:.2f}× |")
    print(f"\ngenerated / hand-written = {base / medians['hand-written']:.3f} (target <= 1.05)")
    if "torch" in medians:
        print(f"torch / generated = {medians['torch'] / base:.2f} (target >= 1.5)")
    print(f"(medians of {args.repeats} interleaved epochs per peer)")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
