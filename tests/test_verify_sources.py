"""``symbp verify`` on backpropagation equations transcribed from the standard sources.

The corpus (tests/verify_sources/corpus.toml) holds claims as Nielsen, Bishop,
Goodfellow et al., Ng's courses and the CS229 notes, the CS231n notes, Wikipedia,
d2l.ai and UFLDL print them, in their own notation, each with its source cited:
about half are right, the others carry one realistic mistake (a missing transpose,
a bias in the recursion, a wrong layer index, sigma' taken at a, a missing 1/m, a
sign slip, ...). Each is checked with ``symbp.verify.verify(claim, spec, convention=NAME,
lets=...)``: the verdict, for a wrong claim the mistake the explanation names, for a claim
read in a source's convention that the verdict names the convention and the letters it
mapped (UFLDL's shifted layers, Ng's m as a sum's limit, Ng's bare a only where one is written),
that the first mistake named is the one in the convention the user named, for a letter symbp's
own notation does not define (h, o, t, m, N without ``--convention``) that the reply names it
and the way to declare it; and one claim of each
verdict and convention through the command line,
``symbp verify SPEC --convention NAME --json``, for the same verdict and its exit status.
Beyond the corpus: a scalar identity's mistake is named by the rewritten claim that holds,
and a layer identity (``f'(z^{(l)}) = ...``) is checked at each layer it names.
"""

import contextlib
import io
import json
import re
import tomllib
from pathlib import Path

import pytest

from symbp.cli import main
from symbp.verify import verify

HERE = Path(__file__).resolve().parent / "verify_sources"
CORPUS = tomllib.loads((HERE / "corpus.toml").read_text(encoding="utf-8"))["claim"]
VERDICTS = ("correct", "incorrect")
EXIT = {"correct": 0, "incorrect": 1, "cannot parse": 2}
# the report's explanation: every field but the formulas it echoes (the claim itself,
# the correct formula), so that a mistake is named, not merely quoted
FORMULAS = {"claim", "lhs", "correct", "correct_at_layer", "difference", "counterexample",
            "layers", "verdict"}


def _run(entry) -> dict:
    spec = HERE / entry["spec"] if entry["spec"] else None  # none for a scalar identity
    verdict = verify(entry["claim"], spec, convention=entry["convention"] or None,
                     lets=tuple(entry.get("lets", ())))
    return verdict.to_dict()


def _text(value) -> str:
    """Every string in a JSON value, one per line."""
    if isinstance(value, dict):
        return "\n".join(_text(item) for item in value.values())
    if isinstance(value, list):
        return "\n".join(_text(item) for item in value)
    return str(value)


# the letters each preset maps (CONVENTIONS §1 has other meanings or none for them): where a
# claim uses one, the verdict's ``symbols`` says what it was read as
MAPPED = {"nielsen": ("w",), "bishop": ("a", "z", "t"), "goodfellow": ("a", "h"),
          "ng": ("dZ", "dz", "dW", "dA", "da", "db", "m"), "cs231n": ("N",), "d2l": ("h", "o"),
          "ioffe": ("y", "m")}
SOURCES = ("nielsen", "bishop", "goodfellow", "ng", "cs229", "cs231n", "wikipedia", "d2l", "ufldl",
           "ops")  # the id's prefix; ops: Ioffe & Szegedy, Ba et al., He et al., Srivastava et al.,
# and weight decay; other prefixes: scalar identities (gelu, logcosh), the issue's own examples


def test_the_corpus_is_cited_and_balanced():
    ids = [entry["id"] for entry in CORPUS]
    assert len(ids) == len(set(ids))
    assert len(CORPUS) >= 100
    verdicts = [entry["verdict"] for entry in CORPUS]
    assert set(verdicts) <= set(EXIT)
    assert min(verdicts.count(v) for v in VERDICTS) >= 0.4 * len(CORPUS)
    for source in SOURCES:  # every source with a right claim and a wrong one
        assert set(VERDICTS) <= {e["verdict"] for e in CORPUS if e["id"].startswith(source + "-")}, \
            source
    for entry in CORPUS:
        assert entry["source"], entry["id"]
        assert not entry["spec"] or (HERE / entry["spec"]).is_file(), entry["id"]
        if entry["verdict"] == "incorrect":
            assert entry["mistake"] and entry["note"], entry["id"]
        if entry["verdict"] == "cannot parse":  # a letter symbp does not define, no --convention
            assert entry["hint"] and not entry["convention"], entry["id"]


@pytest.mark.parametrize("entry", CORPUS, ids=[entry["id"] for entry in CORPUS])
def test_source_claim(entry):
    verdict = _run(entry)
    assert verdict["verdict"] == entry["verdict"], json.dumps(verdict, indent=1)
    if entry["verdict"] == "cannot parse":  # which letter, what it means, how to declare it
        assert entry["hint"] in verdict["summary"], verdict["summary"]
    if entry["verdict"] == "incorrect":
        explanation = _text({k: v for k, v in verdict.items() if k not in FORMULAS})
        assert entry["mistake"] in explanation, json.dumps(verdict, indent=1)
        assert entry.get("likely", "") in verdict.get("likely_mistake", ""), verdict
    symbols = verdict.get("symbols", {})
    assert entry.get("symbols", {}).items() <= symbols.items(), symbols
    if entry["convention"]:
        assert entry["convention"].lower() in verdict.get("convention", "").lower(), verdict
        for letter in MAPPED.get(entry["convention"], ()):
            if re.search(rf"(?<![A-Za-z\\]){letter}(?![A-Za-z])", entry["claim"]):
                assert letter in symbols, (letter, symbols)
        if entry["convention"] == "ng" and not re.search(r"(?<![A-Za-z\\])a(?![A-Za-z^])",
                                                         entry["claim"]):
            assert "a" not in symbols, symbols  # Ng's bare a is the output; a^{[l]} is a^{(l)}


def _first_of_each_convention():
    seen, picked = set(), []
    for entry in CORPUS:
        key = (entry["convention"], entry["verdict"])
        if entry["spec"] and key not in seen:
            seen.add(key)
            picked.append(entry)
    return picked


@pytest.mark.parametrize("entry", _first_of_each_convention(),
                         ids=[entry["id"] for entry in _first_of_each_convention()])
def test_the_command_line_agrees(entry):
    argv = ["verify", str(HERE / entry["spec"]), "--json", "--claim", entry["claim"]]
    if entry["convention"]:
        argv += ["--convention", entry["convention"]]
    for let in entry.get("lets", ()):
        argv += ["--let", let]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = main(argv)
    verdict = json.loads(out.getvalue())
    assert (verdict["verdict"], status) == (entry["verdict"], EXIT[entry["verdict"]]), verdict
    assert verdict.get("convention", "symbp") == (entry["convention"] or "symbp")


# Scalar identities beyond the corpus: each mistake is named only by the rewritten claim that
# agrees with sympy.diff of the left-hand side (the claims are hand-written wrong formulas).
@pytest.mark.parametrize("claim, mistake", [
    (r"\frac{d}{dz} \tanh(z^2) = 1 - \tanh^2(z^2)", "the chain rule's inner derivative"),
    (r"\frac{d}{dx} x \Phi(x) = \Phi(x)", r"the term x \frac{d}{dx} \Phi(x) is missing"),
    (r"\frac{d}{dx} \ln(1 + e^{x}) = \frac{1}{1 + e^{x}}", "e^{x} should be e^{-x}"),
    (r"\frac{d}{dz} \tanh(z) = 1 + \tanh^2(z)", "a sign slip in one term"),
])
def test_a_scalar_mistake_is_named_by_its_variant(claim, mistake):
    verdict = verify(claim)
    assert verdict.verdict == "incorrect" and mistake in "\n".join(verdict.mistakes), verdict


def test_a_layer_identity_is_checked_at_each_layer_it_names():
    spec = HERE / "ufldl_sigmoid.toml"
    right = verify(r"f'(z^{(l)}) = a^{(l)} \odot (1 - a^{(l)})", spec)
    assert right.ok and right.layers == [1, 2], right
    assert verify(r"f'(z^{(l)}) = 1 - (a^{(l)})^2", spec).verdict == "incorrect"  # tanh's
    alone = verify(r"f'(z^{(l)}) = a^{(l)} \odot (1 - a^{(l)})")
    assert alone.verdict == "cannot parse" and "network spec" in alone.summary
