"""The network spec: TOML files and the equivalent Python API.

Contract: :func:`load_spec` reads the TOML format of CONVENTIONS §3 and
:class:`Network` is the same thing built in Python::

    Network(inputs=64, layers=[Dense(32, "tanh"), Dense(10, "softmax")],
            loss="cross_entropy", activations={"mish": "x*tanh(log(1 + exp(x)))"})

Both validate everything before returning: unknown keys (typos), names that
are not identifiers, non-positive sizes, unknown activations or losses,
softmax anywhere but the output layer, a loss used with an output activation
it does not fit (cross_entropy needs softmax, bce needs sigmoid), and bad
training settings. Every problem raises :class:`~symbp.errors.SpecError` whose
message names the field, e.g. ``layers[2].activation: unknown activation 'tanhh'``.
"""

from __future__ import annotations

import keyword
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from symbp.errors import SpecError
from symbp.files import read_user_text
from symbp.ops.base import REQUIRED, op_labels
from symbp.registry import (
    BUILTIN_ACTIVATIONS,
    BUILTIN_LOSSES,
    Activation,
    Loss,
    custom_activation,
    custom_loss,
)

OPTIMIZERS = ("sgd", "momentum", "adam")
TRAINING_DEFAULTS = {
    "optimizer": "sgd",
    "learning_rate": 0.1,
    "batch_size": 32,
    "epochs": 30,
    "seed": 0,
    "weight_decay": 0.0,
}
_TOP_KEYS = {"name", "inputs", "loss", "activations", "losses", "layers", "training"}
MAX_UNITS = 1_000_000
MAX_LAYERS = 200  # 200 layers derive in about 8 s from the shell
MAX_PARAMETERS = 100_000_000  # 800 MB of float64 weights: beyond what NumPy on a CPU trains
MAX_LEARNING_RATE = 1e3


@dataclass(frozen=True)
class Layer:
    """One ``[[layers]]`` table: its ``type`` (a key of :data:`symbp.ops.LAYER_TYPES`),
    its options with defaults filled in, and its optional ``name``."""

    type: str
    options: dict
    name: str | None = None

    @property
    def units(self) -> int | None:
        return self.options.get("units")

    @property
    def activation(self) -> str | None:
        return self.options.get("activation")

    def to_dict(self) -> dict:
        table = {} if self.type == "dense" else {"type": self.type}
        table.update({key: list(value) if isinstance(value, tuple) else value
                      for key, value in self.options.items() if value is not None})
        if self.name is not None:
            table["name"] = self.name
        return table


@dataclass(frozen=True)
class Dense:
    """One dense layer: ``units`` outputs followed by ``activation``."""

    units: int
    activation: str = "identity"
    name: str | None = None

    type = "dense"

    @property
    def options(self) -> dict:
        return {"units": self.units, "activation": self.activation}

    def to_dict(self) -> dict:
        table = dict(self.options)
        if self.name is not None:
            table["name"] = self.name
        return table


@dataclass
class Network:
    """A validated feed-forward network; see the module docstring."""

    inputs: int | list
    layers: list[Dense]
    loss: str
    name: str = "network"
    activations: dict[str, str] = field(default_factory=dict)
    losses: dict[str, str] = field(default_factory=dict)
    training: dict = field(default_factory=dict)

    def __post_init__(self):
        self.training = {**TRAINING_DEFAULTS, **_check_training(self.training)}
        _check_identifier(self.name, "name")
        self.inputs = _check_inputs(self.inputs)
        if not isinstance(self.layers, list) or not self.layers:
            raise SpecError("layers: a network needs at least one layer")
        if len(self.layers) > MAX_LAYERS:
            raise SpecError(f"layers: {len(self.layers)} layers, more than the {MAX_LAYERS} "
                            "symbp supports")
        self._activations = _resolve_activations(self.activations)
        self._losses = _resolve_losses(self.losses)
        self.layers = self._check_layers(self.layers)
        self._check_graph()
        self._check_parameter_count()
        self._check_softmax_placement()
        self._check_loss_fits_output()

    # ----- queries used by the rest of symbp -----
    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def input_shape(self) -> tuple:
        """The shape of one sample: ``(features,)`` or ``(channels, *spatial)``."""
        return tuple(self.inputs) if isinstance(self.inputs, list) else (self.inputs,)

    @property
    def widths(self) -> list[int]:
        """``[n_0, n_1, ..., n_L]``: the features of the input and of each layer's output
        (all entries of a sample, for a multi-axis output), as the ops' graph has them."""
        return [math.prod(self._shapes.size(d) for d in t.shape[1:])
                for t in self._shapes.outputs]

    @property
    def shapes(self) -> list[tuple]:
        """The shape of one sample of the input and of each layer's output."""
        return [tuple(self._shapes.size(d) for d in t.shape[1:]) for t in self._shapes.outputs]

    @property
    def is_mlp(self) -> bool:
        """Dense layers only, and no weight decay."""
        return all(layer.type == "dense" for layer in self.layers) and \
            not self.training["weight_decay"]

    def activation_of(self, layer: int) -> Activation:
        """The activation of layer ``layer`` (1-based)."""
        return self.activation_named(self.layers[layer - 1].activation,
                                     f"layers[{layer}].activation")

    def activation_named(self, name: str, where: str = "activation") -> Activation:
        """A built-in or custom activation by name; unknown names are a SpecError at ``where``."""
        found = self._activations.get(name) or BUILTIN_ACTIVATIONS.get(name)
        if found is None:
            raise SpecError(
                f"{where}: unknown activation '{name}' "
                f"(built-in: {', '.join(BUILTIN_ACTIVATIONS)}; or define it under [activations])"
            )
        return found

    @property
    def loss_definition(self) -> Loss:
        found = self._losses.get(self.loss) or BUILTIN_LOSSES.get(self.loss)
        if found is None:
            raise SpecError(
                f"loss: unknown loss '{self.loss}' "
                f"(built-in: {', '.join(BUILTIN_LOSSES)}; or define it under [losses])"
            )
        return found

    @property
    def output_activation(self) -> str | None:
        """The activation of the last layer (None when the last layer has none)."""
        return self.layers[-1].activation

    @property
    def task(self) -> str:
        """``classification`` (softmax), ``binary`` (sigmoid) or ``regression``."""
        output = self.output_activation
        return {"softmax": "classification", "sigmoid": "binary"}.get(output, "regression")

    def to_dict(self) -> dict:
        """The spec as plain data, in the TOML layout."""
        data = {"name": self.name, "inputs": self.inputs, "loss": self.loss}
        if self.activations:
            data["activations"] = dict(self.activations)
        if self.losses:
            data["losses"] = dict(self.losses)
        data["layers"] = [layer.to_dict() for layer in self.layers]
        data["training"] = dict(self.training)
        return data

    @property
    def parameter_count(self) -> int:
        """Entries of every parameter the ops' graph declares."""
        return sum(math.prod(self._shapes.size(d) for d in t.shape)
                   for t in self._shapes.graph.given("parameter"))

    # ----- validation -----
    def _check_layers(self, layers) -> list:
        checked, names = [], {"input"}
        for index, layer in enumerate(layers, 1):
            checked.append(_as_layer(layer, index, self))
            name = checked[-1].name
            if name is not None:
                if name in names:
                    raise SpecError(f"layers[{index}].name: '{name}' is already used")
                names.add(name)
        return checked

    def _check_graph(self):
        """Build the graph once: each op checks what it reads (a residual's source), and
        the graph gives the widths and the parameter count."""
        from symbp.ops.network import build_graph

        self._shapes = build_graph(self, "train")

    def _check_parameter_count(self):
        if self.parameter_count > MAX_PARAMETERS:
            raise SpecError(f"layers: the network has {self.parameter_count:,} parameters, "
                            f"more than the {MAX_PARAMETERS:,} symbp supports")

    def _describe_output(self) -> str:
        last = self.layers[-1]
        return f"'{last.activation}'" if last.activation else f"a {last.type} layer"

    def _check_softmax_placement(self):
        for index in range(1, self.depth):
            if self.layers[index - 1].activation == "softmax":
                raise SpecError(
                    f"layers[{index}].activation: softmax is only allowed on the output layer"
                )
        if self.output_activation == "softmax" and self.widths[-1] < 2:
            raise SpecError(
                f"layers[{self.depth}].units: a softmax over 1 unit is the constant 1, so its "
                "loss and gradients are identically 0; use 2 or more units, or one sigmoid "
                "unit with the 'bce' loss"
            )

    def _check_loss_fits_output(self):
        loss = self.loss_definition
        output = self.output_activation
        if loss.output_activation and output != loss.output_activation:
            hint = {"cross_entropy": "; for a sigmoid output use 'bce'",
                    "bce": "; for a softmax output use 'cross_entropy'"}.get(loss.name, "")
            raise SpecError(
                f"loss: '{loss.name}' needs a {loss.output_activation} output layer, "
                f"layers[{self.depth}] is {self._describe_output()}{hint}"
            )


def _as_layer(layer, index: int, network: Network) -> Layer:
    """A validated :class:`Layer` from a table, a :class:`Dense` or a :class:`Layer`."""
    from symbp.ops import LAYER_TYPES

    if isinstance(layer, (Dense, Layer)):
        table = {"type": layer.type, **layer.options}
        if layer.name is not None:
            table["name"] = layer.name
    elif isinstance(layer, dict):
        table = dict(layer)
    else:
        raise SpecError(f"layers[{index}]: expected a table with a type and its keys")
    kind = table.pop("type", "dense")
    if kind not in LAYER_TYPES:
        raise SpecError(f"layers[{index}].type: unknown layer type {kind!r} "
                        f"(one of {', '.join(LAYER_TYPES)})")
    name = table.pop("name", None)
    if name is not None:
        _check_identifier(name, f"layers[{index}].name")
        if name == "input":
            raise SpecError(f"layers[{index}].name: 'input' names the network's input")
    options = LAYER_TYPES[kind].options
    unknown = set(table) - set(options)
    if unknown:
        allowed = ", ".join(["type", "name", *options])
        raise SpecError(f"layers[{index}]: unknown key '{sorted(unknown)[0]}' for a {kind} "
                        f"layer (allowed: {allowed})")
    checked = {}
    for key, option in options.items():
        where = f"layers[{index}].{key}"
        if key not in table and option.default is REQUIRED:
            raise SpecError(f"{where}: missing")
        checked[key] = option.check(table.get(key, option.default), where, network)
    return Layer(kind, checked, name)


def _check_identifier(name, where: str):
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise SpecError(f"{where}: {name!r} is not a Python identifier")


def _check_inputs(value):
    """``inputs``: a count of features, or ``[channels, length]`` / ``[channels, height, width]``."""
    if not isinstance(value, list):
        _check_count(value, "inputs")
        return value
    if not 1 <= len(value) <= 3:
        raise SpecError(f"inputs: expected a number of features, [channels, length] or "
                        f"[channels, height, width], got a list of {len(value)}")
    for position, entry in enumerate(value):
        _check_count(entry, f"inputs[{position}]")
    if math.prod(value) > MAX_UNITS:
        raise SpecError(f"inputs: {math.prod(value)} entries per sample, more than {MAX_UNITS}")
    return value[0] if len(value) == 1 else list(value)


def _check_count(value, where: str):
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{where}: expected a positive integer, got {value!r}")
    if not 0 < value <= MAX_UNITS:
        raise SpecError(f"{where}: expected a positive integer up to {MAX_UNITS}, got {value}")


def _resolve_activations(table) -> dict[str, Activation]:
    if not isinstance(table, dict):
        raise SpecError("activations: expected a table of name = \"expression\"")
    resolved = {}
    for name, text in table.items():
        _check_identifier(name, f"activations.{name}")
        if name in BUILTIN_ACTIVATIONS:
            raise SpecError(f"activations.{name}: redefines a built-in activation")
        if name in op_labels():
            raise SpecError(f"activations.{name}: '{name}' names an op; choose another name")
        resolved[name] = custom_activation(name, text)
    return resolved


def _resolve_losses(table) -> dict[str, Loss]:
    if not isinstance(table, dict):
        raise SpecError("losses: expected a table of name = \"expression\"")
    resolved = {}
    for name, text in table.items():
        _check_identifier(name, f"losses.{name}")
        if name in BUILTIN_LOSSES:
            raise SpecError(f"losses.{name}: redefines a built-in loss")
        resolved[name] = custom_loss(name, text)
    return resolved


def _check_training(table, field=lambda key: f"training.{key}") -> dict:
    if not isinstance(table, dict):
        raise SpecError("training: expected a table")
    for key, value in table.items():
        where = field(key)
        if key not in TRAINING_DEFAULTS:
            raise SpecError(f"training: unknown key '{key}' "
                            f"(allowed: {', '.join(TRAINING_DEFAULTS)})")
        if key == "optimizer" and value not in OPTIMIZERS:
            raise SpecError(f"{where}: expected one of {', '.join(OPTIMIZERS)}, got {value!r}")
        if key == "learning_rate" and (isinstance(value, bool) or not isinstance(
                value, (int, float)) or not 0 < value < MAX_LEARNING_RATE):
            raise SpecError(f"{where}: expected a positive number below {MAX_LEARNING_RATE:g}, "
                            f"got {value!r}")
        if key in ("batch_size", "epochs"):
            _check_count(value, where)
        if key == "seed" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise SpecError(f"{where}: expected a non-negative integer, got {value!r}")
        if key == "weight_decay" and (isinstance(value, bool) or not isinstance(
                value, (int, float)) or not 0 <= value < MAX_LEARNING_RATE):
            raise SpecError(f"{where}: expected a number >= 0, got {value!r}")
    return dict(table)


def check_training_overrides(overrides: dict, option) -> dict:
    """Validate command-line overrides of ``[training]`` by the spec's own rules.

    ``overrides`` maps ``[training]`` keys to values (``None``: not given);
    ``option(key)`` is the flag a message names, e.g. ``--learning-rate``.
    Returns the given ones.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    return _check_training(given, option)


def network_from_dict(data: dict) -> Network:
    """Build a :class:`Network` from parsed TOML data, rejecting unknown keys."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise SpecError(f"unknown key '{sorted(unknown)[0]}' "
                        f"(allowed: {', '.join(sorted(_TOP_KEYS))})")
    for key in ("inputs", "loss", "layers"):
        if key not in data:
            raise SpecError(f"{key}: missing")
    if not isinstance(data["layers"], list):
        raise SpecError("layers: expected an array of tables ([[layers]])")
    if not isinstance(data["loss"], str):
        raise SpecError("loss: expected a string")
    return Network(
        inputs=data["inputs"],
        layers=data["layers"],
        loss=data["loss"],
        name=data.get("name", "network"),
        activations=data.get("activations", {}),
        losses=data.get("losses", {}),
        training=data.get("training", {}),
    )


def load_spec(path: str | Path) -> Network:
    """Read and validate a TOML spec file."""
    path = Path(path)
    text = read_user_text(path, "spec file", SpecError)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise SpecError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        raise SpecError(f"{path}: invalid TOML: {exc}") from None
    return network_from_dict(data)
