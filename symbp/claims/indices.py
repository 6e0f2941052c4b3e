"""Index expressions from the Lark tree: subscripts, a sum's limits, brackets, parameters.

Contract: :class:`IndexReading` (a base of :class:`~symbp.claims.builder.Builder`) reads
the index parts of a claim. :meth:`~IndexReading.index` turns a subscript into the
``indices`` of an :class:`~symbp.claims.nodes.Indexed`: ``_{jk}`` without commas is the
letters ``("j", "k")`` (as before index expressions existed); with commas each item is an
index expression, a plain letter (``c'``) or digit string staying a ``str``.
:meth:`~IndexReading.iexpr` turns one tree into an index expression (:class:`Num`,
:class:`Letter`, the width ``Leaf("n", ref)``, :class:`Add`, :class:`Sub`, :class:`Neg`,
:class:`MatMul`, :class:`Div`, :class:`Floor`, :class:`Mod`), from the subscripts' own
rules or from the general rules an Iverson bracket's operands are parsed with (where
``p``, ``W`` and ``H`` are read as quantities first: here they are letters; a bare
``W`` is the width, ``W^{(l)}`` a weight and refused). Anything else in an index (a
function, a quantity, a decimal) raises :class:`ClaimParseError` at its column.
"""

from __future__ import annotations

from fractions import Fraction

from symbp.claims.nodes import (
    Add,
    Div,
    Floor,
    Letter,
    MatMul,
    Mod,
    Neg,
    Node,
    Num,
    Sub,
)

_BINARY = {"add": Add, "sub": Sub, "matmul": MatMul, "times": MatMul}
_LETTER_TOKENS = ("IDX", "ILET", "LEAF")
_NUMBER_TOKENS = ("INT", "NUMBER", "DIGIT")
_WHAT = ("an index is made of index letters, integers, + - and division by an integer, "
         "\\lfloor \\rfloor and \\bmod")


class IndexReading:
    """The index parts of a claim (see the module docstring). The subclass provides
    ``text`` (the claim), ``fail(where, message)`` and ``leaf(token)`` (a width ``n_l``)."""

    # ------------------------------------------------------------ subscripts
    def index(self, tree) -> tuple:
        """The ``indices`` of a subscript (see the module docstring)."""
        if tree.data == "index_one":
            return (str(tree.children[0]),)
        items = tree.children
        if len(items) == 1:
            letters = self._juxtaposed(items[0])
            if letters is not None:
                return tuple(letters)
        return tuple(self.index_item(item) for item in items)

    def index_item(self, tree):
        """One item of a comma subscript: a plain letter or digits as ``str``, else a node."""
        plain = self._plain(tree)
        if plain is not None:
            return plain
        node = self.iexpr(tree)  # (l), (3): a letter or an integer in brackets is still one
        if isinstance(node, Letter):
            return node.name
        if isinstance(node, Num) and node.value >= 0:
            return str(node.value)
        return node

    def _juxtaposed(self, tree) -> list[str] | None:
        """``_{jk}``, ``_{2i}``: the letters and digits of a product written without
        operators, or None for anything else."""
        if getattr(tree, "data", None) == "matmul":
            left, right = (self._juxtaposed(child) for child in tree.children)
            return None if left is None or right is None else left + right
        plain = self._plain(tree)
        return None if plain is None else [plain]

    def _plain(self, tree) -> str | None:
        data = getattr(tree, "data", None)
        if data == "number" and _token_type(tree.children[0]) in _NUMBER_TOKENS:
            return str(tree.children[0])
        if data == "iletter" and all(_token_type(child) in ("IDX", "ELL", "PRIME")
                                     for child in tree.children):
            return "".join(str(child) for child in tree.children)
        return None

    # ------------------------------------------------------- index expressions
    def iexpr(self, tree) -> Node:
        """One index expression (see the module docstring)."""
        from lark import Token

        if isinstance(tree, Token):
            return self._index_token(tree)
        data = tree.data
        parts = [child for child in tree.children
                 if _token_type(child) not in ("LPAR", "RPAR")]
        if data in _BINARY:
            node = _BINARY[data](self.iexpr(parts[0]), self.iexpr(parts[1]))
        elif data in ("div", "frac"):
            node = Div(self.iexpr(parts[0]), self.iexpr(parts[1]))
        elif data == "mod":
            node = Mod(self.iexpr(parts[0]), self.iexpr(parts[1]))
        elif data == "neg":
            node = Neg(self.iexpr(parts[0]))
        elif data == "floor":
            node = Floor(self.iexpr(parts[0]))
        elif data in ("group", "number", "leaf") and len(parts) == 1:
            return self.iexpr(parts[0]) if data == "group" else self._spanned(
                self._index_token(parts[0]), tree)
        elif data == "iletter":
            node = Letter("".join(self.text[_start(tree):_end(tree)].split()))
        elif data == "prime":
            node = self._primed(tree)
        else:
            self.fail(tree, _WHAT)
        return self._spanned(node, tree)

    def _index_token(self, token) -> Node:
        kind, text = token.type, str(token)
        if kind in _NUMBER_TOKENS:
            value = Fraction(text)
            if value.denominator != 1:
                self.fail(token, f"an index is an integer, not {text}")
            return Num(value, span=_token_span(token))
        if (kind in _LETTER_TOKENS and len(text) == 1 and text.isalpha()) or kind == "ELL":
            return Letter(text, span=_token_span(token))
        if kind == "WIDTH":
            return self.leaf(token)
        self.fail(token, f"{text!r} in an index: {_WHAT}")

    def _primed(self, tree) -> Letter:
        """``H'`` (a letter and primes) read by the general rules."""
        base, primes = tree, 0
        while getattr(base, "data", None) == "prime":
            base, primes = base.children[0], primes + 1
        letter = self.iexpr(base)
        if not isinstance(letter, Letter):
            self.fail(tree, "a prime in an index belongs on a letter (H', c')")
        return Letter(letter.name + "'" * primes)

    def _spanned(self, node: Node, tree) -> Node:
        from dataclasses import replace

        return replace(node, span=(_start(tree), _end(tree)))

    # ------------------------------------------------------------- parameters
    def params(self, tree) -> tuple:
        """An operator's parameters ``_{1}``, ``_{(1,0)}``, ``_{S}``: index expressions."""
        return tuple(self.iexpr(child) for child in tree.children
                     if _token_type(child) not in ("LPAR", "RPAR"))


def _token_type(item) -> str | None:
    from lark import Token

    return item.type if isinstance(item, Token) else None


def _token_span(token) -> tuple:
    return (token.start_pos or 0, token.end_pos or 0)


def _start(tree) -> int:
    from lark import Token

    if isinstance(tree, Token):
        return tree.start_pos or 0
    return 0 if getattr(tree.meta, "empty", True) else tree.meta.start_pos


def _end(tree) -> int:
    from lark import Token

    if isinstance(tree, Token):
        return tree.end_pos or 0
    return 0 if getattr(tree.meta, "empty", True) else tree.meta.end_pos
