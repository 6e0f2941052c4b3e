"""The committed modules in ``generated/`` are golden files (issue 3).

Each ``generated/NAME.py`` has its spec ``examples/NAME.toml``, is exactly what
``generate_source`` produces from that spec today, lints clean, imports only
NumPy and the standard library, and runs as a script.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from symbp.codegen import generate_source
from symbp.spec import load_spec

REPO = Path(__file__).resolve().parent.parent
GOLDEN = sorted((REPO / "generated").glob("*.py"))
GOLDEN_IDS = [path.stem for path in GOLDEN]


def spec_for(golden: Path) -> Path:
    return REPO / "examples" / f"{golden.stem}.toml"


@lru_cache(maxsize=None)
def regenerate(name: str) -> str:
    spec = REPO / "examples" / f"{name}.toml"
    return generate_source(load_spec(spec), "float64", spec_name=spec.name)


def test_golden_files_exist():
    assert GOLDEN, "generated/ holds no golden modules"
    assert {path.stem for path in GOLDEN} >= {"digits_mlp"}


@pytest.mark.parametrize("golden", GOLDEN, ids=GOLDEN_IDS)
def test_golden_has_a_spec(golden):
    assert spec_for(golden).is_file(), f"{golden.name} has no examples/{golden.stem}.toml"


@pytest.mark.parametrize("golden", GOLDEN, ids=GOLDEN_IDS)
def test_golden_matches_regenerated_source(golden):
    expected = golden.read_bytes()
    produced = regenerate(golden.stem).encode("utf-8")
    assert produced == expected, (
        f"{golden.name} is stale: run `symbp generate examples/{golden.stem}.toml "
        f"-o generated/{golden.name} --force`")


def test_golden_generation_is_deterministic():
    """Two fresh derivations in one process give the same bytes (no caching involved: the
    kept derivations and sources are cleared in between)."""
    from symbp import codegen
    from symbp.engine import derivation

    spec = spec_for(REPO / "generated" / "digits_mlp.py")
    first = generate_source(load_spec(spec), "float64", spec_name=spec.name)
    codegen._SOURCES.clear()
    derivation._DERIVED.clear()
    second = generate_source(load_spec(spec), "float64", spec_name=spec.name)
    assert first.encode("utf-8") == second.encode("utf-8")
    assert first == regenerate("digits_mlp")


def test_golden_files_pass_ruff():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", *[str(p) for p in GOLDEN]],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _imported_top_level_modules(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in a standalone module"
            modules.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            raise AssertionError("dynamic __import__ in a generated module")
    return modules


@pytest.mark.parametrize("golden", GOLDEN, ids=GOLDEN_IDS)
def test_golden_imports_only_numpy_and_stdlib(golden):
    modules = _imported_top_level_modules(golden.read_text(encoding="utf-8"))
    assert "numpy" in modules
    foreign = {name for name in modules
               if name != "numpy" and name not in sys.stdlib_module_names}
    assert not foreign, f"{golden.name} imports {sorted(foreign)}"


def test_import_checker_catches_foreign_imports():
    """The AST check above really distinguishes (so a pass means something)."""
    assert _imported_top_level_modules("import numpy as np\nfrom sympy import exp\n") == {
        "numpy", "sympy"}
    assert "symbp" not in sys.stdlib_module_names and "sympy" not in sys.stdlib_module_names


def test_golden_digits_runs_as_a_script(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 10
    X = rng.normal(0.0, 1.0, (60, 64)) + labels[:, None] * 0.1
    data = tmp_path / "small.npz"
    np.savez(data, X=X, y=labels)
    saved = tmp_path / "params.npz"
    result = subprocess.run(
        [sys.executable, str(REPO / "generated" / "digits_mlp.py"), "--data", str(data),
         "--epochs", "2", "--save", str(saved)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    epochs = [line for line in result.stdout.splitlines() if line.startswith("epoch")]
    assert len(epochs) == 2
    assert "training accuracy" in result.stdout
    with np.load(saved) as params:
        assert params["W1"].shape == (32, 64) and params["W2"].shape == (10, 32)


def test_golden_script_rejects_bad_data(tmp_path):
    data = tmp_path / "wrong.npz"
    np.savez(data, X=np.zeros((5, 3)), y=np.zeros(5))
    result = subprocess.run(
        [sys.executable, str(REPO / "generated" / "digits_mlp.py"), "--data", str(data)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
