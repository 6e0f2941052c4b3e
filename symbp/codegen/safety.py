"""Safe rendering: nothing from a spec or a file name can become code.

Contract: every value a template renders passes through :func:`render_slot`
(the Jinja environment's ``finalize`` hook), which lets a value through
verbatim only when it is :class:`Code` (text made by the code generator: the
code printer's output, ``repr`` of a value, fixed strings) or a number. Every
other string is rendered by :func:`inert_text` as a fragment that is inert in
the three places templates put text: a docstring, a ``#`` comment and a
double-quoted string literal (backslashes and double quotes are escaped,
newlines, other non-printable characters and lone surrogates, e.g. the
``os.fsdecode`` form of a non-UTF-8 byte in a file name, become ``\\n``,
``\\x..``, ``\\u....`` escapes). Inside a docstring or a literal the escapes
read back as the original string; the output is always valid UTF-8. Any
other type (``None``, a bool, a list, a macro's output) is refused with a
``TypeError``, so a template that renders something unforeseen fails loudly
instead of printing it. A template that needs a value as a Python literal
writes ``{{ value | literal }}`` (made of ``repr``, a valid literal for
every str, int, finite float, bool and None, and containers of them).
"""

from __future__ import annotations

import pprint

import numpy as np


class Code(str):
    """Python source made by symbp itself (the code printer, ``repr``, fixed text): the
    only strings a template renders verbatim. Never built from a spec's or a user's text."""


def inert_text(text: str) -> str:
    """``text`` as a fragment that is inert in a docstring, a ``#`` comment and a
    double-quoted literal: one line, printable, valid UTF-8, no quote or backslash
    left that could end or alter the string it stands in."""
    pieces = []
    for character in text:
        if character in '\\"':
            pieces.append("\\" + character)
        elif character.isprintable():  # false for newlines, controls and lone surrogates
            pieces.append(character)
        else:
            pieces.append(ascii(character)[1:-1])  # \n, \x00, \u2028, \udcff
    return "".join(pieces)


def render_slot(value) -> str:
    """The Jinja ``finalize`` hook: what every ``{{ ... }}`` of a template prints."""
    if isinstance(value, Code):
        return value
    if isinstance(value, str):
        return inert_text(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    raise TypeError(f"a template rendered a {type(value).__name__}: only Code, text and "
                    "numbers may be rendered")


def literal(value) -> Code:
    """The Jinja filter ``literal``: ``value`` as a Python literal, made of ``repr``s
    (by ``pprint``, which wraps long lines)."""
    if not _is_literal(value):
        raise TypeError(f"no safe literal for {value!r}")
    return Code(pprint.pformat(value, width=88, sort_dicts=False))


def _is_literal(value) -> bool:
    if isinstance(value, (tuple, list)):
        return all(_is_literal(item) for item in value)
    if isinstance(value, dict):
        return all(_is_literal(key) and _is_literal(item) for key, item in value.items())
    if isinstance(value, float):
        return bool(np.isfinite(value))  # repr(nan) is not a literal
    return value is None or isinstance(value, (str, int))  # int includes bool
