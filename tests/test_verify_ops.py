"""verify on claims about every op of the graph engine but convolution.

Each case is a realistic claim about a network with layer norm, batch norm, a
residual, dropout, an activation layer or weight decay: correct ones (the
standard formulas: Ba et al. for layer norm, Ioffe & Szegedy for batch norm,
Srivastava et al. for dropout, He et al. for the residual's skip, Goodfellow et
al. §7.1 for weight decay) and the usual mistakes, each with the words its
explanation must contain and its corrected form, which must verify. The truth is
the engine's (checked against torch in tests/test_engine_graph.py); nothing here
is decided from the claim's form.
"""

import pytest

from symbp.claims import parse_claim
from symbp.errors import SymbpError
from symbp.spec import load_spec
from symbp.verify import verify, verify_parsed

SPECS = {
    "ln": """inputs = 3\nloss = "mse"\n[[layers]]\nunits = 4\nactivation = "tanh"\n
[[layers]]\ntype = "layer_norm"\n[[layers]]\nunits = 2\nactivation = "sigmoid"\n""",
    "bn": """inputs = 3\nloss = "mse"\n[[layers]]\nunits = 4\nactivation = "tanh"\n
[[layers]]\ntype = "batch_norm"\n[[layers]]\nunits = 2\n""",
    "bnact": """inputs = 3\nloss = "cross_entropy"\n[[layers]]\nunits = 4\nactivation = "tanh"\n
[[layers]]\ntype = "batch_norm"\n[[layers]]\nunits = 3\n[[layers]]\ntype = "activation"
activation = "softmax"\n""",
    "drop": """inputs = 3\nloss = "mse"\n[[layers]]\nunits = 4\nactivation = "tanh"\n
[[layers]]\ntype = "dropout"\nrate = 0.25\n[[layers]]\nunits = 2\n""",
    "drop1": """inputs = 3\nloss = "mse"\n[[layers]]\nunits = 2\nactivation = "tanh"\n
[[layers]]\ntype = "dropout"\nrate = 0.1\n[[layers]]\nunits = 2\n""",
    "res": """inputs = 3\nloss = "mse"\n[[layers]]\nunits = 4\nactivation = "tanh"\nname = "h"\n
[[layers]]\nunits = 4\nactivation = "tanh"\n[[layers]]\ntype = "residual"\nfrom = "h"\n
[[layers]]\nunits = 2\n""",
    "act": """inputs = 3\nloss = "mse"\n[[layers]]\nunits = 4\n[[layers]]\ntype = "activation"
activation = "tanh"\n[[layers]]\nunits = 2\n""",
    "wd": """inputs = 3\nloss = "cross_entropy"\n[[layers]]\nunits = 4\nactivation = "tanh"\n
[[layers]]\nunits = 3\nactivation = "softmax"\n[training]\nweight_decay = 0.01\n""",
}


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("specs")
    found = {}
    for key, text in SPECS.items():
        path = folder / f"{key}.toml"
        path.write_text(text)
        found[key] = load_spec(path)
    return found


def decide(claim, network):
    """The decision in symbp's own notation (the claim parsed as written)."""
    return verify_parsed(parse_claim(claim), network)


G = r"\frac{\partial \ell}{\partial \hat{x}^{(2)}}"  # layer norm's dl/dxhat
LN_INPUT = (r"\frac{\partial \ell}{\partial a^{(1)}} = \frac{1}{\sqrt{\sigma^{2(2)} + \epsilon}} "
            rf"({G} - \frac{{1}}{{n_2}} \mathbf{{1}}^T {G} - \frac{{1}}{{n_2}} \hat{{x}}^{{(2)}} "
            rf"(\hat{{x}}^{{(2)}})^T {G})")
GB = r"\frac{\partial L}{\partial \hat{X}^{(2)}}"  # batch norm's dL/dXhat (B x n)
BN_INPUT = (r"\frac{\partial L}{\partial A^{(1)}} = \frac{1}{\sqrt{\sigma^{2(2)} + \epsilon}} "
            rf"\odot ({GB} - \frac{{1}}{{B}} \mathbf{{1}}^T {GB} - \frac{{1}}{{B}} \hat{{X}}^{{(2)}} "
            rf"\odot (\mathbf{{1}}^T (\hat{{X}}^{{(2)}} \odot {GB})))")

CORRECT = [
    # layer norm (Ba, Kiros, Hinton 2016), per sample
    ("ln", r"\frac{\partial \ell}{\partial \beta^{(2)}} = \frac{\partial \ell}{\partial a^{(2)}}"),
    ("ln", r"\frac{\partial \ell}{\partial \gamma^{(2)}} = \frac{\partial \ell}{\partial a^{(2)}} "
           r"\odot \hat{x}^{(2)}"),
    ("ln", rf"{G} = \gamma^{{(2)}} \odot \frac{{\partial \ell}}{{\partial a^{{(2)}}}}"),
    ("ln", LN_INPUT),
    # batch norm (Ioffe & Szegedy 2015), for the batch
    ("bn", r"\frac{\partial L}{\partial \beta^{(2)}} = (\frac{\partial L}{\partial A^{(2)}})^T "
           r"\mathbf{1}"),
    ("bn", r"\frac{\partial L}{\partial \gamma^{(2)}} = (\hat{X}^{(2)} \odot "
           r"\frac{\partial L}{\partial A^{(2)}})^T \mathbf{1}"),
    ("bn", rf"{GB} = \frac{{\partial L}}{{\partial A^{{(2)}}}} \odot \gamma^{{(2)}}"),
    ("bn", BN_INPUT),
    # inverted dropout (Srivastava et al. 2014, scaled at training time)
    ("drop", r"\frac{\partial \ell}{\partial a^{(1)}} = \frac{1}{1-p} m^{(2)} \odot "
             r"\frac{\partial \ell}{\partial a^{(2)}}"),
    ("drop", r"\delta^{(1)} = (\frac{1}{1-p} m^{(2)} \odot (W^{(3)})^T \delta^{(3)}) "
             r"\odot f'(z^{(1)})"),
    # a residual block (He et al. 2016): the skip's gradient adds to the block's
    ("res", r"\frac{\partial \ell}{\partial a^{(1)}} = (W^{(2)})^T \delta^{(2)} + "
            r"\frac{\partial \ell}{\partial a^{(3)}}"),
    ("res", r"\frac{\partial \ell}{\partial a^{(2)}} = \frac{\partial \ell}{\partial a^{(3)}}"),
    # an activation layer: a^{(2)} = tanh(a^{(1)})
    ("act", r"\frac{\partial \ell}{\partial a^{(1)}} = \frac{\partial \ell}{\partial a^{(2)}} "
            r"\odot (1 - (a^{(2)})^2)"),
    # weight decay (Goodfellow et al. §7.1.1): lambda W on the weights only
    ("wd", r"\frac{\partial L}{\partial W^{(l)}} = (\Delta^{(l)})^T A^{(l-1)} + \lambda W^{(l)}"),
    ("wd", r"\frac{\partial \ell}{\partial W^{(l)}} = \delta^{(l)} (a^{(l-1)})^T"),  # l's, no R
    ("wd", r"\frac{\partial J}{\partial W^{(l)}} = \delta^{(l)} (a^{(l-1)})^T + \lambda W^{(l)}"),
    ("wd", r"\frac{\partial L}{\partial b^{(l)}} = (\Delta^{(l)})^T \mathbf{1}"),
    ("wd", r"\frac{\partial L}{\partial b^{(l)}} = \mathbf{1}^T \Delta^{(l)}"),  # NumPy's sum(0)
    ("bn", r"\frac{\partial L}{\partial \beta^{(2)}} = \mathbf{1}^T "
           r"\frac{\partial L}{\partial A^{(2)}}"),
]


@pytest.mark.parametrize("key, claim", CORRECT)
def test_correct_claims_about_the_ops(key, claim, networks):
    verdict = decide(claim, networks[key])
    assert verdict.verdict == "correct", str(verdict)


# (network, wrong claim, words of the likely mistake, the corrected claim)
MISTAKES = [
    # batch norm / layer norm: a missing mu or sigma^2 path, Bessel, the wrong axis
    ("ln", LN_INPUT.replace(rf" - \frac{{1}}{{n_2}} \mathbf{{1}}^T {G}", ""),
     ["a missing μ path in the layer_norm", r"\mu^{(2)}"], LN_INPUT),
    ("ln", LN_INPUT.replace(rf" - \frac{{1}}{{n_2}} \hat{{x}}^{{(2)}} (\hat{{x}}^{{(2)}})^T {G}",
                            ""),
     ["a missing σ² path in the layer_norm", r"\sigma^{2(2)}"], LN_INPUT),
    ("ln", LN_INPUT.replace(r"- \frac{1}{n_2} \hat{x}", r"- \frac{1}{n_2 - 1} \hat{x}"),
     ["Bessel's n-1 where the biased variance is used"], LN_INPUT),
    ("bn", BN_INPUT.replace(rf" - \frac{{1}}{{B}} \mathbf{{1}}^T {GB}", ""),
     ["a missing μ path in the batch_norm"], BN_INPUT),
    ("bn", BN_INPUT.replace(r"- \frac{1}{B} \hat{X}", r"- \frac{1}{B - 1} \hat{X}"),
     ["Bessel's n-1"], BN_INPUT),
    ("bn", BN_INPUT.replace(rf"\frac{{1}}{{B}} \mathbf{{1}}^T {GB}",
                            rf"\frac{{1}}{{n_2}} {GB} \mathbf{{1}}"),
     ["the mean over the wrong axis: batch norm averages each feature over the B samples"],
     BN_INPUT),
    ("ln", LN_INPUT.replace(r"\sigma^{2(2)} + \epsilon", r"\sigma^{2(2)}"),
     [r"the normalisation's \epsilon is missing"], LN_INPUT),
    ("ln", r"\frac{\partial \ell}{\partial \gamma^{(2)}} = \frac{\partial \ell}{\partial a^{(2)}}",
     [r"a missing factor \hat{x}^{(2)}"],
     r"\frac{\partial \ell}{\partial \gamma^{(2)}} = \frac{\partial \ell}{\partial a^{(2)}} "
     r"\odot \hat{x}^{(2)}"),
    # a residual's missing identity path
    ("res", r"\frac{\partial \ell}{\partial a^{(1)}} = (W^{(2)})^T \delta^{(2)}",
     ["a residual's missing identity path: layer 3 adds a^{(1)}"],
     r"\frac{\partial \ell}{\partial a^{(1)}} = (W^{(2)})^T \delta^{(2)} + "
     r"\frac{\partial \ell}{\partial a^{(3)}}"),
    ("res", r"\delta^{(1)} = ((W^{(2)})^T \delta^{(2)}) \odot f'(z^{(1)})",
     ["a residual's missing identity path"],
     r"\delta^{(1)} = ((W^{(2)})^T \delta^{(2)} + \frac{\partial \ell}{\partial a^{(3)}}) "
     r"\odot f'(z^{(1)})"),
    # the norm's input where its normalised input belongs
    ("bn", r"\frac{\partial L}{\partial \gamma^{(2)}} = (\frac{\partial L}{\partial A^{(2)}} "
           r"\odot A^{(1)})^T \mathbf{1}",
     [r"the unnormalised input A^{(1)} where the normalised \hat{X}^{(2)} belongs"],
     r"\frac{\partial L}{\partial \gamma^{(2)}} = (\frac{\partial L}{\partial A^{(2)}} "
     r"\odot \hat{X}^{(2)})^T \mathbf{1}"),
    # dropout's missing 1/(1 - p)
    ("drop", r"\frac{\partial \ell}{\partial a^{(1)}} = m^{(2)} \odot "
             r"\frac{\partial \ell}{\partial a^{(2)}}",
     ["dropout's missing 1/(1-p)"],
     r"\frac{\partial \ell}{\partial a^{(1)}} = \frac{m^{(2)}}{1-p} \odot "
     r"\frac{\partial \ell}{\partial a^{(2)}}"),
    ("drop", r"\delta^{(1)} = (m^{(2)} \odot (W^{(3)})^T \delta^{(3)}) \odot f'(z^{(1)})",
     ["dropout's missing 1/(1-p)"],
     r"\delta^{(1)} = (\frac{1}{1-p} m^{(2)} \odot (W^{(3)})^T \delta^{(3)}) \odot f'(z^{(1)})"),
    # the mask left out: every random point drops a unit, even at rate 0.1 and width 2
    ("drop1", r"\frac{\partial \ell}{\partial a^{(1)}} = \frac{1}{1-p} "
              r"\frac{\partial \ell}{\partial a^{(2)}}",
     ["a missing factor m^{(2)}"],
     r"\frac{\partial \ell}{\partial a^{(1)}} = \frac{1}{1-p} m^{(2)} \odot "
     r"\frac{\partial \ell}{\partial a^{(2)}}"),
    # weight decay: missing, and on the biases
    ("wd", r"\frac{\partial L}{\partial W^{(l)}} = (\Delta^{(l)})^T A^{(l-1)}",
     ["the weight-decay term is missing"],
     r"\frac{\partial L}{\partial W^{(l)}} = (\Delta^{(l)})^T A^{(l-1)} + \lambda W^{(l)}"),
    ("wd", r"\frac{\partial \ell}{\partial W^{(l)}} = \delta^{(l)} (a^{(l-1)})^T + "
           r"\lambda W^{(l)}", ["weight decay in a sample's loss"],
     r"\frac{\partial \ell}{\partial W^{(l)}} = \delta^{(l)} (a^{(l-1)})^T"),
    ("wd", r"\frac{\partial J}{\partial W^{(l)}} = \delta^{(l)} (a^{(l-1)})^T",
     ["the weight-decay term is missing"],
     r"\frac{\partial J}{\partial W^{(l)}} = \delta^{(l)} (a^{(l-1)})^T + \lambda W^{(l)}"),
    ("wd", r"\frac{\partial L}{\partial b^{(l)}} = (\Delta^{(l)})^T \mathbf{1} + \lambda b^{(l)}",
     ["weight decay on the biases"],
     r"\frac{\partial L}{\partial b^{(l)}} = (\Delta^{(l)})^T \mathbf{1}"),
]


@pytest.mark.parametrize("key, wrong, named, fixed", MISTAKES)
def test_the_ops_mistakes_are_named(key, wrong, named, fixed, networks):
    network = networks[key]
    verdict = decide(wrong, network)
    assert verdict.verdict == "incorrect", str(verdict)
    assert all(text in (verdict.likely_mistake or "") for text in named), str(verdict)
    assert decide(fixed, network).ok, str(decide(fixed, network))


def test_the_correct_formula_of_an_op_is_the_printed_one(networks):
    """For networks with other ops the verdict shows the row symbp derive prints."""
    verdict = decide(r"\frac{\partial \ell}{\partial \gamma^{(2)}} = \hat{x}^{(2)}", networks["ln"])
    assert verdict.correct.startswith(r"\frac{\partial \ell}{\partial \gamma^{(2)}} = ")
    assert r"\hat{x}^{(2)}" in verdict.correct


def test_a_per_sample_claim_on_batch_norm_is_about_one_sample_of_a_batch(networks):
    """Where batch norm couples the rows, the sample's gradients are read off a batch
    (sample 0, the others' losses at their minimum), as symbp derive prints them."""
    network = networks["bn"]
    beta = r"\frac{\partial \ell}{\partial \beta^{(2)}} = \frac{\partial \ell}{\partial a^{(2)}}"
    assert decide(beta, network).ok
    gamma = decide(beta.replace(r"\beta", r"\gamma"), network)
    assert gamma.verdict == "incorrect" and r"a missing factor \hat{x}^{(2)}" in gamma.likely_mistake
    assert decide(r"\delta^{(3)} = a^{(3)} - y", network).ok
    softmax_layer = networks["bnact"]  # the output's softmax an activation layer
    assert decide(beta, softmax_layer).ok
    assert decide(r"\delta^{(3)} = a^{(4)} - y", softmax_layer).ok


def test_a_quantity_a_layer_does_not_have_is_named(networks):
    verdict = decide(r"\frac{\partial \ell}{\partial a^{(1)}} = (W^{(2)})^T \delta^{(2)}",
                     networks["ln"])
    assert verdict.verdict == "incorrect"
    assert "layer 2 is a layer_norm layer, which has no W" in verdict.shape
    target = decide(r"\frac{\partial \ell}{\partial \gamma^{(2)}} = m^{(2)}", networks["drop"])
    assert target.verdict == "cannot parse"
    assert "layer 2 is a dropout layer, which has no gamma" in target.summary


def test_the_ops_claims_read_through_the_default_convention(networks):
    """verify(), as the command line calls it, gives the same verdicts."""
    for key, claim in CORRECT:
        if "n_2" not in claim:
            assert verify(claim, networks[key]).ok, claim


PIECES = [r"\mu^{(2)}", r"\sigma^{2(2)}", r"\hat{x}^{(2)}", r"\gamma^{(2)}", r"\beta^{(2)}",
          r"m^{(2)}", "p", r"\lambda", r"\epsilon", "n_2", r"\frac{\partial \ell}{\partial a^{(2)}}",
          r"\frac{\partial \ell}{\partial \hat{x}^{(2)}}", r"\delta^{(3)}", r"W^{(3)}", "a^{(1)}",
          r"\mathbf{1}", "^T", r"\odot", "+", "-", "(", ")", r"\sqrt{", "}", r"\frac{1}{", "2",
          r"\hat{X}^{(2)}", r"\frac{\partial L}{\partial A^{(2)}}", "B", r"\sum_i"]


EXAMPLES = 40


@pytest.mark.parametrize("key", ["ln", "drop", "bn", "res"])
def test_every_claim_about_an_op_ends_in_a_verdict(key, networks):
    """Random claims from the ops' pieces: a verdict (or a usage error naming the field),
    never a crash."""
    import json

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from symbp.verify import VERDICTS

    rhs = st.lists(st.sampled_from(PIECES), min_size=1, max_size=8).map(" ".join)
    lhs = st.sampled_from([r"\frac{\partial \ell}{\partial a^{(1)}}",
                           r"\frac{\partial L}{\partial A^{(1)}}",
                           r"\frac{\partial \ell}{\partial \gamma^{(2)}}", r"\delta^{(1)}"])

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(lhs, rhs)
    def check(left, right):
        try:
            verdict = verify(f"{left} = {right}", networks[key])
        except SymbpError as error:
            assert "\n" not in str(error)
            return
        assert verdict.verdict in VERDICTS
        json.dumps(verdict.to_dict())
        str(verdict)

    check()


def _printed_rows(network):
    from symbp.engine.derivation import derive_graph
    from symbp.printing.sections import Document

    document = Document(derive_graph(network))
    for section in (document.backward_pass(), document.backward_sample()):
        for row in section.rows:
            for number, (lhs, relation, rhs) in enumerate(row.lines):
                yield number, f"{lhs} {relation} {rhs}"


EXAMPLES_DIR = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("name", ["digits_layernorm.toml", "digits_resnet.toml", "ln", "bn",
                                  "drop", "res", "act", "wd"])
def test_every_backward_row_symbp_derive_prints_for_the_ops_verifies(name, networks):
    """The round trip for networks with other ops: each matrix row of the backward pass (the
    batch and one sample) is correct; no row, in any form, is called incorrect."""
    network = load_spec(EXAMPLES_DIR / name) if name.endswith(".toml") else networks[name]
    verdicts = [(number, claim, verify(claim, network)) for number, claim in
                _printed_rows(network)]
    assert len(verdicts) >= 6
    for number, _claim, verdict in verdicts:
        assert verdict.verdict != "incorrect", str(verdict)
        if number == 0:
            assert verdict.ok, str(verdict)
