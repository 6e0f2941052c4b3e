"""Thread settings for the benchmark scripts; import and call
``configure_from_argv()`` *before* NumPy, PyTorch or JAX are imported.

``--threads N`` (default 1): every library gets N threads, and the process
is pinned to N CPUs (``sched_setaffinity``, inherited by subprocesses) so
that libraries whose pool size cannot be set from Python (XLA's CPU pool)
also stay on them. With several thread pools in one process (OpenBLAS for
NumPy, OpenMP/MKL for PyTorch, XLA's pool for JAX), idle workers of one
library spin on the cores another one needs next; on a small machine that
makes interleaved timings of multi-threaded peers noisy and order
dependent. One pinned thread compares the implementations, not the pools.

``--threads all`` (or 0) keeps every library's own default.
``OPENBLAS_CORETYPE`` is never changed, only reported.
"""

from __future__ import annotations

import os

_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

THREADS: int | None = None  # None = library defaults


def threads_from_argv(argv) -> str:
    value = "1"
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--threads="):
            value = arg.split("=", 1)[1]
    return value


def configure_from_argv(argv) -> int | None:
    """Apply ``--threads`` from argv; returns N, or None for library defaults."""
    global THREADS
    value = threads_from_argv(argv).strip().lower()
    if value in ("0", "all", "default"):
        THREADS = None
        return None
    n = int(value)
    if n < 1:
        raise SystemExit("--threads must be a positive integer or 'all'")
    for var in _THREAD_VARS:
        os.environ[var] = str(n)
    if hasattr(os, "sched_getaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[:n]
        os.sched_setaffinity(0, cpus)
    THREADS = n
    return n


def apply_to_loaded_libraries() -> list[str]:
    """After the imports: limit pools that ignore the environment. Returns
    lines describing what was done."""
    lines = []
    if THREADS is None:
        lines.append("threads: library defaults (--threads all)")
        return lines
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(THREADS)
    except ImportError:
        pass
    try:
        import sys

        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(THREADS)
    except Exception:
        pass
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    lines.append(f"threads: {THREADS} per library, process pinned to CPUs {cpus}")
    return lines
