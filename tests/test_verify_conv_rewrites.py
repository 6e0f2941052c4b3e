"""The conv mistakes as rewrites of a claim (symbp.verify.conv_rewrites).

A mistake is named only when its rewritten claim holds against the engine's gradients
(``TensorCheck.holds``), never from the claim's form: a stub check that holds nothing names
nothing. Each family's rewrite of a right claim is a wrong claim (the rewrites change what
they claim to change), and each family's rewrite of the matching wrong claim is right; the
general layer's geometry becomes the letters K, S, P where its layers differ, so one variant
holds at every layer.
"""

import tomllib
from pathlib import Path

import pytest
from derivation_rows import printed_rows

from symbp.claims import ClaimParseError, parse_claim
from symbp.errors import SymbpError
from symbp.spec import load_spec, network_from_dict
from symbp.verify import conv_rewrites as R
from symbp.verify.tensors import TensorCheck

CONV_VALID = """
name = "conv_valid"
inputs = [1, 6, 6]
loss = "cross_entropy"
[[layers]]
type = "conv2d"
channels = 2
kernel = 3
activation = "tanh"
[[layers]]
type = "conv2d"
channels = 3
kernel = 3
activation = "relu"
[[layers]]
units = 3
activation = "softmax"
"""

# the first convolution padded, the second not: the general layer's P is a letter
MIXED_PADDING = """
name = "mixed_padding"
inputs = [2, 5, 5]
loss = "cross_entropy"
[[layers]]
type = "conv2d"
channels = 2
kernel = 3
padding = 1
activation = "tanh"
[[layers]]
type = "conv2d"
channels = 2
kernel = 3
activation = "relu"
[[layers]]
units = 3
activation = "softmax"
"""

POOLS = """
name = "pools"
inputs = [1, 4, 4]
loss = "cross_entropy"
[[layers]]
type = "conv2d"
channels = 2
kernel = 3
padding = 1
activation = "relu"
[[layers]]
type = "{pool}"
kernel = 2
[[layers]]
type = "flatten"
[[layers]]
units = 3
activation = "softmax"
"""


SOURCES = Path(__file__).resolve().parent / "verify_sources"
RIGHT = [entry for entry in tomllib.loads((SOURCES / "conv_corpus.toml").read_text(
    encoding="utf-8"))["claim"] if entry["verdict"] == "correct"]


def _check(text: str, spec: str):
    claim = parse_claim(text)
    return claim, TensorCheck(claim, network_from_dict(tomllib.loads(spec)))


class _Stub:
    """A check that holds every variant, or none."""

    def __init__(self, check, answer: bool):
        self.network, self.layers, self.answer = check.network, check.layers, answer
        self.asked = 0

    def holds(self, claim) -> bool:
        self.asked += 1
        return self.answer


WRONG_INPUT_GRADIENT = (r"\frac{\partial \ell}{\partial a^{(1)}_{c,i,j}} = \sum_{c'} \sum_{p=0}^{2}"
                        r" \sum_{q=0}^{2} \delta^{(2)}_{c',i + p,j + q} W^{(2)}_{c',c,p,q}")
RIGHT_INPUT_GRADIENT = WRONG_INPUT_GRADIENT.replace("i + p,j + q", "i - p,j - q")


def test_nothing_is_named_unless_its_variant_holds():
    claim, check = _check(WRONG_INPUT_GRADIENT, CONV_VALID)
    nothing = _Stub(check, False)
    assert R.likely_conv_mistakes(nothing, claim) == []
    assert nothing.asked > 0
    everything = _Stub(check, True)
    named = R.likely_conv_mistakes(everything, claim)
    assert len(named) == min(R.MAX_FOUND, len({d for d, _ in R.variants(claim, check)}))


def test_the_unflipped_read_is_named_and_its_variant_is_the_flipped_read():
    claim, check = _check(WRONG_INPUT_GRADIENT, CONV_VALID)
    assert not check.holds(claim)
    named = R.likely_conv_mistakes(check, claim)
    assert named and named[0].startswith(R.UNFLIPPED), named
    assert check.holds(parse_claim(RIGHT_INPUT_GRADIENT))
    holding = [d for d, v in R.variants(claim, check) if check.holds(v)]
    assert holding and all(d.startswith(R.UNFLIPPED) for d in holding), holding


@pytest.mark.parametrize("text, spec", [
    (RIGHT_INPUT_GRADIENT, CONV_VALID),
    (r"\frac{\partial \ell}{\partial a^{(1)}_{c}} = \sum_{c'} \widetilde{\delta}^{(2)}_{c'} "
     r"\star \operatorname{rot}_{180^{\circ}}\left(W^{(2)}_{c',c}\right)", CONV_VALID),
    (r"\frac{\partial \ell}{\partial W^{(l)}_{c,c',p,q}} = \sum_{i} \sum_{j} \delta^{(l)}_{c,i,j} "
     r"a^{(l-1)}_{c',i + p - P,j + q - P}", MIXED_PADDING),
    (r"\frac{\partial \ell}{\partial a^{(1)}_{c,i,j}} = \frac{1}{4} \frac{\partial \ell}"
     r"{\partial a^{(2)}_{c,\lfloor i/2 \rfloor,\lfloor j/2 \rfloor}}",
     POOLS.format(pool="avg_pool2d")),
], ids=["input-gradient", "full-correlation", "kernel-gradient-letters", "avg-pool"])
def test_a_right_claim_rewritten_is_wrong(text, spec):
    claim, check = _check(text, spec)
    assert check.holds(claim)
    tried = list(R.variants(claim, check))
    assert tried
    assert not [d for d, v in tried if check.holds(v)]


@pytest.mark.parametrize("text, spec, mistake", [
    # the padding's offset, P = 1 at layer 1 and 0 at layer 2: the letter P in the variant
    (r"\frac{\partial \ell}{\partial W^{(l)}_{c,c',p,q}} = \sum_{i} \sum_{j} \delta^{(l)}_{c,i,j} "
     r"a^{(l-1)}_{c',i + p,j + q}", MIXED_PADDING, R.BORDER),
    (r"\frac{\partial \ell}{\partial a^{(1)}_{c}} = \sum_{c'} \delta^{(2)}_{c'} \star "
     r"\operatorname{rot}_{180^{\circ}}\left(W^{(2)}_{c',c}\right)", MIXED_PADDING, R.BORDER),
    (r"\frac{\partial \ell}{\partial a^{(1)}_{c,i,j}} = \frac{\partial \ell}{\partial a^{(2)}_{c,"
     r"\lfloor i/2 \rfloor,\lfloor j/2 \rfloor}}", POOLS.format(pool="max_pool2d"), R.ARGMAX),
    (r"\frac{\partial \ell}{\partial a^{(1)}_{c,i,j}} = \frac{\partial \ell}{\partial a^{(2)}_{c,"
     r"\lfloor i/2 \rfloor,\lfloor j/2 \rfloor}}", POOLS.format(pool="avg_pool2d"), R.AVERAGE),
    (r"\frac{\partial L}{\partial a^{(2)}} = \frac{\partial L}{\partial a^{(3)}}",
     POOLS.format(pool="max_pool2d"), R.UNRESHAPED),
    (WRONG_INPUT_GRADIENT.replace("i + p,j + q", "i - p,j - q").replace("c',c,p,q", "c,c',p,q"),
     CONV_VALID, R.CHANNELS),
], ids=["padding-offset-letters", "valid-correlation", "max-pool", "avg-pool", "flatten",
        "channels"])
def test_a_wrong_claim_is_named_by_its_family(text, spec, mistake):
    claim, check = _check(text, spec)
    assert not check.holds(claim)
    named = R.likely_conv_mistakes(check, claim)
    assert any(description.startswith(mistake) for description in named), named


def test_the_general_layers_geometry_is_a_letter_where_its_layers_differ():
    claim, check = _check(r"\frac{\partial \ell}{\partial W^{(l)}_{c,c',p,q}} = \sum_{i} \sum_{j} "
                          r"\delta^{(l)}_{c,i,j} a^{(l-1)}_{c',i + p,j + q}", MIXED_PADDING)
    layers = R._Layers(check, claim)
    ref = claim.lhs.arg.target.layer
    assert layers.resolved(ref) == [1, 2]
    assert R._index_text(layers.geometry(ref, "P")) == "P"
    assert R._index_text(layers.geometry(ref, "K")) == "3"


@pytest.mark.parametrize("entry", RIGHT, ids=[entry["id"] for entry in RIGHT])
def test_no_rewrite_of_a_right_source_claim_holds(entry):
    """A rewrite changes what it says it changes: none of a right claim's variants is right
    too (an equivalent variant, e.g. delta padded by K - 1 - P rewritten as
    widetilde delta, is not tried)."""
    claim = parse_claim(entry["claim"])
    check = TensorCheck(claim, load_spec(SOURCES / entry["spec"]))
    assert not [d for d, v in R.variants(claim, check) if check.holds(v)]


GEOMETRY_SPEC = """
name = "geometry"
inputs = [2, {size}, {size}]
loss = "cross_entropy"
[[layers]]
type = "conv2d"
channels = 2
kernel = 3
padding = 1
activation = "tanh"
[[layers]]
type = "conv2d"
channels = 3
kernel = {K}
stride = {S}
padding = {P}
activation = "relu"
[[layers]]
units = 2
activation = "softmax"
"""


def _input_gradient(K, S, P, out, flip="-", offset=True, stride=True):
    """The input gradient of layer 2 in the printed general form, with the numbers."""
    def position(i, p):
        e = f"{i} {flip} {p}" + (f" + {P}" if offset and P else "")
        return f"({e})/{S}" if stride and S > 1 else e
    bracket = "".join(rf"\left[{position(i, p)} \in \{{0, \dots, {out - 1}\}}\right] "
                      for i, p in (("i", "p"), ("j", "q")))
    return (rf"\frac{{\partial \ell}}{{\partial a^{{(1)}}_{{c,i,j}}}} = \sum_{{c'}} "
            rf"\sum_{{p=0}}^{{{K - 1}}} \sum_{{q=0}}^{{{K - 1}}} {bracket}"
            rf"\delta^{{(2)}}_{{c',{position('i', 'p')},{position('j', 'q')}}} W^{{(2)}}_{{c',c,p,q}}")


@pytest.mark.parametrize("K, S, P, size", [(3, 1, 0, 5), (3, 1, 1, 5), (3, 2, 1, 6), (2, 2, 0, 6),
                                           (3, 2, 0, 7)])
def test_each_mistake_is_named_at_each_geometry(K, S, P, size):
    """The printed input gradient of a (K, S, P) convolution is right; read unflipped, without
    the padding's offset or without the stride it is wrong, and the search names that."""
    spec = GEOMETRY_SPEC.format(K=K, S=S, P=P, size=size)
    out = (size + 2 * P - K) // S + 1
    claim, check = _check(_input_gradient(K, S, P, out), spec)
    assert check.holds(claim)
    wrong = {R.UNFLIPPED: _input_gradient(K, S, P, out, flip="+")}
    if P:
        wrong[R.BORDER] = _input_gradient(K, S, P, out, offset=False)
    if S > 1:
        wrong[R.STRIDE] = _input_gradient(K, S, P, out, stride=False)
    for mistake, text in wrong.items():
        claim, check = _check(text, spec)
        assert not check.holds(claim), text
        named = R.likely_conv_mistakes(check, claim)
        assert any(d.startswith(mistake) for d in named), (text, named)


def _kernel_gradient(S, P, size, flip="+", offset=True, stride=True):
    """The kernel gradient of layer 2 in the printed general form, with the numbers."""
    def position(i, p):
        return (f"{S}{i}" if stride and S > 1 else i) + f" {flip} {p}" + (
            f" - {P}" if offset and P else "")
    bracket = "".join(rf"\left[0 \le {position(i, p)} \le {size - 1}\right] "
                      for i, p in (("i", "p"), ("j", "q")))
    return (rf"\frac{{\partial \ell}}{{\partial W^{{(2)}}_{{c,c',p,q}}}} = \sum_{{i}} \sum_{{j}} "
            rf"{bracket}\delta^{{(2)}}_{{c,i,j}} a^{{(1)}}_{{c',{position('i', 'p')},"
            rf"{position('j', 'q')}}}")


@pytest.mark.parametrize("K, S, P, size", [(3, 1, 1, 5), (3, 2, 1, 6), (3, 2, 0, 7)])
def test_each_kernel_gradient_mistake_is_named_at_each_geometry(K, S, P, size):
    spec = GEOMETRY_SPEC.format(K=K, S=S, P=P, size=size)
    claim, check = _check(_kernel_gradient(S, P, size), spec)
    assert check.holds(claim)
    wrong = {R.OVERFLIPPED: _kernel_gradient(S, P, size, flip="-")}
    if P:
        wrong[R.BORDER] = _kernel_gradient(S, P, size, offset=False)
    if S > 1:
        wrong[R.STRIDE] = _kernel_gradient(S, P, size, stride=False)
    for mistake, text in wrong.items():
        claim, check = _check(text, spec)
        assert not check.holds(claim), text
        named = R.likely_conv_mistakes(check, claim)
        assert any(d.startswith(mistake) for d in named), (text, named)


def _printed_rows(network):
    """The rows ``symbp derive --format latex`` prints for ``network`` (no cases rows)."""
    return [row for _, row in printed_rows(network) if "\\begin{cases}" not in row]


@pytest.mark.parametrize("spec", ["../../examples/digits_cnn.toml", "conv_1d_strided.toml",
                                  "conv_overlap_pool.toml"])
def test_no_rewrite_of_a_printed_row_holds(spec):
    """Every backward row symbp prints for a CNN is right; none of its rewrites is (a rewrite
    that changes nothing, e.g. the padding's offset where the claim reads no delta, is not
    tried)."""
    network = load_spec(SOURCES / spec)
    checked = 0
    for row in dict.fromkeys(_printed_rows(network)):
        try:
            claim = parse_claim(row)
            check = TensorCheck(claim, network)
            if not check.holds(claim):
                continue  # a forward row, the update step: not a claim of a gradient
        except (ClaimParseError, SymbpError):
            continue
        checked += 1
        assert not [d for d, v in R.variants(claim, check) if check.holds(v)], row
    assert checked >= 30


def test_index_items_are_rewritten_and_simplified_as_the_parser_writes_them():
    from fractions import Fraction

    from symbp.claims import nodes as N
    from symbp.verify import index_rewrites as X

    i, p = N.Letter("i"), N.Letter("p")
    # a plain letter stays a str, a digit a str; a changed item is summed out
    assert X.substitute("i", {"p": N.Neg(p)}) == "i"
    assert X.substitute("p", {"p": N.Neg(p)}) == N.Neg(p)
    assert X.as_item(N.Sub(i, N.Neg(p))) == N.Add(i, p)
    assert X.as_item(N.Add(N.Sub(i, p), p)) == "i"
    assert X.as_item(N.Div(N.Sub(i, p), N.Num(Fraction(2)))) == N.Sub(
        N.Div(i, N.Num(Fraction(2))), N.Div(p, N.Num(Fraction(2))))
    floor = N.Floor(N.Div(i, N.Num(Fraction(2))))
    assert X.as_item(floor) == floor  # not affine: kept as written
    assert X.letter_sign(N.Sub(N.Num(Fraction(2)), p)) == -1 and X.letter_sign("p") == 1
    # a read and a bracket rewritten together; the skipped read kept
    claim = parse_claim(r"\frac{\partial \ell}{\partial a^{(1)}_{c,i}} = \sum_{p} "
                        r"\left[0 \le i + p \le 3\right] \delta^{(2)}_{c,i + p} W^{(2)}_{c,c,p}")
    flipped = X.map_reads(claim.rhs, {"p": N.Neg(p)},
                          skip=lambda read: getattr(read.arg, "name", "") == "W")
    assert X.sign_in_reads(claim.rhs, ["p"]) == 1
    assert X.sign_in_reads(flipped, ["p"], skip=lambda r: r.arg.name == "W") == -1
    reads = [n for _, n in N.walk(flipped) if isinstance(n, N.Indexed)]
    assert [r.indices[-1] for r in reads] == [N.Sub(i, p), "p"]
