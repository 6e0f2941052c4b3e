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
- ``\\star``, ``\\star_{S}`` (:class:`Correlate`, a cross-correlation), left to right;
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

Tensor claims (convolutions, pooling, flatten; :mod:`~symbp.claims.indices`): comma
subscripts whose items are index expressions (``X_{s,c',i + p - 1,j + q - 1}``,
``\\delta_{c',(i - p + P)/S}``, ``\\lfloor i/2 \\rfloor``, ``i \\bmod 2``, ``4c + 2i + j``),
primed letters, sums with limits (``\\sum_{c'=0}^{n_{3} - 1}``, ``\\sum_{i=0}^{H' - 1}``),
Iverson brackets (``\\left[0 \\le i + p - 1 \\le 7\\right]``, ``\\left[(i - p)/2 \\in
\\{0, \\dots, 3\\}\\right]``, ``\\left[z > 0\\right]``), ``\\chi^{(l)}``,
``\\widetilde{\\Delta}^{(l)}``, and the operators ``\\operatorname{vec}`` (also as a
gradient's target, and ``\\operatorname{vec}^{-1}``), ``\\operatorname{pad}_{P}``,
``\\operatorname{dil}_{S}``, ``\\operatorname{rot}_{180^{\\circ}}``. Inside an index, a
sum's limits or a bracket every letter is an index letter or a geometry letter
(``K S P H W H' W' L L'``: there a bare ``W`` is the width); elsewhere an index letter is
refused. A trailing ``\\quad \\text{(...)}`` remark is dropped.

The package, a module per step: :mod:`~symbp.claims.grammar` (the grammar),
:mod:`~symbp.claims.builder` (the Lark tree to the AST), :mod:`~symbp.claims.indices` (its
index expressions), :mod:`~symbp.claims.nodes` (the AST),
:mod:`~symbp.claims.parse` (:func:`parse_claim`), :mod:`~symbp.claims.limits`,
:mod:`~symbp.claims.latex` (the AST printed).

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

from symbp.claims.latex import leaf_latex, to_latex
from symbp.claims.limits import (
    MAX_DEPTH,
    MAX_DIGITS,
    MAX_EXPONENT,
    MAX_LENGTH,
    MAX_NODES,
    MAX_ORDER,
)
from symbp.claims.nodes import (
    Add,
    Apply,
    Between,
    Cases,
    Claim,
    ClaimParseError,
    Compare,
    Correlate,
    Deriv,
    Div,
    Equal,
    Example,
    Floor,
    Func,
    Grad,
    Hadamard,
    Indexed,
    Indicator,
    LayerRef,
    Leaf,
    Letter,
    MatMul,
    Max,
    Member,
    Mod,
    Neg,
    Node,
    Num,
    Ones,
    Power,
    Prose,
    Star,
    Sub,
    Sum,
    Transpose,
    children,
    index_expressions,
    map_children,
    printable,
    replace_at,
    walk,
)
from symbp.claims.parse import parse_claim

__all__ = [
    "Add",
    "Apply",
    "Between",
    "Cases",
    "Claim",
    "ClaimParseError",
    "Compare",
    "Correlate",
    "Deriv",
    "Div",
    "Equal",
    "Example",
    "Floor",
    "Func",
    "Grad",
    "Hadamard",
    "Indexed",
    "Indicator",
    "LayerRef",
    "Leaf",
    "Letter",
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_EXPONENT",
    "MAX_LENGTH",
    "MAX_NODES",
    "MAX_ORDER",
    "MatMul",
    "Max",
    "Member",
    "Mod",
    "Neg",
    "Node",
    "Num",
    "Ones",
    "Power",
    "Prose",
    "Star",
    "Sub",
    "Sum",
    "Transpose",
    "children",
    "index_expressions",
    "leaf_latex",
    "map_children",
    "parse_claim",
    "printable",
    "replace_at",
    "to_latex",
    "walk",
]
