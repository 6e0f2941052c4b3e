"""Tensor claims: gradients of networks with convolutions, pooling and flatten, entry by entry.

The oracles here are hand formulas (as a textbook writes them, in symbp's letters), each
checked against the engine through ``symbp verify``; a wrong variant of each (an unflipped
kernel, a missing stride, the max-pool gradient sent to the whole window, a missing 1/K^2)
must be incorrect. The round trip of every printed row is in test_verify_roundtrip.py.
"""

import numpy as np
import pytest

from symbp import claims as C
from symbp.errors import SymbpError
from symbp.spec import network_from_dict
from symbp.verify import verify
from symbp.verify.tensor_values import Evaluator, Scope


def _net(inputs, *layers, loss="cross_entropy", classes=3):
    return network_from_dict({"inputs": inputs, "loss": loss, "layers": [
        *layers, {"units": classes, "activation": "softmax"}]})


VALID = _net([2, 6, 5], {"type": "conv2d", "channels": 3, "kernel": 3, "activation": "tanh"},
             {"type": "conv2d", "channels": 2, "kernel": 2, "activation": "tanh"})
PADDED = _net([1, 5, 5], {"type": "conv2d", "channels": 2, "kernel": 3, "padding": 1,
                          "activation": "tanh"},
              {"type": "conv2d", "channels": 2, "kernel": 3, "padding": 1,
               "activation": "sigmoid"})
STRIDED = _net([2, 9], {"type": "conv1d", "channels": 3, "kernel": 3, "stride": 2,
                        "activation": "tanh"},
               {"type": "conv1d", "channels": 2, "kernel": 2, "stride": 2, "activation": "tanh"})
POOLED = _net([2, 6, 6], {"type": "conv2d", "channels": 2, "kernel": 3, "activation": "tanh"},
              {"type": "max_pool2d", "kernel": 2})
AVERAGED = _net([2, 6, 6], {"type": "conv2d", "channels": 2, "kernel": 3, "activation": "tanh"},
                {"type": "avg_pool2d", "kernel": 2})

KERNEL_GRADIENT = (r"\frac{\partial L}{\partial W^{(1)}_{c,c',p,q}} = \sum_{r} \sum_{i} \sum_{j} "
                   r"\Delta^{(1)}_{r,c,i,j} X_{r,c',i + p,j + q}")
INPUT_GRADIENT = (r"\frac{\partial L}{\partial a^{(1)}_{s,c,i,j}} = \sum_{c'} \sum_{p=0}^{1} "
                  r"\sum_{q=0}^{1} \Delta^{(2)}_{s,c',i - p,j - q} W^{(2)}_{c',c,p,q}")


@pytest.mark.parametrize("claim, network, right", [
    (KERNEL_GRADIENT, VALID, True),
    (KERNEL_GRADIENT.replace("i + p,j + q", "i - p,j - q"), VALID, False),
    (r"\frac{\partial L}{\partial b^{(1)}_{c}} = \sum_{r} \sum_{i} \sum_{j} \Delta^{(1)}_{r,c,i,j}",
     VALID, True),
    (r"\frac{\partial L}{\partial b^{(1)}_{c}} = \sum_{i} \sum_{j} \Delta^{(1)}_{0,c,i,j}", VALID,
     False),
    # the input gradient: delta read at i - p (zero outside) is the full correlation with the
    # flipped kernel; read at i + p the kernel is not flipped
    (INPUT_GRADIENT, VALID, True),
    (INPUT_GRADIENT.replace("i - p,j - q", "i + p,j + q"), VALID, False),
    # padding: the forward pass reads x at i + p - 1, so the input gradient reads delta at
    # i - p + 1
    (r"\frac{\partial \ell}{\partial a^{(1)}_{c,i,j}} = \sum_{c'} \sum_{p=0}^{2} \sum_{q=0}^{2} "
     r"\delta^{(2)}_{c',i - p + 1,j - q + 1} W^{(2)}_{c',c,p,q}", PADDED, True),
    (r"\frac{\partial \ell}{\partial a^{(1)}_{c,i,j}} = \sum_{c'} \sum_{p=0}^{2} \sum_{q=0}^{2} "
     r"\delta^{(2)}_{c',i - p,j - q} W^{(2)}_{c',c,p,q}", PADDED, False),
    # a stride: delta is read at (i - p)/S where that is an integer
    (r"\frac{\partial \ell}{\partial a^{(1)}_{c,i}} = \sum_{c'} \sum_{p=0}^{1} "
     r"\delta^{(2)}_{c',(i - p)/2} W^{(2)}_{c',c,p}", STRIDED, True),
    (r"\frac{\partial \ell}{\partial a^{(1)}_{c,i}} = \sum_{c'} \sum_{p=0}^{1} "
     r"\delta^{(2)}_{c',i - p} W^{(2)}_{c',c,p}", STRIDED, False),
    (r"\frac{\partial \ell}{\partial W^{(2)}_{c,c',p}} = \sum_{i} \delta^{(2)}_{c,i} "
     r"a^{(1)}_{c',2i + p}", STRIDED, True),
    (r"\frac{\partial \ell}{\partial W^{(2)}_{c,c',p}} = \sum_{i} \delta^{(2)}_{c,i} "
     r"a^{(1)}_{c',i + p}", STRIDED, False),
    # Goodfellow et al. eq. 9.13's sum over the positions with (u - 1) s + p = i, 0-based
    (r"\frac{\partial \ell}{\partial a^{(1)}_{c,i}} = \sum_{c'} \sum_{u} \sum_{p=0}^{1} "
     r"\left[2u + p = i\right] \delta^{(2)}_{c',u} W^{(2)}_{c',c,p}", STRIDED, True),
    (r"\frac{\partial \ell}{\partial a^{(1)}_{c,i}} = \sum_{c'} \sum_{u} \sum_{p=0}^{1} "
     r"\left[u + p = i\right] \delta^{(2)}_{c',u} W^{(2)}_{c',c,p}", STRIDED, False),
    # max pooling sends the gradient to the window's maximum (chi), average pooling 1/K^2 of it
    (r"\frac{\partial \ell}{\partial a^{(1)}_{c,i,j}} = \sum_{p=0}^{1} \sum_{q=0}^{1} "
     r"\frac{\partial \ell}{\partial a^{(2)}_{c,(i - p)/2,(j - q)/2}} \chi^{(2)}_{c,(i - p)/2,"
     r"(j - q)/2,p,q}", POOLED, True),
    (r"\frac{\partial \ell}{\partial a^{(1)}_{c,i,j}} = \frac{\partial \ell}{\partial "
     r"a^{(2)}_{c,\lfloor i/2 \rfloor,\lfloor j/2 \rfloor}}", POOLED, False),
    (r"\frac{\partial \ell}{\partial a^{(1)}_{c,i,j}} = \frac{1}{4} \frac{\partial \ell}{\partial "
     r"a^{(2)}_{c,\lfloor i/2 \rfloor,\lfloor j/2 \rfloor}}", AVERAGED, True),
    (r"\frac{\partial \ell}{\partial a^{(1)}_{c,i,j}} = \frac{\partial \ell}{\partial "
     r"a^{(2)}_{c,\lfloor i/2 \rfloor,\lfloor j/2 \rfloor}}", AVERAGED, False),
    # 1-based, as Goodfellow et al. eq. 9.11 write it: every entry is then read 1-based
    (r"\frac{\partial L}{\partial W^{(1)}_{c,c',p,q}} = \sum_{r=1}^{B} \sum_{i=1}^{4} "
     r"\sum_{j=1}^{3} \Delta^{(1)}_{r,c,i,j} X_{r,c',i + p - 1,j + q - 1}", VALID, True),
    # the dense layer after the convolutions, in matrix form
    (r"\frac{\partial L}{\partial W^{(3)}} = \left(\Delta^{(3)}\right)^{\top} "
     r"\operatorname{vec}(A^{(2)})", VALID, True),
    (r"\frac{\partial L}{\partial W^{(3)}} = \operatorname{vec}(A^{(2)})^{\top} \Delta^{(3)}",
     VALID, False),
])
def test_hand_formulas(claim, network, right):
    verdict = verify(claim, network)
    assert verdict.verdict == ("correct" if right else "incorrect"), str(verdict)


def test_a_general_layer_is_checked_at_every_convolution():
    claim = (r"\frac{\partial \ell}{\partial b^{(l)}_{c}} = \sum_{i=0}^{H' - 1} "
             r"\sum_{j=0}^{W' - 1} \delta^{(l)}_{c,i,j}")
    verdict = verify(claim, VALID)
    assert verdict.ok and verdict.layers == [1, 2], str(verdict)
    wrong = verify(claim.replace("H' - 1", "H' - 2"), VALID)
    assert wrong.verdict == "incorrect" and wrong.layers == [1]


def test_the_reply_names_the_entry_that_differs():
    verdict = verify(INPUT_GRADIENT.replace("i - p,j - q", "i + p,j + q"), VALID)
    where = verdict.counterexample["where"]
    assert "for a batch of 4 samples" in where and "the entry s = " in where
    assert verdict.correct and verdict.correct.startswith(r"\frac{\partial L}{\partial a^{(1)}")


@pytest.mark.parametrize("claim, words", [
    (r"\frac{\partial L}{\partial b^{(1)}_{c}} = \sum_{r} \Delta^{(1)}_{r,c,i,j}",
     "free on the right-hand side"),
    (r"\frac{\partial L}{\partial b^{(1)}_{c}} = \sum_{r} \sum_{i} \sum_{j=0}^{2} "
     r"\Delta^{(1)}_{r,c,i,j + u}",
     "range of the index u"),
    (r"\frac{\partial L}{\partial b^{(1)}_{c}} = \sum_{u=0}^{100000} \Delta^{(1)}_{0,c,0,0}",
     "symbp verify sums over 1 to 4096"),
    (r"\frac{\partial L}{\partial b^{(1)}_{c}} = \sum_{u=0}^{3000} \sum_{v=0}^{3000} "
     r"\Delta^{(1)}_{0,c,u,v}", "more than the 4000000"),
])
def test_unreadable_tensor_claims_name_why(claim, words):
    verdict = verify(claim, VALID)
    assert verdict.verdict == "cannot parse" and words in verdict.summary, str(verdict)


def test_a_tensor_read_with_too_many_indices_is_refused_and_extents_are_shapes():
    verdict = verify(r"\frac{\partial L}{\partial b^{(1)}_{c}} = \sum_{r} W^{(1)}_{r,c,0,0,1}",
                     VALID)
    assert verdict.verdict == "cannot parse" and "has 4 axes" in verdict.summary
    valid = verify(r"\frac{\partial \ell}{\partial W^{(1)}_{c,c'}} = x_{c'} \star "
                   r"\operatorname{pad}_{1}(\delta^{(1)}_{c})", VALID)
    assert valid.verdict == "incorrect" and "3 × 3" in valid.shape, str(valid)


def test_per_sample_claims_are_refused_where_batch_norm_couples_the_samples():
    network = _net([1, 4, 4], {"type": "conv2d", "channels": 2, "kernel": 3, "activation": "tanh"},
                   {"type": "batch_norm"})
    verdict = verify(r"\delta^{(1)}_{c,i,j} = \frac{\partial \ell}{\partial a^{(1)}_{c,i,j}}",
                     network)
    assert verdict.verdict == "cannot parse" and "batch norm couples" in verdict.summary
    stacked = verify(r"\frac{\partial \ell}{\partial a^{(1)}_{s,c,i,j}} = B \frac{\partial L}"
                     r"{\partial a^{(1)}_{s,c,i,j}}", network)
    assert stacked.verdict == "cannot parse" and "batch norm couples" in stacked.summary


def test_a_sample_loss_gradient_with_the_sample_index_is_each_row_its_own():
    """d ell / d a_{s,i}: row s of the batch holds sample s's own loss's gradient (B times
    the mean loss's); a parameter's gradient with a batch right side is the batch's."""
    assert verify(r"\frac{\partial \ell}{\partial a^{(3)}_{s,i}} = - \frac{Y_{s,i}}"
                  r"{a^{(3)}_{s,i}}", VALID).ok
    assert verify(r"\frac{\partial \ell}{\partial a^{(3)}_{s,i}} = - \frac{Y_{s,i}}"
                  r"{B a^{(3)}_{s,i}}", VALID).verdict == "incorrect"
    assert verify(r"\frac{\partial \ell}{\partial W^{(3)}} = \left(\Delta^{(3)}\right)^{\top} "
                  r"\operatorname{vec}(A^{(2)})", VALID).ok


def _scope(**ranges):
    return Scope(tensor=None, raw=None, batch=False, ranges=ranges, geometry={"S": 2},
                 width=None, batch_size=1)


def test_index_arithmetic_is_exact():
    """(i - p)/S is an entry only where it is an integer; floor and mod of an index."""
    array = np.arange(4.0)
    scope = _scope(i=(0, 7), p=(0, 2))
    scope.raw = lambda node: array
    side = C.parse_claim(r"\delta^{(1)}_{i} = a^{(1)}_{(i - p)/S}").rhs
    value = Evaluator(scope).run(side)
    expected = np.array([[array[(i - p) // 2] if (i - p) % 2 == 0 and 0 <= (i - p) // 2 < 4
                          else 0.0 for p in range(2)] for i in range(7)])
    assert value.names == ("i", "p") and np.array_equal(value.array, expected)
    floor = Evaluator(scope).run(C.parse_claim(
        r"\delta^{(1)}_{i} = a^{(1)}_{\lfloor i/2 \rfloor} + a^{(1)}_{i \bmod 2}").rhs)
    assert np.array_equal(floor.array, [array[i // 2] + array[i % 2] for i in range(7)])


def _random_cnn(seed: int):
    """A small random CNN: conv1d or conv2d with a random kernel, stride and padding, an
    optional pooling (max or average, tiling or overlapping), a second convolution."""
    rng = np.random.default_rng(seed)
    axes = int(rng.integers(1, 3))
    size = int(rng.integers(6, 9))
    inputs = [int(rng.integers(1, 3))] + [size] * axes
    layers = []
    for _ in range(2):
        kernel = int(rng.integers(1, 4))
        layers.append({"type": f"conv{axes}d", "channels": int(rng.integers(2, 4)),
                       "kernel": kernel, "stride": int(rng.integers(1, 3)),
                       "padding": int(rng.integers(0, kernel)),
                       "activation": str(rng.choice(["tanh", "sigmoid", "softplus"]))})
        if rng.random() < 0.6:
            kind = str(rng.choice(["max", "avg"]))
            layers.append({"type": f"{kind}_pool{axes}d", "kernel": 2,
                           "stride": int(rng.integers(1, 3))})
    network = {"inputs": inputs, "loss": "cross_entropy",
               "layers": layers + [{"units": 3, "activation": "softmax"}]}
    try:
        return network_from_dict(network)
    except SymbpError:  # a window that does not fit: shrink the second block
        return network_from_dict({**network, "layers": layers[:1] + network["layers"][-1:]})


@pytest.mark.parametrize("seed", range(6))
def test_every_printed_row_of_random_cnns_is_correct(seed):
    """The round trip on a sweep of architectures: each backward row symbp derive prints for
    a random CNN verifies as correct (per sample and batch, index and operator forms)."""
    from test_verify_roundtrip import ACCUMULATES, DEFINITIONS, _rows

    network = _random_cnn(seed)
    checked = 0
    for section, row in _rows(network):
        if section.startswith(DEFINITIONS) or ACCUMULATES in row:
            continue
        verdict = verify(row, network)
        assert verdict.ok, f"{network.to_dict()}\n{row}\n{verdict}"
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize("network", [VALID, PADDED, STRIDED, POOLED, AVERAGED], ids=str)
def test_the_points_do_not_saturate(network):
    """Weights scaled by their fan-in keep every pre-activation of order 1 at the spec's
    widths, so that no entry of the output is 0 or 1 to float64 precision (a saturated
    softmax hides a wrong term behind an entry of 1e160)."""
    from symbp.verify.context import SEEDS
    from symbp.verify.tensors import Engine

    engine = Engine.of(network)
    for seed in SEEDS:
        arrays, _ = engine.point(4, seed)
        output = arrays[f"a{network.depth}"]
        assert np.abs(arrays[f"z{network.depth}"]).max() < 10
        assert output.min() > 1e-6 and output.max() < 1 - 1e-6


def test_a_wrong_term_on_the_output_gradient_is_seen():
    """At saturated points this claim passed: the truth's largest entry, 1e162, made the
    tolerance swallow the + 1."""
    claim = r"\frac{\partial L}{\partial a^{(3)}_{s,i}} = - \frac{Y_{s,i}}{B a^{(3)}_{s,i}}"
    assert verify(claim, VALID).ok
    assert verify(claim + " + 1", VALID).verdict == "incorrect"
