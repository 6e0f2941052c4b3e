"""The objective: the mean over the batch of the per-sample loss, plus weight decay.

``L = (1/B) sum_s sum_k l(a_{s,k}, y_{s,k}) + (lambda/2) sum_l sum_{i,j} (W^{(l)}_{ij})^2``,
with ``l`` the loss's per-output term (CONVENTIONS §2) and the decay over the
weights of dense (and convolution) layers only, not biases or gains.
"""

from __future__ import annotations

import sympy as sp

from symbp.engine.graph import Tensor
from symbp.engine.indices import BOUND, FREE
from symbp.ops.base import BATCH, Builder
from symbp.registry import A, Y


def add_objective(builder: Builder, loss, weight_decay: float) -> Tensor:
    prediction = builder.previous
    target = builder.graph.add(Tensor("Y", prediction.shape, "target", latex="Y"))
    s, k = BOUND[:2]
    term = loss.expr.xreplace({A: prediction[s, k], Y: target[s, k]})
    objective = sp.Sum(sp.Sum(term, (k, 0, prediction.shape[-1] - 1)), (s, 0, BATCH - 1)) / BATCH
    if weight_decay:
        decay = sp.nsimplify(weight_decay) / 2
        for weights in [t for t in builder.graph.tensors.values()
                        if t.role == "parameter" and t.name.startswith("W")]:
            bound = BOUND[:weights.rank]
            objective += decay * sp.Sum(weights[bound] ** 2, *[
                (k, 0, n - 1) for k, n in zip(bound, weights.shape, strict=True)])
    if loss.targets_sum_to_one:  # each row of targets sums to one (any row FREE[0])
        row_sum = sp.Sum(target[FREE[0], BOUND[0]], (BOUND[0], 0, prediction.shape[-1] - 1))
        builder.graph.identities.append((row_sum, sp.Integer(1)))
    return builder.graph.define(Tensor("L", (), "loss", latex="L"), objective, "objective")
