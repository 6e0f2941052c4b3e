"""The likely mistake named for a wrong claim, and its correct counterpart.

Each case is a realistic wrong claim (as people write them), the words its
explanation must contain and must not contain, and the same claim corrected,
which must verify. An explanation is only named when its variant of the claim
agrees with the engine's truth, so each case also checks that the fixed claim
is correct: the explanation names the one change that makes it so.
"""

import pytest

from symbp.spec import Dense, Network
from symbp.verify import verify

NETWORKS = {
    "tanh_ce": Network(inputs=4, layers=[Dense(5, "tanh"), Dense(6, "tanh"), Dense(3, "softmax")],
                       loss="cross_entropy"),
    "sig_mse": Network(inputs=3, layers=[Dense(4, "sigmoid"), Dense(2, "sigmoid")], loss="mse"),
    "sig_bce": Network(inputs=3, layers=[Dense(4, "tanh"), Dense(2, "sigmoid")], loss="bce"),
    "tanh_mse": Network(inputs=3, layers=[Dense(4, "tanh"), Dense(2, "identity")], loss="mse"),
    "softmax_mse": Network(inputs=3, layers=[Dense(4, "tanh"), Dense(3, "softmax")], loss="mse"),
}

# (network, wrong claim, must contain, must not contain, the corrected claim)
CASES = [
    # symbp's batch Delta is dL/dZ of the mean loss (as symbp derive prints it): the 1/B
    # is in Delta^{(L)} and nowhere else
    ("tanh_ce", r"\Delta^{(L)} = A^{(L)} - Y",
     [r"the 1/B of the mean loss is missing: symbp's \Delta^{(l)} is \partial L/\partial Z^{(l)}",
      r"stacked in rows, as Ng's dZ, are B \Delta^{(l)}"], [],
     r"\Delta^{(L)} = \frac{1}{B}(A^{(L)} - Y)"),
    ("tanh_ce", r"\frac{\partial L}{\partial W^{(l)}} = \frac{1}{B} (\Delta^{(l)})^T A^{(l-1)}",
     ["an extra 1/B", r"(\Delta^{(l)})^T A^{(l-1)} has no 1/B of its own"], ["applied twice"],
     r"\frac{\partial L}{\partial W^{(l)}} = (\Delta^{(l)})^T A^{(l-1)}"),
    ("tanh_ce", r"\Delta^{(l)} = \frac{1}{B} (\Delta^{(l+1)} W^{(l+1)}) \odot f'(Z^{(l)})",
     ["an extra 1/B", r"it appears once (in \Delta^{(L)})"], [],
     r"\Delta^{(l)} = (\Delta^{(l+1)} W^{(l+1)}) \odot f'(Z^{(l)})"),
    # a missing 1/N (CS231n's N is symbp's B)
    ("tanh_ce", r"\frac{\partial L}{\partial b^{(l)}} = B (\Delta^{(l)})^T \mathbf{1}",
     ["the 1/B of the mean loss is missing"], [],
     r"\frac{\partial L}{\partial b^{(l)}} = (\Delta^{(l)})^T \mathbf{1}"),
    # the right activation with a wrong formula, named with the engine's derivative
    ("sig_mse",
     r"\delta^{(1)} = ((W^{(2)})^T \delta^{(2)}) \odot \sigma(z^{(1)}) \odot (1 + \sigma(z^{(1)}))",
     [r"wrong derivative formula for sigmoid: \sigma'(z) = \sigma(z) \left(1 - \sigma(z)\right)"],
     ["wrong activation"],
     r"\delta^{(1)} = ((W^{(2)})^T \delta^{(2)}) \odot \sigma(z^{(1)}) \odot (1 - \sigma(z^{(1)}))"),
    ("sig_mse", r"\delta^{(L)} = (a^{(L)} - y) \odot a^{(L)} \odot (1 + a^{(L)})",
     ["wrong derivative formula for sigmoid"], ["wrong activation"],
     r"\delta^{(L)} = (a^{(L)} - y) \odot a^{(L)} \odot (1 - a^{(L)})"),
    ("tanh_mse", r"\delta^{(1)} = ((W^{(2)})^T \delta^{(2)}) \odot (1 + (a^{(1)})^2)",
     [r"wrong derivative formula for tanh: \tanh'(z) = 1 - \tanh(z)^{2}"], ["wrong activation"],
     r"\delta^{(1)} = ((W^{(2)})^T \delta^{(2)}) \odot (1 - (a^{(1)})^2)"),
    # ... and another activation's derivative is still the wrong activation
    ("tanh_mse", r"\delta^{(1)} = ((W^{(2)})^T \delta^{(2)}) \odot a^{(1)} \odot (1 - a^{(1)})",
     ["derivative of the wrong activation", "derivative of sigmoid", "layer 1 is tanh"],
     ["wrong derivative formula"],
     r"\delta^{(1)} = ((W^{(2)})^T \delta^{(2)}) \odot (1 - a^{(1)} \odot a^{(1)})"),
    # sigma' (or any elementwise factor) at a softmax output
    ("tanh_ce", r"\delta^{(L)} = \frac{\partial \ell}{\partial a^{(L)}} \odot \sigma'(z^{(L)})",
     ["softmax's Jacobian treated as diagonal", "layer L is softmax"], [],
     r"\delta^{(L)} = \operatorname{softmax}'(z^{(L)}) \frac{\partial \ell}{\partial a^{(L)}}"),
    ("softmax_mse", r"\delta^{(L)} = (a^{(L)} - y) \odot a^{(L)} \odot (1 - a^{(L)})",
     ["softmax's Jacobian treated as diagonal"], ["wrong activation"],
     r"\delta^{(L)} = \operatorname{softmax}'(z^{(L)}) (a^{(L)} - y)"),
    ("softmax_mse", r"\delta^{(2)} = (a^{(2)} - y) \odot f'(z^{(2)})",
     ["softmax's Jacobian treated as diagonal"], [],
     r"\delta^{(2)} = \operatorname{softmax}'(z^{(2)})^T (a^{(2)} - y)"),
    # vectors side by side where the elementwise product was meant
    ("tanh_ce", r"\delta^{(l)} = (W^{(l+1)})^T \delta^{(l+1)} f'(z^{(l)})",
     ["vectors multiplied side by side",
      r"((W^{(l+1)})^T \delta^{(l+1)}) \odot f'(z^{(l)}) was meant"], [],
     r"\delta^{(l)} = (W^{(l+1)})^T \delta^{(l+1)} \odot f'(z^{(l)})"),
    ("sig_mse", r"\delta^{(L)} = (a^{(L)} - y) \sigma'(z^{(L)})",
     ["vectors multiplied side by side"], [],
     r"\delta^{(L)} = (a^{(L)} - y) \odot \sigma'(z^{(L)})"),
    # the pre-activation where the activation enters the next layer (Bishop's a_j for z_j)
    ("tanh_ce", r"\frac{\partial \ell}{\partial W^{(2)}} = \delta^{(2)} (z^{(1)})^T",
     [r"the pre-activation z^{(1)} where the activation a^{(1)} = f(z) belongs"], [],
     r"\frac{\partial \ell}{\partial W^{(2)}} = \delta^{(2)} (a^{(1)})^T"),
    # a sign slip inside one term of the bce derivative
    ("sig_bce", r"\frac{\partial \ell}{\partial a^{(L)}} = -\frac{y}{a^{(L)}} - \frac{1 - y}{1 - a^{(L)}}",
     [r"a sign slip in one term: \frac{1 - y}{1 - a^{(L)}}", r"should be + \frac{1 - y}"], [],
     r"\frac{\partial \ell}{\partial a^{(L)}} = -\frac{y}{a^{(L)}} + \frac{1 - y}{1 - a^{(L)}}"),
    ("sig_bce", r"\frac{\partial \ell}{\partial a^{(L)}} = \frac{y}{a^{(L)}} + \frac{1 - y}{1 - a^{(L)}}",
     ["a sign slip in one term"], [],
     r"\frac{\partial \ell}{\partial a^{(L)}} = -\frac{y}{a^{(L)}} + \frac{1 - y}{1 - a^{(L)}}"),
]


@pytest.mark.parametrize("key, wrong, named, not_named, fixed", CASES)
def test_the_likely_mistake_is_named_and_the_fix_verifies(key, wrong, named, not_named, fixed):
    network = NETWORKS[key]
    verdict = verify(wrong, network)
    assert verdict.verdict == "incorrect", str(verdict)
    # the first mistake in symbp's notation (a source's convention may be named before it)
    first = next((m for m in verdict.mistakes if not m.startswith("convention:")), "")
    assert all(text in first for text in named), str(verdict)
    assert not any(text in " ".join(verdict.mistakes) for text in not_named), str(verdict)
    assert verify(fixed, network).ok, str(verify(fixed, network))


def test_a_mistake_is_named_only_when_its_variant_is_the_truth():
    """A wrong claim that no single change repairs gets no named mistake."""
    verdict = verify(r"\delta^{(l)} = (W^{(l+1)})^T \delta^{(l+1)} \odot z^{(l)} + a^{(l)}",
                     NETWORKS["tanh_ce"])
    assert verdict.verdict == "incorrect" and verdict.mistakes == []
