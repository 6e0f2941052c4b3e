"""Code generation: a standalone NumPy training module for any network, from its derivation.

Contract: :func:`generate_source` renders ``templates/module.py.j2``
(installed as ``symbp/templates``) into one Python module that imports only
NumPy and the standard library and exposes the interface of CONVENTIONS §5.
Every line of the forward and backward passes is compiled from the index
expressions of :func:`~symbp.engine.derivation.derive_graph` (checked there
against finite differences): :mod:`~symbp.codegen.views` turns reads at
affine indices (convolution windows, strides, zero padding, flatten) into
NumPy views of plain arrays, :mod:`~symbp.codegen.arrays` turns an index
expression into NumPy (matrix products, ``tensordot``, axis sums, ``einsum``,
elementwise code), :mod:`~symbp.codegen.passes` orders the statements and
their work arrays, :mod:`~symbp.codegen.printer` prints elementwise parts in numerically
stable forms, :mod:`~symbp.codegen.render` gathers the template's values and
:mod:`~symbp.codegen.safety` is the one ``finalize`` hook through which every
rendered value passes (nothing from a spec or a file name becomes code). The
same spec and dtype always give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

from symbp.codegen.printer import CodePrinter, print_expr, stable
from symbp.codegen.render import environment, template_context
from symbp.codegen.safety import Code, inert_text, literal, render_slot

DTYPES = ("float64", "float32")

__all__ = ["DTYPES", "Code", "CodePrinter", "environment", "generate_source", "inert_text", "literal",
           "load_module", "package_data_directory", "print_expr", "render_slot", "stable",
           "template_context", "template_directory"]


def template_directory() -> Path:
    """``templates/``: inside the installed package, or beside it in a checkout."""
    return package_data_directory("templates")


def package_data_directory(name: str) -> Path:
    """A data folder (``templates``, ``examples``) that the wheel installs as
    ``symbp/<name>`` and that lives at the top level of a source checkout."""
    package = Path(__file__).resolve().parent.parent
    installed = package / name
    return installed if installed.is_dir() else package.parent / name


_SOURCES: dict = {}


def generate_source(network, dtype: str = "float64", spec_name: str | None = None) -> str:
    """The generated module's source text for ``network`` (kept per spec content, dtype and
    name, as :func:`~symbp.engine.derivation.derive_graph` keeps its derivations: a network
    is generated once per process, however many commands ask for it)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}")
    key = (repr(network.to_dict()), dtype, spec_name)
    if key not in _SOURCES:
        context = template_context(network, dtype, spec_name)
        _SOURCES[key] = environment(template_directory()).get_template(
            "module.py.j2").render(**context)
    return _SOURCES[key]


def load_module(source: str, name: str = "symbp_generated"):
    """Import generated source as a module object (for check, train and tests)."""
    import types

    module = types.ModuleType(name)
    module.__file__ = f"<{name}>"
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our own code
    return module
