"""Parsing a claim: the limits, the Lark parse and its errors, the ``(a = f(z))`` clause.

Contract: :func:`parse_claim` turns one line into a :class:`~symbp.claims.nodes.Claim` or
raises :class:`~symbp.claims.nodes.ClaimParseError`; it enforces the limits below before
anything is built from the claim, and never evaluates anything. A trailing remark
``\\quad \\text{(...)}`` (the printer's, after a row) is a comment: it is dropped.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache

from symbp.claims.builder import Builder, column_of
from symbp.claims.grammar import EXPECTED_ORDER, GRAMMAR, TERMINAL_TEXT
from symbp.claims.limits import MAX_DEPTH, MAX_DIGITS, MAX_LENGTH, MAX_NODES, MAX_ORDER
from symbp.claims.nodes import (
    Add,
    Apply,
    Claim,
    ClaimParseError,
    Deriv,
    Leaf,
    Node,
    Num,
    Power,
    Sub,
    children,
    index_expressions,
    map_children,
    walk,
)


# ------------------------------------------------------------------ parsing
@lru_cache(maxsize=1)
def _parser():
    from lark import Lark

    return Lark(GRAMMAR, parser="lalr", lexer="contextual", propagate_positions=True,
                maybe_placeholders=False)


def parse_claim(text: str) -> Claim:
    """Parse one claim; raise :class:`ClaimParseError` (with the column) if it is not valid."""
    if not isinstance(text, str):
        raise ClaimParseError("a claim must be a string", 1, text="")
    if len(text) > MAX_LENGTH:
        raise ClaimParseError(f"the claim is longer than {MAX_LENGTH} characters",
                              MAX_LENGTH + 1, text=text)
    stripped = text.rstrip()
    while stripped and stripped[-1] in ".,;" and not stripped.endswith("\\;"):
        stripped = stripped[:-1].rstrip()
    if not stripped.strip():
        raise ClaimParseError("empty claim", 1, ["a claim such as \\delta^{(l)} = ..."], text)
    remark = _REMARK.search(stripped)
    if remark is not None:  # "\quad \text{(zero-padded by 1)}": a comment
        stripped = stripped[:remark.start()].rstrip()
    clause = _WHERE.search(stripped)
    if clause is not None:  # "\\quad (a = f(z))": parsed on its own, at its own columns
        stripped = stripped[:clause.start()].rstrip()
    tree = _lark_parse(_case_separators(stripped), text)
    _check_depth(tree, text)
    builder = Builder(text)
    sides = tuple(builder.build(side) for side in tree.children)
    if clause is not None:
        padded = " " * clause.start(1) + clause.group(1)
        clause_tree = _lark_parse(padded, text)
        _check_depth(clause_tree, text)
        name, value = (builder.build(part) for part in clause_tree.children[:2])
        sides = _substitute(sides, name, value, text)
    claim = Claim(sides, text)
    _check_constants(claim)
    _check_derivative_order(claim)
    return claim


_REMARK = re.compile(r"\\q?quad\s*\\text\s*\{\s*\([^{}]*\)\s*\}\s*$")
_WHERE = re.compile(r"\\q?quad\s*\(\s*([a-z]\s*=\s*[^()=]*(\([^()=]*\))?[^()=]*)\)\s*$")


_CASES_BLOCK = re.compile(r"\\begin\s*\{\s*cases\s*\}.*?\\end\s*\{\s*cases\s*\}", re.DOTALL)


def _case_separators(text: str) -> str:
    """The ``&`` between a case's value and its condition made a token of its own (one
    character for one, so that the columns stay); elsewhere ``&`` is align markup."""
    return _CASES_BLOCK.sub(lambda m: m.group(0).replace("&", "\x01"), text)


def _substitute(sides: tuple, name: Node, value: Node, text: str) -> tuple:
    """The sides with the letter of a ``\\quad (a = f(z))`` clause replaced by its value;
    the clause's generic ``f`` is the function whose derivative the left side takes."""
    if not isinstance(name, Leaf) or name.layer is not None:
        raise ClaimParseError("the clause after \\quad defines a letter: (a = f(z))",
                              name.span[0] + 1, text=text)
    lhs = sides[0]
    if isinstance(lhs, Apply) and lhs.func.order and isinstance(value, Apply) \
            and value.func.name == "generic":
        value = replace(value, func=replace(lhs.func, order=0, power=None))

    def put(node):
        return value if node == name else map_children(node, put)

    sides = tuple(put(side) for side in sides)
    if sum(1 for side in sides for _ in walk(side)) > MAX_NODES:
        raise ClaimParseError(f"with the clause's {name.name} substituted the claim has more than "
                              f"{MAX_NODES} terms", name.span[0] + 1, text=text)
    return sides


def _check_depth(tree, original: str) -> None:
    """Refuse a parse tree deeper than :data:`MAX_DEPTH` (brackets, operators, superscripts),
    walked without recursion, so that nothing after the parser can exhaust the stack."""
    from lark import Tree

    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ClaimParseError(f"the claim is nested deeper than {MAX_DEPTH} levels "
                                  "(brackets, operators or superscripts)", column_of(node),
                                  text=original)
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def _check_constants(claim: Claim) -> None:
    """Refuse a claim whose numbers can reach more than :data:`MAX_DIGITS` digits
    (``9^{12}`` nested, a 400-digit literal): float64 cannot check them, and SymPy
    would spend minutes on their integers."""
    for side in claim.sides:
        node, digits = _largest_constant(side)
        if digits > MAX_DIGITS:
            raise ClaimParseError(
                f"the numbers here reach about 10^{digits}, beyond the {MAX_DIGITS} digits "
                "that symbp checks (float64)", node.span[0] + 1, text=claim.text)


def _largest_constant(node: Node) -> tuple[Node, int]:
    """``(the first node whose constants exceed MAX_DIGITS, or node; a bound on the digits
    of the rational constants that ``node`` can produce)``."""
    if isinstance(node, Num):
        return node, len(str(node.value.numerator)) + len(str(node.value.denominator))
    positions = [_largest_constant(part) for part in index_expressions(node)]
    parts = [_largest_constant(child) for _, child in children(node)]
    worst = next((part for part in positions + parts if part[1] > MAX_DIGITS), None)
    if worst is not None:
        return worst
    digits = [d for _, d in parts] or [1]
    if isinstance(node, Power):
        bound = digits[0] * abs(node.exponent)
    elif isinstance(node, Apply) and node.func.power:
        bound = digits[0] * node.func.power
    elif isinstance(node, (Add, Sub)):
        bound = max(digits) + 1
    else:  # products and quotients add their digits
        bound = sum(digits)
    return node, bound


def _check_derivative_order(claim: Claim) -> None:
    """Refuse derivatives of order above :data:`MAX_ORDER` (``\\frac{d}{dz}`` applied to
    ``f''``, twenty nested ``\\frac{d}{dz}``): each order multiplies SymPy's terms."""
    for side in claim.sides:
        for _, node in walk(side):
            order = _derivative_order(node)
            if order > MAX_ORDER:
                raise ClaimParseError(f"a derivative of order {order}; at most a second "
                                      "derivative is supported", node.span[0] + 1,
                                      text=claim.text)


def _derivative_order(node: Node) -> int:
    """The highest derivative order on any path from ``node`` down."""
    inner = max([_derivative_order(child) for _, child in children(node)] or [0])
    if isinstance(node, Deriv):
        return inner + 1
    if isinstance(node, Apply):
        return inner + node.func.order
    return inner


def _lark_parse(text: str, original: str):
    from lark.exceptions import (
        UnexpectedCharacters,
        UnexpectedEOF,
        UnexpectedInput,
        UnexpectedToken,
    )

    try:
        return _parser().parse(text)
    except UnexpectedToken as exc:
        token = exc.token
        if token.type == "$END":
            column, found = len(text.rstrip()) + 1, "end of the claim"
        else:
            column, found = exc.column, f"'{token}'"
        try:
            accepted = exc.accepts or exc.expected
        except Exception:  # the exact set needs the interactive parser; fall back
            accepted = exc.expected
        expected = _describe(accepted)
        raise ClaimParseError(f"unexpected {found}; expected {_join(expected)}",
                              column, expected, original) from None
    except UnexpectedCharacters as exc:
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        expected = _describe(exc.allowed or ())
        shown = _command_at(text, exc.pos_in_stream) or char
        raise ClaimParseError(f"unexpected '{shown}'; expected {_join(expected)}",
                              exc.column, expected, original) from None
    except UnexpectedEOF as exc:
        expected = _describe(exc.expected)
        raise ClaimParseError(f"unexpected end of the claim; expected {_join(expected)}",
                              len(text.rstrip()) + 1, expected, original) from None
    except UnexpectedInput as exc:  # any other input error Lark may raise
        column = getattr(exc, "column", 1)
        column = column if isinstance(column, int) and column > 0 else 1
        raise ClaimParseError(f"cannot read the claim here ({exc.__class__.__name__})",
                              min(column, len(text) + 1), text=original) from None


def _command_at(text: str, position: int) -> str:
    if position < len(text) and text[position] == "\\":
        end = position + 1
        while end < len(text) and text[end].isalpha():
            end += 1
        return text[position:max(end, position + 2)]
    return ""


def _describe(names) -> list[str]:
    known = [n for n in EXPECTED_ORDER if n in set(names)]
    other = sorted(n for n in set(names) if n not in TERMINAL_TEXT)
    described = []
    for name in known + other:
        text = TERMINAL_TEXT.get(name, name)
        if text not in described:
            described.append(text)
    return described


def _join(items: list[str]) -> str:
    if not items:
        return "something else"
    if len(items) == 1:
        return items[0]
    shown = items[:8] + (["..."] if len(items) > 8 else [])
    return "one of " + ", ".join(shown)


