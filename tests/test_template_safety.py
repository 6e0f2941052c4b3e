"""Nothing from a spec or a file name becomes code in a generated module (issue 9).

The one mechanism under test is :func:`symbp.codegen.render_slot`, the Jinja
``finalize`` hook: only :class:`~symbp.codegen.Code` (made by symbp's own printer)
is rendered verbatim, every other string as inert text. The tests render hostile
strings into every string slot of the real template context and import the result,
and run ``symbp generate`` on specs whose file names are hostile.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import io
import os
import shutil
import tokenize
from functools import lru_cache
from pathlib import Path

import pytest

from symbp import codegen
from symbp.cli import main
from symbp.codegen import Code, inert_text, literal, render_slot, template_context
from symbp.spec import Dense, Network

REPO = Path(__file__).resolve().parent.parent
RUN = '__import__("os").system("touch PWNED")'
HOSTILE = {
    "triple-quote": f'a"""; {RUN}; """b.toml',
    "single-triple-quote": "a'''; __import__('os').system('touch PWNED'); '''b",
    "backslash-N": "a\\N.toml",
    "backslash-x": "a\\x.toml",
    "backslash-u": "a\\u12.toml",
    "trailing-backslash": "a\\",
    "trailing-quote": 'a"',
    "newline": f"a\n{RUN}\n",
    "carriage-return": f"a\r{RUN}",
    "line-separator": f"a\u2028{RUN}",
    "form-feed": f"a\x0c{RUN}",
    "nul": "a\x00b",
    "surrogate": os.fsdecode(b"a\xff.toml"),
    "jinja": "{{ 7 * 7 }}{% raw %}",
    "unicode": "é ⊙ 中",
}


# ------------------------------------------------------------ the mechanism
@pytest.mark.parametrize("name", HOSTILE)
def test_inert_text_reads_back_in_a_docstring_and_a_literal(name):
    text = HOSTILE[name]
    fragment = inert_text(text)
    fragment.encode("utf-8")  # strict: no lone surrogate left
    assert fragment.isprintable() and "\n" not in fragment
    assert ast.literal_eval(f'"""{fragment}"""') == text
    assert ast.literal_eval(f'"{fragment}"') == text


@pytest.mark.parametrize("name", HOSTILE)
def test_inert_text_stays_inside_a_comment(name):
    source = f"x = 1  # {inert_text(HOSTILE[name])}\ny = 2\n"
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
              if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER)]
    assert [t.type for t in tokens].count(tokenize.COMMENT) == 1
    assert [t.string for t in tokens if t.type != tokenize.COMMENT] == ["x", "=", "1",
                                                                        "y", "=", "2"]


def test_render_slot_passes_code_and_numbers_and_refuses_other_types():
    assert render_slot(Code('work["a1"]')) == 'work["a1"]'
    assert render_slot('work["a1"]') == 'work[\\"a1\\"]'
    assert render_slot(3) == "3" and render_slot(0.5) == "0.5"
    for value in (None, True, [1], {"a": 1}, b"bytes"):
        with pytest.raises(TypeError):
            render_slot(value)


def test_literal_filter():
    assert literal(("W1", "b1")) == "('W1', 'b1')"
    nested = {"name": HOSTILE["surrogate"], "layers": [{"units": 3, "rate": 0.5}],
              "flags": (True, None), HOSTILE["triple-quote"]: HOSTILE["newline"] * 20}
    assert ast.literal_eval(literal(nested)) == nested
    for value in (float("nan"), float("inf"), {1, 2}, (1, object()), {"a": [b"x"]}):
        with pytest.raises(TypeError):
            literal(value)


# ------------------------------------------ every string slot of the template
NETWORKS = {
    "classification": Network(inputs=4, layers=[Dense(5, "mish"), Dense(3, "softmax")],
                              loss="cross_entropy", name="net",
                              activations={"mish": "x*tanh(log(1 + exp(x)))"}),
    "binary": Network(inputs=3, layers=[Dense(4, "gelu"), Dense(1, "sigmoid")],
                      loss="squared", name="net", losses={"squared": "(a - y)**2"}),
}


@lru_cache(maxsize=None)
def real_context(kind: str) -> dict:
    return template_context(NETWORKS[kind], "float64", "net.toml")


def hostile_copy(value, text: str, slots: list, key: str = ""):
    """``value`` with every plain string (not Code) replaced by ``text`` behind a unique
    tag; ``slots`` collects ``(field, tagged text)``."""
    if isinstance(value, Code):
        return value
    if isinstance(value, str):
        slots.append((key, f"TAG{len(slots)}_{text}"))
        return slots[-1][1]
    if isinstance(value, dict):  # keys too: custom activation and loss names are keys
        return {hostile_copy(name, text, slots, f"{name} (key)"): hostile_copy(item, text,
                                                                              slots, name)
                for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(hostile_copy(item, text, slots, key) for item in value)
    if dataclasses.is_dataclass(value):
        return dataclasses.replace(value, **{
            field.name: hostile_copy(getattr(value, field.name), text, slots, field.name)
            for field in dataclasses.fields(value)})
    return value


def render(context: dict) -> str:
    environment = codegen.environment(codegen.template_directory())
    return environment.get_template("module.py.j2").render(**context)


def import_file(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", NETWORKS)
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_strings_in_every_slot_stay_text(kind, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    slots: list = []
    spec_slots: list = []  # the strings of SPEC, which is compared as a whole below
    context = {variable: hostile_copy(value, HOSTILE[name],
                                      spec_slots if variable == "spec" else slots, variable)
               for variable, value in real_context(kind).items()}
    fields = {field for field, _ in slots + spec_slots}
    assert {"name", "spec_name", "version", "dtype", "task", "loss_name", "architecture",
            "formulas", "optimizer",
            {"classification": "mish", "binary": "squared"}[kind],  # expression text
            {"classification": "mish (key)", "binary": "squared (key)"}[kind]} <= fields
    source = render(context)
    path = tmp_path / "hostile_module.py"
    path.write_bytes(source.encode("utf-8"))  # strict UTF-8
    module = import_file(path)
    assert not (tmp_path / "PWNED").exists()
    strings = {}  # the text of each field (its first slot: the layers repeat theirs)
    for field, text in slots:
        strings.setdefault(field, text)
    for field in ("name", "spec_name", "dtype", "architecture"):  # read back exactly
        assert strings[field] in module.__doc__, field
    assert module.TASK == strings["task"]
    assert module.SPEC == context["spec"]  # activation and loss expressions included
    # every string slot is rendered somewhere (as text or as a literal), except the
    # one that is only compared
    unrendered = {field for field, text in slots
                  if inert_text(text) not in source and repr(text) not in source}
    assert not unrendered


def test_code_slots_hold_code():
    """The code that reaches the template is Code: a plain string there would be
    rendered as text (and break the module), so the hostile test covers them all."""
    context = real_context("classification")
    for name in ("kept", "loss_reads", "loss_return", "dtype_code"):
        assert isinstance(context[name], Code), name
    for name in ("forward_lines", "backward_lines", "loss_lines", "init_lines", "state_lines",
                 "updates"):
        assert all(isinstance(line, Code) for line in context[name]), name
    assert all(isinstance(shape, Code) for _, shape in context["buffers"])


# -------------------------------------------------- symbp generate on hostile names
FILE_NAMES = {key: HOSTILE[key] + ".toml" for key in (
    "triple-quote", "backslash-N", "backslash-x", "newline", "surrogate", "trailing-quote")}


@pytest.mark.parametrize("name", FILE_NAMES)
def test_generate_from_a_hostile_file_name(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / FILE_NAMES[name]
    shutil.copy(REPO / "examples" / "digits_mlp.toml", spec)
    out = tmp_path / "out.py"
    assert main(["generate", str(spec), "-o", str(out)]) == 0, capsys.readouterr().err
    out.read_bytes().decode("utf-8")  # strict UTF-8
    module = import_file(out)
    assert not (tmp_path / "PWNED").exists()
    assert f"symbp generate {FILE_NAMES[name]}`" in module.__doc__
    assert module.LAYER_SIZES == (64, 32, 10)


def test_the_hostile_name_runs_code_when_pasted_raw(tmp_path, monkeypatch):
    """The reproducer is real: pasted raw into a docstring, the name runs its command."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "raw.py"
    path.write_text(f'"""Regenerate with `symbp generate {FILE_NAMES["triple-quote"]}`."""\n',
                    encoding="utf-8")
    import_file(path)
    assert (tmp_path / "PWNED").exists()
