"""Claims: the LaTeX subset that hand derivations are written in, parsed with Lark.

Contract: :func:`parse_claim` turns one line such as::

    \\delta^{(l)} = \\left((W^{(l+1)})^T \\delta^{(l+1)}\\right) \\odot f'(z^{(l)})

into a :class:`Claim`, a chain of sides ``lhs = rhs (= rhs ...)`` whose nodes
are the small AST defined below. The letters stay as the user wrote them
(``w``, ``h``, ``o``, ``t``, ``g``, ``\\hat{y}``, Ng's ``dW``, the layer variable
``k``): :mod:`symbp.verify.conventions` says what they mean, and
:mod:`symbp.verify.notation` reads index forms as matrices. The grammar is a real
LALR grammar (:data:`GRAMMAR`), not a set of regular expressions. Its precedence,
loosest first:

- ``+`` and ``-`` (also a leading ``-``);
- ``\\odot``, ``\\circ``, ``\\bullet``: the elementwise product, and ``*`` (:class:`Star`:
  Ng's elementwise product, or a convolution);
- ``\\sum_k``, ``\\sum_{k=1}^{n_l}`` (limits from 0 or 1), over the product that follows;
- juxtaposition, ``\\cdot``, ``\\times`` (the matrix product, or scaling when
  one side is a scalar) and ``/``;
- ``\\frac{d}{dz}`` applied to what follows;
- superscripts and subscripts: a layer ``^{(l+1)}``, ``^{l+1}``, ``^l``, Ng's
  ``^{[l]}``, Goodfellow's ``^{(k)}``, UFLDL's ``^{(n_l)}``, CS229's ``^{[\\ell]}``,
  Ng's example ``^{[l](i)}``; a transpose ``^T``, ``^\\top`` (also ``W^{(l+1)T}``);
  powers ``(a^{(l)})^2``, ``x^{-3/2}`` (a power of the square root); index
  subscripts ``w^l_{jk}``, ``\\Delta_{s,i}`` (an :class:`Indexed` entry); primes.

Atoms: the quantities (``W b z a x y \\delta``, batch ``X Y A Z \\Delta``, the batch
size ``B``; the letters of the sources above; the other ops' ``\\mu \\sigma^{2(l)}
\\sigma^{(l)} \\epsilon \\hat{x} \\gamma \\beta``, masks ``m^{(l)} r^{(l)}``, ``p``,
``\\lambda``, widths ``n_l``), numbers, ``\\mathbf{1}``, ``\\frac{..}{..}``, groups in
``( )``, ``\\left( \\right)``, ``[ ]``, ``\\{ \\}`` or ``{ }``, function applications
(``\\sigma \\tanh \\exp \\log \\ln \\sqrt``, ``\\operatorname{name}``, ``e^{..}``, an
argument without parentheses ``\\log\\cosh x``; ``f``, ``\\phi`` and a primed ``g'``,
``h'`` meaning the layer's activation, ``(f^l)'`` its derivative at ``z^l``,
Nielsen's ``\\Sigma'(z)`` the diagonal matrix of ``\\sigma'(z)``), ``\\begin{cases}``,
``\\max(u, v)``, ``\\mathbb{1}[u > v]``, and loss gradients
``\\frac{\\partial L}{\\partial W^{(l)}}`` (also ``\\ell C E J \\mathcal{L}``, ``E_n``,
``\\partial L/\\partial W``, ``\\nabla_{W^{(l)}} L``, ``\\nabla_a C``,
``\\frac{\\partial}{\\partial W} J(W,b;x,y)``, Ng's ``dz^{[l]}``). A trailing
``\\quad (a = f(z))`` (the printer's) is substituted into the sides.

Anything else raises :class:`ClaimParseError`, a
:class:`~symbp.errors.SymbpError` carrying the 1-based ``column`` and the
list of what was ``expected`` there; every error of Lark's becomes one. So do
the limits that keep every later step bounded: at most :data:`MAX_LENGTH`
characters, a parse tree at most :data:`MAX_DEPTH` levels deep (brackets,
operator chains, stacked superscripts; checked without recursion),
constants of at most :data:`MAX_DIGITS` digits, however they are combined, and
derivatives of order at most :data:`MAX_ORDER`.
Parsing never evaluates anything.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from functools import lru_cache

from symbp.errors import SymbpError

MAX_LENGTH = 2000
MAX_DEPTH = 50  # levels of the parse tree
MAX_DIGITS = 300  # of any constant a claim can produce
MAX_ORDER = 2  # of a derivative
MAX_EXPONENT = 12
MAX_NODES = 4000  # of a claim once a (a = f(z)) clause is substituted

GRAMMAR = r"""
start: expr (_EQ expr)+

?expr: sum
?sum: product
    | sum _PLUS product              -> add
    | sum _MINUS product             -> sub
    | _MINUS product                 -> neg
    | _PLUS product
?product: hterm
    | product _ODOT hterm            -> hadamard
    | product _STAR hterm            -> star
?hterm: mterm
    | sumop hterm                    -> sumover
    | mterm sumop hterm              -> matmul_sum
?mterm: unary
    | mterm _CDOT unary              -> matmul
    | mterm unary                    -> matmul
    | mterm _SLASH unary             -> div
?unary: postfix
    | dop unary                      -> derivative
?postfix: atom
    | postfix _SUP sup               -> superscript
    | postfix _SUB index             -> subscript
    | postfix PRIME                  -> prime
?atom: group
    | NUMBER                         -> number
    | leaf
    | wrapped
    | fn_app
    | fn_bare
    | frac
    | gradient
    | euler
    | cases
    | maximum
    | indicator
group: LPAR expr RPAR
     | _LBRACE expr _RBRACE
leaf: LEAF
    | HAT
    | SIGMAQ
    | WIDTH
wrapped: WRAP _LBRACE (LEAF | NUMBER | HAT | SIGMAQ) _RBRACE
cases: _BEGIN_CASES case_row (_ROWSEP case_row)* _ROWSEP? _END_CASES
case_row: expr (_CASE_AMP condition?)?
condition: CASEWORD? compare
         | CASEWORD                  -> otherwise
compare: sum CMP sum
maximum: _MAX LPAR expr _COMMA expr RPAR
indicator: INDICATOR LPAR compare RPAR
         | INDICATOR _SUB _LBRACE compare _RBRACE
euler: _EULER _SUP (_LBRACE expr _RBRACE | DIGIT | LEAF)
frac: _FRAC _LBRACE expr _RBRACE _LBRACE expr _RBRACE
    | _FRAC DIGIT DIGIT              -> frac_digits
dop: _FRAC _LBRACE _DIFF _RBRACE _LBRACE _DIFF LEAF _RBRACE
gradient: _FRAC _LBRACE _DIFF loss _RBRACE _LBRACE _DIFF target _RBRACE   -> grad
        | _DIFF loss _SLASH _DIFF target                                    -> grad
        | _NABLA _SUB _LBRACE target _RBRACE loss loss_args?                -> nabla
        | _NABLA _SUB (LEAF | HAT) loss loss_args?                          -> nabla_short
        | _FRAC _LBRACE _DIFF _RBRACE _LBRACE _DIFF target _RBRACE loss loss_args? -> grad_of
        | _FRAC _LBRACE _DIFF fname _RBRACE _LBRACE _DIFF LEAF _RBRACE      -> dfunc
        | NGD target                                                        -> ng_grad
target: (leaf | wrapped) (_SUP sup | _SUB index)*
loss: (BIGL | LOSSNAME) (_SUB index)?
loss_args: LOSSARGS
fn_app: fname fn_mod* fn_arg
fn_bare: LPAR fname fn_mod* RPAR PRIME
fname: FUNC | TEXTNAME | GENF
fn_mod: PRIME                        -> mod_prime
      | _SUB sub                     -> mod_sub
      | _SUP sup                     -> mod_sup
fn_arg: group
      | fn_app                       -> fn_arg_nested
      | (leaf | wrapped) (_SUP sup | _SUB index)* -> fn_arg_bare
sub: _LBRACE layer _RBRACE
   | layer_var
   | DIGIT
index: _LBRACE index_item (_COMMA? index_item)* _RBRACE
     | IDX                           -> index_one
     | DIGIT                         -> index_one
index_item: IDX | INT
sumop: _SUM (_SUB sum_range)? (_SUP sum_upper)?
sum_range: IDX
         | _LBRACE IDX (_EQ INT)? _RBRACE
sum_upper: _LBRACE bound _RBRACE
         | IDX                       -> bound
bound: IDX (_SUB bound_sub)? (_MINUS INT)?
bound_sub: IDX
         | _LBRACE IDX ((_PLUS | _MINUS) INT)? _RBRACE
sup: _LBRACE sup_item+ _RBRACE
   | TRANSPOSE                       -> sup_t
   | DIGIT                           -> sup_pow
   | layer_var                       -> sup_layer
   | PRIME_CMD                       -> sup_prime
sup_item: LPAR layer RPAR            -> sup_layer
        | LPAR EXAMPLE RPAR          -> sup_example
        | layer_var_expr             -> sup_layer
        | TRANSPOSE                  -> sup_t
        | INT                        -> sup_pow
        | _MINUS INT                 -> sup_negpow
        | _MINUS? INT _SLASH INT     -> sup_halfpow
        | PRIME_CMD                  -> sup_prime
        | PRIME                      -> sup_prime
layer: layer_var_expr
     | INT                           -> layer_int
layer_var_expr: layer_var
     | layer_var _PLUS INT           -> layer_plus
     | layer_var _MINUS INT          -> layer_minus
layer_var: SMALLL | BIGL | SMALLK | OUTLAYER | ELL

_EQ: "="
_PLUS: "+"
_MINUS: "-"
_SLASH: "/"
_SUP: "^"
_SUB: "_"
_COMMA: ","
LOSSARGS.5: /\((?=[^()]*[,;])[^()]*\)/
ELL: /\\ell(?![a-zA-Z])/
PRIME: "'"
_LBRACE: "{"
_RBRACE: "}"
LPAR: /\\left\s*([(\[]|\\\{)|\\[bB]igg?l?\s*([(\[]|\\\{)|[(\[]|\\\{/
RPAR: /\\right\s*([)\]]|\\\})|\\[bB]igg?r?\s*([)\]]|\\\})|[)\]]|\\\}/
_ODOT: /\\(odot|circ|bullet)(?![a-zA-Z])/
_STAR: "*"
_CDOT: /\\(cdot|times)(?![a-zA-Z])/
_FRAC: /\\[dt]?frac(?![a-zA-Z])/
_SUM: /\\sum(?![a-zA-Z])(\s*\\limits(?![a-zA-Z]))?/
_DIFF.3: /\\partial(?![a-zA-Z])|\\mathrm\s*\{\s*d\s*\}|d/
NGD.4: /d(?=\s*(\\mathbf\s*\{\s*)?[WbzaZAxX](?![a-zA-Z]))/
_NABLA: /\\nabla(?![a-zA-Z])/
_BEGIN_CASES: /\\begin\s*\{\s*cases\s*\}/
_END_CASES: /\\end\s*\{\s*cases\s*\}/
_ROWSEP: "\\\\"
_CASE_AMP: "\x01"
CASEWORD.4: /\\(text|mathrm|textrm|mbox)\s*\{\s*(for|if|when|otherwise|else)\s*\}/
CMP: />=?|<=?|\\(geq?|leq?|gt|lt|geqslant|leqslant)(?![a-zA-Z])/
_MAX: /\\max(?![a-zA-Z])/
INDICATOR.6: /\\(mathbb|mathbf|bm)\s*\{\s*1\s*\}(?=\s*(\[|\\left\s*\[|_|\())/
LEAF: /\\(delta|Delta|mu|epsilon|varepsilon|gamma|beta|lambda|pi)(?![a-zA-Z])|[WbzaxyAZXYBwhotgmNHMrpn]/
HAT: /\\hat\s*(\{\s*[yYxX]\s*\}|[yYxX])/
SIGMAQ.5: /\\sigma(?=\s*\^\s*\{?\s*(2\s*)?\()/
WIDTH.2: /n_\s*(\{\s*[lL]\s*([+-]\s*\d)?\s*\}|\{\s*\d\s*\}|[lL\d])/
WRAP: /\\(mathbf|boldsymbol|bm|vec|mathbb|bf)(?![a-zA-Z])/
FUNC: /\\(sigma|Sigma|Phi|tanh|exp|log|ln|sqrt|cosh|sinh|sech|sin|cos)(?![a-zA-Z])/
TEXTNAME.2: /\\(operatorname|mathrm|text|textrm|mathit|mathsf|rm)\s*\{\s*[A-Za-z](\\?_|[A-Za-z0-9])*\s*\}/
GENF: /f|\\phi(?![a-zA-Z])|\\varphi(?![a-zA-Z])/
_EULER: "e"
TRANSPOSE.3: /T|\\top(?![a-zA-Z])|\\intercal(?![a-zA-Z])|\\(mathsf|mathrm|mathtt|text)\s*\{\s*T\s*\}/
PRIME_CMD: /\\prime(?![a-zA-Z])/
BIGL: "L"
SMALLL: "l"
SMALLK: "k"
OUTLAYER: /n_\s*(\{\s*l\s*\}|l)/
EXAMPLE: /[ijnrst](?![a-zA-Z])/
LOSSNAME: /\\ell(?![a-zA-Z])|\\mathcal\s*\{\s*L\s*\}|[CEJ]/
IDX: /[a-zA-Z]/
NUMBER: /\d+(\.\d+)?|\.\d+/
INT: /\d+/
DIGIT: /\d/

%ignore /\s+/
%ignore /\\[,;:! ]|\\q?quad(?![a-zA-Z])|~|&|\\displaystyle(?![a-zA-Z])/
"""

# What each terminal looks like, for "expected ..." in error messages.
_TERMINAL_TEXT = {
    "_EQ": "'='", "_PLUS": "'+'", "_MINUS": "'-'", "_SLASH": "'/'", "_SUP": "'^'",
    "_SUB": "'_'", "PRIME": "\"'\"", "_LBRACE": "'{'", "_RBRACE": "'}'",
    "LPAR": "'('", "RPAR": "')'", "_ODOT": "'\\odot'", "_STAR": "'*'", "_CDOT": "'\\cdot'",
    "_FRAC": "'\\frac'", "_DIFF": "'\\partial' or 'd'", "_NABLA": "'\\nabla'",
    "LEAF": "a quantity (W, b, z, a, x, y, \\delta)", "WRAP": "'\\mathbf'",
    "FUNC": "a function (\\sigma, \\tanh, \\exp, \\log)",
    "TEXTNAME": "'\\operatorname{...}'", "GENF": "'f'", "_EULER": "'e'",
    "TRANSPOSE": "'T' or '\\top'", "PRIME_CMD": "'\\prime'", "BIGL": "'L'",
    "SMALLL": "'l'", "LOSSNAME": "a loss (L, \\ell, C, E)", "NUMBER": "a number",
    "INT": "an integer", "DIGIT": "a digit", "$END": "the end of the claim",
    "_SUM": "'\\sum'", "NGD": "'dW', 'dz' (Ng's gradients)", "HAT": "'\\hat{y}'",
    "_BEGIN_CASES": "'\\\\begin{cases}'", "_END_CASES": "'\\\\end{cases}'",
    "_ROWSEP": "'\\\\\\\\'", "_CASE_AMP": "'&'", "CASEWORD": "'\\\\text{if}'",
    "CMP": "a comparison (>, <, \\\\geq, \\\\leq)", "_MAX": "'\\\\max'",
    "INDICATOR": "'\\\\mathbb{1}'",
    "EXAMPLE": "an example (i)", "SMALLK": "'k'", "OUTLAYER": "'n_l'", "ELL": "'\\\\ell'", "LOSSARGS": "'(W, b)'", "SIGMAQ": "'\\\\sigma^{(l)}'", "WIDTH": "'n_l'", "IDX": "an index letter (i, j, k)", "_COMMA": "','",
}
_EXPECTED_ORDER = list(_TERMINAL_TEXT)

LOSS_NAMES = {"L": "L", r"\ell": r"\ell", "C": "C", "E": "E", "J": "J"}
FUNCTION_NAMES = {
    "sigma": "sigmoid", "tanh": "tanh", "exp": "exp", "log": "log", "ln": "log",
    "sqrt": "sqrt", "cosh": "cosh", "sinh": "sinh", "sech": "sech", "sin": "sin",
    "cos": "cos", "Sigma": "Sigma", "Phi": "normal_cdf",
}
_TEXT_ALIASES = {"erf": "erf", "Phi": "normal_cdf", "sigmoid": "sigmoid", "logistic": "sigmoid", "relu": "relu",
                 "softmax": "softmax", "softplus": "softplus", "diag": "diag",
                 "sech": "sech", "tanh": "tanh", "exp": "exp", "log": "log",
                 "identity": "identity", "id": "identity", "swish": "silu"}


class ClaimParseError(SymbpError):
    """A claim that is not in the accepted LaTeX subset; ``column`` is 1-based."""

    def __init__(self, message: str, column: int, expected=(), text: str = ""):
        super().__init__(f"column {column}: {message}")
        self.reason = message
        self.column = column
        self.expected = list(expected)
        self.text = text


def printable(text: str) -> str:
    """``text`` safe to echo on a terminal, one character for each (so that a caret
    still points at its column): whitespace becomes a space, and control, format,
    surrogate and unassigned characters become ``?``."""
    return "".join(" " if char.isspace() else "?" if unicodedata.category(char)[0] == "C"
                   else char for char in text)


# ---------------------------------------------------------------------- AST
@dataclass(frozen=True)
class LayerRef:
    """A layer index: ``var`` is ``'l'``, ``'L'`` or None (a concrete layer), plus ``offset``."""

    var: str | None
    offset: int = 0

    def shifted(self, by: int) -> "LayerRef":
        return LayerRef(self.var, self.offset + by)

    def resolve(self, l_value: int | None, depth: int) -> int:
        if self.var is None:
            return self.offset
        if self.var == "L":
            return depth + self.offset
        if l_value is None:
            raise ValueError("layer l is not bound")
        return l_value + self.offset

    @property
    def label(self) -> str:
        if self.var is None:
            return str(self.offset)
        if self.offset == 0:
            return self.var
        return f"{self.var}{'+' if self.offset > 0 else '-'}{abs(self.offset)}"

    def width(self) -> str:
        """The LaTeX width ``n_l``, ``n_{l+1}``."""
        label = self.label
        return f"n_{label}" if len(label) == 1 else f"n_{{{label}}}"


@dataclass(frozen=True)
class Node:
    span: tuple = field(default=(0, 0), compare=False, kw_only=True)


@dataclass(frozen=True)
class Num(Node):
    value: Fraction


@dataclass(frozen=True)
class Ones(Node):
    """``\\mathbf{1}``: a vector of ones whose length fits where it stands."""


@dataclass(frozen=True)
class Leaf(Node):
    """``name`` is W, b, z, a, x, y, delta or B; ``batch`` for X, Y, A, Z, \\Delta."""

    name: str
    layer: LayerRef | None = None
    batch: bool = False


@dataclass(frozen=True)
class Grad(Node):
    """``\\partial loss / \\partial target`` (target a Leaf W, b, z, a or x)."""

    loss: str
    target: Leaf


@dataclass(frozen=True)
class Neg(Node):
    arg: Node


@dataclass(frozen=True)
class Add(Node):
    left: Node
    right: Node


@dataclass(frozen=True)
class Sub(Node):
    left: Node
    right: Node


@dataclass(frozen=True)
class Hadamard(Node):
    left: Node
    right: Node


@dataclass(frozen=True)
class Star(Node):
    """``u * v``: Ng's (and NumPy's) elementwise product, or a convolution: the convention
    and the network decide (:mod:`symbp.verify.conventions`)."""

    left: Node
    right: Node


@dataclass(frozen=True)
class MatMul(Node):
    """Juxtaposition or ``\\cdot``: a matrix product, or scaling when one side is a scalar."""

    left: Node
    right: Node


@dataclass(frozen=True)
class Div(Node):
    num: Node
    den: Node


@dataclass(frozen=True)
class Transpose(Node):
    arg: Node


@dataclass(frozen=True)
class Power(Node):
    arg: Node
    exponent: int


@dataclass(frozen=True)
class Func:
    """A function: ``name`` (sigmoid, tanh, ..., or 'generic' for f, the layer's own)."""

    name: str
    order: int = 0  # number of primes
    power: int | None = None  # \tanh^2
    layer: LayerRef | None = None  # f_l
    letter: str = field(default="f", compare=False)  # as written: f, or \phi (a density too)

    @property
    def latex(self) -> str:
        known = {"sigmoid": r"\sigma", "tanh": r"\tanh", "exp": r"\exp", "log": r"\log",
                 "sqrt": r"\sqrt", "cosh": r"\cosh", "sinh": r"\sinh", "sin": r"\sin",
                 "cos": r"\cos"}
        if self.name == "generic":
            text = "f" + (f"_{{{self.layer.label}}}" if self.layer else "")
        else:
            text = known.get(self.name, rf"\operatorname{{{self.name}}}".replace("_", r"\_"))
        if self.power is not None:
            text += f"^{{{self.power}}}"
        return text + "'" * self.order


@dataclass(frozen=True)
class Apply(Node):
    func: Func
    arg: Node


@dataclass(frozen=True)
class Deriv(Node):
    """``\\frac{d}{d var} arg``."""

    var: str
    arg: Node


@dataclass(frozen=True)
class Indexed(Node):
    """An entry ``arg_{jk}`` of a vector or matrix (``arg`` a Leaf or a Grad); ``indices``
    are the index letters (or digits) as written, ``('s', 'i')`` for ``_{s,i}``."""

    arg: Node
    indices: tuple


@dataclass(frozen=True)
class Example(Node):
    """Ng's ``X^{[l](i)}``: the column (example) ``index`` of the batch quantity ``arg``."""

    arg: Node
    index: str


@dataclass(frozen=True)
class Sum(Node):
    """``\\sum_{index} body``: ``index`` None when the sum names none; ``lower`` the
    first value (0 or 1) when written; ``upper`` the upper limit's text when written."""

    index: str | None
    body: Node
    lower: int | None = None
    upper: str | None = None


@dataclass(frozen=True)
class Compare(Node):
    """``left op right``, ``op`` one of ``> < >= <=``: a condition, 1 where it holds."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Cases(Node):
    """``\\begin{cases} v_1 & c_1 \\\\ v_2 & \\text{otherwise} \\end{cases}``: ``rows`` of
    ``(value, Compare or None)``, the first row whose condition holds (elementwise)."""

    rows: tuple


@dataclass(frozen=True)
class Max(Node):
    """``\\max(left, right)``, elementwise."""

    left: Node
    right: Node


@dataclass(frozen=True)
class Indicator(Node):
    """``\\mathbb{1}[condition]``."""

    condition: Compare


@dataclass(frozen=True)
class Claim:
    """``sides[0] = sides[1] (= sides[2] ...)``; ``text`` is the claim as given (a trailing
    ``\\quad (a = f(z))``, as the printer writes, is substituted into the sides)."""

    sides: tuple
    text: str

    @property
    def lhs(self) -> Node:
        return self.sides[0]

    @property
    def rhs(self) -> Node:
        return self.sides[1]

    def source(self, node: Node) -> str:
        """The user's own text of ``node`` (whitespace normalised), or its LaTeX."""
        start, end = node.span
        if end > start:
            return " ".join(self.text[start:end].split())
        return to_latex(node)


def children(node: Node) -> list[tuple[str, Node]]:
    """The child nodes of ``node`` as ``(field name, child)`` (a gradient's target is
    part of its name, not a subexpression)."""
    if isinstance(node, Grad):
        return []
    if isinstance(node, Cases):
        return [(f"rows.{n}.{k}", part) for n, row in enumerate(node.rows)
                for k, part in enumerate(row) if part is not None]
    return [(f.name, getattr(node, f.name)) for f in fields(node)
            if isinstance(getattr(node, f.name), Node) and f.name != "span"]


def map_children(node: Node, fn) -> Node:
    """``node`` with ``fn`` applied to each child node (a case's value and condition too)."""
    if isinstance(node, Cases):
        rows = tuple(tuple(None if part is None else fn(part) for part in row)
                     for row in node.rows)
        return replace(node, rows=rows)
    changes = {name: fn(child) for name, child in children(node)}
    return replace(node, **changes) if changes else node


def walk(node: Node):
    """Every node of a tree, parents first, with its path (a tuple of field names)."""
    stack = [((), node)]
    while stack:
        path, current = stack.pop()
        yield path, current
        for name, child in reversed(children(current)):
            stack.append((path + (name,), child))


def replace_at(node: Node, path: tuple, new: Node) -> Node:
    """A copy of ``node`` with the subtree at ``path`` replaced by ``new``."""
    if not path:
        return new
    child = getattr(node, path[0])
    return replace(node, **{path[0]: replace_at(child, path[1:], new)})


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
    clause = _WHERE.search(stripped)
    if clause is not None:  # "\\quad (a = f(z))": parsed on its own, at its own columns
        stripped = stripped[:clause.start()].rstrip()
    tree = _lark_parse(_case_separators(stripped), text)
    _check_depth(tree, text)
    builder = _Builder(text)
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
                                  "(brackets, operators or superscripts)", _column(node),
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
    parts = [_largest_constant(child) for _, child in children(node)]
    worst = next((part for part in parts if part[1] > MAX_DIGITS), None)
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
    known = [n for n in _EXPECTED_ORDER if n in set(names)]
    other = sorted(n for n in set(names) if n not in _TERMINAL_TEXT)
    described = []
    for name in known + other:
        text = _TERMINAL_TEXT.get(name, name)
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


_LEAF_NAMES = {r"\delta": ("delta", False), r"\Delta": ("delta", True), "W": ("W", False),
               "b": ("b", False), "z": ("z", False), "a": ("a", False), "x": ("x", False),
               "y": ("y", False), "A": ("a", True), "Z": ("z", True), "X": ("x", True),
               "Y": ("y", True), "B": ("B", False), "w": ("w", False), "h": ("h", False),
               "H": ("h", True), "o": ("o", False), "t": ("t", False), "g": ("g", False),
               "m": ("m", False), "N": ("N", False), r"\mu": ("mu", False),
               r"\epsilon": ("eps", False), r"\varepsilon": ("eps", False),
               r"\gamma": ("gamma", False), r"\beta": ("beta", False),
               r"\lambda": ("lambda", False), "M": ("mask", True), "r": ("mask", False),
               "p": ("p", False), r"\sigma": ("sigma", False), "n": ("count", False),
               r"\pi": ("pi", False)}
# Letters kept as written, for a convention to map: a layer superscript may follow them.
_LAYERED = {"W", "b", "z", "a", "delta", "w", "h", "o", "g", "mu", "sigma", "sigma2", "eps",
            "xhat", "gamma", "beta", "mask", "p", "m"}
FUNCTION_LETTERS = {"g", "h"}  # a quantity, or with a prime an activation: h'(a_j), g'^{[l]}
_TARGETS = {"W", "b", "z", "a", "x", "w", "h", "o", "y", "yhat", "gamma", "beta", "xhat", "mu",
            "sigma2"}


@dataclass(frozen=True)
class _FnLetter:
    """While building: ``h'`` or ``g^{[l]\\prime}``, a function letter waiting for its argument."""

    letter: str
    order: int
    layer: LayerRef | None
    where: object


class _Builder:
    """Turns the Lark tree into AST nodes, checking what the grammar cannot express."""

    def __init__(self, text: str):
        self.text = text

    def fail(self, tree_or_token, message: str, expected=()):
        column = _column(tree_or_token)
        raise ClaimParseError(message, column, expected, self.text)

    def build(self, tree) -> Node:
        node = self.build_fn(tree)
        if isinstance(node, _FnLetter):
            self.fail(node.where, f"{node.letter}' needs its argument in parentheses, "
                                  f"e.g. {node.letter}'(a_j)", ["'('"])
        return node

    def build_fn(self, tree):
        """:meth:`build`, where a function letter waiting for its argument may result."""
        from lark import Token

        if isinstance(tree, Token):
            if tree.type == "NUMBER":
                return Num(Fraction(str(tree)), span=_span(tree))
            if tree.type == "LEAF":
                return self.leaf(tree)
            self.fail(tree, f"unexpected {str(tree)!r}")
        method = getattr(self, "r_" + tree.data, None)
        if method is None:  # pragma: no cover - every rule has a method
            self.fail(tree, f"unsupported construct {tree.data}")
        node = method(tree, *tree.children)
        span = _span(tree)
        if isinstance(node, Node) and span != (0, 0) and tree.data not in ("group", "fn_arg"):
            node = replace(node, span=span)
        return node

    # ----- arithmetic
    def r_add(self, tree, left, right):
        return Add(self.build(left), self.build(right))

    def r_sub(self, tree, left, right):
        return Sub(self.build(left), self.build(right))

    def r_neg(self, tree, arg):
        return Neg(self.build(arg))

    def r_sum(self, tree, arg):  # a leading '+'
        return self.build(arg)

    def r_hadamard(self, tree, left, right):
        return Hadamard(self.build(left), self.build(right))

    def r_star(self, tree, left, right):
        return Star(self.build(left), self.build(right))

    def r_matmul(self, tree, left, right):
        node = self.build_fn(left)
        if isinstance(node, _FnLetter):
            if getattr(right, "data", None) != "group":
                self.fail(right, f"{node.letter}' needs its argument in parentheses", ["'('"])
            func = Func("generic", node.order, layer=node.layer)
            if func.order > 2:
                self.fail(tree, "at most a second derivative f''")
            return Apply(func, self.build(right))
        return MatMul(node, self.build(right))

    def r_matmul_sum(self, tree, left, sumop, body):
        node = self.r_sumover(tree, sumop, body)
        start = _span(sumop)[0]
        return MatMul(self.build(left), replace(node, span=(start, _span(tree)[1])))

    def r_sumover(self, tree, sumop, body):
        index, lower, upper = None, None, None
        for part in sumop.children:
            if part.data == "sum_range":
                tokens = [t for t in part.children]
                index = str(tokens[0])
                if len(tokens) > 1:
                    lower = int(str(tokens[1]))
                    if lower not in (0, 1):
                        self.fail(tokens[1], f"a sum from {lower}: symbp reads sums over a "
                                             "whole range, from 0 or 1")
            else:
                upper = " ".join(self.text[slice(*_span(part))].split()).strip("{} ")
        return Sum(index, self.build(body), lower, upper)

    def r_subscript(self, tree, base, index):
        node = self.build(base)
        indices = self.index(index)
        if isinstance(node, Indexed):
            self.fail(index, "a second subscript")
        if not isinstance(node, (Leaf, Grad)):
            self.fail(index, "an index subscript belongs on a quantity, e.g. w^l_{jk}")
        return Indexed(node, indices)

    def index(self, tree) -> tuple:
        return tuple(str(token) for token in tree.scan_values(lambda v: True))

    def r_prime(self, tree, base, prime):
        node = self.build_fn(base)
        if isinstance(node, _FnLetter):
            return replace(node, order=node.order + 1)
        if isinstance(node, Leaf) and node.name in FUNCTION_LETTERS and not node.batch:
            return _FnLetter(node.name, 1, node.layer, tree)
        self.fail(prime, "a prime belongs on a function, e.g. f'(z^{(l)})")

    def r_div(self, tree, left, right):
        return Div(self.build(left), self.build(right))

    def r_frac(self, tree, num, den):
        return Div(self.build(num), self.build(den))

    def r_frac_digits(self, tree, num, den):
        return Div(Num(Fraction(str(num)), span=_span(num)),
                   Num(Fraction(str(den)), span=_span(den)))

    def r_number(self, tree, token):
        return Num(Fraction(str(token)))

    def r_group(self, tree, *parts):
        inner = [p for p in parts if not _is_token(p, "LPAR", "RPAR")]
        return self.build(inner[0])

    def r_derivative(self, tree, dop, arg):
        return Deriv(self.variable(dop.children[0]), self.build(arg))

    # ----- leaves
    def leaf(self, token) -> Leaf:
        text = str(token)
        if token.type == "HAT":
            letter = text.rstrip("} ")[-1]
            return Leaf(letter.lower() + "hat", None, letter.isupper(), span=_span(token))
        if token.type == "WIDTH":
            inner = text[text.index("_") + 1:].strip().strip("{}").replace(" ", "")
            ref = LayerRef(None, int(inner)) if inner.isdigit() else LayerRef(
                inner[0], int(inner[1:] or 0))
            return Leaf("n", ref, span=_span(token))
        name, batch = _LEAF_NAMES[str(token)]
        return Leaf(name, None, batch, span=_span(token))

    def r_leaf(self, tree, token):
        return self.leaf(token)

    def r_wrapped(self, tree, wrap, inner):
        if inner.type in ("LEAF", "HAT"):
            return self.leaf(inner)
        if Fraction(str(inner)) == 1:
            return Ones()
        self.fail(inner, "only \\mathbf{1} (a vector of ones) is supported as a bold number")

    def r_euler(self, tree, arg):
        exponent = self.build(arg) if not _is_token(arg, "DIGIT") else Num(
            Fraction(str(arg)), span=_span(arg))
        return Apply(Func("exp"), exponent)

    def variable(self, token) -> str:
        name, batch = _LEAF_NAMES[str(token)]
        if name not in ("z", "x", "a") or batch:
            self.fail(token, "differentiate with respect to a scalar variable z, x or a",
                      ["'z'", "'x'", "'a'"])
        return name

    # ----- superscripts
    def r_superscript(self, tree, base, sup):
        node = self.build_fn(base)
        return self.apply_sup(node, self.sup_items(sup), sup)

    def apply_sup(self, node, items, where):
        for kind, value, token in items:
            if isinstance(node, _FnLetter) or (kind == "prime" and isinstance(node, Leaf)
                                               and node.name in FUNCTION_LETTERS):
                node = self.function_letter_sup(node, kind, value, token)
                continue
            if kind == "example":
                if not isinstance(node, Leaf) or not node.batch:
                    self.fail(token, "an example's superscript (i) belongs on a batch quantity, "
                                     "e.g. dZ^{[l](i)}")
                node = Example(node, value, span=node.span)
                continue
            if kind == "layer":
                inner = node.arg if isinstance(node, Indexed) else node
                if isinstance(inner, Leaf) and inner.layer is None and inner.name in _LAYERED:
                    inner = replace(inner, layer=value, name="mask" if inner.name == "m"
                                    else inner.name)
                    node = replace(node, arg=inner) if isinstance(node, Indexed) else inner
                    continue
                if isinstance(inner, Leaf) and inner.name in _LAYERED:
                    self.fail(token, "a second layer index")
                self.fail(token, "a layer index belongs on W, b, z, a or \\delta "
                                 "(write the power as a number)")
            if kind == "T" and isinstance(node, Indexed):
                self.fail(token, "a transpose of an entry: transpose the matrix, or swap "
                                 "the indices")
            if kind == "sqrt":
                node = Apply(Func("sqrt"), node, span=node.span)
                continue
            if kind == "T":
                node = Transpose(node, span=(node.span[0], _span(token)[1]))
            elif kind == "pow":
                if abs(value) > MAX_EXPONENT or value == 0:
                    self.fail(token, f"exponent {value} outside 1..{MAX_EXPONENT} "
                                     f"(or -1..-{MAX_EXPONENT})")
                if isinstance(node, Leaf) and node.name == "sigma" and value == 2:
                    node = replace(node, name="sigma2", span=(node.span[0], _span(token)[1]))
                    continue
                node = Power(node, value, span=(node.span[0], _span(token)[1]))
            else:
                self.fail(token, "a prime belongs on a function, e.g. f'(z^{(l)})")
        return node

    def function_letter_sup(self, node, kind, value, token) -> _FnLetter:
        if isinstance(node, Leaf):
            node = _FnLetter(node.name, 0, node.layer, token)
        if kind == "prime":
            return replace(node, order=node.order + 1)
        if kind == "layer" and node.layer is None:
            return replace(node, layer=value)
        self.fail(token, f"unexpected superscript on the function {node.letter}'")

    def sup_items(self, sup) -> list:
        if sup.data == "sup":
            items = []
            for child in sup.children:
                items += self.sup_items(child)
            return items
        data = sup.data
        token = sup.children[0] if sup.children else sup
        if data == "sup_example":  # Ng's a^{[l](i)}: the example i
            return [("example", str(sup.children[1]), sup)]
        if data == "sup_layer":
            inner = [c for c in sup.children if not _is_token(c, "LPAR", "RPAR")][0]
            return [("layer", self.layer(inner), sup)]
        if data == "sup_t":
            return [("T", None, token)]
        if data == "sup_pow":
            return [("pow", int(str(token)), token)]
        if data == "sup_negpow":
            return [("pow", -int(str(token)), token)]
        if data == "sup_halfpow":  # x^{-3/2}: a power of the square root
            top, bottom = (int(str(t)) for t in sup.children)
            if bottom != 2:
                self.fail(token, "a fractional power other than a half (x^{3/2})")
            negative = self.text[_span(sup)[0]:_span(token)[0]].strip().startswith("-")
            power = -top if negative else top
            return [("sqrt", None, token)] + ([("pow", power, token)] if power != 1 else [])
        if data == "sup_prime":
            return [("prime", None, token)]
        self.fail(sup, "unexpected superscript")  # pragma: no cover

    def layer(self, tree) -> LayerRef:
        from lark import Token

        if isinstance(tree, Token):
            if tree.type in ("INT", "DIGIT"):
                return LayerRef(None, int(str(tree)))
            letter = {"OUTLAYER": "L", "ELL": "l"}.get(tree.type, str(tree))
            return LayerRef(letter, 0)
        if tree.data == "layer":
            return self.layer(tree.children[0])
        if tree.data == "layer_int":
            return LayerRef(None, int(str(tree.children[0])))
        if tree.data == "layer_var":
            return self.layer(tree.children[0])
        if tree.data == "layer_var_expr":
            return self.layer(tree.children[0])
        base = self.layer(tree.children[0])
        step = int(str(tree.children[1]))
        if step > 9:
            self.fail(tree.children[1], "a layer offset larger than 9")
        return base.shifted(step if tree.data == "layer_plus" else -step)

    # ----- functions
    def r_fn_app(self, tree, fname, *rest):
        *mods, arg = rest
        func = self.function(fname)
        for mod in mods:
            if mod.data == "mod_prime":
                func = replace(func, order=func.order + 1)
            elif mod.data == "mod_sub":
                if func.name != "generic":
                    self.fail(mod, "only f, g or \\phi take a layer subscript, e.g. f_l'")
                func = replace(func, layer=self.layer(mod.children[0].children[0]))
            else:
                for kind, value, token in self.sup_items(mod.children[0]):
                    if kind == "prime":
                        func = replace(func, order=func.order + 1)
                    elif kind == "pow" and func.power is None and 0 < value <= MAX_EXPONENT:
                        func = replace(func, power=value)
                    elif kind == "layer" and func.name == "generic" and func.layer is None:
                        func = replace(func, layer=value)
                    else:
                        self.fail(token, "unexpected superscript on a function")
        if func.order > 2:
            self.fail(tree, "at most a second derivative f''")
        if func.name == "Sigma":  # Nielsen's diagonal matrix of sigma'
            if func.order != 1 or func.power is not None:
                self.fail(tree, "\\Sigma'(z) is the diagonal matrix of \\sigma'(z); write it "
                                "with one prime")
            return Apply(Func("diag"), Apply(Func("sigmoid", 1), self.build(arg)))
        return Apply(func, self.build(arg))

    def r_fn_bare(self, tree, lpar, fname, *rest):
        *mods, _rpar, _prime = rest
        func = self.function(fname)
        if func.name != "generic":
            self.fail(fname, "only (f^l)' is read without an argument (it means f'(z^l))")
        for mod in mods:
            if mod.data == "mod_prime":
                func = replace(func, order=func.order + 1)
            elif mod.data == "mod_sub":
                func = replace(func, layer=self.layer(mod.children[0].children[0]))
            else:
                for kind, value, token in self.sup_items(mod.children[0]):
                    if kind == "layer" and func.layer is None:
                        func = replace(func, layer=value)
                    elif kind == "prime":
                        func = replace(func, order=func.order + 1)
                    else:
                        self.fail(token, "unexpected superscript on a function")
        if func.layer is None:
            self.fail(tree, "(f)' needs the layer whose z it is taken at, e.g. (f^l)'")
        func = replace(func, order=func.order + 1)
        if func.order > 2:
            self.fail(tree, "at most a second derivative f''")
        return Apply(func, Leaf("z", func.layer, span=_span(tree)))

    def r_fn_arg_nested(self, tree, app):
        return self.build(app)

    def function(self, fname) -> Func:
        token = fname.children[0]
        text = str(token)
        if token.type == "GENF":
            return Func("generic", letter="f" if str(token) == "f" else "phi")
        if token.type == "FUNC":
            return Func(FUNCTION_NAMES[text[1:]])
        name = text[text.index("{") + 1:text.rindex("}")].strip().replace("\\_", "_")
        return Func(_TEXT_ALIASES.get(name.lower(), name))

    def r_fn_arg(self, tree, group):
        return self.build(group)

    def r_fn_arg_bare(self, tree, base, *parts):
        return self.postfixes(self.build(base), parts)

    def postfixes(self, node, parts):
        """``node`` with the superscripts and index subscripts ``parts`` applied in order."""
        for part in parts:
            if part.data.startswith("index"):
                if isinstance(node, Indexed):
                    self.fail(part, "a second subscript")
                node = Indexed(node, self.index(part))
            else:
                node = self.apply_sup(node, self.sup_items(part), part)
        return node

    def r_dfunc(self, tree, fname, var):
        func = replace(self.function(fname), order=1)
        name = self.variable(var)
        return Apply(func, Leaf(name, span=_span(var)))

    # ----- cases, max, indicators
    def r_cases(self, tree, *rows):
        built = []
        for row in rows:
            value, *rest = row.children
            condition = self.build(rest[0]) if rest and rest[0].data == "condition" else None
            if rest and rest[0].data == "otherwise" and "otherwise" not in str(
                    rest[0].children[0]) and "else" not in str(rest[0].children[0]):
                self.fail(rest[0], "a case needs its condition, e.g. z > 0")
            built.append((self.build(value), condition))
        if any(cond is None for _, cond in built[:-1]):
            self.fail(tree, "only the last case may be 'otherwise'")
        return Cases(tuple(built))

    def r_condition(self, tree, *parts):
        return self.build(parts[-1])

    def r_compare(self, tree, left, op, right):
        text = str(op)
        normal = {"\\gt": ">", "\\lt": "<", "\\ge": ">=", "\\geq": ">=", "\\le": "<=",
                  "\\leq": "<=", "\\geqslant": ">=", "\\leqslant": "<="}.get(text, text)
        return Compare(normal, self.build(left), self.build(right))

    def r_maximum(self, tree, *parts):
        left, right = [p for p in parts if not _is_token(p, "LPAR", "RPAR")]
        return Max(self.build(left), self.build(right))

    def r_indicator(self, tree, token, *parts):
        (compare,) = [p for p in parts if not _is_token(p, "LPAR", "RPAR")]
        return Indicator(self.build(compare))

    # ----- loss gradients
    def r_nabla_short(self, tree, token, loss, *args):
        leaf = self.leaf(token)
        return self.gradient(self.loss(loss), leaf, token)

    def r_grad_of(self, tree, target, loss, *args):  # \frac{\partial}{\partial W} J(W, b)
        return self.gradient(self.loss(loss), self.target(target), target)

    def r_ng_grad(self, tree, d, target):
        return self.r_grad(tree, "d", target)

    def loss(self, tree) -> str:
        if isinstance(tree, str):
            return tree
        text = str(tree.children[0])
        return r"\ell" if text.startswith(r"\ell") else ("L" if "L" in text else text)

    def target(self, tree):
        base, *parts = tree.children
        return self.postfixes(self.build(base), parts)

    def r_grad(self, tree, loss, target):
        return self.gradient(self.loss(loss), self.target(target), target)

    def r_nabla(self, tree, target, loss, *args):  # the loss's arguments J(W,b;x,y) say nothing
        return self.gradient(self.loss(loss), self.target(target), target)

    def gradient(self, loss: str, node, where) -> Node:
        """``d loss / d node``; an entry ``d loss / d w_{jk}`` is the entry of the gradient.
        The target's letters stay as written (a convention maps them)."""
        indices = ()
        if isinstance(node, Transpose):  # Ng's dz^{[L]T}: the gradient, transposed
            return Transpose(self.gradient(loss, node.arg, where), span=node.span)
        if isinstance(node, Example):  # dZ^{[l](i)}: an example of the gradient
            return Example(self.gradient(loss, node.arg, where), node.index, span=node.span)
        if isinstance(node, Indexed):
            node, indices = node.arg, node.indices
        if not isinstance(node, Leaf) or node.name not in _TARGETS:
            self.fail(where, "differentiate the loss with respect to W, b, z, a or x",
                      ["W^{(l)}", "b^{(l)}", "z^{(l)}", "a^{(l)}"])
        grad = Grad(loss, node)
        return Indexed(grad, indices) if indices else grad


def _is_token(item, *types) -> bool:
    from lark import Token

    return isinstance(item, Token) and item.type in types


def _span(item) -> tuple:
    from lark import Token

    if isinstance(item, Token):
        return (item.start_pos or 0, item.end_pos or 0)
    meta = item.meta
    if getattr(meta, "empty", True):
        return (0, 0)
    return (meta.start_pos, meta.end_pos)


def _column(item) -> int:
    from lark import Token

    if isinstance(item, Token):
        return (item.start_pos or 0) + 1
    meta = getattr(item, "meta", None)
    if meta is None or getattr(meta, "empty", True):
        return 1
    return meta.start_pos + 1


# ------------------------------------------------------------------- LaTeX
_LETTER = {("delta", False): r"\delta", ("delta", True): r"\Delta", ("a", True): "A",
           ("z", True): "Z", ("x", True): "X", ("y", True): "Y"}


def leaf_latex(leaf: Leaf, l_value: int | None = None, depth: int | None = None) -> str:
    letter = _LETTER.get((leaf.name, leaf.batch), leaf.name)
    if leaf.layer is None:
        return letter
    layer = leaf.layer
    if l_value is not None or (layer.var == "L" and depth is not None):
        try:
            layer = LayerRef(None, layer.resolve(l_value, depth or 0))
        except ValueError:
            pass
    if layer.var is None and layer.offset == 0 and leaf.name == "a":
        return "X" if leaf.batch else "x"
    return f"{letter}^{{({layer.label})}}"


def to_latex(node: Node, l_value: int | None = None, depth: int | None = None) -> str:
    """LaTeX of an AST node; with ``l_value`` the generic layer ``l`` is made concrete."""
    return _LatexPrinter(l_value, depth).print(node)


class _LatexPrinter:
    def __init__(self, l_value, depth):
        self.l_value, self.depth = l_value, depth

    def print(self, node) -> str:
        return getattr(self, "p_" + type(node).__name__)(node)

    def wrap(self, node, *kinds) -> str:
        text = self.print(node)
        return rf"\left({text}\right)" if isinstance(node, kinds) else text

    def p_Num(self, node):
        value = node.value
        if value.denominator == 1:
            return str(value.numerator)
        sign = "-" if value < 0 else ""
        return rf"{sign}\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"

    def p_Ones(self, node):
        return r"\mathbf{1}"

    def p_Leaf(self, node):
        return leaf_latex(node, self.l_value, self.depth)

    def p_Grad(self, node):
        return rf"\frac{{\partial {node.loss}}}{{\partial {self.print(node.target)}}}"

    def p_Neg(self, node):
        return "-" + self.wrap(node.arg, Add, Sub, Neg)

    def p_Add(self, node):
        return f"{self.print(node.left)} + {self.wrap(node.right, Neg)}"

    def p_Sub(self, node):
        return f"{self.print(node.left)} - {self.wrap(node.right, Add, Sub, Neg)}"

    def p_Hadamard(self, node):
        return (f"{self.wrap(node.left, Add, Sub, Neg, MatMul)} \\odot "
                f"{self.wrap(node.right, Add, Sub, Neg, MatMul)}")

    def p_Star(self, node):
        return (f"{self.wrap(node.left, Add, Sub, Neg, MatMul)} * "
                f"{self.wrap(node.right, Add, Sub, Neg, MatMul)}")

    def p_MatMul(self, node):
        return (f"{self.wrap(node.left, Add, Sub, Neg, Hadamard)} "
                f"{self.wrap(node.right, Add, Sub, Neg, Hadamard, MatMul)}")

    def p_Div(self, node):
        return rf"\frac{{{self.print(node.num)}}}{{{self.print(node.den)}}}"

    def p_Transpose(self, node):
        arg = node.arg
        text = self.print(arg)
        if isinstance(arg, Leaf) and "^" not in text:
            return text + r"^{\top}"
        return rf"\left({text}\right)^{{\top}}"

    def p_Power(self, node):
        text = self.print(node.arg)
        if not (isinstance(node.arg, Leaf) and "^" not in text):
            text = rf"\left({text}\right)"
        return f"{text}^{{{node.exponent}}}"

    def p_Apply(self, node):
        func = node.func
        if func.name == "generic" and func.layer is not None and self.l_value is not None:
            try:
                concrete = LayerRef(None, func.layer.resolve(self.l_value, self.depth or 0))
                func = replace(func, layer=concrete)
            except ValueError:
                pass
        return rf"{func.latex}\left({self.print(node.arg)}\right)"

    def p_Deriv(self, node):
        return rf"\frac{{d}}{{d{node.var}}}\left({self.print(node.arg)}\right)"
