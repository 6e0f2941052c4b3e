"""The ops a network is built from: forward definitions in index notation, one module per family.

Contract: each layer type of CONVENTIONS §3 is one :class:`~symbp.ops.base.LayerType`
registered in :data:`LAYER_TYPES` by the module of its family
(:mod:`~symbp.ops.dense`, :mod:`~symbp.ops.elementwise`,
:mod:`~symbp.ops.normalization`, :mod:`~symbp.ops.convolution`,
:mod:`~symbp.ops.pooling`, :mod:`~symbp.ops.flatten`); it declares its spec keys (defaults and
checks), its parameters and state (shapes and initialisation) and the
equations that define its output from earlier tensors, for training and for
evaluation. :mod:`~symbp.ops.objective` defines the loss and weight decay.
No op holds a derivative: the engine derives every one. Adding an op means
adding a module here (or a function to a family's module) and nothing else.
"""

from symbp.ops import (  # noqa: E402,F401  (they register)
    convolution,
    dense,
    elementwise,
    flatten,
    normalization,
    pooling,
)
from symbp.ops.base import LAYER_TYPES, LayerType

__all__ = ["LAYER_TYPES", "LayerType"]
