"""Fuzz tests of the command line's promise (CONVENTIONS §4), driven by hypothesis.

For every generated input (spec files, expressions, data files, command-line
flags, and the generated module run as a script) the promise is asserted:

- the exit status is 0, 1 or 2 (never 3: an internal error is a bug);
- exit 2 prints exactly one line, ``symbp: error: ...``, on stderr;
- no traceback is printed;
- a failed command leaves the working directory exactly as it was (no new,
  changed or half-written file);
- no marker file appears: hostile strings carry a command that would create
  one if anything from the input were ever executed, in symbp or in the code
  it generates (which is imported after every successful ``generate``);
- every call finishes within :data:`TIME_LIMIT` seconds.

The runs are derandomized, so CI sees the same cases every time; set
``SYMBP_FUZZ_EXAMPLES`` to explore more (and with random seeds) locally.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from conftest import ISSUE_SPEC
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbp.cli import main
from symbp.codegen import generate_source
from symbp.errors import ExpressionError
from symbp.expressions import parse_expression
from symbp.registry import X
from symbp.spec import load_spec

TIME_LIMIT = 30  # seconds per call
EXPLORE = int(os.environ.get("SYMBP_FUZZ_EXAMPLES", "0"))
MARKER = "FUZZ_MARKER"


def fuzz_settings(examples: int):
    return settings(max_examples=EXPLORE or examples, deadline=None, derandomize=not EXPLORE,
                    suppress_health_check=list(HealthCheck), database=None)


# ------------------------------------------------------------- the promise
class TimeLimitExceeded(BaseException):
    """Raised by the alarm; a BaseException, so that main() cannot swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def expire(signum, frame):
        raise TimeLimitExceeded(f"call took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def snapshot(directory: Path) -> dict:
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in directory.rglob("*") if not p.is_symlink()}


def assert_promise(code: int, err: str, before: dict, after: dict, directory: Path) -> None:
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in err, err
    if code == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("symbp: error: "), err
    if code != 0:
        assert after == before, f"files changed by a failed command: {err}"
    assert not (directory / MARKER).exists(), "an injected command ran"


def run_cli(argv: list[str], directory: Path) -> tuple[int, str, str]:
    """``main(argv)`` inside ``directory``, with the promise asserted."""
    before = snapshot(directory)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        with time_limit(TIME_LIMIT), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        os.chdir(cwd)
    assert_promise(code, err.getvalue(), before, snapshot(directory), directory)
    return code, out.getvalue(), err.getvalue()


def payload(directory: Path) -> str:
    """A string that creates the marker file if it is ever executed as Python."""
    target = directory / MARKER
    return f'"""; __import__("os").system("touch {target}"); """'


# ---------------------------------------------------------------- strategies
HOSTILE_TEXT = st.sampled_from([
    "", " ", "\n", "a\"\"\"b", "a'''b", "a\\N", "a\\x", "a\\", "{{ x }}", "{% raw %}", "#",
    "\x00", "\u2028", "\udcff", "ÿ", "é", "名前", "$(touch x)", "`touch x`", "x" * 600,
])
NAMES = st.one_of(st.sampled_from(["tanh", "relu", "sigmoid", "softmax", "identity", "gelu",
                                   "leaky_relu", "elu", "softplus", "silu", "mish", "custom",
                                   "mse", "cross_entropy", "bce", "l1"]), HOSTILE_TEXT,
                  st.text(max_size=12))
NUMBERS = st.one_of(st.integers(-3, 7), st.sampled_from([0, 1, 2**63, 10**400, -1]),
                    st.floats(allow_nan=True, allow_infinity=True), st.booleans())
VALUES = st.one_of(NUMBERS, NAMES, st.lists(st.integers(-2, 5), max_size=3))

ATOMS = st.sampled_from(["x", "a", "y", "pi", "E", "0", "1", "2", "0.5", "1e308", "2**64",
                         "1e-320", "z", "__import__", "x.real", "''", "[x]"])
FUNCTIONS = st.sampled_from(["exp", "log", "sqrt", "tanh", "sinh", "cosh", "sin", "cos", "atan",
                             "asinh", "erf", "abs", "max", "min", "eval", "open"])
OPERATORS = st.sampled_from(["+", "-", "*", "/", "**", "%", "//", "@", "<", "and"])


def _grammar(atoms, functions, operators, max_leaves):
    def extend(children):
        binary = st.tuples(children, operators, children).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
        call = st.tuples(functions, st.lists(children, min_size=1, max_size=2)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})")
        unary = children.map(lambda c: f"-{c}")
        return st.one_of(binary, call, unary)

    return st.recursive(atoms, extend, max_leaves=max_leaves)


def expressions(max_leaves: int = 12):
    """Wild expression strings: whitelisted and forbidden pieces, and random text."""
    return st.one_of(_grammar(ATOMS, FUNCTIONS, OPERATORS, max_leaves), st.text(max_size=40))


def plausible_expressions(variables: tuple[str, ...], max_leaves: int = 6):
    """Expressions in the accepted syntax (they may still be undefined somewhere)."""
    atoms = st.one_of(st.sampled_from(variables), st.sampled_from(["1", "2", "0.5", "3"]))
    return _grammar(atoms, FUNCTIONS.filter(lambda f: f not in ("eval", "open")),
                    st.sampled_from(["+", "-", "*", "/"]), max_leaves)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


LAYER = st.fixed_dictionaries(
    {"units": st.one_of(st.integers(1, 5), NUMBERS),
     "activation": st.one_of(NAMES, st.sampled_from(["tanh", "relu", "sigmoid", "custom"]))},
    optional={"type": st.sampled_from(["dense", "conv2d", "x"]), "extra": VALUES})
TRAINING = st.dictionaries(
    st.sampled_from(["optimizer", "learning_rate", "batch_size", "epochs", "seed", "momentum"]),
    VALUES, max_size=3)


ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "silu",
               "gelu", "custom"]
OUTPUTS = {"mse": ACTIVATIONS, "l1": ACTIVATIONS, "cross_entropy": ["softmax"],
           "bce": ["sigmoid"]}


@st.composite
def plausible_spec_texts(draw):
    """A spec that should derive: small widths, any activations, any loss that fits."""
    loss = draw(st.sampled_from(sorted(OUTPUTS)))
    hidden = draw(st.lists(st.tuples(st.integers(1, 4), st.sampled_from(ACTIVATIONS)),
                           max_size=3))
    output = (draw(st.integers(2 if loss == "cross_entropy" else 1, 3)),
              draw(st.sampled_from(OUTPUTS[loss])))
    lines = [f"inputs = {draw(st.integers(1, 4))}", f'loss = "{loss}"', "[activations]",
             f"custom = {toml_value(draw(plausible_expressions(('x',))))}", "[losses]",
             f"l1 = {toml_value(draw(plausible_expressions(('a', 'y'))))}"]
    for units, activation in [*hidden, output]:
        lines += ["[[layers]]", f"units = {units}", f'activation = "{activation}"']
    return "\n".join(lines) + "\n"


@st.composite
def wild_spec_texts(draw):
    """TOML text of a spec with fields drawn wild, sometimes damaged."""
    layers = draw(st.lists(LAYER, min_size=0, max_size=4))
    lines = [f"name = {toml_value(draw(st.one_of(st.just('net'), NAMES)))}",
             f"inputs = {toml_value(draw(st.one_of(st.integers(1, 5), VALUES)))}",
             f"loss = {toml_value(draw(st.sampled_from(['mse', 'cross_entropy', 'bce', 'l1', 'x'])))}"]
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["unknown = 1", "inputs2 = 3"])))
    lines += ["[activations]", f"custom = {toml_value(draw(expressions()))}"]
    lines += ["[losses]", f"l1 = {toml_value(draw(expressions()))}"]
    for layer in layers:
        lines.append("[[layers]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in layer.items()]
    training = draw(TRAINING)
    if training:
        lines.append("[training]")
        lines += [f"{key} = {toml_value(value)}" for key, value in training.items()]
    text = "\n".join(lines) + "\n"
    if draw(st.integers(0, 9)) == 0:  # sometimes, a damaged file
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from(["", "[", "\"", "\x00", "= =", "\n[[layers]]"]))
    return text


VALID_SPEC = ISSUE_SPEC


@contextlib.contextmanager
def workspace():
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        (directory / "S.toml").write_text(VALID_SPEC, encoding="utf-8")
        rng = np.random.default_rng(0)
        table = np.column_stack([rng.normal(size=(24, 4)), rng.integers(0, 3, 24)])
        np.savetxt(directory / "d.csv", table, delimiter=",")
        yield directory


def import_generated(path: Path) -> None:
    """Import a generated module in a fresh interpreter (what a user does with it)."""
    result = subprocess.run([sys.executable, "-c", "import runpy, sys; runpy.run_path(sys.argv[1])",
                             str(path)], capture_output=True, text=True, timeout=TIME_LIMIT)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------- specs
@fuzz_settings(40)
@given(text=st.one_of(plausible_spec_texts(), wild_spec_texts()),
       command=st.sampled_from(["derive", "generate", "check"]))
def test_specs_keep_the_promise(text, command):
    with workspace() as directory:
        (directory / "f.toml").write_text(text, encoding="utf-8", errors="surrogatepass")
        argv = {"derive": ["derive", "f.toml", "--format", "text"],
                "generate": ["generate", "f.toml", "-o", "out.py"],
                "check": ["check", "f.toml", "--max-entries", "5"]}[command]
        code, _, _ = run_cli(argv, directory)
        if command == "generate" and code == 0:
            import_generated(directory / "out.py")
            assert not (directory / MARKER).exists()


@fuzz_settings(25)
@given(name=st.one_of(HOSTILE_TEXT, st.text(min_size=1, max_size=30)))
def test_spec_file_names_never_reach_generated_code_as_code(name):
    with workspace() as directory:
        stem = (payload(directory) + name).replace("/", "_").replace("\x00", "_")
        filename = stem[:200] + ".toml"
        try:
            (directory / filename).write_text(VALID_SPEC, encoding="utf-8")
        except (OSError, UnicodeEncodeError):
            return  # a name the file system cannot hold
        code, _, _ = run_cli(["generate", filename, "-o", "out.py"], directory)
        assert code == 0
        import_generated(directory / "out.py")
        assert not (directory / MARKER).exists()


# --------------------------------------------------------------- expressions
@fuzz_settings(300)
@given(text=expressions(20))
def test_expressions_parse_or_raise_expression_error(text):
    with time_limit(TIME_LIMIT):
        try:
            parsed = parse_expression(text, {"x": X}, "activations.f")
        except ExpressionError as exc:
            assert str(exc).startswith("activations.f: ")
        else:
            assert parsed.free_symbols <= {X}


@fuzz_settings(25)
@given(text=st.one_of(plausible_expressions(("x",), 8), expressions(8)),
       command=st.sampled_from(["derive", "generate"]))
def test_activations_keep_the_promise(text, command):
    spec = VALID_SPEC.replace('activation = "tanh"', 'activation = "f"') + \
        f"[activations]\nf = {toml_value(text)}\n"
    with workspace() as directory:
        (directory / "f.toml").write_text(spec, encoding="utf-8", errors="surrogatepass")
        output = ["-o", "out.py"] if command == "generate" else []
        code, _, _ = run_cli([command, "f.toml", *output], directory)
        if code == 0 and command == "generate":
            import_generated(directory / "out.py")


# ---------------------------------------------------------------- data files
CELLS = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.integers(-2, 4).map(str), HOSTILE_TEXT, st.sampled_from(["1e308", "-1e308",
                                                                              "0x10", "1_000", ""]))


@st.composite
def csv_texts(draw):
    width = draw(st.integers(0, 7))
    rows = draw(st.lists(st.lists(CELLS, min_size=width, max_size=width + 1), max_size=30))
    return "\n".join(",".join(row) for row in rows)


ARRAYS = st.one_of(
    st.tuples(st.integers(0, 30), st.integers(0, 6)).map(
        lambda s: np.random.default_rng(s[0]).normal(size=s)),
    st.integers(0, 30).map(lambda n: np.random.default_rng(n).integers(-1, 4, n)),
    st.sampled_from([np.array(["a", "b"]), np.array([1 + 2j, 3j]), np.zeros((2, 2, 2)),
                     np.array(["2020-01-01"] * 24, dtype="datetime64[D]"),
                     np.full(24, np.nan), np.full((24, 4), 1e308), np.zeros(()),
                     np.arange(24) % 3 + 0.5]))


@fuzz_settings(30)
@given(kind=st.sampled_from(["csv", "npz", "npy-as-npz", "bytes"]), csv_text=csv_texts(),
       X=ARRAYS, y=ARRAYS, raw=st.binary(max_size=200))
def test_data_files_keep_the_promise(kind, csv_text, X, y, raw):
    with workspace() as directory:
        path = directory / ("data.csv" if kind == "csv" else "data.npz")
        if kind == "csv":
            path.write_text(csv_text, encoding="utf-8", errors="surrogatepass")
        elif kind == "npz":
            np.savez(path, X=X, y=y)
        elif kind == "npy-as-npz":
            with open(path, "wb") as handle:
                np.save(handle, X)
        else:
            path.write_bytes(raw)
        run_cli(["train", "S.toml", "--data", path.name, "--epochs", "1"], directory)


# ------------------------------------------------------------ command lines
WORDS = st.sampled_from([
    "derive", "generate", "check", "train", "verify", "demo", "S.toml", "missing.toml", "d.csv",
    "--format", "latex", "text", "json", "markdown", "--standalone", "-o", "out.py", "--force",
    "--dtype", "float32", "float16", "--seed", "-1", "0", "--max-entries", "--data", "digits",
    "--epochs", "--learning-rate", "nan", "1e-3", "--batch-size", "--optimizer", "adam", "--plot",
    "p.png", "--save", "p.npz", "--claim", "--file", "--json", "--output-dir", ".", "", "-",
    "--debug", "--version", "\udcff", "a\nb",
])


@fuzz_settings(60)
@given(argv=st.lists(WORDS, max_size=8))
def test_command_lines_keep_the_promise(argv):
    if "demo" in argv or "train" in argv and "digits" in argv:
        argv = [word for word in argv if word not in ("demo", "digits")]
    with workspace() as directory:
        try:
            run_cli(argv, directory)
        except SystemExit as exit_:  # --help and --version exit 0 through argparse
            assert exit_.code == 0


# --------------------------------------------------- the generated script
SCRIPT_WORDS = st.sampled_from([
    "--data", "d.npz", "bad.npz", "missing.npz", "--epochs", "-3", "0", "2", "--batch-size",
    "--learning-rate", "nan", "inf", "0.1", "--save", "nodir/p.npz", "p.npz", "--seed", "-1", "x",
    "--optimizer", "adam", "sgdd", "",
])


@fuzz_settings(15)
@given(argv=st.lists(SCRIPT_WORDS, max_size=8), y=ARRAYS)
def test_the_generated_script_keeps_the_promise(argv, y):
    with workspace() as directory:
        script = directory / "s.py"
        script.write_text(generate_source(load_spec(directory / "S.toml")), encoding="utf-8")
        rng = np.random.default_rng(0)
        np.savez(directory / "d.npz", X=rng.normal(size=(24, 4)), y=rng.integers(0, 3, 24))
        np.savez(directory / "bad.npz", X=rng.normal(size=(24, 4)), y=y)
        before = snapshot(directory)
        result = subprocess.run([sys.executable, str(script), *argv], capture_output=True,
                                text=True, timeout=TIME_LIMIT, cwd=directory)
        assert result.returncode in (0, 2), result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        if result.returncode == 2:
            assert len(result.stderr.splitlines()) == 1, result.stderr
            assert snapshot(directory) == before
