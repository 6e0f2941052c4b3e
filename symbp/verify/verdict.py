"""The verdict on one claim, and its report.

Contract: a :class:`Verdict` holds the answer for one claim: ``verdict`` (one
of :data:`VERDICTS`), the claim, a one-line ``summary`` and the evidence a
person needs (the shape mismatch, a counterexample, ``claim - truth``, the
likely mistakes, the correct formula) and how the claim was read (the
``convention`` it was written in by name, ``symbols``: the user's symbols ->
symbp's quantities). ``str(verdict)`` is the report, every
line printable (no control characters from the claim); :meth:`Verdict.to_dict`
is its JSON form. :func:`overall` is one verdict for several.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from symbp import claims as C

VERDICTS = ("correct", "incorrect", "cannot parse")


@dataclass
class Verdict:
    """The answer for one claim; ``str(verdict)`` is the human-readable report."""

    verdict: str
    claim: str
    summary: str = ""
    lhs: str | None = None
    correct: str | None = None  # the true formula, LaTeX, for the claim's layer(s)
    correct_at_layer: str | None = None  # the same at the layer of the counterexample
    shape: str | None = None  # the shape mismatch, if any
    counterexample: dict | None = None
    difference: str | None = None  # claim - truth, simplified, LaTeX
    mistakes: list = field(default_factory=list)  # variants that match the truth
    evidence: list = field(default_factory=list)  # how a correct claim was established
    layers: list = field(default_factory=list)  # the layers checked
    column: int | None = None  # for cannot parse
    expected: list = field(default_factory=list)
    line: int | None = None  # in a --file
    convention: str | None = None  # the name of the notation's convention the claim was read in
    symbols: dict = field(default_factory=dict)  # the user's symbol -> symbp's quantity (LaTeX)

    @property
    def ok(self) -> bool:
        return self.verdict == "correct"

    @property
    def likely_mistake(self) -> str | None:
        return self.mistakes[0] if self.mistakes else None

    def to_dict(self) -> dict:
        data = {"verdict": self.verdict, "claim": self.claim, "summary": self.summary}
        for key in ("line", "lhs", "layers", "shape", "likely_mistake", "mistakes",
                    "counterexample", "difference", "correct", "correct_at_layer",
                    "evidence", "column", "expected", "convention", "symbols"):
            value = getattr(self, key)
            if value not in (None, [], {}):
                data[key] = value
        return data

    def __str__(self) -> str:
        """The report, each line safe to print (no control characters from the claim)."""
        return "\n".join(C.printable(line) for line in self._report_lines())

    def _report_lines(self) -> list[str]:
        where = f"line {self.line}: " if self.line is not None else ""
        lines = [f"{where}{self.verdict}: {' '.join(self.claim.split())}"]
        lines += self._reading_lines()
        if self.verdict == "cannot parse":
            lines.append(f"  at column {self.column}: {self.summary}")
            lines.append("    " + self.claim.replace("\n", " "))
            lines.append("    " + " " * max((self.column or 1) - 1, 0) + "^")
            return lines
        if self.verdict == "correct":
            return lines + [f"  {item}" for item in self.evidence]
        lines.append(f"  {self.summary}")
        if self.likely_mistake:
            lines.append(f"  likely mistake: {self.likely_mistake}")
            lines += [f"  also matches: {m}" for m in self.mistakes[1:]]
        if self.counterexample:
            lines += ["  " + line for line in _counterexample_lines(self.counterexample)]
        if self.difference:
            lines.append(f"  claim - truth = {self.difference}")
        if self.correct:
            lines.append(f"  correct: {self.correct}")
        if self.correct_at_layer and self.correct_at_layer != self.correct:
            lines.append(f"  at that layer: {self.correct_at_layer}")
        return lines


    def _reading_lines(self) -> list[str]:
        """How the claim was read: the convention and the user's symbols, when given."""
        lines = []
        if self.convention:
            lines.append(f"  read in the convention: {self.convention}")
        if self.symbols:
            mapping = ", ".join(f"{mine} = {ours}" for mine, ours in self.symbols.items())
            lines.append(f"  symbols: {mapping}")
        return lines


def _counterexample_lines(example: dict) -> list[str]:
    lines = [f"counterexample: {example['where']}"]
    for name, value in example.get("point", {}).items():
        lines.append(f"  {name} = {_short(value)}")
    lines.append(f"  claim gives {_short(example['claim'])}")
    lines.append(f"  truth is    {_short(example['truth'])}")
    return lines


def _short(value) -> str:
    array = np.asarray(value, dtype=float)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    return np.array2string(array, precision=4, suppress_small=True, separator=", ",
                           max_line_width=200).replace("\n", "")


def unparsed(text: str, error: C.ClaimParseError) -> Verdict:
    return Verdict("cannot parse", text, summary=error.reason, column=error.column,
                   expected=error.expected)


def overall(verdicts) -> str:
    """One verdict for several: ``cannot parse`` beats ``incorrect`` beats ``correct``."""
    names = {v.verdict for v in verdicts}
    for name in ("cannot parse", "incorrect"):
        if name in names:
            return name
    return "correct"
