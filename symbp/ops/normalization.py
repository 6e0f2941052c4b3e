"""Normalization: layer norm over the features of a sample, batch norm over the batch.

Both are ``a = gamma ⊙ x̂ + beta`` with ``x̂ = (x - μ) / sqrt(σ² + eps)``, and
``μ``, ``σ²`` (biased) named tensors of their own:

- ``layer_norm``: ``μ_s = (1/n) sum_k x_{s,k}``, ``σ²_s = (1/n) sum_k (x_{s,k} - μ_s)²``
  (torch ``nn.LayerNorm`` over the features);
- ``batch_norm``, training: ``μ_i = (1/B) sum_r x_{r,i}``, ``σ²_i`` likewise; the running
  estimates are then updated as torch ``BatchNorm1d`` does,
  ``mean <- (1 - m) mean + m μ`` and ``var <- (1 - m) var + m σ² N/(N - 1)`` with ``N``
  the count the statistics are over (``B``);
  eval: ``x̂`` from the running ``mean`` and ``var``.

For a multi-axis input (a convolution's output) layer norm is over all the
features of a sample (``gamma`` of the feature shape, as ``nn.LayerNorm``) and
batch norm per channel over the batch and the positions (``BatchNorm2d``).
"""

from __future__ import annotations

import sympy as sp

from symbp.engine.indices import BOUND, FREE
from symbp.errors import SpecError
from symbp.ops.base import BATCH, Builder, Option, layer_type


def check_eps(value, where, context):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise SpecError(f"{where}: expected a number with 0 < eps < 1, got {value!r}")
    return float(value)


def check_momentum(value, where, context):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise SpecError(f"{where}: expected a number with 0 <= momentum <= 1, got {value!r}")
    return float(value)


def _affine(builder: Builder, xhat, features: tuple, axes: tuple):
    """``a = gamma ⊙ x̂ + beta``; ``gamma`` and ``beta`` have the ``features`` shape and
    are indexed by the output's ``axes``."""
    gamma = builder.given("gamma", features, "parameter", latex=rf"\gamma^{{({builder.layer})}}",
                          init="ones")
    beta = builder.given("beta", features, "parameter", latex=rf"\beta^{{({builder.layer})}}",
                         init="zeros")
    out = builder.output()
    index = FREE[:xhat.rank]
    at = tuple(index[axis] for axis in axes)
    builder.graph.define(out, gamma[at] * xhat[index] + beta[at], "affine")
    return out


def _statistics(builder: Builder, x, shape, entry, count, bound_ranges, op):
    """``μ = (1/count) sum x`` and ``σ² = (1/count) sum (x - μ)²`` as named tensors."""
    mu = builder.graph.define(builder.tensor("mu", shape, latex=rf"\mu^{{({builder.layer})}}"),
                              sp.Sum(entry(x), *bound_ranges) / count, op)
    sigma2 = builder.graph.define(
        builder.tensor("sigma2", shape, latex=rf"\sigma^{{2({builder.layer})}}"),
        sp.Sum((entry(x) - entry(mu, statistic=True)) ** 2, *bound_ranges) / count, op)
    return mu, sigma2


def _xhat(builder: Builder, x, mean, variance, eps, stat_index):
    xhat = builder.tensor("xhat", x.shape, latex=rf"\hat{{x}}^{{({builder.layer})}}")
    index = FREE[:x.rank]
    return builder.graph.define(
        xhat, (x[index] - mean[stat_index]) / sp.sqrt(variance[stat_index] + eps), "normalize")


@layer_type("layer_norm", "normalizes each sample over its features",
            eps=Option(1e-5, check_eps))
def build_layer_norm(builder: Builder, layer):
    x = builder.previous
    s = FREE[0]
    bound = BOUND[:x.rank - 1]
    features = x.shape[1:]
    eps = sp.Float(layer.options["eps"])

    def entry(tensor, statistic=False):
        return tensor[s] if statistic else tensor[(s, *bound)]

    ranges = [(k, 0, n - 1) for k, n in zip(bound, features, strict=True)]
    mu, sigma2 = _statistics(builder, x, (x.shape[0],), entry, sp.Mul(*features), ranges,
                             "layer_norm")
    xhat = _xhat(builder, x, mu, sigma2, eps, (s,))
    return _affine(builder, xhat, features, tuple(range(1, x.rank)))


@layer_type("batch_norm", "normalizes each feature (or channel) over the batch",
            eps=Option(1e-5, check_eps), momentum=Option(0.1, check_momentum))
def build_batch_norm(builder: Builder, layer):
    """Per feature over the batch; for a multi-axis input per channel (axis 1) over the
    batch and the positions, as torch ``BatchNorm2d``."""
    x = builder.previous
    channel = FREE[1]
    features = (x.shape[1],)
    eps = sp.Float(layer.options["eps"])
    mean = builder.given("mean", features, "state", latex=rf"\hat{{\mu}}^{{({builder.layer})}}",
                         init="zeros")
    var = builder.given("var", features, "state", latex=rf"\hat{{\sigma}}^{{2({builder.layer})}}",
                        init="ones")
    if builder.mode == "eval":
        xhat = _xhat(builder, x, mean, var, eps, (channel,))
        return _affine(builder, xhat, features, (1,))
    r, *positions = BOUND[:x.rank - 1]
    f = FREE[0]  # a per-channel statistic's own index

    def entry(tensor, statistic=False):
        return tensor[f] if statistic else tensor[(r, f, *positions)]

    ranges = [(r, 0, BATCH - 1)] + [(p, 0, n - 1) for p, n in zip(positions, x.shape[2:],
                                                                  strict=True)]
    count = BATCH * sp.Mul(*x.shape[2:])
    mu, sigma2 = _statistics(builder, x, features, entry, count, ranges, "batch_norm")
    momentum = sp.Float(layer.options["momentum"])
    builder.graph.updates += [
        (mean, (1 - momentum) * mean[f] + momentum * mu[f]),
        (var, (1 - momentum) * var[f] + momentum * sigma2[f] * count / (count - 1)),
    ]
    xhat = _xhat(builder, x, mu, sigma2, eps, (channel,))
    return _affine(builder, xhat, features, (1,))
