"""Reliability of ``symbp verify``: every claim and claim file ends in a verdict or one error line.

The promise (CONVENTIONS §4) checked for each input, through ``symbp.cli.main``
exactly as the command line runs it: the exit status is 0 (correct), 1
(incorrect) or 2 (cannot parse, bad input); on 2 stderr holds exactly one line
``symbp: error: ...``; on 0 and 1 the verdict is printed and stderr is empty;
no traceback and no exception escapes (an exception inside verify would be the
command line's exit 3, ``symbp: internal error``, which fails here too).

The inputs are hypothesis-generated claims (tokens of the grammar, truncated
and mutated valid claims, deep nesting, huge numbers, unicode and control
characters, long strings) and claim files (math blocks opened, closed and
broken), plus the reproducers of issue 9 as fixed cases. No test here asserts a
time; the sizes are chosen so that the quadratic or exponential code they
replace would take minutes, not milliseconds.
"""

from __future__ import annotations

import contextlib
import io
import re
from datetime import timedelta

import pytest
from conftest import ISSUE_SPEC
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbp.cli import main
from symbp.errors import SymbpError
from symbp.verify import MAX_CLAIMS, read_claims, verify

SPEC_TEXT = ISSUE_SPEC

VALID = [
    r"\delta^{(l)} = ((W^{(l+1)})^T \delta^{(l+1)}) \odot f'(z^{(l)})",
    r"\delta^{(l)} = ((W^{(l+1)})^T \delta^{(l+1)} + b^{(l+1)}) \odot f'(z^{(l)})",
    r"\frac{\partial L}{\partial W^{(l)}} = \delta^{(l)} (a^{(l-1)})^T",
    r"\frac{\partial L}{\partial W^{(l)}} = \frac{1}{B} (\Delta^{(l)})^T A^{(l-1)}",
    r"\frac{\partial \ell}{\partial b^{(l)}} = \delta^{(l)}",
    r"\frac{\partial C}{\partial a^{(l)}} = (W^{(l+1)})^T \delta^{(l+1)}",
    r"\delta^{(L)} = a^{(L)} - y",
    r"\delta^{(1)} = ((W^{(2)})^T \delta^{(2)}) \odot (1 - (a^{(1)})^2)",
    r"\nabla_{b^{(2)}} L = \operatorname{softmax}(z^{(2)}) - y",
    r"\frac{d}{dz}\sigma(z) = \sigma(z)(1-\sigma(z))",
    r"\tanh'(z) = 1 - \tanh^2(z)",
    r"\frac{d}{dx}\log(1 + e^{x}) = \sigma(x)",
]
TOKENS = [
    r"\delta", r"\Delta", "W", "b", "z", "a", "x", "y", "A", "X", "Y", "Z", "B", "L", "l",
    "T", "f", "g", "e", "d", "C", "E", "J", "^", "_", "{", "}", "(", ")", "[", "]",
    r"\left(", r"\right)", r"\left[", r"\right]", r"\bigl(", r"\Bigr)", "+", "-", "=", "'",
    "/", "0", "1", "2", "12", "0.5", ".5", "99999999999999999999", r"\odot", r"\circ",
    r"\cdot", r"\times", r"\top", r"\intercal", r"\mathsf{T}", r"\frac", r"\dfrac",
    r"\partial", r"\nabla", r"\ell", r"\mathcal{L}", r"\prime", r"\sigma", r"\tanh", r"\exp",
    r"\log", r"\ln", r"\sqrt", r"\sech", r"\phi", r"\varphi", r"\operatorname{softmax}",
    r"\operatorname{relu}", r"\operatorname{diag}", r"\operatorname{swoosh}", r"\mathbf{1}",
    r"\mathbf{2}", r"\mathrm{d}", r"\bm", "(l)", "(l+1)", "(l-1)", "(L)", "(L-1)", "(2)",
    "(0)", "(9)", "^{(l)}", "^{-1}", "^{99}", " ", r"\,", r"\;", r"\quad", "~", "&", r"\\",
    "%", "$", r"\displaystyle", r"\foo", "é", "∂", "δ", "\x00", "\x1b[2J", "\t", "\n",
    "\u202e", "\udcff",
]
ANY_CHARACTER = st.characters(exclude_categories=())  # surrogates and controls included

tokens = st.lists(st.sampled_from(TOKENS), max_size=30).map("".join)
truncated = st.tuples(st.sampled_from(VALID), st.integers(0, 120)).map(
    lambda t: t[0][:t[1]])
mutated = st.tuples(st.sampled_from(VALID), st.integers(0, 120), st.integers(0, 4),
                    st.sampled_from(TOKENS)).map(
    lambda t: t[0][:t[1]] + t[3] + t[0][t[1] + t[2]:])
nested = st.tuples(st.sampled_from(["(", "{", "[", r"\left(", r"\tanh(", r"\frac{d}{dz}",
                                    r"\frac{", "^{", "e^{", r"\sigma(", "x ", "a^{(l)} + ",
                                    "^T", "^2", r"\odot z^{(l)}"]),
                   st.integers(1, 5000), st.sampled_from(VALID)).map(
    lambda t: t[2].replace("=", "= " + t[0] * t[1], 1))
numbers = st.tuples(st.integers(1, 2500), st.sampled_from(VALID),
                    st.sampled_from(["", "^{12}", r" \delta^{(l)}", ".5", "^{-12}"])).map(
    lambda t: t[1].replace("=", "= " + "9" * t[0] + t[2] + " ", 1))
strange = st.text(ANY_CHARACTER, max_size=80)
long = st.tuples(st.sampled_from(VALID), st.integers(1, 300)).map(
    lambda t: t[0] + (" + " + t[0].split("=", 1)[1]) * t[1])
CLAIMS = st.one_of(tokens, truncated, mutated, nested, numbers, strange, long)

BLOCK_PIECES = [r"\begin{align}", r"\end{align}", r"\begin{align*}", r"\end{align*}",
                r"\begin{equation}", r"\end{equation}", r"\begin{aligned}", r"\end{aligned}",
                r"\begin{itemize}", r"\end{document}", r"\[", r"\]", "$$", "$", r"\\",
                r"\\[2pt]", "&", "&=", "%", r"\%", r"\label{eq:1}", r"\tag{2}", r"\nonumber",
                "\n", "\n\n", "# comment\n", " "]
file_rows = st.lists(st.one_of(st.sampled_from(BLOCK_PIECES), CLAIMS), max_size=12).map(
    "".join)
FILES = st.one_of(file_rows, CLAIMS,
                  CLAIMS.map(lambda c: "\\begin{align*}\n" + c + "\n\\end{align*}\n"))

RUNS = settings(max_examples=150, deadline=timedelta(seconds=10),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("verify") / "s.toml"
    path.write_text(SPEC_TEXT, encoding="utf-8")
    run(["verify", str(path), "--claim", VALID[0]])  # derive once, before any deadline
    return path


def run(argv) -> tuple[int, str, str]:
    """``symbp.cli.main(argv)`` with its output captured; asserts the promise."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    out, err = out.getvalue(), err.getvalue()
    assert status in (0, 1, 2), f"exit {status}: {err}"
    assert "Traceback" not in out + err
    if status == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("symbp: error: "), err
    else:
        assert err == "", err
        assert re.match(r"(line \d+: )?(correct|incorrect): ", out), out
    return status, out, err


# ---------------------------------------------------------------- fuzzing
@RUNS
@given(CLAIMS)
def test_fuzz_claims_keep_the_promise(spec, text):
    status, out, _ = run(["verify", str(spec), "--claim", text])
    if status != 2:
        assert out.startswith(("correct: ", "incorrect: "))


@settings(RUNS, max_examples=60)
@given(CLAIMS)
def test_fuzz_scalar_claims_keep_the_promise(text):
    run(["verify", "--claim", text])


@settings(RUNS, max_examples=50)
@given(FILES)
def test_fuzz_claim_files_keep_the_promise(spec, tmp_path_factory, text):
    path = tmp_path_factory.mktemp("claims") / "derivation.tex"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))  # a lone surrogate: not UTF-8
    run(["verify", str(spec), "--file", str(path)])


# ------------------------------------------------------ claim files (item 1)
def test_200000_unclosed_align_blocks_are_an_error_naming_the_first(spec, tmp_path):
    path = tmp_path / "unclosed.tex"
    path.write_text("\\begin{align}\n" * 200_000, encoding="utf-8")
    status, _, err = run(["verify", str(spec), "--file", str(path)])
    assert status == 2
    assert "line 1: \\begin{align} is never closed" in err and str(path) in err


def test_an_unclosed_block_after_closed_ones_names_its_line():
    text = "\\begin{align}\na = b\n\\end{align}\n\n\\[ x = y \\]\n\\begin{equation*}\nz = z\n"
    with pytest.raises(SymbpError, match=r"line 6: \\begin\{equation\*\} is never closed"):
        read_claims(text)


@pytest.mark.parametrize("text, line, closer", [
    ("a = b\n\\end{align}\n", 2, r"\\end\{align\} without \\begin\{align\}"),
    ("\\[ a = b \\]\n\n\\]\n", 3, r"\\\] without \\\["),
])
def test_a_closer_without_its_opener_names_its_line(text, line, closer):
    with pytest.raises(SymbpError, match=rf"line {line}: {closer}"):
        read_claims(text)


def test_a_closed_block_of_200000_rows_is_refused_past_the_claim_limit():
    text = "\\begin{align}\n" + "a &= b \\\\\n" * 200_000 + "\\end{align}\n"
    with pytest.raises(SymbpError, match=rf"line {MAX_CLAIMS + 2}: more than {MAX_CLAIMS}"):
        read_claims(text)


def test_rows_keep_their_lines_and_lose_their_spacing_argument():
    text = ("intro \\begin{itemize} text \\end{itemize}\n\\begin{align}\n"
            "a &= b \\\\[2pt]\n  c &= d \\\\\n&= e\n\\end{align}\n$$ f = g $$\n")
    assert read_claims(text) == [(3, "a &= b"), (4, "c &= d"), (5, "c = e"), (7, "f = g")]


# ------------------------------------------------- reproducers (item 3)
@pytest.mark.parametrize("text, reason", [
    ("(" * 5000 + "x" + ")" * 5000 + " = x", "longer than"),
    ("x = " + "(" * 900 + "x" + ")" * 900, "nested deeper"),
    (r"\delta^{(l)} = " + "x " * 900, "nested deeper"),
    (r"\delta^{(l)} = " + "a^{(l)} + " * 150 + "a^{(l)}", "nested deeper"),
    (r"\delta^{(l)} = W^{(l)}" + "^T" * 900, "nested deeper"),
    ("z = z" + "^2" * 600, "nested deeper"),
    (r"\delta^{(l)} = " + r"\tanh(" * 30 + "z^{(l)}" + ")" * 30, "nested deeper"),
    ("z = " + "9" * 1500 + "^{12}", "digits"),
    (r"\delta^{(l)} = " + "9" * 1500 + r" \delta^{(l)}", "digits"),
    (r"\delta^{(l)} = (" + "99999999999999999999 " * 20 + r")^{12} \delta^{(l)}", "digits"),
    ("z = 0." + "0" * 1000 + "1", "digits"),
    ("z = " + r"\frac{d}{dz}" * 20 + r"\tanh(z)", "order"),
    (r"\frac{d}{dz} \tanh''(z) = z", "order"),
    ("z = \x00\x1b[2J", "unexpected"),
    ("z = \udcff", "unexpected"),
], ids=lambda value: value if len(value) < 20 else value[:8] + "..." + value[-8:])
def test_hostile_claims_cannot_be_parsed_with_a_column(spec, text, reason):
    status, out, err = run(["verify", str(spec), "--claim", text])
    assert status == 2 and reason in err
    assert re.search(r"cannot parse the claim, column \d+: ", err), err
    assert out.startswith("cannot parse: ") and "\x1b" not in out and "\x00" not in out
    out.encode("utf-8")  # printable: no lone surrogate reaches stdout


@pytest.mark.parametrize("ones", [r"\mathbf{1} \mathbf{1}^T", r"\mathbf{1}^T \mathbf{1}"])
def test_ones_of_no_known_length_cannot_be_parsed(spec, ones):
    """Both were read as the scalar 1, so that 1 1^T delta = delta was called correct."""
    status, out, err = run(["verify", str(spec), "--claim", rf"\delta^{{(l)}} = {ones} \delta^{{(l)}}"])
    assert status == 2 and "the length of \\mathbf{1} cannot be told" in err
    assert "column 16" in err


def test_lark_errors_are_the_cannot_parse_line_with_the_column(spec):
    status, out, err = run(["verify", str(spec), "--claim", r"\delta^{(l)} = (W^{(l+1)}"])
    assert status == 2 and "at column 26" in out
    assert err.startswith("symbp: error: cannot parse the claim, column 26: unexpected end")


def test_several_claims_name_the_first_that_cannot_be_parsed(spec):
    status, out, err = run(["verify", str(spec), "--claim", VALID[0], "--claim", "x = (",
                            "--claim", "y = )"])
    assert status == 2 and out.startswith("correct: ")
    assert "cannot parse claim 2, column 6" in err and "(and 1 more" in err


@pytest.mark.parametrize("depth", [10, 16])
def test_nested_functions_in_a_scalar_claim_are_decided_on_the_numbers(depth):
    text = r"\tanh'(z) = " + r"\tanh(" * depth + "z" + ")" * depth
    verdict = verify(text)  # SymPy's exp rewrite of this would grow 4**depth
    assert verdict.verdict == "incorrect" and verdict.counterexample


MISH_SPEC = """\
inputs = 2
loss = "mse"

[activations]
mish = "x*tanh(log(1 + exp(x)))"

[[layers]]
units = 3
activation = "mish"

[[layers]]
units = 2
activation = "identity"
"""


@pytest.mark.parametrize("claim, network", [
    (r"\delta^{(l)} = e^{999} \delta^{(l)}", "mish"),  # SymPy's factor: a degree-999 polynomial
    (r"\delta^{(l)} = \tanh(9 \cdot 9 \cdot 9 z^{(l)}) \odot \delta^{(l)}", "mish"),
    (r"\sigma'(z) = \exp(999 z)", None),
    (r"\sigma'(z) = \tanh(300 z)", None),
])
def test_constants_inside_functions_are_decided_on_the_numbers(tmp_path, claim, network):
    spec = None
    if network:
        spec = tmp_path / "mish.toml"
        spec.write_text(MISH_SPEC, encoding="utf-8")
    verdict = verify(claim, spec)
    assert verdict.verdict == "incorrect" and verdict.counterexample
    assert verdict.difference is None  # SymPy was not asked


def test_a_nested_but_correct_scalar_claim_rests_on_the_points():
    verdict = verify(r"\frac{d}{dz}\tanh(\tanh(\tanh(\tanh(z)))) = "
                     r"\tanh'(\tanh(\tanh(\tanh(z)))) \tanh'(\tanh(\tanh(z))) "
                     r"\tanh'(\tanh(z)) \tanh'(z)")
    assert verdict.ok
    assert "the verdict rests on the numeric points" in " ".join(verdict.evidence)


# ------------------------------------------- the truth from the derivation (item 2)
def test_dl_da_at_a_hidden_layer_is_the_derivation_without_f_prime(spec):
    status, out, _ = run(["verify", str(spec), "--claim",
                          r"\frac{\partial L}{\partial a^{(l)}} = W^{(l+1)} \delta^{(l+1)}"])
    assert status == 1
    assert (r"correct: \frac{\partial \ell}{\partial a^{(l)}} = "
            r"\left(W^{(l + 1)}\right)^{\top} \delta^{(l + 1)}") in out


def test_dl_da_at_the_output_is_the_loss_gradient(spec):
    status, out, _ = run(["verify", str(spec), "--claim",
                          r"\frac{\partial L}{\partial a^{(L)}} = a^{(L)} - y"])
    assert status == 1 and "W^{(L + 1)}" not in out  # there is no layer L + 1
    assert re.search(r"correct: \\frac\{\\partial \\ell\}\{\\partial a\^\{\(L\)\}\} = "
                     r"-? ?\\frac\{-? ?y\}\{a\^\{\(L\)\}\}", out), out
    assert run(["verify", str(spec), "--claim",
                r"\frac{\partial L}{\partial a^{(L)}} = -\frac{y}{a^{(L)}}"])[0] == 0


def test_a_row_break_inside_cases_separates_cases_not_claims():
    """``symbp verify --file`` on a printed derivation: a relu row's cases stay one claim."""
    text = ("\\begin{align*}\na &= b \\\\[2pt]\n\\operatorname{relu}'(z) &= \\begin{cases} 1 & "
            "\\text{for}\\: z > 0 \\\\0 & \\text{otherwise} \\end{cases} \\\\\nd &= e\n"
            "\\end{align*}\n")
    claims = read_claims(text)
    assert [line for line, _ in claims] == [2, 3, 4]
    assert claims[1][1].endswith("\\end{cases}") and "\\\\0 &" in claims[1][1]
    assert verify(claims[1][1]).ok
