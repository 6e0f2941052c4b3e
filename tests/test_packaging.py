"""The wheel ships every package of the source tree (a missing one imports in a
checkout and fails after `pip install .`)."""

from __future__ import annotations

import tomllib

from conftest import REPO


def test_every_subpackage_is_in_the_wheel():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(REPO).parts)
             for init in (REPO / "symbp").rglob("__init__.py")}
    assert found <= listed, f"not in pyproject's packages: {sorted(found - listed)}"
    assert {"symbp.templates", "symbp.examples"} <= listed
