"""The generated module's text: what the template needs, and the Jinja environment.

Contract: :func:`template_context` gathers, for any network, the values
``templates/module.py.j2`` renders: :class:`~symbp.codegen.safety.Code` for
code (the passes of :mod:`symbp.codegen.passes`, parameter initialisation
from ``Graph.init``, literals) and plain strings for text (names, the
derived formulas, which the ``finalize`` hook makes inert). The same
network and dtype always give the same context.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import sympy as sp

from symbp import __version__
from symbp.codegen.passes import build_passes, window_summary
from symbp.codegen.safety import Code, literal, render_slot
from symbp.engine.derivation import derive_graph
from symbp.printing.rows import View, formula_row


def _shape(tensor, sizes) -> tuple:
    return tuple(int(sp.sympify(d).xreplace(sizes)) for d in tensor.shape)


def _init_lines(graph, sizes) -> list:
    """``init_params``' body: the same draws, in the same order, as before for an MLP."""
    lines = []
    for name, kind in graph.init.items():
        tensor = graph.tensors[name]
        if tensor.role != "parameter":
            continue
        shape = _shape(tensor, sizes)
        if kind in ("glorot", "he"):  # a kernel's fans count its window, as torch's
            receptive = math.prod(shape[2:])
            fan_out, fan_in = shape[0] * receptive, shape[1] * receptive
            scale = f"{fan_in}" if kind == "he" else f"({fan_in} + {fan_out})"
            lines += [f"limit = np.sqrt(6.0 / {scale})  # {kind} uniform",
                      f'params["{name}"] = rng.uniform(-limit, limit, {shape}).astype(dtype)']
        else:
            function = {"zeros": "np.zeros", "ones": "np.ones"}[kind]
            lines.append(f'params["{name}"] = {function}({shape}, dtype=dtype)')
    return [Code(line) for line in lines]


def _state_lines(graph, sizes) -> list:
    function = {"zeros": "np.zeros", "ones": "np.ones"}
    return [Code(f'"{t.name}": {function[graph.init[t.name]]}({_shape(t, sizes)}, dtype=dtype),')
            for t in graph.given("state")]


def _architecture(network) -> str:
    parts = [str(network.inputs)]
    for layer in network.layers:
        if layer.type == "dense":
            parts.append(f"{layer.options['units']} ({layer.options['activation']})")
        elif layer.type == "activation":
            parts.append(layer.options["activation"])
        elif layer.type == "residual":
            parts.append(f"residual from {layer.options['from']}")
        elif layer.type == "dropout":
            parts.append(f"dropout {layer.options['rate']}")
        elif "kernel" in layer.options:
            activation = layer.options.get("activation")
            parts.append(f"{layer.type} ({window_summary(layer)})"
                         + (f" {activation}" if activation and activation != "identity" else ""))
        else:
            parts.append(layer.type)
    return " -> ".join(parts)


def _formulas(derivation) -> list:
    """The derived backward pass, one text line per gradient in the order the code computes
    them (matrix form where there is one, else index form), as :mod:`symbp.printing` has it."""
    view = View.of(derivation.graph, derivation.gradients, "batch")
    return [line for g in derivation.gradients
            for line in formula_row(g.adjoint.name, view.quantities[g.adjoint.base.label],
                                    g.expr, g.adjoint.shape, view).text.splitlines()]


def _masks(derivation) -> list:
    keeps = derivation.graph.keep
    masks = []
    for tensor in derivation.graph.given("mask"):
        dims = [str(int(sp.sympify(d).xreplace(derivation.sizes))) for d in tensor.shape[1:]]
        shape = Code("(rows, " + ", ".join(dims) + ")")
        masks.append((tensor.name, shape, Code(repr(float(keeps[tensor.name])))))
    return masks


def _literal_dict(shapes: dict) -> Code:
    return Code("{" + ", ".join(f"{name!r}: {shape!r}" for name, shape in shapes.items()) + "}")


def template_context(network, dtype: str, spec_name: str | None = None) -> dict:
    """What the templates render: :class:`Code` for code, plain strings for text."""
    derivation = derive_graph(network)
    graph, sizes = derivation.graph, derivation.sizes
    passes = build_passes(derivation)
    parameters = graph.given("parameter")
    codes = passes.forward + (passes.eval_forward or []) + passes.backward + passes.loss_lines
    return {
        "uses_erf": any("_erf(" in code for code in codes),
        "uses_windows": any("_windows(" in code for code in codes),
        "uses_padding": any("_zero_padded(" in code for code in codes),
        "uses_window_dot": any("_window_dot(" in code for code in codes),
        "uses_first_maximum": any("_first_maximum(" in code for code in codes),
        "uses_window_max": any("_window_max(" in code for code in codes),
        "uses_window_sum": any("_window_sum(" in code for code in codes),
        "uses_col2im": any("_col2im(" in code for code in codes),
        "input_shape": network.input_shape if len(network.input_shape) > 1 else None,
        "as_inputs": Code("_as_batch" if len(network.input_shape) > 1 else "_as_rows"),
        "version": __version__,
        "name": network.name,
        "spec_name": spec_name or f"{network.name}.toml",
        "spec": network.to_dict(),
        "widths": tuple(network.widths),
        "param_names": tuple(t.name for t in parameters),
        "param_shapes": _literal_dict({t.name: _shape(t, sizes) for t in parameters}),
        "state_shapes": _literal_dict({t.name: _shape(t, sizes) for t in graph.given("state")}),
        "state_names": tuple(t.name for t in graph.given("state")),
        "first_param": parameters[0].name,
        "init_lines": _init_lines(graph, sizes),
        "state_lines": _state_lines(graph, sizes),
        "forward_lines": passes.forward,
        "forward_uses_batch": any(_reads_batch(line) for line in passes.forward + passes.updates),
        "eval_forward": passes.eval_forward,
        "updates": passes.updates,
        "backward_lines": passes.backward,
        "kept": _names(passes.kept),
        "loss_reads": Code(", ".join(passes.loss_reads)),
        "loss_return": _names(passes.loss_reads),
        "loss_count": len(passes.loss_reads),
        "loss_lines": passes.loss_lines,
        "uses_log_a": passes.uses_log_a,
        "uses_masks": bool(graph.given("mask")),
        "masks": _masks(derivation),
        "buffers": [(name, Code(shape)) for name, shape in passes.buffers.items()],
        "zero_buffers": [(name, Code(shape)) for name, shape in passes.zero_buffers.items()],
        "task": network.task,
        "loss_name": network.loss,
        "weight_decay": network.training["weight_decay"],
        "dtype": dtype,
        "dtype_code": Code(f"np.{dtype}"),  # one of DTYPES, checked by generate_source
        "architecture": _architecture(network),
        "formulas": _formulas(derivation),
    }


def _names(names: tuple) -> Code:
    """Names to return or unpack: ``a1, z2, a2``, or ``a3,`` (a tuple of one)."""
    return Code(", ".join(names) + ("," if len(names) == 1 else ""))


def _reads_batch(line: str) -> bool:
    return re.search(r"\bB\b", line) is not None


# ------------------------------------------------------------------ rendering
def environment(directory: Path):
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        trim_blocks=True, lstrip_blocks=True, autoescape=False, finalize=render_slot)
    env.filters["literal"] = literal
    return env
