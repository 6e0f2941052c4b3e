#!/usr/bin/env python
"""Per-epoch comparison with scikit-learn's MLPClassifier on the digits data.

Network 64-32-10: tanh hidden layer, softmax output, cross-entropy, plain
SGD (momentum 0, no L2 penalty, constant learning rate, no early stopping),
batch size 32, the same initial weights for every peer. The digits data ship
with scikit-learn (no download); pixels are scaled to [0, 1] and split 75/25
(stratified, fixed seed).

Peers, run interleaved epoch by epoch (rotating order):

* generated  -- symbp's module: ``train(params, X, Y, epochs=1, batch_size=32,
                learning_rate=LR, optimizer="sgd", seed=epoch)`` per epoch
                (skipped with a message when ``symbp generate`` fails);
* sklearn    -- ``MLPClassifier(solver="sgd", max_iter=1, warm_start=True)``,
                one ``fit`` per epoch (its own shuffling and batching loop);
* reference  -- the hand-written ``ReferenceMLP`` in a plain epoch loop.

Prints the median seconds per epoch, the ratio to generated code, the final
training loss and the test accuracy.

Usage::

    python benchmarks/sklearn_epoch.py [--quick] [--epochs 30] [--lr 0.01]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_threads  # noqa: E402

bench_threads.configure_from_argv(sys.argv[1:])

import common  # noqa: E402
import numpy as np  # noqa: E402
import peers  # noqa: E402
from reference_numpy import ReferenceMLP  # noqa: E402

SIZES = (64, 32, 10)


def load_data(dtype, seed=0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = (digits.data / 16.0).astype(dtype)
    y = digits.target.astype(np.int64)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)
    Ytr = np.zeros((len(ytr), 10), dtype=dtype)
    Ytr[np.arange(len(ytr)), ytr] = 1
    return Xtr, Ytr, ytr, Xte, yte


def mean_ce(probs, y) -> float:
    p = np.clip(probs[np.arange(len(y)), y].astype(np.float64), 1e-300, None)
    return float(-np.mean(np.log(p)))


class GeneratedEpochs:
    name = "generated"

    def __init__(self, module, params, batch_size, lr):
        self.m, self.params, self.bs, self.lr = module, params, batch_size, lr

    def epoch(self, X, Y, y, e):
        self.m.train(
            self.params,
            X,
            Y,
            epochs=1,
            batch_size=self.bs,
            learning_rate=self.lr,
            optimizer="sgd",
            seed=e,
        )

    def probs(self, X):
        return np.asarray(self.m.forward(self.params, X))

    def predict(self, X):
        return np.asarray(self.m.predict(self.params, X))


class SklearnEpochs:
    name = "sklearn"

    def __init__(self, params, X, y, batch_size, lr, seed):
        # a RandomState instance (not an int) so each epoch shuffles afresh
        self.clf = peers.make_sklearn_classifier(
            SIZES[1:-1],
            batch_size,
            lr,
            shuffle=True,
            random_state=np.random.RandomState(seed),
            max_iter=1,
            warm_start=True,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.clf.fit(X, y)  # builds the model (one throw-away epoch) ...
        peers.sklearn_set_params(self.clf, params)  # ... then our initial weights

    def epoch(self, X, Y, y, e):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning for max_iter=1
            self.clf.fit(X, y)

    def probs(self, X):
        return self.clf.predict_proba(X)

    def predict(self, X):
        return self.clf.predict(X)


class ReferenceEpochs:
    name = "reference"

    def __init__(self, params, batch_size, lr, dtype):
        self.mlp = ReferenceMLP(params, batch_size, dtype)
        self.bs, self.lr = batch_size, lr

    def epoch(self, X, Y, y, e):
        idx = np.random.default_rng(e).permutation(len(X))
        for s in range(0, len(X), self.bs):
            j = idx[s : s + self.bs]
            self.mlp.step(X[j], Y[j], self.lr)

    def probs(self, X):
        return self.mlp.forward(X).copy()

    def predict(self, X):
        return self.mlp.predict(X)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 epochs instead of 30")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--lr", type=float, default=common.LEARNING_RATE)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads",
        default="1",
        help="threads per library (default 1, pinned); 'all' = library defaults",
    )
    ap.add_argument("--symbp-cmd", metavar="CMD", help="command used instead of 'python -m symbp'")
    args = ap.parse_args(argv)
    epochs = args.epochs or (5 if args.quick else 30)
    dt = np.dtype(args.dtype)
    lr, bs = args.lr, args.batch_size

    try:
        import sklearn
    except ImportError:
        print("scikit-learn is not installed: nothing to compare against")
        return 0
    for line in bench_threads.apply_to_loaded_libraries() + common.blas_info():
        print(f"- {line}")
    print(f"- scikit-learn {sklearn.__version__}, numpy {np.__version__}")
    Xtr, Ytr, ytr, Xte, yte = load_data(dt, args.seed)
    print(
        f"- digits: {len(Xtr)} train / {len(Xte)} test, network "
        f"{common.shape_name(SIZES)}, {args.dtype}, SGD lr {lr}, batch {bs}, "
        f"{epochs} epochs\n"
    )
    params0 = common.make_params(SIZES, dt, seed=args.seed)

    runners = []
    workdir = common.new_workdir()
    try:
        try:
            module, path = common.generate_module(
                SIZES,
                args.dtype,
                workdir.name,
                batch_size=bs,
                learning_rate=lr,
                symbp_cmd=shlex.split(args.symbp_cmd) if args.symbp_cmd else None,
            )
            if not callable(getattr(module, "train", None)):
                raise common.GenerationFailed("generated module has no train()")
            runners.append(GeneratedEpochs(module, common.copy_params(params0), bs, lr))
        except common.GenerationFailed as exc:
            print(f"skipping generated: {exc}\n")
        runners.append(SklearnEpochs(common.copy_params(params0), Xtr, ytr, bs, lr, args.seed))
        runners.append(ReferenceEpochs(common.copy_params(params0), bs, lr, dt))

        times = {r.name: [] for r in runners}
        for e in range(epochs):
            k = e % len(runners)
            for r in runners[k:] + runners[:k]:
                t0 = time.perf_counter()
                r.epoch(Xtr, Ytr, ytr, e)
                times[r.name].append(time.perf_counter() - t0)

        base = "generated" if "generated" in times else "reference"
        base_t = statistics.median(times[base])
        print(f"| peer | median ms / epoch | ratio to {base} | train loss | test accuracy |")
        print("|---|---:|---:|---:|---:|")
        for r in runners:
            med = statistics.median(times[r.name])
            loss = mean_ce(r.probs(Xtr), ytr)
            acc = float(np.mean(r.predict(Xte) == yte))
            print(f"| {r.name} | {med * 1e3:.2f} | {med / base_t:.2f}× | {loss:.4f} | {acc:.4f} |")
    finally:
        workdir.cleanup()
    print(
        f"\n(median over {epochs} interleaved epochs; the three peers shuffle "
        "differently, so losses and accuracies agree only roughly)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
