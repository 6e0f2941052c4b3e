"""Claim files: the claims of a ``.tex`` or text file, with their line numbers.

Contract: :func:`read_claims` returns ``(line, claim)`` pairs: one claim per row
of each display-math block (``align`` and the other math environments,
``\\[ \\]``, ``$$``), or one per non-empty line of a file without math
blocks. It reads the text in one linear scan; a block that is never closed, a
closer without its opener and more than :data:`MAX_CLAIMS` claims are a
:class:`~symbp.errors.SymbpError` naming the line.
"""

from __future__ import annotations

import bisect
import re

from symbp.errors import SymbpError

MAX_CLAIMS = 250  # per file: a CNN's derivation prints about 150 rows, and each claim takes time
_MATH_ENVIRONMENTS = frozenset({"align", "align*", "aligned", "equation", "equation*",
                                "gather", "gather*", "multline", "multline*", "eqnarray",
                                "eqnarray*"})
# Row breaks (consumed first, so that "\\[2pt]" is no "\["), environments, \[ \], $$.
_DELIMITER = re.compile(r"\\\\|\\begin\{([A-Za-z]+\*?)\}|\\end\{([A-Za-z]+\*?)\}|\\\[|\\\]|\$\$")
_COMMENT = re.compile(r"(?<!\\)%[^\n]*")
_DROP = re.compile(r"\\(label|tag)\*?\{[^}]*\}|\\(nonumber|notag)\b")
_ROW_BREAK = re.compile(r"\\\\|\\begin\{cases\}|\\end\{cases\}")
_ROW_SPACING = re.compile(r"\s*\[\s*-?[\d.]+\s*(pt|em|ex|mm|cm|in|bp|mu)\s*\]")  # \\[2pt]


def read_claims(text: str) -> list[tuple[int, str]]:
    """``(line, claim)`` pairs: one claim per row of each ``align`` (or other math)
    block; without math blocks, one claim per non-empty line. ``%`` starts a comment
    and a row that starts with ``=`` continues the previous row's left-hand side.

    The text is read in one left-to-right scan (time linear in its length). A math
    block that is never closed, a closer without its opener, and more than
    :data:`MAX_CLAIMS` claims are a :class:`~symbp.errors.SymbpError` naming the line."""
    text = _COMMENT.sub("", text)
    line_of = _line_finder(text)
    blocks = _math_blocks(text, line_of)
    if blocks:
        rows = [row for start, end in blocks for row in _block_rows(text, start, end, line_of)]
    else:
        rows = [(number, row) for number, row in enumerate(text.splitlines(), 1)
                if not row.strip().startswith("#")]
    claims = _claim_rows(rows)
    if len(claims) > MAX_CLAIMS:
        raise SymbpError(f"line {claims[MAX_CLAIMS][0]}: more than {MAX_CLAIMS} claims "
                         f"(symbp verify checks at most {MAX_CLAIMS} per file)")
    return claims


def _line_finder(text: str):
    """``position -> 1-based line number``, by bisection over the newlines."""
    newlines = [match.start() for match in re.finditer("\n", text)]
    return lambda position: bisect.bisect_left(newlines, position) + 1


def _math_blocks(text: str, line_of) -> list[tuple[int, int]]:
    """``(start, end)`` of the body of each math block. Inside a block only its own
    closer counts, as in LaTeX (no nesting of display math)."""
    blocks, opener, closer = [], None, None
    for match in _DELIMITER.finditer(text):
        token = match.group(0)
        if opener is None:
            role, partner = _delimiter_role(match)
            if role == "open":
                opener, closer = match, partner
            elif role == "close":
                raise SymbpError(f"line {line_of(match.start())}: {token} without {partner}")
        elif token == closer:
            blocks.append((opener.end(), match.start()))
            opener = None
    if opener is not None:
        raise SymbpError(f"line {line_of(opener.start())}: {opener.group(0)} is never closed "
                         f"(no {closer} follows)")
    return blocks


def _delimiter_role(match) -> tuple[str | None, str | None]:
    """``("open", its closer)``, ``("close", its opener)`` or ``(None, None)`` (a row
    break, or an environment that is not display math)."""
    token, begin, end = match.group(0), match.group(1), match.group(2)
    if begin in _MATH_ENVIRONMENTS:
        return "open", f"\\end{{{begin}}}"
    if end in _MATH_ENVIRONMENTS:
        return "close", f"\\begin{{{end}}}"
    return {"\\[": ("open", "\\]"), "\\]": ("close", "\\["),
            "$$": ("open", "$$")}.get(token, (None, None))


def _block_rows(text: str, start: int, end: int, line_of):
    """``(line, row)`` for the ``\\\\``-separated rows of one block body (a ``\\\\`` inside
    ``\\begin{cases}`` separates cases, not rows)."""
    depth, position = 0, start
    for match in _ROW_BREAK.finditer(text, start, end):
        token = match.group(0)
        if token != "\\\\":
            depth = max(depth + (1 if token.startswith("\\begin") else -1), 0)
            continue
        if depth == 0:
            yield _row(text, position, match.start(), line_of, position != start)
            position = match.end()
    yield _row(text, position, end, line_of, position != start)


def _row(text: str, start: int, end: int, line_of, after_break: bool) -> tuple[int, str]:
    row = text[start:end]
    spacing = _ROW_SPACING.match(row) if after_break else None
    body = row[spacing.end():] if spacing else row
    lead = len(row) - len(body.lstrip())
    return line_of(start + lead), body


def _claim_rows(rows) -> list[tuple[int, str]]:
    """Drop labels and markup; a row starting with ``=`` reuses the previous left side."""
    claims, previous_lhs = [], None
    for line, row in rows:
        row = _DROP.sub("", row).replace("\n", " ").strip().strip("$").strip()
        if not row:
            continue
        bare = row.replace("&", "").strip()
        if bare.startswith("=") and previous_lhs is not None:
            row = previous_lhs + " " + bare
        else:
            previous_lhs = bare.split("=", 1)[0].strip() if "=" in bare else None
        claims.append((line, row))
    return claims
