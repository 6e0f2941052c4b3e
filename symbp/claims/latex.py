"""LaTeX of claims' AST nodes (for echoing a claim, its truth and its variants).

Contract: :func:`to_latex` prints any node, :func:`leaf_latex` one quantity; with ``l_value``
the generic layer ``l`` is printed as that concrete layer.
"""

from __future__ import annotations

from dataclasses import replace

from symbp.claims.nodes import Add, Hadamard, LayerRef, Leaf, MatMul, Neg, Node, Sub

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
