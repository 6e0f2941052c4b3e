#!/usr/bin/env python
"""Time one full training step of symbp's generated code against its peers.

A script, not a test. For every shape and dtype it

1. writes a TOML spec (tanh hidden layers, softmax output, cross-entropy,
   ``[training] optimizer = "sgd"``), runs ``python -m symbp generate SPEC -o
   OUT.py --dtype DTYPE`` and imports ``OUT.py``; when that fails the
   "generated" column is skipped with the reason and ratios are taken
   against the hand-written reference instead;
2. builds every peer from the same NumPy-made initial parameters and batch:
   generated (``train_step``), the hand-written NumPy reference
   (``reference_numpy.py``), PyTorch eager, JAX ``jit``, scikit-learn
   ``MLPClassifier.partial_fit`` and the GEMM-only lower bound (``peers.py``);
3. asserts the dtype of every parameter and buffer of the generated module
   and of the reference (no silent float64 upcast in float32 mode);
4. checks that one step of every peer gives the same updated parameters as
   the reference (so all columns do the same work);
5. times the peers interleaved: for each repeat every peer runs once, in a
   round-robin order rotated each repeat, several steps per timing sample;
   reports the median milliseconds per step and the ratio to generated code;
6. measures the peak memory of a short training run of each peer (and of
   PyTorch) the same way: each in its own subprocess, the RSS high-water
   mark after the run minus the RSS after imports and data (Linux: VmHWM,
   the counter behind ``ru_maxrss``, reset at that point; elsewhere
   ``ru_maxrss`` before and after); for the NumPy peers also the
   ``tracemalloc`` peak.

Threads: ``--threads 1`` (default) gives every library one thread and pins
the process to one CPU, see ``bench_threads.py``; ``--threads all`` keeps
the libraries' defaults.

Usage::

    python benchmarks/train_step.py            # full run (several minutes)
    python benchmarks/train_step.py --quick    # fewer repeats, shorter samples
    python benchmarks/train_step.py --help

Exit status 0, or 1 when a dtype assertion or a correctness check failed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_threads  # noqa: E402  (before NumPy: sets thread env and affinity)

bench_threads.configure_from_argv(sys.argv[1:])

import common  # noqa: E402
import numpy as np  # noqa: E402
import peers  # noqa: E402
from reference_numpy import ReferenceMLP  # noqa: E402

PEER_ORDER = ["generated", "reference", "torch", "jax", "sklearn", "gemm-bound"]
MEMORY_PEERS = ["generated", "reference", "torch", "jax", "sklearn"]
NUMPY_PEERS = {"generated", "reference", "gemm-bound"}


# --------------------------------------------------------------------------
# steppers for generated code and the reference
# --------------------------------------------------------------------------
class GeneratedStepper:
    name = "generated"

    def __init__(self, module, params: dict):
        self.module = module
        self.params = params

    def step(self, X, Y, lr: float) -> None:
        self.module.train_step(self.params, X, Y, lr)

    def numpy_params(self) -> dict:
        return common.copy_params(self.params)


class ReferenceStepper:
    name = "reference"

    def __init__(self, params: dict, batch_size: int, dtype):
        self.mlp = ReferenceMLP(params, batch_size, dtype)

    def step(self, X, Y, lr: float) -> None:
        self.mlp.step(X, Y, lr)

    def numpy_params(self) -> dict:
        return common.copy_params(self.mlp.params)


def make_stepper(name, params0, batch_size, dtype, lr, X, Y, module=None, baseline=None):
    params = common.copy_params(params0)
    if name == "generated":
        return GeneratedStepper(module, params)
    if name == "baseline":  # an earlier generated module (--baseline-dir)
        return GeneratedStepper(baseline, params)
    if name == "reference":
        return ReferenceStepper(params, batch_size, dtype)
    if name == "sklearn":
        return peers.SklearnStepper(params, batch_size, dtype, lr, X=X, Y=Y)
    return peers.PEER_CLASSES[name](params, batch_size, dtype, lr)


# --------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------
def _float_arrays(obj, path="", depth=0, seen=None):
    """Yield (path, array) for the floating NumPy arrays reachable from obj
    through dicts, lists, tuples and simple objects' __dict__ (depth-limited)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 4:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        if np.issubdtype(obj.dtype, np.floating):
            yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _float_arrays(v, f"{path}[{k!r}]", depth + 1, seen)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _float_arrays(v, f"{path}[{i}]", depth + 1, seen)


def check_generated_dtypes(module, params, X, Y, dtype, lr) -> list[str]:
    """Problems found (empty list = fine): parameters, results and every
    module-level float array ("buffers") must have the requested dtype."""
    dt = np.dtype(dtype)
    problems = []

    def want(label, arr):
        arr = np.asarray(arr)
        if np.issubdtype(arr.dtype, np.floating) and arr.dtype != dt:
            problems.append(f"{label} has dtype {arr.dtype}, expected {dt}")

    for name in ("init_params", "train_step", "gradients"):
        if not callable(getattr(module, name, None)):
            problems.append(f"generated module has no callable {name}()")
    if problems:
        return problems
    init = module.init_params(0, dt)
    expected_keys = set(params)
    if set(init) != expected_keys:
        problems.append(f"init_params keys {sorted(init)} != {sorted(expected_keys)}")
    for k, v in init.items():
        want(f"init_params(0, {dt.name})[{k!r}]", v)
        if k in params and np.shape(v) != params[k].shape:
            problems.append(f"init_params {k} shape {np.shape(v)} != {params[k].shape}")
    p = common.copy_params(params)
    ids = {k: id(v) for k, v in p.items()}
    module.train_step(p, X, Y, lr)
    for k, v in p.items():
        want(f"params[{k!r}] after train_step", v)
    rebound = [k for k in p if id(p[k]) != ids[k]]
    if rebound:
        print(f"    note: generated train_step rebinds {rebound} instead of updating in place")
    for k, v in module.gradients(p, X, Y).items():
        want(f"gradients(...)[{k!r}]", v)
    if callable(getattr(module, "forward", None)):
        want("forward(params, X)", module.forward(p, X))
    # the work arrays train_step reused (kept per thread, so not module-level)
    if callable(getattr(module, "_workspace", None)):
        for path, arr in _float_arrays(module._workspace(p, X.shape[0]), "_workspace(...)"):
            want(f"work array {path}", arr)
    # module-level arrays and caches (buffers), after a step has filled them
    for gname, gval in vars(module).items():
        if gname.startswith("__") or isinstance(gval, type(np)):
            continue
        for path, arr in _float_arrays(gval, gname):
            want(f"module buffer {path}", arr)
    return problems


def check_reference_dtypes(stepper: ReferenceStepper, dtype) -> list[str]:
    dt = np.dtype(dtype)
    arrays = dict(stepper.mlp.params)
    arrays.update(stepper.mlp.buffers())
    return [
        f"reference {k} has dtype {v.dtype}, expected {dt}"
        for k, v in arrays.items()
        if v.dtype != dt
    ]


def update_error(params0, ref_after, peer_after) -> float:
    """max over params of max|Δpeer - Δref| / max|Δref|, Δ = after - before."""
    worst = 0.0
    for k in params0:
        p0 = params0[k].astype(np.float64)
        dref = ref_after[k].astype(np.float64) - p0
        dpeer = peer_after[k].astype(np.float64) - p0
        scale = max(np.max(np.abs(dref)), np.finfo(np.float64).tiny)
        worst = max(worst, float(np.max(np.abs(dpeer - dref)) / scale))
    return worst


def update_tolerance(dtype) -> float:
    # float32: parameters near 1 hold only ~7 digits, the update is ~1e-3 of
    # them, so Δ itself carries ~1e-4 relative rounding
    return 1e-7 if np.dtype(dtype) == np.float64 else 2e-3


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------
def time_interleaved(
    steppers: dict, X, Y, lr, repeats: int, target_s: float, warmup: int = 3
) -> tuple[dict, int]:
    """Per peer, the list of per-step seconds (one value per repeat)."""
    for s in steppers.values():
        for _ in range(warmup):
            s.step(X, Y, lr)
    # steps per sample: enough for ~target_s of the slowest-but-one peer
    singles = []
    for s in steppers.values():
        t0 = time.perf_counter()
        s.step(X, Y, lr)
        singles.append(time.perf_counter() - t0)
    typical = statistics.median(singles)
    n_steps = int(min(200, max(1, round(target_s / max(typical, 1e-7)))))
    names = list(steppers)
    samples = {n: [] for n in names}
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeats):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                step = steppers[name].step
                t0 = time.perf_counter()
                for _ in range(n_steps):
                    step(X, Y, lr)
                samples[name].append((time.perf_counter() - t0) / n_steps)
    finally:
        if gc_was:
            gc.enable()
    return samples, n_steps


# --------------------------------------------------------------------------
# memory (each measurement in its own subprocess)
# --------------------------------------------------------------------------
def _proc_status_kib(field: str):
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Linux: reset this process's RSS high-water mark to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _maxrss_kib() -> int:
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru // 1024 if sys.platform == "darwin" else ru  # Linux: KiB


def memory_child(cfg: dict) -> dict:
    """Runs inside the subprocess: imports, data, baseline, run, peak.

    Peak = RSS high-water mark after the run minus the RSS at the baseline
    (after imports and data). On Linux the high-water mark (VmHWM, the
    counter behind ru_maxrss) is reset to the current RSS at the baseline, so
    a transient peak during imports cannot hide the run's own peak. Without
    /proc it falls back to ru_maxrss(after) - ru_maxrss(baseline).
    """
    peer = cfg["peer"]
    sizes, B, dtype, lr = tuple(cfg["sizes"]), cfg["batch"], cfg["dtype"], cfg["lr"]
    module = None
    if peer == "generated":
        module = common.import_module_from_path(cfg["module_path"])
    elif peer == "torch":
        import torch  # noqa: F401
    elif peer == "jax":
        import jax  # noqa: F401
    elif peer == "sklearn":
        import sklearn.neural_network  # noqa: F401
    bench_threads.apply_to_loaded_libraries()
    dt = np.dtype(dtype)
    params0 = common.make_params(sizes, dt)
    X, Y = common.make_batch(sizes, B, dt)
    gc.collect()
    use_proc = _proc_status_kib("VmRSS") is not None and _reset_peak_rss()
    base = _proc_status_kib("VmRSS") if use_proc else _maxrss_kib()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = make_stepper(peer, params0, B, dt, lr, X, Y, module)
        for _ in range(cfg["steps"]):
            s.step(X, Y, lr)
    peak = _proc_status_kib("VmHWM") if use_proc else _maxrss_kib()
    out = {
        "rss_delta_kib": peak - base,
        "baseline_kib": base,
        "method": "VmHWM-reset" if use_proc else "ru_maxrss",
    }
    if peer in NUMPY_PEERS:
        del s
        gc.collect()
        tracemalloc.start()
        s = make_stepper(peer, params0, B, dt, lr, X, Y, module)
        for _ in range(cfg["steps"]):
            s.step(X, Y, lr)
        out["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return out


def measure_memory(peer, sizes, B, dtype, lr, steps, module_path=None) -> dict:
    cfg = {
        "peer": peer,
        "sizes": list(sizes),
        "batch": B,
        "dtype": dtype,
        "lr": lr,
        "steps": steps,
        "module_path": str(module_path) if module_path else None,
    }
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--memory-child",
            json.dumps(cfg),
            "--threads",
            str(bench_threads.THREADS or "all"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


# --------------------------------------------------------------------------
# reporting
# --------------------------------------------------------------------------
def fmt_ms(seconds) -> str:
    if seconds is None:
        return "—"
    ms = seconds * 1e3
    return f"{ms:.4f}" if ms < 0.1 else f"{ms:.3f}" if ms < 10 else f"{ms:.1f}"


def fmt_ratio(x) -> str:
    return "—" if x is None else f"{x:.2f}×"


def print_time_table(rows, peer_names, baseline_label):
    cols = (
        ["shape", "batch", "dtype"]
        + [f"{p} ms" for p in peer_names]
        + [f"{p} / {baseline_label}" for p in peer_names if p != baseline_label]
    )
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" if i < 3 else "---:" for i in range(len(cols))) + "|")
    for row in rows:
        med = row["median_s"]
        base = med.get(baseline_label)
        cells = [row["shape"], str(row["batch"]), row["dtype"]]
        cells += [fmt_ms(med.get(p)) for p in peer_names]
        for p in peer_names:
            if p == baseline_label:
                continue
            r = med[p] / base if (p in med and base) else None
            cells.append(fmt_ratio(r))
        print("| " + " | ".join(cells) + " |")


def fmt_mib(kib) -> str:
    return "—" if kib is None else f"{kib / 1024:.1f}"


def print_memory_table(mem_rows, peer_names):
    cols = (
        ["shape", "batch", "dtype"]
        + [f"{p} ΔRSS MiB" for p in peer_names]
        + [f"{p} tracemalloc MiB" for p in peer_names if p in NUMPY_PEERS]
    )
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" if i < 3 else "---:" for i in range(len(cols))) + "|")
    for row in mem_rows:
        cells = [row["shape"], str(row["batch"]), row["dtype"]]
        for p in peer_names:
            m = row["mem"].get(p, {})
            cells.append(fmt_mib(m.get("rss_delta_kib")) if "error" not in m else "err")
        for p in peer_names:
            if p in NUMPY_PEERS:
                m = row["mem"].get(p, {})
                tm = m.get("tracemalloc_peak_bytes")
                cells.append("—" if tm is None else f"{tm / 2**20:.2f}")
        print("| " + " | ".join(cells) + " |")


def environment_lines(avail) -> list[str]:
    versions = []
    if avail.get("torch") is None:
        import torch

        versions.append(f"torch {torch.__version__}")
    if avail.get("jax") is None:
        import jax

        versions.append(f"jax {jax.__version__} ({jax.default_backend()})")
    if avail.get("sklearn") is None:
        import sklearn

        versions.append(f"scikit-learn {sklearn.__version__}")
    lines = [
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs; numpy {np.__version__}" + "".join(f"; {v}" for v in versions)
    ]
    lines += bench_threads.apply_to_loaded_libraries()  # after the imports above
    if avail.get("torch") is None:
        import torch

        lines.append(f"torch intra-op threads: {torch.get_num_threads()}")
    lines += common.blas_info()
    return lines


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="fewer repeats and shorter timing samples")
    ap.add_argument("--repeats", type=int, help="timing samples per peer (default 25, quick 5)")
    ap.add_argument(
        "--sample-ms",
        type=float,
        help="target duration of one timing sample (default 50, quick 10)",
    )
    ap.add_argument(
        "--shapes",
        help="comma list like 8-16-3:16,784-512-256-10:128 (default: the four standard shapes)",
    )
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument(
        "--peers", default=",".join(PEER_ORDER), help=f"comma list out of {','.join(PEER_ORDER)}"
    )
    ap.add_argument("--lr", type=float, default=common.LEARNING_RATE)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    ap.add_argument("--memory-steps", type=int, help="steps per memory run (default 20, quick 5)")
    ap.add_argument("--json", metavar="FILE", help="also write all results as JSON")
    ap.add_argument(
        "--threads",
        default="1",
        help="threads per library, process pinned to that many CPUs "
        "(default 1); 'all' keeps the libraries' defaults",
    )
    ap.add_argument(
        "--symbp-cmd",
        metavar="CMD",
        help="command used instead of 'python -m symbp' to generate code "
        "(split like a shell would), e.g. 'symbp'",
    )
    ap.add_argument(
        "--baseline-dir",
        metavar="DIR",
        help="also time the modules that an earlier symbp generated into DIR (as "
        "bench_mlp_<shape>_<dtype>.py, the names this script writes) as peer 'baseline'",
    )
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(json.loads(args.memory_child))))
        return 0

    repeats = args.repeats or (5 if args.quick else 25)
    target_s = (args.sample_ms or (10.0 if args.quick else 50.0)) / 1e3
    mem_steps = args.memory_steps or (5 if args.quick else 20)
    lr = args.lr
    if args.shapes:
        shapes = []
        for item in args.shapes.split(","):
            sz, _, b = item.partition(":")
            shapes.append((common.parse_shape(sz), int(b or 32)))
    else:
        shapes = common.SHAPES
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = set(wanted) - set(PEER_ORDER)
    if unknown:
        print(f"train_step.py: error: unknown peers {sorted(unknown)}", file=sys.stderr)
        return 2
    if "reference" not in wanted:
        wanted.insert(0, "reference")  # the correctness check needs it

    avail = peers.available()
    print("# symbp training-step benchmark\n")
    env_lines = environment_lines(avail)
    for line in env_lines:
        print(f"- {line}")
    for p in ("torch", "jax", "sklearn"):
        if p in wanted and avail[p] is not None:
            print(f"- skipping {p}: {avail[p]}")
    print(
        f"- {repeats} interleaved repeats per peer, ~{target_s * 1e3:.0f} ms per sample, "
        f"lr {lr}, plain SGD\n"
    )

    failures: list[str] = []
    time_rows, mem_rows = [], []
    gen_reasons: dict[str, str] = {}
    workdir = common.new_workdir()
    try:
        for sizes, B in shapes:
            for dtype in dtypes:
                dt = np.dtype(dtype)
                label = f"{common.shape_name(sizes)} (B={B}, {dtype})"
                print(f"## {label}")
                params0 = common.make_params(sizes, dt)
                X, Y = common.make_batch(sizes, B, dt)

                # -- generated code --
                module = module_path = None
                if "generated" in wanted:
                    t0 = time.perf_counter()
                    try:
                        module, module_path = common.generate_module(
                            sizes,
                            dtype,
                            workdir.name,
                            batch_size=B,
                            learning_rate=lr,
                            symbp_cmd=shlex.split(args.symbp_cmd) if args.symbp_cmd else None,
                        )
                        print(f"  generated {module_path.name} in {time.perf_counter() - t0:.1f} s")
                    except common.GenerationFailed as exc:
                        gen_reasons[label] = str(exc)
                        print(f"  skipping generated: {exc}")
                if module is not None:
                    try:
                        probs = check_generated_dtypes(module, params0, X, Y, dt, lr)
                    except Exception as exc:
                        probs = [f"generated module raised {type(exc).__name__}: {exc}"]
                    if probs:
                        for msg in probs:
                            print(f"  FAIL dtype: {msg}")
                        failures += [f"{label}: {m}" for m in probs]
                        module = None

                baseline = None
                if args.baseline_dir:
                    tag = f"{common.shape_name(sizes).replace('-', '_')}_{dtype}"
                    path = Path(args.baseline_dir) / f"bench_mlp_{tag}.py"
                    baseline = common.import_module_from_path(path, f"baseline_{tag}")
                names = [
                    p
                    for p in PEER_ORDER
                    if p in wanted
                    and (p != "generated" or module is not None)
                    and (p not in avail or avail[p] is None)
                ] + (["baseline"] if baseline is not None else [])

                # -- correctness: one step from params0, against the reference --
                ref = make_stepper("reference", params0, B, dt, lr, X, Y)
                probs = check_reference_dtypes(ref, dt)
                ref.step(X, Y, lr)
                probs += check_reference_dtypes(ref, dt)
                for msg in probs:
                    print(f"  FAIL dtype: {msg}")
                failures += [f"{label}: {m}" for m in probs]
                ref_after = ref.numpy_params()
                tol = update_tolerance(dt)
                errs = {}
                for name in list(names):
                    if name in ("reference", "gemm-bound"):
                        continue
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            s = make_stepper(name, params0, B, dt, lr, X, Y, module, baseline)
                            s.step(X, Y, lr)
                        after = s.numpy_params()
                        bad_dt = [k for k, v in after.items() if v.dtype != dt]
                        if bad_dt:
                            raise AssertionError(f"params {bad_dt} not {dt}")
                        err = update_error(params0, ref_after, after)
                    except Exception as exc:
                        msg = f"{name} failed one step: {type(exc).__name__}: {exc}"
                        print(f"  FAIL {msg}")
                        failures.append(f"{label}: {msg}")
                        names.remove(name)
                        continue
                    errs[name] = err
                    if not err <= tol:
                        msg = f"{name} update differs from reference by {err:.2e} (tol {tol:.0e})"
                        print(f"  FAIL {msg}")
                        failures.append(f"{label}: {msg}")
                        names.remove(name)
                print(
                    "  one-step agreement with reference (max rel. error of the update): "
                    + ", ".join(f"{k} {v:.1e}" for k, v in errs.items())
                    + f"  [tol {tol:.0e}]"
                )

                # -- timing --
                steppers = {}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    for name in names:
                        steppers[name] = make_stepper(name, params0, B, dt, lr, X, Y, module,
                                                      baseline)
                    samples, n_steps = time_interleaved(steppers, X, Y, lr, repeats, target_s)
                med = {n: statistics.median(v) for n, v in samples.items()}
                baseline = "generated" if "generated" in med else "reference"
                print(
                    f"  {n_steps} steps per sample; median ms/step: "
                    + ", ".join(f"{n} {fmt_ms(t)}" for n, t in med.items())
                )
                time_rows.append(
                    {
                        "shape": common.shape_name(sizes),
                        "batch": B,
                        "dtype": dtype,
                        "median_s": med,
                        "samples_s": samples,
                        "steps_per_sample": n_steps,
                        "baseline": baseline,
                        "update_error": errs,
                    }
                )
                del steppers
                gc.collect()

                # -- memory --
                if not args.no_memory:
                    mem = {}
                    for name in MEMORY_PEERS:
                        if name in names:
                            mem[name] = measure_memory(
                                name,
                                sizes,
                                B,
                                dtype,
                                lr,
                                mem_steps,
                                module_path if name == "generated" else None,
                            )
                            if "error" in mem[name]:
                                print(f"  memory run of {name} failed: {mem[name]['error']}")
                    print(
                        "  peak ΔRSS MiB: "
                        + ", ".join(
                            f"{n} {fmt_mib(m.get('rss_delta_kib'))}" for n, m in mem.items()
                        )
                    )
                    mem_rows.append(
                        {"shape": common.shape_name(sizes), "batch": B, "dtype": dtype, "mem": mem}
                    )
                print()
    finally:
        workdir.cleanup()

    # ---- summary tables ----
    present = [p for p in PEER_ORDER + ["baseline"] if any(p in r["median_s"] for r in time_rows)]
    baseline_label = "generated" if "generated" in present else "reference"
    print("## Median time per training step (ms), interleaved\n")
    if baseline_label != "generated":
        print(
            "_Generated code unavailable (see the notes below the tables); "
            "ratios are against the hand-written reference._\n"
        )
    print_time_table(time_rows, present, baseline_label)
    print(
        "\nRatios are peer time / "
        + baseline_label
        + " time (below 1× = faster than "
        + baseline_label
        + "). gemm-bound = the matrix products alone."
    )
    if mem_rows:
        mem_present = [p for p in MEMORY_PEERS if any(p in r["mem"] for r in mem_rows)]
        print(f"\n## Peak memory of a {mem_steps}-step training run (MiB)\n")
        print(
            "ΔRSS = peak RSS during the run (VmHWM, the counter behind ru_maxrss, reset "
            "after imports and data) minus RSS after imports and data, each peer in its "
            "own subprocess; tracemalloc = peak of traced NumPy allocations.\n"
        )
        print_memory_table(mem_rows, mem_present)
    if gen_reasons:
        print(f"\nNote: generated code skipped for {len(gen_reasons)} configuration(s):")
        for reason in sorted(set(gen_reasons.values())):
            print(f"  - {reason}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "time": time_rows,
                    "memory": mem_rows,
                    "failures": failures,
                    "generated_skipped": gen_reasons,
                    "environment": env_lines,
                },
                indent=1,
                default=str,
            )
        )
    if failures:
        print(f"\n{len(failures)} check(s) FAILED:")
        for f in failures:
            print(f"  - {f}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
