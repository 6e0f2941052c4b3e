"""LaTeX of claims' AST nodes (for echoing a claim, its truth and its variants).

Contract: :func:`to_latex` prints any node, :func:`leaf_latex` one quantity; with ``l_value``
the generic layer ``l`` is printed as that concrete layer. Without it the printed text
parses back into an equal node (``parse_claim`` of ``to_latex``): brackets are added
where the grammar's precedence needs them, entries print their subscripts with commas,
index expressions as the printer writes them (``i + p - 1``, ``(i - p)/2``, ``2i``).
"""

from __future__ import annotations

from dataclasses import replace

from symbp.claims.nodes import (
    Add,
    Correlate,
    Div,
    Grad,
    Hadamard,
    LayerRef,
    Leaf,
    Letter,
    MatMul,
    Mod,
    Neg,
    Node,
    Num,
    Prose,
    Star,
    Sub,
    Sum,
    walk,
)

# ------------------------------------------------------------------- LaTeX
# The quantities as the grammar reads them (their names are not always their letters).
_LETTER = {("delta", False): r"\delta", ("delta", True): r"\Delta", ("a", True): "A",
           ("z", True): "Z", ("x", True): "X", ("y", True): "Y", ("chi", False): r"\chi",
           ("deltatilde", False): r"\widetilde{\delta}",
           ("deltatilde", True): r"\widetilde{\Delta}", ("mu_B", False): r"\mu_{\mathcal{B}}",
           ("sigma_B", False): r"\sigma_{\mathcal{B}}",
           ("sigma2_B", False): r"\sigma^{2}_{\mathcal{B}}", ("eps", False): r"\epsilon",
           ("gamma", False): r"\gamma", ("beta", False): r"\beta", ("lambda", False): r"\lambda",
           ("mu", False): r"\mu", ("pi", False): r"\pi", ("sigma", False): r"\sigma",
           ("count", False): "n", ("mask", False): "r", ("mask", True): "M",
           ("xhat", False): r"\hat{x}", ("xhat", True): r"\hat{X}", ("yhat", False): r"\hat{y}",
           ("yhat", True): r"\hat{Y}"}
_COMPARISON = {">": ">", "<": "<", ">=": r"\ge", "<=": r"\le"}
_OPERATORS = {"vec": r"\operatorname{vec}", "unvec": r"\operatorname{vec}^{-1}",
              "rot180": r"\operatorname{rot}_{180^{\circ}}", "pad": r"\operatorname{pad}",
              "dil": r"\operatorname{dil}"}
_LOOSE = (Add, Sub, Neg)  # what needs brackets inside a product


def leaf_latex(leaf: Leaf, l_value: int | None = None, depth: int | None = None) -> str:
    letter = _LETTER.get((leaf.name, leaf.batch), leaf.name)
    if leaf.layer is None:
        return letter
    layer = _concrete(leaf.layer, l_value, depth)
    if leaf.name == "n":  # a width n_l
        return layer.width()
    if leaf.name == "sigma2":  # \sigma^{2(l)}, the variance
        return rf"\sigma^{{2({layer.label})}}"
    if layer.var is None and layer.offset == 0 and leaf.name == "a":
        return "X" if leaf.batch else "x"
    return f"{letter}^{{({layer.label})}}"


def _concrete(layer: LayerRef, l_value, depth) -> LayerRef:
    if l_value is not None or (layer.var == "L" and depth is not None):
        try:
            return LayerRef(None, layer.resolve(l_value, depth or 0))
        except ValueError:
            pass
    return layer


def _decimal_places(denominator: int) -> int | None:
    """The decimal places of a fraction over ``denominator``, None if they do not end."""
    twos = fives = 0
    while denominator % 2 == 0:
        denominator, twos = denominator // 2, twos + 1
    while denominator % 5 == 0:
        denominator, fives = denominator // 5, fives + 1
    return max(twos, fives) if denominator == 1 else None


def _ends_in_sum(node) -> bool:
    """Whether ``node`` prints ending in a ``\\sum`` that would take in what follows."""
    while isinstance(node, (MatMul, Correlate)):
        node = node.right
    return isinstance(node, Sum)


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
        places = _decimal_places(value.denominator)
        if places is not None and not sign:  # 0.5, as written: a number, not \frac
            digits = str(value.numerator * 10 ** places // value.denominator).rjust(
                places + 1, "0")
            return f"{digits[:-places]}.{digits[-places:]}"
        return rf"{sign}\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"

    def p_Ones(self, node):
        return r"\mathbf{1}"

    def p_Leaf(self, node):
        return leaf_latex(node, self.l_value, self.depth)

    def p_Grad(self, node):
        if node.loss == "d":  # Ng's dW^{[l]}
            return f"d{self.print(node.target)}"
        return rf"\frac{{\partial {node.loss}}}{{\partial {self.print(node.target)}}}"

    def p_Neg(self, node):
        return "-" + self.wrap(node.arg, Add, Sub, Neg)

    def p_Add(self, node):
        return f"{self.print(node.left)} + {self.wrap(node.right, Add, Sub, Neg)}"

    def p_Sub(self, node):
        return f"{self.print(node.left)} - {self.wrap(node.right, Add, Sub, Neg)}"

    def p_Hadamard(self, node):
        return (f"{self.wrap(node.left, Add, Sub, Neg, MatMul)} \\odot "
                f"{self.wrap(node.right, Add, Sub, Neg, MatMul, Hadamard, Star)}")

    def p_Star(self, node):
        return (f"{self.wrap(node.left, Add, Sub, Neg, MatMul)} * "
                f"{self.wrap(node.right, Add, Sub, Neg, MatMul, Hadamard, Star)}")

    def p_MatMul(self, node):
        return f"{self.left_factor(node.left)} {self.wrap(node.right, *_LOOSE, Hadamard, Star, MatMul, Correlate)}"

    def left_factor(self, node) -> str:
        """The left operand of a product: bracketed when it would take in the right one."""
        if _ends_in_sum(node) and not isinstance(node, (Hadamard, Star)):
            return rf"\left({self.print(node)}\right)"
        return self.wrap(node, *_LOOSE, Hadamard, Star)

    def p_Correlate(self, node):
        stride = "" if node.stride is None else f"_{{{self.index(node.stride)}}}"
        right = self.wrap(node.right, *_LOOSE, Hadamard, Star, Sum, Correlate)
        return f"{self.left_factor(node.left)} \\star{stride} {right}"

    def p_Sum(self, node):
        text = r"\sum"
        if node.index is not None:
            lower = "" if node.lower is None else f"={node.lower}"
            text += f"_{{{node.index}{lower}}}"
        if node.limit is not None and (node.upper is None or self.l_value is not None):
            text += f"^{{{self.index(node.limit)}}}"
        elif node.upper is not None:
            text += f"^{{{node.upper}}}"
        return f"{text} {self.wrap(node.body, *_LOOSE, Hadamard, Star)}"

    # ----- entries and index expressions
    def p_Indexed(self, node):
        items = node.indices
        if len(items) == 1 and isinstance(items[0], MatMul):  # _{(2i)}: not the letters 2, i
            text = f"({self.index(items[0])})"
        else:
            text = ",".join(item if isinstance(item, str) else self.index(item)
                            for item in items)
        if isinstance(node.arg, Grad):  # the entry's subscript goes on the target
            return self.p_Grad(replace(node.arg, target=replace(node, arg=node.arg.target)))
        return f"{self.print(node.arg)}_{{{text}}}"

    def index(self, node) -> str:
        """An index expression, as the subscripts' (and brackets') rules read it."""
        return getattr(self, "i_" + type(node).__name__)(node)

    def iwrap(self, node, *kinds) -> str:
        text = self.index(node)
        return f"({text})" if isinstance(node, kinds) else text

    def i_Num(self, node):
        return str(node.value)

    def i_Letter(self, node):
        return node.name

    def i_Leaf(self, node):
        return self.p_Leaf(node)

    def i_Add(self, node):
        return f"{self.index(node.left)} + {self.iwrap(node.right, *_LOOSE)}"

    def i_Sub(self, node):
        return f"{self.index(node.left)} - {self.iwrap(node.right, *_LOOSE)}"

    def i_Neg(self, node):
        return f"-{self.iwrap(node.arg, *_LOOSE)}"

    def i_MatMul(self, node):
        left = self.iwrap(node.left, *_LOOSE)
        right = self.iwrap(node.right, *_LOOSE, MatMul, Div, Mod)
        glue = "" if isinstance(node.left, Num) and isinstance(node.right, Letter) else " "
        return f"{left}{glue}{right}"

    def i_Div(self, node):
        return f"{self.iwrap(node.num, *_LOOSE)}/{self.iwrap(node.den, *_LOOSE, MatMul, Div, Mod)}"

    def i_Mod(self, node):
        return (f"{self.iwrap(node.arg, *_LOOSE)} \\bmod "
                f"{self.iwrap(node.modulus, *_LOOSE, MatMul, Div, Mod)}")

    def i_Floor(self, node):
        return rf"\lfloor {self.index(node.arg)} \rfloor"

    # ----- conditions
    def p_Indicator(self, node):
        return rf"\left[{self.print(node.condition)}\right]"

    def p_Compare(self, node):
        return f"{self.side(node.left)} {_COMPARISON[node.op]} {self.side(node.right)}"

    def p_Equal(self, node):
        return f"{self.side(node.left)} = {self.side(node.right)}"

    def side(self, node) -> str:
        """A side of a comparison: an index expression (one with a letter) as one."""
        letters = any(isinstance(part, Letter) for _, part in walk(node))
        return self.index(node) if letters else self.print(node)

    def p_Between(self, node):
        return (f"{self.index(node.low)} {_COMPARISON[node.low_op]} {self.index(node.middle)} "
                f"{_COMPARISON[node.high_op]} {self.index(node.high)}")

    def p_Member(self, node):
        return (rf"{self.index(node.expr)} \in \{{{self.index(node.low)}, \dots, "
                rf"{self.index(node.high)}\}}")

    def p_Cases(self, node):
        rows = [f"{self.print(value)} & " + self.case_condition(condition)
                for value, condition in node.rows]
        return r"\begin{cases} " + r" \\ ".join(rows) + r" \end{cases}"

    def case_condition(self, condition) -> str:
        if condition is None:
            return r"\text{otherwise}"
        if isinstance(condition, Prose):
            return rf"\text{{{condition.text}}}"
        return rf"\text{{if}}\: {self.print(condition)}"

    def p_Example(self, node):  # Ng's A^{[l](i)}: the example after the layer
        text = self.print(node.arg)
        if text.endswith(")}"):
            return f"{text[:-1]}({node.index})}}"
        return f"{text}^{{({node.index})}}"

    def p_Max(self, node):
        return rf"\max\left({self.print(node.left)}, {self.print(node.right)}\right)"

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
            func = replace(func, layer=_concrete(func.layer, self.l_value, self.depth))
        return rf"{self.function(func)}\left({self.print(node.arg)}\right)"

    def function(self, func) -> str:
        if func.name not in _OPERATORS:
            return func.latex
        text = _OPERATORS[func.name]
        if len(func.params) == 1:
            text += f"_{{{self.index(func.params[0])}}}"
        elif func.params:
            text += "_{(" + ",".join(self.index(p) for p in func.params) + ")}"
        return text

    def p_Deriv(self, node):
        return rf"\frac{{d}}{{d{node.var}}}\left({self.print(node.arg)}\right)"
