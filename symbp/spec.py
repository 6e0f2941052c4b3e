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
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from symbp.errors import SpecError
from symbp.files import read_user_text
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
}
_TOP_KEYS = {"name", "inputs", "loss", "activations", "losses", "layers", "training"}
_LAYER_KEYS = {"units", "activation"}
MAX_UNITS = 1_000_000
MAX_LAYERS = 500
MAX_PARAMETERS = 100_000_000  # 800 MB of float64 weights: beyond what NumPy on a CPU trains
MAX_LEARNING_RATE = 1e3


@dataclass(frozen=True)
class Dense:
    """One dense layer: ``units`` outputs followed by ``activation``."""

    units: int
    activation: str


@dataclass
class Network:
    """A validated feed-forward network; see the module docstring."""

    inputs: int
    layers: list[Dense]
    loss: str
    name: str = "network"
    activations: dict[str, str] = field(default_factory=dict)
    losses: dict[str, str] = field(default_factory=dict)
    training: dict = field(default_factory=dict)

    def __post_init__(self):
        self.layers = [_as_dense(layer, index) for index, layer in enumerate(self.layers, 1)]
        self.training = {**TRAINING_DEFAULTS, **_check_training(self.training)}
        _check_identifier(self.name, "name")
        _check_count(self.inputs, "inputs")
        if not self.layers:
            raise SpecError("layers: a network needs at least one layer")
        if len(self.layers) > MAX_LAYERS:
            raise SpecError(f"layers: {len(self.layers)} layers, more than the {MAX_LAYERS} "
                            "symbp supports")
        self._activations = _resolve_activations(self.activations)
        self._losses = _resolve_losses(self.losses)
        for index, layer in enumerate(self.layers, 1):
            _check_count(layer.units, f"layers[{index}].units")
            self.activation_of(index)  # raises for unknown names
        self._check_parameter_count()
        self._check_softmax_placement()
        self._check_loss_fits_output()

    # ----- queries used by the rest of symbp -----
    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def widths(self) -> list[int]:
        """``[n_0, n_1, ..., n_L]``."""
        return [self.inputs] + [layer.units for layer in self.layers]

    def activation_of(self, layer: int) -> Activation:
        """The activation of layer ``layer`` (1-based)."""
        name = self.layers[layer - 1].activation
        found = self._activations.get(name) or BUILTIN_ACTIVATIONS.get(name)
        if found is None:
            raise SpecError(
                f"layers[{layer}].activation: unknown activation '{name}' "
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
    def task(self) -> str:
        """``classification`` (softmax), ``binary`` (sigmoid) or ``regression``."""
        output = self.layers[-1].activation
        return {"softmax": "classification", "sigmoid": "binary"}.get(output, "regression")

    def to_dict(self) -> dict:
        """The spec as plain data, in the TOML layout."""
        data = {"name": self.name, "inputs": self.inputs, "loss": self.loss}
        if self.activations:
            data["activations"] = dict(self.activations)
        if self.losses:
            data["losses"] = dict(self.losses)
        data["layers"] = [{"units": d.units, "activation": d.activation} for d in self.layers]
        data["training"] = dict(self.training)
        return data

    @property
    def parameter_count(self) -> int:
        widths = self.widths
        return sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True))

    # ----- validation -----
    def _check_parameter_count(self):
        if self.parameter_count > MAX_PARAMETERS:
            raise SpecError(f"layers: the network has {self.parameter_count:,} parameters, "
                            f"more than the {MAX_PARAMETERS:,} symbp supports")

    def _check_softmax_placement(self):
        for index in range(1, self.depth):
            if self.activation_of(index).is_softmax:
                raise SpecError(
                    f"layers[{index}].activation: softmax is only allowed on the output layer"
                )
        if self.activation_of(self.depth).is_softmax and self.layers[-1].units < 2:
            raise SpecError(
                f"layers[{self.depth}].units: a softmax over 1 unit is the constant 1, so its "
                "loss and gradients are identically 0; use 2 or more units, or one sigmoid "
                "unit with the 'bce' loss"
            )

    def _check_loss_fits_output(self):
        loss = self.loss_definition
        output = self.layers[-1].activation
        if loss.output_activation and output != loss.output_activation:
            hint = {"cross_entropy": "; for a sigmoid output use 'bce'",
                    "bce": "; for a softmax output use 'cross_entropy'"}.get(loss.name, "")
            raise SpecError(
                f"loss: '{loss.name}' needs a {loss.output_activation} output layer, "
                f"layers[{self.depth}] is '{output}'{hint}"
            )


def _as_dense(layer, index: int) -> Dense:
    if isinstance(layer, Dense):
        return layer
    if isinstance(layer, dict):
        unknown = set(layer) - _LAYER_KEYS
        if unknown:
            raise SpecError(f"layers[{index}]: unknown key '{sorted(unknown)[0]}' "
                            f"(allowed: {', '.join(sorted(_LAYER_KEYS))})")
        for key in sorted(_LAYER_KEYS):
            if key not in layer:
                raise SpecError(f"layers[{index}].{key}: missing")
        if not isinstance(layer["activation"], str):
            raise SpecError(f"layers[{index}].activation: expected a string")
        return Dense(layer["units"], layer["activation"])
    raise SpecError(f"layers[{index}]: expected a table with units and activation")


def _check_identifier(name, where: str):
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise SpecError(f"{where}: {name!r} is not a Python identifier")


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
