"""Numeric gradient check of a generated module.

Contract: :func:`check_module` compares the generated module's
``gradients`` with fourth-order central finite differences of its ``loss``
in float64, on random inputs and valid targets, for every parameter entry or
a random subset of ``max_entries`` per parameter (the count is reported).
Each parameter gets the relative error ``max|g - fd| / max(|g|, |fd|)``;
:class:`CheckReport` says which exceed the tolerance. ``symbp check`` prints
the table and exits 1 when any does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOLERANCE = 1e-7
STEP = 1e-4
CHECK_BATCH = 8


@dataclass(frozen=True)
class ParameterCheck:
    name: str
    shape: tuple
    checked: int
    total: int
    max_abs_gradient: float
    relative_error: float


@dataclass(frozen=True)
class CheckReport:
    rows: tuple
    tolerance: float

    @property
    def passed(self) -> bool:
        return all(row.relative_error <= self.tolerance for row in self.rows)

    def table(self) -> str:
        lines = [f"{'parameter':<10} {'shape':<12} {'checked':>12} {'max |grad|':>12} "
                 f"{'rel. error':>11}  result"]
        for row in self.rows:
            verdict = "ok" if row.relative_error <= self.tolerance else "FAIL"
            shape = "x".join(map(str, row.shape))
            lines.append(f"{row.name:<10} {shape:<12} {f'{row.checked}/{row.total}':>12} "
                         f"{row.max_abs_gradient:>12.3e} {row.relative_error:>11.2e}  {verdict}")
        summary = "passed" if self.passed else "FAILED"
        lines.append(f"gradient check {summary} (tolerance {self.tolerance:.0e}, float64, "
                     "4th-order central differences)")
        return "\n".join(lines)


def random_batch(module, rng, batch: int = CHECK_BATCH):
    """Random inputs and valid targets for the module's task."""
    sizes = module.LAYER_SIZES
    inputs = rng.normal(0.0, 1.0, (batch, sizes[0]))
    if module.TASK == "classification":
        targets = np.eye(sizes[-1])[rng.integers(0, sizes[-1], batch)]
    elif module.TASK == "binary":
        targets = rng.integers(0, 2, (batch, sizes[-1])).astype(float)
    else:
        targets = rng.normal(0.0, 1.0, (batch, sizes[-1]))
    return inputs, targets


def finite_difference(module, params, inputs, targets, name, position, step=STEP) -> float:
    """``dL/dparam`` at one entry by the fourth-order central stencil."""
    value = params[name]
    original = value[position]
    losses = []
    for offset in (2, 1, -1, -2):
        value[position] = original + offset * step
        losses.append(module.loss(params, inputs, targets))
    value[position] = original
    return (-losses[0] + 8 * losses[1] - 8 * losses[2] + losses[3]) / (12 * step)


def check_module(module, seed: int = 0, max_entries: int = 200,
                 tolerance: float = TOLERANCE) -> CheckReport:
    rng = np.random.default_rng(seed)
    params = module.init_params(seed, dtype=np.float64)
    for name in params:  # non-zero biases, so that bias errors cannot hide
        if name.startswith("b"):
            params[name] += rng.normal(0.0, 0.1, params[name].shape)
    inputs, targets = random_batch(module, rng)
    gradients = module.gradients(params, inputs, targets)
    rows = []
    for name, value in params.items():
        positions = list(np.ndindex(value.shape))
        if len(positions) > max_entries:
            chosen = rng.choice(len(positions), max_entries, replace=False)
            positions = [positions[i] for i in sorted(chosen)]
        derived = np.array([gradients[name][p] for p in positions])
        numeric = np.array([finite_difference(module, params, inputs, targets, name, p)
                            for p in positions])
        scale = max(np.max(np.abs(derived)), np.max(np.abs(numeric)), 1e-12)
        error = float(np.max(np.abs(derived - numeric)) / scale)
        rows.append(ParameterCheck(name, value.shape, len(positions), value.size,
                                   float(np.max(np.abs(gradients[name]))), error))
    return CheckReport(tuple(rows), tolerance)
