"""The rows ``symbp derive --format latex`` prints, for the tests that read them back.

Contract: :func:`printed_rows` yields ``(section title, row)`` for every row of every
``align*`` block of a network's derivation document, each row as
:func:`~symbp.verify.claim_files.read_claims` reads a one-row block (the ``\\\\`` inside
``\\begin{cases}`` does not split a row).
"""

import re

from symbp.engine.derivation import derive_graph
from symbp.printing import render
from symbp.verify.claim_files import read_claims


def printed_rows(network):
    document = render(derive_graph(network), "latex")
    for section, block in re.findall(r"^% ([^\n]*)\n(\\begin\{align\*\}.*?\\end\{align\*\})",
                                     document, flags=re.MULTILINE | re.DOTALL):
        for row in split_rows(block):
            yield section, row


def split_rows(block: str) -> list[str]:
    """The rows of an align block: split at the ``\\\\`` outside ``\\begin{cases}``."""
    body = block.removeprefix("\\begin{align*}").removesuffix("\\end{align*}")
    rows, depth, start = [], 0, 0
    for match in re.finditer(r"\\begin\{cases\}|\\end\{cases\}|\\\\", body):
        token = match.group(0)
        depth += {"\\begin{cases}": 1, "\\end{cases}": -1}.get(token, 0)
        if token == "\\\\" and depth == 0:
            rows.append(body[start:match.start()])
            start = match.end()
    rows.append(body[start:])
    return [text for row in rows for _, text in read_claims(row.strip())]
