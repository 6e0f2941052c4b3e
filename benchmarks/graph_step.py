"""One training step of graph networks (issue 10): symbp's generated code
against PyTorch eager (torch.nn) and JAX jit, in one interleaved run.

A script, not a test. Two networks, each at 64-128-128-10 (batch 64) and
784-512-512-10 (batch 128), float64 and float32:

- ``bn-dropout``: dense relu -> batch_norm -> dropout 0.1, twice, then dense
  softmax;
- ``ln-residual``: dense relu (h) -> dense relu -> layer_norm -> residual
  from h -> dense softmax.

Cross-entropy, plain SGD (learning rate 0.01), no weight decay. One step is
what a training loop does per batch: draw the dropout masks (each peer with
its own generator: NumPy's as the generated ``train`` does, ``nn.Dropout``,
``jax.random.bernoulli`` inside the jitted step), forward in training mode
(batch statistics), backward, update the parameters and batch norm's running
statistics. The generated step is the module's ``train_step(params, X, Y, lr,
state=, masks=)``; PyTorch is ``nn.Linear``/``nn.ReLU``/``nn.BatchNorm1d``/
``nn.Dropout``/``nn.LayerNorm``, ``F.cross_entropy`` with probability targets
and ``torch.optim.SGD``; JAX is ``jax.grad`` of the same network plus the
update, the whole step under ``jax.jit``. All start from the generated
module's ``init_params(0)`` and see the same batch.

Checked before timing: from the same parameters, with the same fixed masks,
every peer's parameter update and new running statistics agree with the
generated step's (1e-7 relative in float64, 2e-3 in float32), and the
generated step keeps the dtype. Timing as benchmarks/train_step.py
(interleaved round-robin, rotated each repeat, GC off, one thread per
library and the process pinned to one CPU by default). Peak memory: the rise
of the peak RSS during a 20-step run, each peer in its own process.

    python benchmarks/graph_step.py [--quick] [--no-memory] [--threads 1]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_threads  # noqa: E402  (before NumPy: sets thread env and affinity)

bench_threads.configure_from_argv(sys.argv[1:])

import common  # noqa: E402
import numpy as np  # noqa: E402
from train_step import (  # noqa: E402
    _proc_status_kib,
    _reset_peak_rss,
    environment_lines,
    fmt_ms,
    time_interleaved,
    update_tolerance,
)

LEARNING_RATE = 0.01
RATE = 0.1
SHAPES = [((64, 128, 128, 10), 64), ((784, 512, 512, 10), 128)]
NETWORKS = ("bn-dropout", "ln-residual")
PEERS = ("generated", "torch", "jax")


def layers(kind: str, sizes) -> list[dict]:
    """The spec's ``[[layers]]`` tables; every peer is built from this list."""
    _, h1, h2, out = sizes
    if kind == "bn-dropout":
        block = [{"type": "batch_norm"}, {"type": "dropout", "rate": RATE}]
        return [{"units": h1, "activation": "relu"}, *block,
                {"units": h2, "activation": "relu"}, *block,
                {"units": out, "activation": "softmax"}]
    return [{"units": h1, "activation": "relu", "name": "h"},
            {"units": h2, "activation": "relu"}, {"type": "layer_norm"},
            {"type": "residual", "from": "h"}, {"units": out, "activation": "softmax"}]


def spec_toml(kind: str, sizes) -> str:
    def value(v):
        return f'"{v}"' if isinstance(v, str) else repr(v)

    lines = [f'name = "{kind.replace("-", "_")}"', f"inputs = {sizes[0]}",
             'loss = "cross_entropy"']
    for table in layers(kind, sizes):
        lines += ["", "[[layers]]"] + [f"{key} = {value(v)}" for key, v in table.items()]
    return "\n".join(lines) + "\n"


def generate(kind, sizes, dtype, workdir: Path) -> Path:
    """``python -m symbp generate SPEC -o OUT.py --dtype D``; returns OUT.py."""
    stem = f"{kind.replace('-', '_')}_{common.shape_name(sizes).replace('-', '_')}_{dtype}"
    spec, out = workdir / f"{stem}.toml", workdir / f"{stem}.py"
    spec.write_text(spec_toml(kind, sizes))
    proc = subprocess.run([sys.executable, "-m", "symbp", "generate", str(spec), "-o", str(out),
                           "--dtype", dtype, "--force"], capture_output=True, text=True,
                          cwd=common.REPO_ROOT)
    if proc.returncode != 0:
        raise common.GenerationFailed((proc.stderr or proc.stdout).strip().splitlines()[-1])
    return out


def output_widths(kind, sizes) -> list[int]:
    """The width of each layer's output (a dense layer sets it, the others keep it)."""
    widths, width = [], sizes[0]
    for table in layers(kind, sizes):
        width = table.get("units", width)
        widths.append(width)
    return widths


def fixed_masks(kind, sizes, batch, dtype) -> dict:
    rng = np.random.default_rng(7)
    return {f"mask{index}": (rng.random((batch, width)) >= RATE).astype(dtype)
            for index, (table, width) in enumerate(zip(layers(kind, sizes),
                                                       output_widths(kind, sizes), strict=True), 1)
            if table.get("type") == "dropout"}


# ------------------------------------------------------------------ peers
class GeneratedPeer:
    """``train_step`` of the generated module; masks drawn as its ``train`` does."""

    def __init__(self, module, params, state):
        self.module, self.params, self.state = module, common.copy_params(params), dict(state)
        self.rng = np.random.default_rng(0)
        self.draw = getattr(module, "_draw_masks", None)  # only with dropout layers

    def step(self, X, Y, lr, masks=None):
        if masks is None and self.draw is not None:
            masks = self.draw(self.rng, X.shape[0], X.dtype)
        self.module.train_step(self.params, X, Y, lr, state=self.state, masks=masks)

    def numpy_params(self) -> dict:
        return {**self.params, **self.state}


class TorchPeer:
    """PyTorch eager with torch.nn modules; a fixed mask replaces nn.Dropout's draw."""

    def __init__(self, kind, sizes, params, state, lr):
        import torch
        from torch import nn

        self.torch, self.kind, self.fixed = torch, kind, None
        self.modules = []
        for index, table in enumerate(layers(kind, sizes), 1):
            kind_of = table.get("type", "dense")
            if kind_of == "dense":
                module = nn.Linear(1, 1)
                module.weight = nn.Parameter(torch.tensor(params[f"W{index}"]))
                module.bias = nn.Parameter(torch.tensor(params[f"b{index}"]))
            elif kind_of in ("batch_norm", "layer_norm"):
                width = params[f"gamma{index}"].shape[0]
                dtype = torch.from_numpy(params[f"gamma{index}"]).dtype
                module = (nn.BatchNorm1d if kind_of == "batch_norm" else nn.LayerNorm)(
                    width, eps=1e-5, dtype=dtype)
                module.weight = nn.Parameter(torch.tensor(params[f"gamma{index}"]))
                module.bias = nn.Parameter(torch.tensor(params[f"beta{index}"]))
                if kind_of == "batch_norm":
                    module.running_mean.copy_(torch.tensor(state[f"mean{index}"]))
                    module.running_var.copy_(torch.tensor(state[f"var{index}"]))
            elif kind_of == "dropout":
                module = nn.Dropout(RATE)
            else:
                module = None
            self.modules.append((index, table, module))
        self.relu = nn.ReLU()
        self.parameters = [p for _, _, m in self.modules if m is not None
                           for p in m.parameters()]
        self.optimizer = torch.optim.SGD(self.parameters, lr=lr)

    def forward(self, x):
        named = {}
        for index, table, module in self.modules:
            kind_of = table.get("type", "dense")
            if kind_of == "dropout" and self.fixed is not None:
                x = x * self.fixed[f"mask{index}"] / (1 - RATE)
            elif kind_of == "residual":
                x = x + named[table["from"]]
            else:
                x = module(x)
            if kind_of == "dense" and table["activation"] == "relu":
                x = self.relu(x)
            if "name" in table:
                named[table["name"]] = x
        return x  # the last layer's logits: softmax is fused into the loss

    def step(self, X, Y, lr, masks=None):
        torch = self.torch
        self.fixed = None if masks is None else {k: torch.from_numpy(v) for k, v in masks.items()}
        logits = self.forward(torch.from_numpy(X))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(Y))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def numpy_params(self) -> dict:
        out = {}
        for index, table, module in self.modules:
            kind_of = table.get("type", "dense")
            if kind_of == "dense":
                out |= {f"W{index}": module.weight, f"b{index}": module.bias}
            elif kind_of in ("batch_norm", "layer_norm"):
                out |= {f"gamma{index}": module.weight, f"beta{index}": module.bias}
            if kind_of == "batch_norm":
                out |= {f"mean{index}": module.running_mean, f"var{index}": module.running_var}
        return {k: v.detach().numpy().copy() for k, v in out.items()}


def jax_step(kind, sizes):
    """The jitted step ``(params, state, key, X, Y, lr, masks) -> (params, state, key)``;
    ``masks=None`` draws them from ``key``."""
    import jax
    import jax.numpy as jnp

    tables = layers(kind, sizes)

    def objective(params, state, key, X, Y, masks):
        x, named, new_state = X, {}, dict(state)
        for index, table in enumerate(tables, 1):
            kind_of = table.get("type", "dense")
            if kind_of == "dense":
                x = x @ params[f"W{index}"].T + params[f"b{index}"]
                if table["activation"] == "relu":
                    x = jax.nn.relu(x)
            elif kind_of == "batch_norm":
                mean, var = x.mean(0), x.var(0)
                rows = x.shape[0]
                new_state[f"mean{index}"] = 0.9 * state[f"mean{index}"] + 0.1 * mean
                new_state[f"var{index}"] = 0.9 * state[f"var{index}"] + \
                    0.1 * var * rows / (rows - 1)
                x = params[f"gamma{index}"] * (x - mean) / jnp.sqrt(var + 1e-5) + \
                    params[f"beta{index}"]
            elif kind_of == "layer_norm":
                mean, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
                x = params[f"gamma{index}"] * (x - mean) / jnp.sqrt(var + 1e-5) + \
                    params[f"beta{index}"]
            elif kind_of == "dropout":
                if masks is None:
                    key, sub = jax.random.split(key)
                    mask = jax.random.bernoulli(sub, 1 - RATE, x.shape).astype(x.dtype)
                else:
                    mask = masks[f"mask{index}"]
                x = x * mask / (1 - RATE)
            elif kind_of == "residual":
                x = x + named[table["from"]]
            if "name" in table:
                named[table["name"]] = x
        loss = -jnp.sum(Y * jax.nn.log_softmax(x, axis=1)) / X.shape[0]
        return loss, (jax.lax.stop_gradient(new_state), key)

    def step(params, state, key, X, Y, lr, masks):
        grads, (new_state, key) = jax.grad(objective, has_aux=True)(params, state, key, X, Y,
                                                                    masks)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), new_state, key

    return jax.jit(step)


class JaxPeer:
    def __init__(self, kind, sizes, params, state, lr):
        import jax

        jax.config.update("jax_enable_x64", True)
        self.jax = jax
        self.fn = jax_step(kind, sizes)
        self.params = {k: jax.device_put(np.array(v)) for k, v in params.items()}
        self.state = {k: jax.device_put(np.array(v)) for k, v in state.items()}
        self.key = jax.random.PRNGKey(0)
        self.dtype = next(iter(params.values())).dtype

    def step(self, X, Y, lr, masks=None):
        self.params, self.state, self.key = self.fn(self.params, self.state, self.key, X, Y,
                                                    self.dtype.type(lr), masks)
        self.jax.block_until_ready(self.params)

    def numpy_params(self) -> dict:
        return {k: np.asarray(v).copy() for k, v in {**self.params, **self.state}.items()}


def make_peer(name, kind, sizes, module, params, state, lr):
    if name == "generated":
        return GeneratedPeer(module, params, state)
    return (TorchPeer if name == "torch" else JaxPeer)(kind, sizes, params, state, lr)


def available(name) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


# ------------------------------------------------------------- correctness
def update_errors(peers: dict, start: dict, X, Y, masks) -> dict:
    """Each peer's one-step change of parameters and state, relative to the generated one's."""
    for peer in peers.values():
        peer.step(X, Y, LEARNING_RATE, masks)
    after = {name: peer.numpy_params() for name, peer in peers.items()}
    reference = after["generated"]
    errors = {}
    for name, values in after.items():
        worst = 0.0
        for key, start_value in start.items():
            expected = reference[key].astype(np.float64) - start_value
            got = values[key].astype(np.float64) - start_value
            scale = max(float(np.max(np.abs(expected))), np.finfo(np.float64).tiny)
            worst = max(worst, float(np.max(np.abs(got - expected))) / scale)
        errors[name] = worst
    return errors


def dtype_problems(module, peer: GeneratedPeer, dtype) -> list[str]:
    arrays = {**peer.params, **peer.state, **module.init_params(0), **module.init_state()}
    return [f"{key}: {value.dtype}" for key, value in arrays.items() if value.dtype != dtype]


# ------------------------------------------------------------------ memory
def memory_child(cfg: dict) -> dict:
    module = common.import_module_from_path(cfg["module_path"])
    if cfg["peer"] != "generated":
        __import__(cfg["peer"])
    bench_threads.apply_to_loaded_libraries()
    sizes, batch, dtype = tuple(cfg["sizes"]), cfg["batch"], np.dtype(cfg["dtype"])
    params, state = module.init_params(0, dtype), module.init_state()
    X, Y = common.make_batch(sizes, batch, dtype)
    gc.collect()
    _reset_peak_rss()
    base = _proc_status_kib("VmRSS")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = make_peer(cfg["peer"], cfg["kind"], sizes, module, params, state, LEARNING_RATE)
        for _ in range(cfg["steps"]):
            peer.step(X, Y, LEARNING_RATE)
    return {"rss_delta_kib": _proc_status_kib("VmHWM") - base}


def measure_memory(peer, kind, sizes, batch, dtype, module_path, steps) -> float | None:
    cfg = {"peer": peer, "kind": kind, "sizes": list(sizes), "batch": batch, "dtype": dtype,
           "module_path": str(module_path), "steps": steps}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--memory-child",
                           json.dumps(cfg), "--threads", str(bench_threads.THREADS or "all")],
                          capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"  memory of {peer} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
        return None
    return json.loads(lines[-1])["rss_delta_kib"] / 1024


# ------------------------------------------------------------------- main
def run_case(kind, sizes, batch, dtype, peer_names, args, workdir) -> dict:
    path = generate(kind, sizes, dtype, workdir)
    module = common.import_module_from_path(path)
    dt = np.dtype(dtype)
    params, state = module.init_params(0, dt), module.init_state()
    X, Y = common.make_batch(sizes, batch, dt)
    build = {name: (lambda name=name: make_peer(name, kind, sizes, module, params, state,
                                                 LEARNING_RATE)) for name in peer_names}
    checked = {name: make() for name, make in build.items()}
    start = {key: value.astype(np.float64) for key, value in {**params, **state}.items()}
    errors = update_errors(checked, start, X, Y, fixed_masks(kind, sizes, batch, dt))
    problems = dtype_problems(module, checked["generated"], dt)
    peers = {name: make() for name, make in build.items()}
    samples, steps = time_interleaved(peers, X, Y, LEARNING_RATE, args.repeats, args.target)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    memory = {} if args.no_memory else {
        name: measure_memory(name, kind, sizes, batch, dtype, path, args.memory_steps)
        for name in peer_names}
    return {"network": kind, "shape": common.shape_name(sizes), "batch": batch, "dtype": dtype,
            "median_s": medians, "steps_per_sample": steps, "errors": errors,
            "dtype_problems": problems, "memory_mib": memory}


def ratio(row, peer) -> str:
    med = row["median_s"]
    return f"{med[peer] / med['generated']:.2f}×" if peer in med else "—"


def print_tables(rows, peer_names) -> None:
    print("\n| network | shape | batch | dtype | " + " | ".join(f"{p} ms" for p in peer_names)
          + " | torch / generated | jax / generated | max update error |")
    print("|---|---|---|---" + "|---:" * (len(peer_names) + 3) + "|")
    for row in rows:
        cells = [row["network"], row["shape"], str(row["batch"]), row["dtype"]]
        cells += [fmt_ms(row["median_s"].get(p)) for p in peer_names]
        cells += [ratio(row, "torch"), ratio(row, "jax"),
                  f"{max(v for k, v in row['errors'].items() if k != 'generated'):.1e}"]
        print("| " + " | ".join(cells) + " |")
    if any(row["memory_mib"] for row in rows):
        print("\n| network | shape | batch | dtype | "
              + " | ".join(f"{p} ΔRSS MiB" for p in peer_names) + " |")
        print("|---|---|---|---" + "|---:" * len(peer_names) + "|")
        for row in rows:
            cells = [row["network"], row["shape"], str(row["batch"]), row["dtype"]]
            cells += ["—" if row["memory_mib"].get(p) is None else f"{row['memory_mib'][p]:.1f}"
                      for p in peer_names]
            print("| " + " | ".join(cells) + " |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repeats of ~10 ms, 5-step memory")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--threads", default="1", help="per library (default 1), or 'all'")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the results as JSON")
    parser.add_argument("--shapes", default="64,784", help="first widths of the shapes to run")
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(json.loads(args.memory_child))))
        return 0
    args.repeats, args.target = (5, 0.01) if args.quick else (25, 0.05)
    args.memory_steps = 5 if args.quick else 20
    peer_names = ["generated", "torch"] + (["jax"] if available("jax") else [])
    for name in peer_names[1:]:
        __import__(name)
    avail = {"torch": None, "jax": None if "jax" in peer_names else "not installed",
             "sklearn": "not used"}
    print("\n".join(environment_lines(avail)))
    rows, failed = [], False
    with common.new_workdir() as directory:
        wanted = {int(width) for width in args.shapes.split(",")}
        for sizes, batch in [(sizes, batch) for sizes, batch in SHAPES if sizes[0] in wanted]:
            for kind in NETWORKS:
                for dtype in ("float64", "float32"):
                    row = run_case(kind, sizes, batch, dtype, peer_names, args, Path(directory))
                    tolerance = update_tolerance(dtype)
                    bad = {k: v for k, v in row["errors"].items() if v > tolerance}
                    if bad or row["dtype_problems"]:
                        failed = True
                        print(f"  {kind} {row['shape']} {dtype}: FAILED update check {bad} "
                              f"dtypes {row['dtype_problems']}")
                    print(f"  {kind} {row['shape']} {dtype}: " + ", ".join(
                        f"{p} {fmt_ms(t)} ms (update error {row['errors'][p]:.1e})"
                        for p, t in row["median_s"].items()), flush=True)
                    rows.append(row)
    print_tables(rows, peer_names)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
