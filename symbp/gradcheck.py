"""Numeric gradient check of a generated module, for any graph.

Contract: :func:`check_module` compares the generated module's
``gradients(params, X, Y, masks=...)`` with fourth-order central finite
differences of its training-mode objective ``loss(params, X, Y, state=...,
training=True, masks=...)`` in float64: the whole batch's objective, since
batch normalization couples the rows of a batch. The point is random inputs
of the spec's per-sample shape (``(B, *inputs)``: features, or channels and
positions) and valid targets, the state of ``init_state()``, and dropout
masks of each dropout layer's output shape drawn once (each entry kept with
probability ``1 - rate``) and held fixed, so that the objective is a smooth
function of the parameters. Every parameter entry
is checked, or a random subset of ``max_entries`` per parameter (the count is
reported), at the module's initial parameters with random offsets on the
constant-initialised ones (biases, gains and shifts: ``b``, ``gamma``,
``beta``) or at parameters the caller gives. It uses only the module's public
interface (CONVENTIONS §5: ``SPEC``, ``init_params``, ``init_state``,
``loss``, ``gradients``): the module is the thing being checked (the
engine's reading of its ``SPEC`` only helps choose the point, away from
max-pooling ties; see below). :class:`CheckReport` gives, per parameter, the
largest relative error, how many entries needed a smaller step and how many
were skipped at a kink, and how many samples of the batch were left near a
max-pooling tie;
``symbp check`` prints the table and exits 1 when any entry fails.

The stencil. With ``L_k`` the loss at ``theta + k h``, the derivative is
``(8 (L_1 - L_-1) - (L_2 - L_-2)) / (12 h)``: the differences are taken
first, so a loss that does not change with an entry (a dead relu unit, a term
that does not depend on it) gives exactly 0, where the expanded
``-L_2 + 8 L_1 - 8 L_-1 + L_-2`` leaves a rounding residue.

Rounding. Each ``L_k`` is rounded to within a few ulps of the loss's
magnitude ``|L|`` (the mean absolute per-sample loss at the point, so that
samples whose losses cancel cannot hide it: each sample's loss alone, in
evaluation mode, since a batch-coupled per-sample loss is not observable
through the interface; at least the training objective's own ``|L|``, which
is that mean whenever the per-sample losses are non-negative, and without
batch norm or dropout the two modes agree), and a stencil divides that by
``h``: the estimate is uncertain by ``noise(h) = 1.5 ROUNDING_ULPS eps |L| / h``,
the difference of its two half-stencils (below) by ``8 ROUNDING_ULPS eps |L| /
h``. Over the sweep of tests/test_gradcheck_sweep.py, at steps 1e-4 to 1e-7,
the first error is at most 1.5 ``eps |L| / h`` and the second 10, so
``ROUNDING_ULPS = 16`` leaves a margin of more than 12. An entry's relative
error is ``|g - fd| / max(|g|, |fd|, noise(h) / tolerance)``: a gradient too
small for the stencil to resolve to the tolerance is held to the stencil's
absolute resolution ``noise(h)`` instead, and a gradient of exactly 0 passes
when the loss does not move. A fixed floor such as 1e-12 would turn rounding
into relative errors of order 1 wherever a gradient is 0 (the more so when a
constant term makes ``|L|`` large), and would not scale with the loss.

Kinks (relu, leaky_relu and elu at 0, ``abs``, ``max``, ``min``, Huber's
joint: any non-smooth point of the loss). A stencil that reaches across one
does not estimate the derivative at the point, whatever its order. Two
signs tell that a stencil at step ``h`` resolves the loss: it is *smooth*
(its two second-order one-sided halves, from ``L_0, L_1, L_2`` and from
``L_0, L_-1, L_-2``, agree: a kink at the point makes them differ by the jump
in slope) and it has *settled* (the stencil at ``h/10`` gives the same
derivative to a tenth of the tolerance or the rounding noise: a kink within
``2h`` moves the estimate, and neither test alone sees every kink). An entry
passes when a smooth estimate agrees with the gradient. Otherwise the step is
divided by 10, up to ``SMALLER_STEPS`` times: when a smooth estimate has
settled, it decides (to the tolerance or the noise of the two steps), and a
wrong gradient fails this way, at a kink or not, since some step does not
cross it; an entry that passes only with a step below ``STEP`` is counted as
re-checked. An
entry that no step resolves (the point sits on a kink, within ``2 STEP /
10**SMALLER_STEPS`` of it, where the loss has no derivative) is skipped and
counted, never failed.

Max pooling. A window whose two largest entries are within a stencil's reach
of each other is a kink of the loss like any other (the argmax changes along
the stencil). The kink handling above copes with it, but a random point is
first moved away from them: the rows of the batch where some max-pooling
window's largest entry exceeds the next by less than ``TIE_MARGIN`` steps (in
units of the RMS of the values pooled) are redrawn, up to ``TIE_ROUNDS``
times, and the rows still near a tie are counted in the report. Exact ties
(all of a window at relu's 0) are a flat region, not a kink, and are left as
they are. The values at the pooling layers come from the engine's reference
evaluation (:func:`symbp.engine.numeric.run`) of the spec's graph at the
point: it only chooses the point; the verdict is still the module's gradients
against the module's loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from symbp.ops.geometry import per_axis
from symbp.spec import network_from_dict

TOLERANCE = 1e-7
STEP = 1e-4
SMALLER_STEPS = 3  # STEP/10, STEP/100, STEP/1000
ROUNDING_ULPS = 16
SETTLED = 0.1  # of the tolerance: how far a converged estimate may still move
CHECK_BATCH = 8
TIE_MARGIN = 20  # steps (times the pooled values' RMS) between a window's two largest
TIE_ROUNDS = 20  # redraws of the rows near a max-pool tie
EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class ParameterCheck:
    name: str
    shape: tuple
    checked: int
    total: int
    max_abs_gradient: float
    relative_error: float  # the largest over the entries not skipped (0.0 if none)
    rechecked: int = 0  # entries that passed only with a step smaller than STEP
    skipped: int = 0  # entries at a kink: no step gave a settled estimate


@dataclass(frozen=True)
class CheckReport:
    rows: tuple
    tolerance: float
    near_ties: int = 0  # rows of the batch left with a max-pool window near a tie

    @property
    def passed(self) -> bool:
        return all(row.relative_error <= self.tolerance for row in self.rows)

    @property
    def rechecked(self) -> int:
        return sum(row.rechecked for row in self.rows)

    @property
    def skipped(self) -> int:
        return sum(row.skipped for row in self.rows)

    def table(self) -> str:
        lines = [f"{'parameter':<10} {'shape':<12} {'checked':>12} {'max |grad|':>12} "
                 f"{'rel. error':>11} {'smaller h':>9} {'skipped':>7}  result"]
        for row in self.rows:
            verdict = "ok" if row.relative_error <= self.tolerance else "FAIL"
            shape = "x".join(map(str, row.shape))
            lines.append(f"{row.name:<10} {shape:<12} {f'{row.checked}/{row.total}':>12} "
                         f"{row.max_abs_gradient:>12.3e} {row.relative_error:>11.2e} "
                         f"{row.rechecked:>9} {row.skipped:>7}  {verdict}")
        summary = "passed" if self.passed else "FAILED"
        lines.append(f"gradient check {summary} (tolerance {self.tolerance:.0e}, float64, "
                     f"4th-order central differences of the training objective, h = {STEP:.0e})"
                     f"{self._kink_note()}")
        return "\n".join(lines)

    def _kink_note(self) -> str:
        notes = []
        if self.rechecked:
            notes.append(f"{self.rechecked} entries re-checked with a smaller step (their "
                         "stencil crossed a kink or did not resolve the loss)")
        if self.skipped:
            notes.append(f"{self.skipped} skipped: the point sits on a kink of the loss (no "
                         f"step down to h = {STEP / 10**SMALLER_STEPS:.0e} resolves it)")
        if self.near_ties:
            notes.append(f"{self.near_ties} of the batch's samples with a max-pooling window "
                         f"whose two largest entries are closer than {TIE_MARGIN} steps")
        return "".join(f"; {note}" for note in notes)


@dataclass(frozen=True)
class EntryCheck:
    relative_error: float  # nan when skipped
    rechecked: bool
    skipped: bool


@dataclass(frozen=True)
class Estimate:
    """What the stencil at one step says about one entry's derivative."""
    derivative: float  # the fourth-order central difference
    half_stencils: float  # right minus left second-order one-sided difference
    noise: float  # rounding uncertainty of `derivative`
    half_noise: float  # rounding uncertainty of `half_stencils`


def estimate(losses, base_loss, magnitude, step) -> Estimate:
    """The stencil's estimates from ``losses`` (at ``2h, h, -h, -2h``) and the
    loss at the point; differences are taken first, so a flat loss gives 0."""
    plus2, plus1, minus1, minus2 = losses
    derivative = (8.0 * (plus1 - minus1) - (plus2 - minus2)) / (12.0 * step)
    right = (4.0 * (plus1 - base_loss) - (plus2 - base_loss)) / (2.0 * step)
    left = (4.0 * (base_loss - minus1) - (base_loss - minus2)) / (2.0 * step)
    rounding = ROUNDING_ULPS * EPS * magnitude / step  # of one loss value, over h
    return Estimate(derivative, right - left, 1.5 * rounding, 8.0 * rounding)


def relative_error(value, reference, noise, tolerance) -> float:
    """``|value - reference|`` relative to the larger of the two, or to the smallest
    magnitude that the stencil resolves to ``tolerance`` when both are below it."""
    scale = max(abs(value), abs(reference), noise / tolerance, np.finfo(np.float64).tiny)
    return abs(value - reference) / scale


def smooth(at: Estimate, tolerance) -> bool:
    """The two half-stencils agree: no kink at the point (one near it can hide)."""
    return abs(at.half_stencils) <= max(tolerance * abs(at.derivative), at.half_noise)


def settled(coarse: Estimate, fine: Estimate, tolerance) -> bool:
    """A ten times smaller step gives the same derivative, to a tenth of the tolerance
    or the rounding noise: the coarse stencil has converged (no kink near the point)."""
    return relative_error(fine.derivative, coarse.derivative, fine.noise + coarse.noise,
                          tolerance * SETTLED) <= tolerance * SETTLED


def check_entry(estimate_at, derived, tolerance) -> EntryCheck:
    """Decide one entry; ``estimate_at(step)`` is the stencil's :class:`Estimate`
    at that step. See the module docstring for the rule."""
    steps = [STEP / 10**k for k in range(SMALLER_STEPS + 1)]
    coarse = estimate_at(STEP)
    for step, finer in zip(steps, steps[1:] + [None], strict=True):
        error = relative_error(derived, coarse.derivative, coarse.noise, tolerance)
        if error <= tolerance and smooth(coarse, tolerance):
            return EntryCheck(error, rechecked=step < STEP, skipped=False)
        if finer is None:
            break
        fine = estimate_at(finer)
        if smooth(coarse, tolerance) and settled(coarse, fine, tolerance):
            # the coarse estimate resolves the loss, up to what the finer step can tell
            error = relative_error(derived, coarse.derivative, coarse.noise + fine.noise,
                                   tolerance)
            return EntryCheck(error, rechecked=error <= tolerance, skipped=False)
        coarse = fine
    return EntryCheck(float("nan"), rechecked=False, skipped=True)


@dataclass(frozen=True)
class CheckPoint:
    """Where the check runs: the module, its parameters (float64, shifted one entry
    at a time and restored), one batch, its dropout masks (fixed) and its state."""
    module: object
    params: dict
    inputs: np.ndarray
    targets: np.ndarray
    masks: dict
    state: dict

    def objective(self, rows=slice(None), training=True) -> float:
        """The module's ``loss`` at the current parameters: by default the training
        objective of the whole batch; ``rows`` and ``training`` pick a sub-batch
        and the mode (masks apply to whole batches only)."""
        masks = self.masks if training else None
        return self.module.loss(self.params, self.inputs[rows], self.targets[rows],
                                state=self.state, training=training, masks=masks)

    def gradients(self) -> dict:
        return self.module.gradients(self.params, self.inputs, self.targets, masks=self.masks)

    @cached_property
    def base_loss(self) -> float:
        return self.objective()

    @cached_property
    def magnitude(self) -> float:
        """The scale of the objective's rounding error (see the module docstring)."""
        rows = [abs(self.objective(slice(row, row + 1), training=False))
                for row in range(len(self.inputs))]
        return max(float(np.mean(rows)), abs(self.objective()))

    def stencil_losses(self, name, position, step) -> tuple:
        """The objective at the entry shifted by ``2h, h, -h, -2h`` (then restored)."""
        value = self.params[name]
        original = value[position]
        losses = []
        try:
            for offset in (2, 1, -1, -2):
                value[position] = original + offset * step
                losses.append(self.objective())
        finally:
            value[position] = original
        return tuple(losses)


def check_parameter(point: CheckPoint, name, positions, derived, tolerance) -> ParameterCheck:
    def estimate_at(position, step):
        return estimate(point.stencil_losses(name, position, step), point.base_loss,
                        point.magnitude, step)

    entries = [check_entry(lambda step, position=position: estimate_at(position, step),
                           float(derived[position]), tolerance)
               for position in positions]
    errors = [entry.relative_error for entry in entries if not entry.skipped]
    return ParameterCheck(name, derived.shape, len(positions), derived.size,
                          float(np.max(np.abs(derived))), max(errors, default=0.0),
                          rechecked=sum(entry.rechecked for entry in entries),
                          skipped=sum(entry.skipped for entry in entries))


# ------------------------------------------------------------- the random point
def random_point(module, rng, batch: int = CHECK_BATCH) -> tuple:
    """Random inputs of the spec's per-sample shape (``(batch, *inputs)``), valid
    targets for the network's task, and dropout masks of each dropout layer's output
    shape (kept with probability ``1 - rate``)."""
    network = network_from_dict(module.SPEC)
    inputs = rng.normal(0.0, 1.0, (batch, *network.input_shape))
    outputs = network.widths[-1]
    if network.task == "classification":
        targets = np.eye(outputs)[rng.integers(0, outputs, batch)]
    elif network.task == "binary":
        targets = rng.integers(0, 2, (batch, outputs)).astype(float)
    else:
        targets = rng.normal(0.0, 1.0, (batch, outputs))
    return inputs, targets, dropout_masks(network, batch, rng)


def dropout_masks(network, batch: int, rng) -> dict:
    return {f"mask{index}": (rng.random((batch, *network.shapes[index]))
                             >= layer.options["rate"]).astype(float)
            for index, layer in enumerate(network.layers, 1) if layer.type == "dropout"}


# ------------------------------------------------------ max pooling: away from ties
def max_pools(network) -> list:
    """``(layer index, kernel, stride)`` of each max-pooling layer, one entry per axis."""
    pools = []
    for index, layer in enumerate(network.layers, 1):
        if layer.type.startswith("max_pool"):
            axes = len(network.shapes[index]) - 1
            kernel = per_axis(layer.options["kernel"], axes, "kernel")
            stride = per_axis(layer.options["stride"] or kernel, axes, "stride")
            pools.append((index, kernel, stride))
    return pools


def window_gaps(x: np.ndarray, kernel: tuple, stride: tuple) -> np.ndarray:
    """Per window of ``x`` (``(B, C, *spatial)``): its largest entry minus the next
    one, shape ``(B, C, *out)``; 0 where two entries tie exactly, and infinite for a
    window of one entry (it has no second entry to tie with)."""
    axes = tuple(range(2, x.ndim))
    windows = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=axes)
    windows = windows[(slice(None), slice(None), *(slice(None, None, s) for s in stride))]
    flat = np.sort(windows.reshape(*windows.shape[:x.ndim], -1), axis=-1)
    if flat.shape[-1] < 2:
        return np.full(flat.shape[:-1], np.inf)
    return flat[..., -1] - flat[..., -2]


def rows_near_a_tie(network, point: dict, pools: list) -> np.ndarray:
    """The rows of the batch with a max-pool window whose largest entry exceeds the
    next by less than ``TIE_MARGIN * STEP`` times the pooled values' RMS (an exact
    tie is a flat region, such as relu's zeros, not a kink, and is left alone)."""
    from symbp.engine.derivation import derive_graph
    from symbp.engine.numeric import run
    from symbp.ops.base import BATCH

    derivation = derive_graph(network)
    values = run(derivation.graph, point, {**derivation.sizes, BATCH: len(point["X"])})
    near = np.zeros(len(point["X"]), dtype=bool)
    for index, kernel, stride in pools:
        x = values[f"a{index - 1}"] if index > 1 else values["X"]
        gaps = window_gaps(x, kernel, stride)
        margin = TIE_MARGIN * STEP * max(float(np.sqrt(np.mean(x**2))), EPS)
        close = (gaps > 0) & (gaps < margin)
        near |= close.reshape(len(close), -1).any(axis=1)
    return near


def away_from_ties(module, params, inputs, targets, masks, state, rng) -> tuple:
    """``inputs`` with the rows near a max-pool tie redrawn, up to ``TIE_ROUNDS``
    times, and the count of rows still near one (0 without max pooling). The
    values at the pooling layers come from the engine's reference evaluation of
    the spec's graph at the point: it chooses the point, the module is still what
    is checked."""
    network = network_from_dict(module.SPEC)
    pools = max_pools(network)
    if not pools:
        return inputs, 0
    inputs = inputs.copy()
    given = {**params, **masks, **state, "Y": targets}
    for _ in range(TIE_ROUNDS):
        near = rows_near_a_tie(network, {**given, "X": inputs}, pools)
        if not near.any():
            return inputs, 0
        inputs[near] = rng.normal(0.0, 1.0, inputs[near].shape)
    return inputs, int(rows_near_a_tie(network, {**given, "X": inputs}, pools).sum())


def shifted_params(module, seed, rng) -> dict:
    """``init_params(seed)`` with random offsets on the constant-initialised
    parameters (biases, gains, shifts), so that their errors cannot hide."""
    params = module.init_params(seed, dtype=np.float64)
    for name in params:
        if name.startswith(("b", "gamma")):
            params[name] += rng.normal(0.0, 0.1, params[name].shape)
    return params


def check_module(module, seed: int = 0, max_entries: int = 200,
                 tolerance: float = TOLERANCE, params: dict | None = None,
                 batch: tuple | None = None, masks: dict | None = None) -> CheckReport:
    """Check ``module.gradients`` at ``params`` on ``batch`` (inputs, targets) with
    dropout ``masks``. By default the parameters are :func:`shifted_params` and
    the batch and masks are random (from ``seed``); what the caller gives is
    copied, never changed."""
    rng = np.random.default_rng(seed)
    if params is None:
        params = shifted_params(module, seed, rng)
    else:
        params = {name: np.array(value, dtype=np.float64) for name, value in params.items()}
    if batch is None:
        inputs, targets, drawn = random_point(module, rng)
    else:
        inputs, targets = (np.array(array, dtype=np.float64) for array in batch)
        drawn = dropout_masks(network_from_dict(module.SPEC), len(inputs), rng)
    if masks is not None:
        drawn = {name: np.array(mask, dtype=np.float64) for name, mask in masks.items()}
    state, near_ties = module.init_state(), 0
    if batch is None:
        inputs, near_ties = away_from_ties(module, params, inputs, targets, drawn, state, rng)
    point = CheckPoint(module, params, inputs, targets, drawn, state)
    gradients = point.gradients()
    rows = []
    for name, value in params.items():
        positions = list(np.ndindex(value.shape))
        if len(positions) > max_entries:
            chosen = rng.choice(len(positions), max_entries, replace=False)
            positions = [positions[i] for i in sorted(chosen)]
        rows.append(check_parameter(point, name, positions, gradients[name], tolerance))
    return CheckReport(tuple(rows), tolerance, near_ties)
