"""``symbp verify`` on convolution, pooling and flatten gradients transcribed from the sources.

The corpus (tests/verify_sources/conv_corpus.toml) holds claims as Goodfellow et al. (§9.5,
eqs. 9.11-9.13), the CS231n notes and assignment code, Bouvrie's notes (2006), Jefkine (2016)
and LeCun et al. (1989) state them, each with its source cited and the mapping of the source's
letters to symbp's: about half are right, the others carry one realistic mistake (an unflipped
kernel, a kernel flipped once too often, 1-based and 0-based indices mixed, a missing border
term (a valid correlation where the full one belongs, the padding's offset left out), a
missing stride, the max-pool gradient sent to every entry of the window, overlapping windows
read as tiles, average pooling's missing 1/K^2, the flatten gradient unreshaped, the kernel's
channel axes swapped, an extra 1/B). Each is checked with ``symbp.verify.verify(claim,
spec)``: the verdict, and for a wrong claim that the report's explanation names the mistake;
one claim of each verdict also through the command line (``symbp verify SPEC --json``) for
its exit status.
"""

import contextlib
import io
import json
import tomllib
from pathlib import Path

import pytest
from test_verify_sources import FORMULAS, _text

from symbp.cli import main
from symbp.verify import verify

HERE = Path(__file__).resolve().parent / "verify_sources"
CORPUS = tomllib.loads((HERE / "conv_corpus.toml").read_text(encoding="utf-8"))["claim"]
VERDICTS = ("correct", "incorrect")
EXIT = {"correct": 0, "incorrect": 1}
SOURCES = ("goodfellow", "cs231n", "bouvrie", "jefkine", "lecun")  # the id's prefix
# the report's explanation: every field but the formulas it echoes, so that a mistake is
# named, not merely quoted


def test_the_corpus_is_cited_and_balanced():
    ids = [entry["id"] for entry in CORPUS]
    assert len(ids) == len(set(ids))
    assert len(CORPUS) >= 40
    verdicts = [entry["verdict"] for entry in CORPUS]
    assert set(verdicts) <= set(VERDICTS)
    assert min(verdicts.count(v) for v in VERDICTS) >= 0.4 * len(CORPUS)
    for source in SOURCES:  # every source with a right claim and a wrong one
        assert set(VERDICTS) <= {e["verdict"] for e in CORPUS if e["id"].startswith(source + "-")}, \
            source
    for entry in CORPUS:
        assert entry["source"] and entry["url"] and entry["mapping"], entry["id"]
        assert entry["id"].split("-")[0] in SOURCES, entry["id"]
        assert entry["spec"].startswith("conv_") and (HERE / entry["spec"]).is_file(), entry["id"]
        if entry["verdict"] == "incorrect":
            assert entry["mistake"] and entry["note"], entry["id"]


@pytest.mark.parametrize("entry", CORPUS, ids=[entry["id"] for entry in CORPUS])
def test_source_claim(entry):
    verdict = verify(entry["claim"], HERE / entry["spec"],
                     convention=entry["convention"] or None).to_dict()
    assert verdict["verdict"] == entry["verdict"], json.dumps(verdict, indent=1)
    if entry["verdict"] == "incorrect":
        explanation = _text({k: v for k, v in verdict.items() if k not in FORMULAS})
        assert entry["mistake"] in explanation, json.dumps(verdict, indent=1)


def _first_of_each_verdict():
    picked = {}
    for entry in CORPUS:
        picked.setdefault(entry["verdict"], entry)
    return list(picked.values())


@pytest.mark.parametrize("entry", _first_of_each_verdict(),
                         ids=[entry["id"] for entry in _first_of_each_verdict()])
def test_the_command_line_agrees(entry):
    argv = ["verify", str(HERE / entry["spec"]), "--json", "--claim", entry["claim"]]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = main(argv)
    verdict = json.loads(out.getvalue())
    assert (verdict["verdict"], status) == (entry["verdict"], EXIT[entry["verdict"]]), verdict
