"""A network of any CONVENTIONS §3 layer types written with ``torch.nn``: the
independent oracle of tests/test_generated_graphs.py and
tests/test_check_reliability.py (a helper module, not a test file).

:class:`TorchNetwork` builds, for a :class:`~symbp.spec.Network`, the torch
modules a PyTorch user would write: ``nn.Linear`` for a dense layer,
``nn.LayerNorm`` over the features, ``nn.BatchNorm1d`` (its own running
statistics, momentum and unbiased running variance), a residual sum with the
named layer's output (or the input), and dropout as ``m ⊙ a / (1 - rate)``
with a given 0/1 mask (torch draws its own masks, so its ``nn.Dropout`` cannot
be compared entry by entry). Weight decay is what torch users add to the loss:
``lambda/2 * sum ||W||^2`` over the ``nn.Linear`` weights. Parameters and
state are exchanged with the §5 names (``W{l}``, ``b{l}``, ``gamma{l}``,
``beta{l}``, ``mean{l}``, ``var{l}``, ``mask{l}``).

:class:`TorchModule` wraps it in the interface of a generated module (§5:
``SPEC``, ``init_params``, ``init_state``, ``loss``, ``gradients``), with
gradients by autograd: a module that is right by construction, for testing
the checker itself.
"""

from __future__ import annotations

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


class TorchNetwork(nn.Module):
    """The network in torch.nn, in the dtype of its parameters."""

    def __init__(self, network, dtype=torch.float64):
        super().__init__()
        self.network = network
        widths = network.widths
        self.layers = nn.ModuleList()
        for index, layer in enumerate(network.layers, 1):
            width, options = widths[index], layer.options
            if layer.type == "dense":
                module = nn.Linear(widths[index - 1], width, dtype=dtype)
            elif layer.type == "layer_norm":
                module = nn.LayerNorm(width, eps=options["eps"], dtype=dtype)
            elif layer.type == "batch_norm":
                module = nn.BatchNorm1d(width, eps=options["eps"], momentum=options["momentum"],
                                        dtype=dtype)
            else:
                module = nn.Identity()
            self.layers.append(module)

    # --------------------------------------------------- §5 names <-> torch tensors
    def named(self) -> dict:
        """Parameters (``W{l}``, ``b{l}``, ``gamma{l}``, ``beta{l}``) and buffers (``mean{l}``, ``var{l}``)."""
        tensors = {}
        for index, (layer, module) in enumerate(zip(self.network.layers, self.layers, strict=True), 1):
            if layer.type == "dense":
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
    def forward(self, X, masks=None):
        a = torch.as_tensor(X)
        named = {"input": a}
        for index, (layer, module) in enumerate(zip(self.network.layers, self.layers, strict=True), 1):
            options = layer.options
            if layer.type in ("dense", "activation"):
                a = ACTIVATIONS[options["activation"]](module(a))
            elif layer.type == "residual":
                a = a + named[options["from"]]
            elif layer.type == "dropout":
                if self.training and masks is not None:
                    a = a * torch.as_tensor(masks[f"mask{index}"]) / (1 - options["rate"])
            else:
                a = module(a)
            if layer.name:
                named[layer.name] = a
        return a

    def objective(self, X, Y, masks=None):
        a = self.forward(X, masks)
        decay = self.network.training["weight_decay"] / 2 * sum(
            (module.weight ** 2).sum() for module in self.layers if isinstance(module, nn.Linear))
        return per_sample_loss(self.network.loss, a, torch.as_tensor(Y)).mean() + decay


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
