"""A network of any CONVENTIONS §3 layer types written with ``torch.nn``: the
independent oracle of tests/test_generated_graphs.py, tests/test_engine_conv.py
and tests/test_check_reliability.py (a helper module, not a test file).

:class:`TorchNetwork` builds, for a :class:`~symbp.spec.Network`, the torch
modules a PyTorch user would write: ``nn.Linear`` for a dense layer (after
``torch.flatten(a, 1)`` of a multi-axis input), ``nn.Conv1d/2d`` for a
convolution (kernel, stride, zero padding), ``F.max_pool1d/2d`` and
``F.avg_pool1d/2d`` (stride defaulting to the kernel), ``torch.flatten(a, 1)``,
``nn.LayerNorm`` over the whole per-sample shape (``(C, H, W)`` after a
convolution), ``nn.BatchNorm1d`` on ``(B, n)`` and ``(B, C, L)``,
``nn.BatchNorm2d`` on ``(B, C, H, W)`` (their own running statistics,
momentum and unbiased running variance), a residual sum with the named
layer's output (or the input), and dropout as ``m ⊙ a / (1 - rate)`` with a
given 0/1 mask of the layer's output shape (torch draws its own masks, so its
``nn.Dropout`` cannot be compared entry by entry). Weight decay is what torch
users add to the loss: ``lambda/2 * sum ||W||^2`` over the ``nn.Linear`` and
``nn.Conv*`` weights. Parameters and state are exchanged with the §5 names
(``W{l}``, ``b{l}``, ``gamma{l}``, ``beta{l}``, ``mean{l}``, ``var{l}``,
``mask{l}``). ``forward(..., record=dict)`` also stores each layer's
pre-activation ``z{l}`` (dense and convolution layers) and output ``a{l}``
under those names, with their gradients retained, so that intermediate
gradients can be compared too.

:class:`TorchModule` wraps it in the interface of a generated module (§5:
``SPEC``, ``init_params``, ``init_state``, ``loss``, ``gradients``), with
gradients by autograd: a module that is right by construction, for testing
the checker itself.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

F = nn.functional
ACTIVATIONS = {"identity": lambda t: t, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
               "relu": torch.relu, "leaky_relu": lambda t: F.leaky_relu(t, 0.01),
               "elu": F.elu, "softplus": F.softplus, "silu": F.silu, "gelu": F.gelu,
               "softmax": lambda t: torch.softmax(t, 1)}
OUTPUT_OF_LOSS = {"cross_entropy": "softmax", "bce": "sigmoid", "mse": "identity"}


def per_sample_loss(name, a, Y):
    if name == "cross_entropy":
        return -(Y * torch.log(a)).sum(1)
    if name == "bce":
        return -(Y * torch.log(a) + (1 - Y) * torch.log(1 - a)).sum(1)
    if name == "mse":
        return ((a - Y) ** 2 / 2).sum(1)
    raise KeyError(name)


CONVOLUTIONS = {"conv1d": nn.Conv1d, "conv2d": nn.Conv2d}
POOLS = {"max_pool1d": F.max_pool1d, "max_pool2d": F.max_pool2d,
         "avg_pool1d": F.avg_pool1d, "avg_pool2d": F.avg_pool2d}
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)  # the layers whose weights decay


def spatial(value, axes: int) -> tuple:
    """A spec's kernel/stride/padding (an int's tuple or one per axis) for ``axes`` axes."""
    value = tuple(value)
    return value * axes if len(value) == 1 else value


def torch_module_of(layer, shape_in: tuple, width: int, dtype):
    """The torch module of one spec layer whose per-sample input shape is ``shape_in``."""
    options = layer.options
    if layer.type == "dense":
        return nn.Linear(math.prod(shape_in), width, dtype=dtype)
    if layer.type in CONVOLUTIONS:
        axes = len(shape_in) - 1
        return CONVOLUTIONS[layer.type](
            shape_in[0], options["channels"], spatial(options["kernel"], axes),
            stride=spatial(options["stride"], axes), padding=spatial(options["padding"], axes),
            dtype=dtype)
    if layer.type == "layer_norm":
        return nn.LayerNorm(shape_in, eps=options["eps"], dtype=dtype)
    if layer.type == "batch_norm":
        norm = nn.BatchNorm2d if len(shape_in) == 3 else nn.BatchNorm1d
        return norm(shape_in[0], eps=options["eps"], momentum=options["momentum"], dtype=dtype)
    return nn.Identity()


def pool(layer, a):
    """``F.max_pool*`` / ``F.avg_pool*`` of the spec layer (stride: the kernel by default)."""
    axes = a.dim() - 2
    kernel = spatial(layer.options["kernel"], axes)
    stride = spatial(layer.options["stride"] or kernel, axes)
    return POOLS[layer.type](a, kernel, stride)


class TorchNetwork(nn.Module):
    """The network in torch.nn, in the dtype of its parameters."""

    def __init__(self, network, dtype=torch.float64):
        super().__init__()
        self.network = network
        shapes, widths = network.shapes, network.widths
        self.layers = nn.ModuleList(
            torch_module_of(layer, shapes[index - 1], widths[index], dtype)
            for index, layer in enumerate(network.layers, 1))

    # --------------------------------------------------- §5 names <-> torch tensors
    def named(self) -> dict:
        """Parameters (``W{l}``, ``b{l}``, ``gamma{l}``, ``beta{l}``) and buffers (``mean{l}``, ``var{l}``)."""
        tensors = {}
        for index, (layer, module) in enumerate(zip(self.network.layers, self.layers, strict=True), 1):
            if layer.type == "dense" or layer.type in CONVOLUTIONS:
                tensors |= {f"W{index}": module.weight, f"b{index}": module.bias}
            elif layer.type in ("layer_norm", "batch_norm"):
                tensors |= {f"gamma{index}": module.weight, f"beta{index}": module.bias}
            if layer.type == "batch_norm":
                tensors |= {f"mean{index}": module.running_mean, f"var{index}": module.running_var}
        return tensors

    def load(self, arrays: dict) -> None:
        with torch.no_grad():
            for name, tensor in self.named().items():
                if name in arrays:
                    tensor.copy_(torch.as_tensor(np.asarray(arrays[name])))

    def gradients(self) -> dict:
        return {name: tensor.grad.numpy().copy() for name, tensor in self.named().items()
                if tensor.requires_grad}

    def state(self) -> dict:
        return {name: tensor.numpy().copy() for name, tensor in self.named().items()
                if name.startswith(("mean", "var"))}

    # --------------------------------------------------------------- forward, loss
    def forward(self, X, masks=None, record=None):
        a = torch.as_tensor(X)
        named = {"input": a}
        for index, (layer, module) in enumerate(zip(self.network.layers, self.layers, strict=True), 1):
            options = layer.options
            if layer.type == "dense" or layer.type in CONVOLUTIONS:
                z = module(torch.flatten(a, 1) if layer.type == "dense" else a)
                z = keep(record, f"z{index}", z)
                a = ACTIVATIONS[options["activation"]](z)
            elif layer.type == "activation":
                a = ACTIVATIONS[options["activation"]](a)
            elif layer.type in POOLS:
                a = pool(layer, a)
            elif layer.type == "flatten":
                a = torch.flatten(a, 1)
            elif layer.type == "residual":
                a = a + named[options["from"]]
            elif layer.type == "dropout":
                if self.training and masks is not None:
                    a = a * torch.as_tensor(masks[f"mask{index}"]) / (1 - options["rate"])
            else:
                a = module(a)
            a = keep(record, f"a{index}", a)
            if layer.name:
                named[layer.name] = a
        return a

    def objective(self, X, Y, masks=None, record=None):
        a = self.forward(X, masks, record)
        decay = self.network.training["weight_decay"] / 2 * sum(
            (module.weight ** 2).sum() for module in self.layers if isinstance(module, WEIGHTED))
        return per_sample_loss(self.network.loss, a, torch.as_tensor(Y)).mean() + decay


def keep(record, name, tensor):
    """``tensor``, stored in ``record`` (when given) as a node of its own (a layer
    that passes its input on must not share its gradient) with its gradient retained."""
    if record is None or not tensor.requires_grad:
        return tensor
    tensor = tensor.view_as(tensor)
    tensor.retain_grad()
    record[name] = tensor
    return tensor


class TorchModule:
    """The §5 interface over :class:`TorchNetwork`, gradients by autograd (float64)."""

    def __init__(self, network):
        self.network = network
        self.SPEC = network.to_dict()
        self.net = TorchNetwork(network)

    def init_params(self, seed=0, dtype=np.float64):
        torch.manual_seed(seed)
        fresh = TorchNetwork(self.network)
        return {name: tensor.detach().numpy().astype(dtype)
                for name, tensor in fresh.named().items() if tensor.requires_grad}

    def init_state(self):
        return TorchNetwork(self.network).state()

    def _run(self, params, X, Y, state, training, masks):
        self.net.load({**params, **(state or {})})
        self.net.train(training)
        self.net.zero_grad()
        return self.net.objective(X, Y, masks)

    def loss(self, params, X, Y, *, state=None, training=False, masks=None):
        with torch.no_grad():
            return float(self._run(params, X, Y, state, training, masks))

    def gradients(self, params, X, Y, *, masks=None):
        self._run(params, X, Y, None, True, masks).backward()
        return self.net.gradients()
