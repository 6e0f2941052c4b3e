"""A validated network spec as a graph: its layers' ops in order, then the objective.

Contract: :func:`build_graph` returns the :class:`~symbp.ops.base.Builder` whose
``graph`` holds the input ``X`` (``a^{(0)}``, shape ``(B, n_0)``, or
``(B, n_0, *spatial)`` for ``inputs = [channels, ...]``), each layer's
tensors from its layer type's ``build``, the targets ``Y`` and the loss ``L``
(:mod:`symbp.ops.objective`), in ``"train"`` or ``"eval"`` mode, and whose
``sizes`` map every width symbol to the spec's value.
"""

from __future__ import annotations

import math

from symbp.engine.graph import Tensor
from symbp.errors import SpecError
from symbp.ops.base import BATCH, LAYER_TYPES, Builder, width
from symbp.ops.objective import add_objective


def build_graph(network, mode: str = "train") -> Builder:
    builder = Builder(mode, network)
    channels, *spatial = network.input_shape
    builder.sizes[width(0)] = channels
    inputs = builder.graph.add(Tensor("X", (BATCH, width(0), *spatial), "input", latex="X"))
    builder.previous = builder.named["input"] = inputs
    builder.outputs.append(inputs)
    for index, layer in enumerate(network.layers, 1):
        builder.layer = index
        builder.previous = LAYER_TYPES[layer.type].build(builder, layer)
        _check_output(builder, index, last=index == len(network.layers))
        builder.outputs.append(builder.previous)
        if layer.name is not None:
            builder.named[layer.name] = builder.previous
    add_objective(builder, network.loss_definition, network.training["weight_decay"])
    return builder


MAX_SAMPLE_ENTRIES = 1_000_000  # per sample, of any layer's output


def _check_output(builder: Builder, index: int, last: bool) -> None:
    """A layer's output fits the limit; the network's output is a vector per sample."""
    shape = [builder.size(d) for d in builder.previous.shape[1:]]
    if math.prod(shape) > MAX_SAMPLE_ENTRIES:
        raise SpecError(f"layers[{index}]: its output has {math.prod(shape):,} entries per "
                        f"sample (shape {shape}), more than the {MAX_SAMPLE_ENTRIES:,} symbp "
                        "supports")
    if last and len(shape) > 1:
        raise SpecError(f"layers[{index}]: the network's output must be one vector per sample, "
                        f"this layer's has shape {shape}; end with a flatten or a dense layer")
