"""Shared pieces of the benchmark scripts: shapes, initial weights, data, and
obtaining symbp's generated module.

Every peer starts from the same NumPy-made parameters (``make_params``) and
sees the same NumPy-made batch (``make_batch``); the float32 runs use the
float64 values rounded once, so the two dtypes see the same problem.

Parameters follow CONVENTIONS §5: ``W{l}`` has shape ``(n_l, n_{l-1})`` and
``b{l}`` has shape ``(n_l,)``. Hidden layers are tanh, the output is softmax,
the loss is cross-entropy averaged over the batch.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

# (layer sizes n_0..n_L, batch size)
SHAPES: list[tuple[tuple[int, ...], int]] = [
    ((8, 16, 3), 16),
    ((64, 128, 64, 10), 64),
    ((784, 512, 256, 10), 128),
    ((1024, 1024, 1024, 10), 256),
]

LEARNING_RATE = 0.01


def shape_name(sizes) -> str:
    return "-".join(str(n) for n in sizes)


def parse_shape(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("-"))


def make_params(sizes, dtype=np.float64, seed: int = 0) -> dict[str, np.ndarray]:
    """Glorot-uniform weights and small random biases, made in float64 with
    NumPy and then cast, so every peer and both dtypes start alike."""
    rng = np.random.default_rng(seed)
    params = {}
    for layer in range(1, len(sizes)):
        n_in, n_out = sizes[layer - 1], sizes[layer]
        limit = np.sqrt(6.0 / (n_in + n_out))
        params[f"W{layer}"] = rng.uniform(-limit, limit, size=(n_out, n_in)).astype(dtype)
        params[f"b{layer}"] = rng.uniform(-0.1, 0.1, size=n_out).astype(dtype)
    return params


def copy_params(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.array(v, copy=True, order="C") for k, v in params.items()}


def make_batch(sizes, batch_size: int, dtype=np.float64, seed: int = 1):
    """A standard-normal input batch and one-hot targets (float, same dtype)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((batch_size, sizes[0])).astype(dtype)
    labels = rng.integers(0, sizes[-1], size=batch_size)
    # make sure every class occurs (sklearn's partial_fit is happier with that)
    labels[: min(batch_size, sizes[-1])] = np.arange(min(batch_size, sizes[-1]))
    Y = np.zeros((batch_size, sizes[-1]), dtype=dtype)
    Y[np.arange(batch_size), labels] = 1
    return X, Y


def spec_toml(
    sizes,
    *,
    name: str = "bench_mlp",
    batch_size: int = 32,
    learning_rate: float = LEARNING_RATE,
    epochs: int = 1,
    seed: int = 0,
) -> str:
    """The network spec in the format of CONVENTIONS §3."""
    lines = [
        f'name = "{name}"',
        f"inputs = {sizes[0]}",
        'loss = "cross_entropy"',
        "",
    ]
    for i, units in enumerate(sizes[1:]):
        activation = "softmax" if i == len(sizes) - 2 else "tanh"
        lines += ["[[layers]]", f"units = {units}", f'activation = "{activation}"', ""]
    lines += [
        "[training]",
        'optimizer = "sgd"',
        f"learning_rate = {learning_rate}",
        f"batch_size = {batch_size}",
        f"epochs = {epochs}",
        f"seed = {seed}",
        "",
    ]
    return "\n".join(lines)


class GenerationFailed(RuntimeError):
    """``python -m symbp generate`` did not produce an importable module."""


def generate_module(
    sizes,
    dtype: str,
    workdir: str | os.PathLike,
    *,
    batch_size: int = 32,
    learning_rate: float = LEARNING_RATE,
    timeout: float = 600,
    symbp_cmd: list[str] | None = None,
):
    """Write a spec, run ``python -m symbp generate SPEC -o OUT.py --dtype
    DTYPE`` and import the result. Returns ``(module, path)``; raises
    :class:`GenerationFailed` with a one-line reason otherwise.

    ``symbp_cmd`` replaces ``[python, -m, symbp]`` (e.g. an installed
    ``symbp`` script, or another checkout)."""
    workdir = Path(workdir)
    tag = f"{shape_name(sizes).replace('-', '_')}_{dtype}"
    name = f"bench_mlp_{tag}"
    spec = workdir / f"{name}.toml"
    out = workdir / f"{name}.py"
    spec.write_text(spec_toml(sizes, name=name, batch_size=batch_size, learning_rate=learning_rate))
    cmd = list(symbp_cmd or [sys.executable, "-m", "symbp"])
    label = " ".join(symbp_cmd) if symbp_cmd else "python -m symbp"
    cmd += ["generate", str(spec), "-o", str(out), "--dtype", dtype]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    try:
        proc = subprocess.run(
            cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise GenerationFailed(f"`{label} generate` timed out after {timeout:.0f} s") from None
    if proc.returncode != 0 or not out.exists():
        err = (proc.stderr or proc.stdout or "").strip().splitlines()
        last = err[-1] if err else "(no output)"
        raise GenerationFailed(f"`{label} generate` exited {proc.returncode}: {last}")
    return import_module_from_path(out, name), out


def import_module_from_path(path, name: str | None = None):
    path = Path(path)
    name = name or path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise GenerationFailed(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a broken generated module must not stop the run
        raise GenerationFailed(
            f"importing {path.name} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def new_workdir(prefix: str = "symbp_bench_") -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix=prefix)


def blas_info() -> list[str]:
    """Human-readable lines about the BLAS/threading libraries NumPy uses."""
    lines = []
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        lines.append("threadpoolctl not installed: BLAS unknown")
        try:
            cfg = np.show_config(mode="dicts")  # numpy >= 1.25
            blas = cfg.get("Build Dependencies", {}).get("blas", {})
            lines.append(f"numpy build BLAS: {blas.get('name')} {blas.get('version')}")
        except Exception:
            pass
    else:
        for info in threadpool_info():
            path = str(info.get("filepath", ""))
            owner = next(
                (
                    pkg
                    for pkg in ("numpy", "scipy", "torch", "jaxlib", "scikit_learn", "sklearn")
                    if f"{pkg}.libs" in path or f"/{pkg}/" in path
                ),
                "?",
            )
            extra = [
                str(info[k]) for k in ("version", "threading_layer", "architecture") if info.get(k)
            ]
            lines.append(
                f"[{owner}] {info.get('user_api')}: {info.get('internal_api')} "
                f"{' '.join(extra)}".rstrip()
                + f", {info.get('num_threads')} threads, {Path(path).name}"
            )
    lines.append(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if var in os.environ:
            lines.append(f"{var}={os.environ[var]}")
    return lines
