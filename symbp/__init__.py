"""symbp: symbolic backpropagation.

Derive the exact gradients of a neural network with SymPy, print them in
LaTeX, generate standalone NumPy training code, and verify hand derivations.
The spec API is re-exported here and loaded lazily, so that importing
``symbp`` (and starting the command line) stays fast; derive with
``from symbp.engine.derivation import derive_graph``.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "Network": "symbp.spec",
    "Dense": "symbp.spec",
    "load_spec": "symbp.spec",
    "SymbpError": "symbp.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'symbp' has no attribute {name!r}")
