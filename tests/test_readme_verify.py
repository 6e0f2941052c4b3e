"""The README's verify section shows real runs: each ``$ symbp verify ...`` console
block's output and exit status are what the command prints now."""

from __future__ import annotations

import re
import shlex

import pytest
from conftest import REPO

from symbp.cli import main


def _runs() -> list:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Check a hand derivation", 1)[1].split("\n## ", 1)[0]
    runs = []
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.S):
        for run in re.split(r"\n(?=\$ )", block.strip()):
            command, _, rest = run.partition("\n")
            output, _, status = rest.rpartition("[exit ")
            runs.append((command.removeprefix("$ "), output.strip("\n"),
                         int(status.strip().rstrip("]"))))
    return runs


RUNS = _runs()


def test_the_section_shows_runs():
    assert len(RUNS) >= 6
    assert any("--convention nielsen" in c for c, _, _ in RUNS)
    assert any("--convention ng" in c for c, _, _ in RUNS)


@pytest.mark.parametrize("command, output, status", RUNS, ids=[c[:60] for c, _, _ in RUNS])
def test_a_readme_run_prints_what_it_shows(command, output, status, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    arguments = shlex.split(command)
    assert arguments[0] == "symbp"
    code = main(arguments[1:])
    out, err = capsys.readouterr()
    assert code == status
    assert (out + err).strip("\n") == output
