#!/usr/bin/env python
"""Convolutional networks (issue 11): symbp's generated code against PyTorch eager,
in one interleaved run, one thread per library.

A script, not a test. Two measurements, float64 and float32:

* ``epoch``: one training epoch of the example CNN (``examples/digits_cnn.toml``:
  conv2d 16 3x3 pad 1 relu -> max_pool2d 2 -> conv2d 16 3x3 pad 1 relu ->
  max_pool2d 2 -> dense 10 softmax) on scikit-learn's digits as ``symbp train``
  loads them (1348 training images of shape (1, 8, 8), standardised per
  channel), batch 32, plain SGD (learning rate 0.02). ``generated`` is the
  module's ``train(params, X, Y, epochs=1, batch_size=32, learning_rate=lr,
  optimizer="sgd", seed=seed)``; ``torch`` is what a user writes: an
  ``nn.Sequential`` of ``nn.Conv2d``/``nn.ReLU``/``nn.MaxPool2d``/``nn.Flatten``/
  ``nn.Linear``, the batch indexed from the full tensors, ``F.cross_entropy``
  with class-index targets, ``backward()``, ``torch.optim.SGD``, and
  ``total += loss.item() * len(rows)`` every step. Both visit the rows in the
  order ``np.random.default_rng(seed).permutation(rows)`` (what ``train``
  draws) and return the epoch's mean minibatch loss.
* ``lenet``: one training step of a LeNet-like network on a random batch of 64
  inputs of shape (1, 28, 28): conv2d 6 5x5 relu -> max_pool2d 2 -> conv2d 16
  5x5 relu -> max_pool2d 2 -> dense 120 relu -> dense 84 relu -> dense 10
  softmax, cross-entropy, SGD (learning rate 0.01). ``generated`` is
  ``train_step(params, X, Y, lr)``; ``torch`` the same ``nn.Sequential`` step
  (forward, ``F.cross_entropy``, ``backward()``, ``optimizer.step()``).

Every peer starts from the generated module's ``init_params(0, dtype)``
(copied into torch) and sees the same data. Checked before timing: one epoch
(one step) of each peer from the same start gives the same parameters
(relative to their largest change: 1e-7 in float64, 2e-3 per step in float32;
float32 epochs are reported, not failed, since 43 float32 steps of relu and
max pooling may route a near tie differently) and the same epoch loss (float64), and the
generated parameters keep their dtype. Timing: after a warm-up, each repeat
runs every peer once in a round-robin order rotated each repeat, GC off; the
table shows medians and ``generated / torch`` (below 1: the generated code is
faster). Targets (issue 11): epoch, generated / torch < 1; lenet, generated /
torch <= 1.3. Exit status 1 when a check fails (a missed target is reported,
not failed).

    python benchmarks/cnn.py [--quick] [--repeats N] [--threads 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_threads  # noqa: E402  (before NumPy: sets thread env and affinity)

bench_threads.configure_from_argv(sys.argv[1:])

import common  # noqa: E402
import numpy as np  # noqa: E402
from train_step import environment_lines, fmt_ms, update_tolerance  # noqa: E402
from train_step import time_interleaved as time_steps  # noqa: E402

EXAMPLE = common.REPO_ROOT / "examples" / "digits_cnn.toml"
EPOCH_LEARNING_RATE = 0.02
EPOCH_BATCH = 32
LENET_LEARNING_RATE = 0.01
LENET_BATCH = 64
LENET_INPUTS = [1, 28, 28]
LENET = [
    {"type": "conv2d", "channels": 6, "kernel": 5, "activation": "relu"},
    {"type": "max_pool2d", "kernel": 2},
    {"type": "conv2d", "channels": 16, "kernel": 5, "activation": "relu"},
    {"type": "max_pool2d", "kernel": 2},
    {"units": 120, "activation": "relu"},
    {"units": 84, "activation": "relu"},
    {"units": 10, "activation": "softmax"},
]
DTYPES = ("float64", "float32")


# ------------------------------------------------------------ the networks
def example_layers() -> tuple[list, list[dict]]:
    spec = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    return spec["inputs"], spec["layers"]


def lenet_toml() -> str:
    def value(v):
        return f'"{v}"' if isinstance(v, str) else repr(v)

    lines = ['name = "lenet"', f"inputs = {LENET_INPUTS}", 'loss = "cross_entropy"']
    for table in LENET:
        lines += ["", "[[layers]]"] + [f"{key} = {value(v)}" for key, v in table.items()]
    return "\n".join(lines) + "\n"


def generate(spec: Path, dtype: str, workdir: Path):
    """``python -m symbp generate SPEC -o OUT.py --dtype D``, imported."""
    out = workdir / f"{spec.stem}_{dtype}.py"
    proc = subprocess.run([sys.executable, "-m", "symbp", "generate", str(spec), "-o", str(out),
                           "--dtype", dtype, "--force"], capture_output=True, text=True,
                          cwd=common.REPO_ROOT)
    if proc.returncode != 0:
        raise common.GenerationFailed(((proc.stderr or proc.stdout).strip().splitlines()
                                       or ["(no output)"])[-1])
    return common.import_module_from_path(out, out.stem)


def torch_model(tables: list[dict], params: dict):
    """The network as an ``nn.Sequential`` holding copies of ``params`` (the output
    softmax is left to ``F.cross_entropy``)."""
    import torch
    from torch import nn

    def tensor(name):
        return nn.Parameter(torch.tensor(params[name]))

    modules, spatial = [], True
    for index, table in enumerate(tables, 1):
        kind = table.get("type", "dense")
        if kind == "conv2d":
            out_channels, in_channels, *kernel = params[f"W{index}"].shape
            layer = nn.Conv2d(in_channels, out_channels, tuple(kernel),
                              stride=table.get("stride", 1), padding=table.get("padding", 0))
        elif kind == "max_pool2d":
            modules.append(nn.MaxPool2d(table["kernel"], table.get("stride", table["kernel"])))
            continue
        elif kind == "dense":
            if spatial:
                modules.append(nn.Flatten())
                spatial = False
            layer = nn.Linear(params[f"W{index}"].shape[1], params[f"W{index}"].shape[0])
        else:
            raise ValueError(f"layer type {kind!r} is not benchmarked")
        layer.weight, layer.bias = tensor(f"W{index}"), tensor(f"b{index}")
        modules.append(layer)
        if table.get("activation", "identity") == "relu":
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


def torch_params(model, tables) -> dict:
    """The model's parameters under symbp's names."""
    out, layers = {}, iter(m for m in model if hasattr(m, "weight"))
    for index, table in enumerate(tables, 1):
        if table.get("type", "dense") in ("conv2d", "dense"):
            layer = next(layers)
            out[f"W{index}"] = layer.weight.detach().numpy().copy()
            out[f"b{index}"] = layer.bias.detach().numpy().copy()
    return out


# ------------------------------------------------------------------ peers
class GeneratedPeer:
    name = "generated"

    def __init__(self, module, params, tables):
        self.module, self.params = module, common.copy_params(params)

    def epoch(self, X, Y, labels, seed) -> float:
        (loss,) = self.module.train(self.params, X, Y, epochs=1, batch_size=EPOCH_BATCH,
                                    learning_rate=EPOCH_LEARNING_RATE, optimizer="sgd",
                                    seed=seed)
        return loss

    def step(self, X, Y, lr):
        self.module.train_step(self.params, X, Y, lr)

    def numpy_params(self) -> dict:
        return self.params


class TorchPeer:
    name = "torch"

    def __init__(self, module, params, tables):
        import torch

        self.torch, self.tables = torch, tables
        self.model = torch_model(tables, params)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=EPOCH_LEARNING_RATE)
        self.batch = None

    def epoch(self, X, Y, labels, seed) -> float:
        torch = self.torch
        X, labels = torch.from_numpy(X), torch.from_numpy(labels)
        order = torch.from_numpy(np.random.default_rng(seed).permutation(len(X)))
        total = 0.0
        for start in range(0, len(X), EPOCH_BATCH):
            rows = order[start:start + EPOCH_BATCH]
            loss = torch.nn.functional.cross_entropy(self.model(X[rows]), labels[rows])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(rows)
        return total / len(X)

    def step(self, X, Y, lr):
        torch = self.torch
        if self.batch is None or self.batch[0] is not X:  # convert a new batch once
            self.batch = (X, torch.from_numpy(X), torch.from_numpy(np.argmax(Y, axis=1)))
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        _, inputs, labels = self.batch
        loss = torch.nn.functional.cross_entropy(self.model(inputs), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def numpy_params(self) -> dict:
        return torch_params(self.model, self.tables)


PEERS = (GeneratedPeer, TorchPeer)


# ------------------------------------------------------------ correctness
def change_errors(peers, start: dict, run) -> tuple[dict, dict]:
    """Run ``run(peer)`` on each fresh peer; each one's change of the parameters relative
    to the generated one's (max abs difference / max abs change), and what ``run`` returned."""
    results = {peer.name: run(peer) for peer in peers}
    after = {peer.name: peer.numpy_params() for peer in peers}
    errors = {}
    for name, values in after.items():
        worst = 0.0
        for key, value in start.items():
            expected = after["generated"][key].astype(np.float64) - value
            got = values[key].astype(np.float64) - value
            scale = max(float(np.max(np.abs(expected))), np.finfo(np.float64).tiny)
            worst = max(worst, float(np.max(np.abs(got - expected))) / scale)
        errors[name] = worst
    return errors, results


def dtype_problems(peer: GeneratedPeer, dtype) -> list[str]:
    return [f"{key}: {value.dtype}" for key, value in peer.params.items() if value.dtype != dtype]


# ------------------------------------------------------------------ timing
def time_epochs(peers, X, Y, labels, repeats: int) -> dict:
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


# -------------------------------------------------------------------- cases
def digits(dtype):
    from symbp.data import load_dataset

    inputs, _ = example_layers()
    data = load_dataset("digits", n_inputs=inputs, n_outputs=10, task="classification", seed=0)
    return (data.X_train.astype(dtype), data.Y_train.astype(dtype),
            data.y_train_raw.astype(np.int64))


def epoch_case(dtype: str, repeats: int, workdir: Path) -> dict:
    module = generate(EXAMPLE, dtype, workdir)
    _, tables = example_layers()
    params = module.init_params(0, np.dtype(dtype))
    X, Y, labels = digits(np.dtype(dtype))
    start = {key: value.astype(np.float64) for key, value in params.items()}
    checked = [peer(module, params, tables) for peer in PEERS]
    errors, losses = change_errors(checked, start, lambda p: p.epoch(X, Y, labels, seed=0))
    problems = dtype_problems(checked[0], np.dtype(dtype))
    samples = time_epochs([peer(module, params, tables) for peer in PEERS], X, Y, labels,
                          repeats)
    steps = -(-len(X) // EPOCH_BATCH)
    return {"case": "epoch", "dtype": dtype, "rows": len(X), "steps": steps,
            "median_s": {name: statistics.median(v) for name, v in samples.items()},
            "errors": errors, "losses": losses, "dtype_problems": problems}


def lenet_case(dtype: str, repeats: int, target: float, workdir: Path) -> dict:
    spec = workdir / "lenet.toml"
    spec.write_text(lenet_toml())
    module = generate(spec, dtype, workdir)
    params = module.init_params(0, np.dtype(dtype))
    rng = np.random.default_rng(1)
    X = rng.standard_normal((LENET_BATCH, *LENET_INPUTS)).astype(dtype)
    Y = np.eye(10, dtype=dtype)[rng.integers(0, 10, LENET_BATCH)]
    start = {key: value.astype(np.float64) for key, value in params.items()}
    checked = [peer(module, params, LENET) for peer in PEERS]
    errors, _ = change_errors(checked, start, lambda p: p.step(X, Y, LENET_LEARNING_RATE))
    problems = dtype_problems(checked[0], np.dtype(dtype))
    peers = {peer.name: peer for peer in (cls(module, params, LENET) for cls in PEERS)}
    samples, steps = time_steps(peers, X, Y, LENET_LEARNING_RATE, repeats, target)
    return {"case": "lenet", "dtype": dtype, "steps_per_sample": steps,
            "median_s": {name: statistics.median(v) for name, v in samples.items()},
            "errors": errors, "dtype_problems": problems}


# ------------------------------------------------------------------ output
def failures(row) -> list[str]:
    out = [f"{row['case']} {row['dtype']}: dtype {p}" for p in row["dtype_problems"]]
    error = row["errors"]["torch"]
    strict = row["case"] == "lenet" or row["dtype"] == "float64"
    if strict and error > update_tolerance(row["dtype"]):
        out.append(f"{row['case']} {row['dtype']}: torch's parameters differ by {error:.1e}")
    if row["case"] == "epoch" and row["dtype"] == "float64":
        generated, torch = row["losses"]["generated"], row["losses"]["torch"]
        if abs(generated - torch) > 1e-9 * abs(generated):
            out.append(f"epoch float64: loss {generated!r} (generated) != {torch!r} (torch)")
    return out


def print_tables(rows) -> None:
    print("\n| measurement | dtype | generated ms | torch ms | generated / torch | target | "
          "update difference |")
    print("|---|---|---:|---:|---:|---|---:|")
    for row in rows:
        median = row["median_s"]
        ratio = median["generated"] / median["torch"]
        if row["case"] == "epoch":
            what = f"one epoch, digits CNN, {row['rows']} images, batch {EPOCH_BATCH}"
            target, met = "< 1", ratio < 1
        else:
            what = f"one step, LeNet-like, 1x28x28, batch {LENET_BATCH}"
            target, met = "≤ 1.3", ratio <= 1.3
        print(f"| {what} | {row['dtype']} | {fmt_ms(median['generated'])} | "
              f"{fmt_ms(median['torch'])} | {ratio:.2f}× | {target}: "
              f"{'met' if met else 'missed'} | {row['errors']['torch']:.1e} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repeats, ~10 ms step samples")
    parser.add_argument("--repeats", type=int, help="timed epochs/samples per peer (default 15)")
    parser.add_argument("--threads", default="1", help="per library (default 1), or 'all'")
    parser.add_argument("--cases", default="epoch,lenet", help="epoch, lenet or both")
    parser.add_argument("--json", help="also write the results as JSON")
    args = parser.parse_args(argv)
    repeats = args.repeats or (5 if args.quick else 15)
    target = 0.01 if args.quick else 0.05
    import torch  # noqa: F401  (loaded before the thread settings are applied)

    print("\n".join(environment_lines({"torch": None, "jax": "not used",
                                       "sklearn": "not used"})))
    rows, failed = [], []
    with common.new_workdir() as directory:
        for case in args.cases.split(","):
            for dtype in DTYPES:
                try:
                    row = (epoch_case(dtype, repeats, Path(directory)) if case == "epoch"
                           else lenet_case(dtype, repeats, target, Path(directory)))
                except common.GenerationFailed as exc:
                    print(f"cannot benchmark {case} {dtype}: {exc}")
                    return 1
                failed += failures(row)
                losses = row.get("losses")
                print(f"  {case} {dtype}: " + ", ".join(
                    f"{name} {fmt_ms(t)} ms" for name, t in row["median_s"].items())
                    + f"; torch's update differs by {row['errors']['torch']:.1e}"
                    + (f"; epoch loss {losses['generated']:.10f} (generated), "
                       f"{losses['torch']:.10f} (torch)" if losses else ""), flush=True)
                rows.append(row)
    print_tables(rows)
    print(f"\n(medians of {repeats} interleaved samples per peer)")
    for failure in failed:
        print(f"FAILED: {failure}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
