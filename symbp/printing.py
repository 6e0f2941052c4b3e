"""Printing derived formulas: LaTeX, Markdown, plain text and JSON.

Contract: :func:`document` arranges a :class:`~symbp.derive.Derivation` into
titled sections of :class:`Row` objects (a quantity's name, its LaTeX
left-hand side and right-hand side in matrix form, its index form, and a
machine-readable SymPy form); :func:`render` turns that into one of the
output formats. Matrix forms are printed from the :mod:`symbp.forms` trees
that passed the self-check; index forms from the SymPy expressions with
Kronecker deltas already summed away. The LaTeX uses ``align*``, ``\\odot``
for the elementwise product, ``^{\\top}`` for transposes and ``^{(l)}`` for
layer indices; it never shows SymPy internals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from symbp import forms
from symbp.registry import A, X, Y

FORMATS = ("latex", "markdown", "text", "json")


@dataclass(frozen=True)
class Row:
    name: str
    lhs: str
    rhs: str
    index_lhs: str = ""
    index_rhs: str = ""
    text: str = ""
    sympy: str = ""


@dataclass(frozen=True)
class Section:
    title: str
    rows: tuple


def print_add_positive_first(printer, expr) -> str:
    """A sum with its positive terms first (``a - y``, not ``-y + a``), for any printer."""
    terms = sorted(expr.as_ordered_terms(), key=lambda t: t.could_extract_minus_sign())
    text = printer._print(terms[0])
    for term in terms[1:]:
        if term.could_extract_minus_sign():
            text += " - " + printer.parenthesize(-term, PRECEDENCE["Add"])
        else:
            text += " + " + printer._print(term)
    return text


# ---------------------------------------------------------------- scalar LaTeX
class _ScalarLatex(LatexPrinter):
    """LaTeX of elementwise and index expressions, with the notation's names.

    Products of vector quantities print as ``\\odot``; bases with a layer
    superscript get parentheses before a power; ``Indexed`` objects print as
    ``W^{(l)}_{ij}`` (``f_l'(z^{(l)}_j)`` for an activation derivative).
    """

    def __init__(self, names: dict, tensors: dict | None = None, odot: bool = True):
        super().__init__({"symbol_names": names, "mul_symbol": None})
        self.tensors = tensors or {}
        self.odot = odot

    def _print_Indexed(self, expr):
        tensor = self.tensors.get(expr.base.label)
        indices = "".join(self._print(i) for i in expr.indices)
        if tensor is not None and tensor.letter == "fprime":
            z = forms.Tensor("z", tensor.layer, tensor.batch).latex
            return f"f_{{{sp.latex(tensor.layer)}}}'\\left({z}_{{{indices}}}\\right)"
        name = tensor.latex if tensor is not None else self._print(expr.base.label)
        return f"{name}_{{{indices}}}"

    def _print_Add(self, expr, order=None):
        return print_add_positive_first(self, expr)

    def _print_Pow(self, expr):
        base, exponent = expr.as_base_exp()
        if exponent == -1 or not isinstance(base, (sp.Symbol, sp.Indexed)):
            return super()._print_Pow(expr)
        text = self._print(base)
        if "^" in text:
            return f"\\left({text}\\right)^{{{self._print(exponent)}}}"
        return super()._print_Pow(expr)

    def _print_Mul(self, expr):
        if not self.odot:
            return super()._print_Mul(expr)
        numerator, denominator = sp.fraction(expr)
        if denominator != 1:
            return rf"\frac{{{self._print(numerator)}}}{{{self._print(denominator)}}}"
        coefficient, factors = expr.as_coeff_mul()
        constants = [f for f in factors if f.is_number]
        factors = [f for f in factors if not f.is_number]
        if constants:  # scalar constants multiply plainly, in front
            scalar = sp.Mul(coefficient, *constants)
            text = super()._print_Mul(scalar) if isinstance(scalar, sp.Mul) else \
                self._print(scalar)
            if not factors:
                return text
            rest = factors[0] if len(factors) == 1 else sp.Mul(*factors, evaluate=False)
            return f"{text} {self._wrap(rest)}"
        if len(factors) < 2:
            return super()._print_Mul(expr)
        parts = [self._wrap(f) for f in factors]
        body = r" \odot ".join(parts)
        if coefficient == 1:
            return body
        if coefficient == -1:
            return "- " + body
        return f"{self._print(coefficient)} {body}"

    def _wrap(self, factor):
        text = self._print(factor)
        return rf"\left({text}\right)" if isinstance(factor, sp.Add) else text


class _ScalarText(StrPrinter):
    def __init__(self, names: dict):
        super().__init__()
        self.names = names

    def _print_Symbol(self, expr):
        return self.names.get(expr, expr.name)

    def _print_Piecewise(self, expr):
        parts = [f"{self._print(value)} if {self._print(cond)}" for value, cond in expr.args
                 if cond != sp.true]
        parts += [f"{self._print(value)} otherwise" for value, cond in expr.args
                  if cond == sp.true]
        return "(" + ", ".join(parts) + ")"

    def _print_Add(self, expr, order=None):
        return print_add_positive_first(self, expr)


# ------------------------------------------------------------- matrix trees
class _TreePrinter:
    """Prints :mod:`symbp.forms` trees as LaTeX (``style='latex'``) or plain text."""

    def __init__(self, style: str = "latex"):
        self.latex = style == "latex"

    def name(self, tensor: forms.Tensor) -> str:
        if self.latex:
            return tensor.latex
        if tensor.is_input or tensor.letter == "y":
            return tensor.latex
        if tensor.letter == "fprime":
            z = "Z" if tensor.batch else "z"
            return f"f_{tensor.layer}'({z}^({tensor.layer}))"
        letter = {"delta": "delta", "z": "z", "a": "a"}.get(tensor.letter, tensor.letter)
        if tensor.batch and tensor.letter in ("z", "a"):
            letter = letter.upper()
        if tensor.batch and tensor.letter == "delta":
            letter = "Delta"
        return f"{letter}^({tensor.layer})"

    def print(self, node) -> str:
        method = getattr(self, "_" + type(node).__name__)
        return method(node)

    def _Leaf(self, node):
        return self.name(node.tensor)

    def _Ones(self, node):
        return r"\mathbf{1}" if self.latex else "1"

    def _Transpose(self, node):
        inner = self.print(node.arg)
        simple = isinstance(node.arg, forms.Leaf) and "^" not in inner
        if not simple:
            inner = rf"\left({inner}\right)" if self.latex else f"({inner})"
        return inner + (r"^{\top}" if self.latex else "^T")

    def _MatMul(self, node):
        return f"{self.factor(node.left)} {self.factor(node.right)}"

    def factor(self, node) -> str:
        """A matrix product's operand: products chain without parentheses; an
        elementwise product is grouped (``(A ⊙ G) 1``)."""
        if isinstance(node, forms.MatMul):
            return self.print(node)
        if isinstance(node, forms.Elementwise) and isinstance(node.expr, sp.Mul) \
                and len([f for f in node.expr.args if not f.is_number]) > 1:
            text = self.print(node)
            return rf"\left({text}\right)" if self.latex else f"({text})"
        return self.group(node)

    def _Hadamard(self, node):
        joiner = r" \odot " if self.latex else " ⊙ "
        return joiner.join(self.group(arg) for arg in node.args)

    def _Add(self, node):
        return join_signed_terms([self.print(arg) for arg in node.args])

    def _Scale(self, node):
        if node.factor == -1:  # a product binds tighter than the minus: no parentheses
            product = isinstance(node.arg, (forms.Leaf, forms.Hadamard, forms.MatMul))
            return "-" + (self.print(node.arg) if product else self.group(node.arg))
        factor = sp.latex(node.factor) if self.latex else str(node.factor)
        return f"{factor} {self.factor(node.arg)}"

    def _Elementwise(self, node):
        if node.expr.is_number and self.latex:  # a constant vector: c times the ones
            ones = r"\mathbf{1}"
            return {1: ones, -1: "-" + ones}.get(node.expr, f"{sp.latex(node.expr)} {ones}")
        names = {s: self.name(t) for s, t in node.tensors}
        if self.latex:
            return _ScalarLatex(names).doprint(node.expr)
        return _ScalarText(names).doprint(node.expr)

    def group(self, node) -> str:
        text = self.print(node)
        needs = isinstance(node, (forms.Add, forms.Hadamard, forms.Scale, forms.MatMul)) or (
            isinstance(node, forms.Elementwise) and isinstance(node.expr, sp.Add))
        if not needs:
            return text
        return rf"\left({text}\right)" if self.latex else f"({text})"


def join_signed_terms(terms: list[str]) -> str:
    """``a``, ``-b``, ``c`` -> ``a - b + c``: a term's own leading minus becomes the
    operator (a product binds tighter than the sum, so the value is the same)."""
    text = terms[0]
    for term in terms[1:]:
        text += f" - {term[1:].lstrip()}" if term.startswith("-") else f" + {term}"
    return text


def matrix_latex(node) -> str:
    return _TreePrinter("latex").print(node)


def matrix_text(node) -> str:
    return _TreePrinter("text").print(node)


def index_latex(formula) -> str:
    return _ScalarLatex({}, formula.tensors, odot=False).doprint(formula.index)


# ------------------------------------------------------------------ document
def _grad_lhs(letter: str, layer, batch: bool, indices: str = "") -> str:
    loss = "L" if batch else r"\ell"
    return rf"\frac{{\partial {loss}}}{{\partial {letter}^{{({sp.latex(layer)})}}{indices}}}"


def _delta_lhs(formula, indices=""):
    return forms.Tensor("delta", formula.layer, formula.batch).latex + indices


def _formula_row(name: str, lhs: str, formula, index_lhs: str, text_lhs: str) -> Row:
    return Row(name=name, lhs=lhs, rhs=matrix_latex(formula.matrix),
               index_lhs=index_lhs, index_rhs=index_latex(formula),
               text=f"{text_lhs} = {matrix_text(formula.matrix)}", sympy=sp.srepr(formula.index))


def _formula_rows(formula, label: str) -> list[Row]:
    """The rows of one delta/dW/db formula."""
    batch = formula.batch
    row_index = "s" if batch else ""
    text_printer = _TreePrinter("text")
    if formula.name == "delta":
        text_lhs = text_printer.name(forms.Tensor("delta", formula.layer, batch))
        return [_formula_row(f"{label}delta", _delta_lhs(formula), formula,
                             _delta_lhs(formula, f"_{{{row_index}j}}"), text_lhs)]
    letter = formula.name[1]
    indices = "_{ij}" if letter == "W" else "_{i}"
    text_lhs = f"d{'L' if batch else 'l'}/d{letter}^({formula.layer})"
    return [_formula_row(f"{label}d{letter}", _grad_lhs(letter, formula.layer, batch),
                         formula, _grad_lhs(letter, formula.layer, batch, indices), text_lhs)]


def _forward_section(derivation) -> Section:
    network = derivation.network
    rows = [Row("dense", r"z^{(l)}", r"W^{(l)} a^{(l-1)} + b^{(l)}",
                r"z^{(l)}_{i}", r"\sum_{j} W^{(l)}_{ij} a^{(l-1)}_{j} + b^{(l)}_{i}",
                "z^(l) = W^(l) a^(l-1) + b^(l)")]
    for formulas in derivation.layers:
        activation = formulas.activation
        lhs = rf"a^{{({formulas.layer})}}"
        if activation.is_softmax:
            rhs = rf"\operatorname{{softmax}}\left(z^{{({formulas.layer})}}\right)"
            index_rhs = (rf"\frac{{e^{{z^{{({formulas.layer})}}_{{k}}}}}}"
                         rf"{{\sum_{{m}} e^{{z^{{({formulas.layer})}}_{{m}}}}}}")
        else:
            z = rf"z^{{({formulas.layer})}}"
            rhs = _ScalarLatex({X: z}).doprint(activation.expr)
            index_rhs = _ScalarLatex({X: z + "_{k}"}, odot=False).doprint(activation.expr)
        rows.append(Row(f"a{formulas.layer}", lhs, rhs, lhs + "_{k}", index_rhs,
                        f"a^({formulas.layer}) = {activation.name}(z^({formulas.layer}))"))
    loss = network.loss_definition
    names = {A: rf"a^{{({network.depth})}}_{{k}}", Y: "y_{k}"}
    term = _ScalarLatex(names, odot=False).doprint(loss.expr)
    rows.append(Row("loss", r"\ell", rf"\sum_{{k}} {_braced(term)}", "", "",
                    f"loss = sum_k {loss.expr}", sp.srepr(loss.expr)))
    rows.append(Row("batch_loss", "L", r"\frac{1}{B} \sum_{s=0}^{B - 1} \ell_{s}", "", "",
                    "L = mean over the batch of the per-sample loss"))
    return Section(f"Forward pass ({network.loss} loss)", tuple(rows))


def _braced(text: str) -> str:
    return rf"\left({text}\right)" if any(op in text for op in " + - ") else text


def _derivative_section(derivation) -> Section:
    rows = []
    for name, derivative in derivation.derivatives.items():
        lhs = rf"\operatorname{{{_latex_name(name)}}}'(z)"
        in_z = _ScalarLatex({X: "z"}, odot=False).doprint(derivative.in_input)
        z_text = _ScalarText({X: "z"}).doprint(derivative.in_input)
        rows.append(Row(f"{name}_prime", lhs, in_z, text=f"{name}'(z) = {z_text}",
                        sympy=sp.srepr(derivative.in_input)))
        if derivative.uses_output:
            in_a = _ScalarLatex({A: "a"}, odot=False).doprint(derivative.in_output)
            rows.append(Row(f"{name}_prime_in_output", lhs, in_a + r" \quad (a = f(z))",
                            text=f"{name}'(z) = {derivative.in_output}  (a = f(z))",
                            sympy=sp.srepr(derivative.in_output)))
    return Section("Activation derivatives (sympy.diff of the forward definitions)", tuple(rows))


def _latex_name(name: str) -> str:
    return name.replace("_", r"\_")


def _general_section(derivation, batch: bool) -> Section:
    prefix = "batch_" if batch else ""
    general = derivation.general
    rows = _formula_rows(general[prefix + "delta_output"], prefix + "output_")
    rows += _formula_rows(general[prefix + "delta"], prefix)
    rows += _formula_rows(general[prefix + "dW"], prefix)
    rows += _formula_rows(general[prefix + "db"], prefix)
    if batch:
        for letter in ("W", "b"):
            rows.append(Row(f"update_{letter}", rf"{letter}^{{(l)}}",
                            rf"{letter}^{{(l)}} - \eta {_grad_lhs(letter, forms.LAYER, True)}",
                            text=f"{letter}^(l) <- {letter}^(l) - eta dL/d{letter}^(l)"))
        title = "Batch form (rows are samples; L is the mean over B samples)"
    else:
        title = "Backpropagation, general layer l (one sample, column vectors)"
    return Section(title, tuple(rows))


def _layer_section(formulas) -> Section:
    rows = []
    for formula in (formulas.delta, formulas.dW, formulas.db):
        rows += _formula_rows(formula, f"layer{formulas.layer}_")
    title = f"Layer {formulas.layer} ({formulas.activation.name})"
    return Section(title, tuple(rows))


def document(derivation) -> list[Section]:
    """Every section symbp prints for a derivation, in reading order."""
    sections = [_forward_section(derivation), _derivative_section(derivation),
                _general_section(derivation, batch=False),
                _general_section(derivation, batch=True)]
    sections += [_layer_section(f) for f in reversed(derivation.layers)]
    return sections


# ------------------------------------------------------------------ renderers
def _latex_lines(row: Row, arrow: bool) -> list[str]:
    relation = r"\leftarrow" if arrow else "="
    lines = [rf"{row.lhs} &{relation} {row.rhs}"]
    if row.index_lhs and row.index_rhs and row.index_rhs != row.rhs:
        lines.append(rf"{row.index_lhs} &= {row.index_rhs}")
    return lines


def render_latex(sections, standalone: bool = False, title: str = "") -> str:
    body = []
    for section in sections:
        if not section.rows:
            continue
        body.append(f"% {section.title}")
        lines = []
        for row in section.rows:
            lines += _latex_lines(row, row.name.startswith("update"))
        body.append("\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}")
    text = "\n".join(body) + "\n"
    if not standalone:
        return text
    parts = []
    for section in sections:
        if section.rows:
            block = text_block(section)
            parts.append(f"\\section*{{{_tex_escape(section.title)}}}\n{block}")
    return (
        "\\documentclass{article}\n\\usepackage{amsmath,amssymb}\n"
        "\\usepackage[margin=2cm]{geometry}\n\\allowdisplaybreaks\n"
        f"\\title{{{_tex_escape(title)}}}\n\\date{{}}\n\\begin{{document}}\n\\maketitle\n"
        + "\n".join(parts) + "\\end{document}\n")


def text_block(section: Section) -> str:
    lines = []
    for row in section.rows:
        lines += _latex_lines(row, row.name.startswith("update"))
    return "\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}\n"


def _tex_escape(text: str) -> str:
    return text.replace("_", r"\_").replace("&", r"\&").replace("%", r"\%")


def render_markdown(sections, title: str) -> str:
    out = [f"# Gradients of `{title}`", ""]
    for section in sections:
        if not section.rows:
            continue
        out += [f"## {section.title}", "", "$$", text_block(section).strip(), "$$", ""]
    return "\n".join(out)


def render_text(sections, title: str) -> str:
    out = [f"Gradients of {title}"]
    for section in sections:
        if not section.rows:
            continue
        out += ["", section.title, "-" * len(section.title)]
        for row in section.rows:
            out.append("  " + (row.text or f"{row.lhs} = {row.rhs}"))
    return "\n".join(out) + "\n"


def render_json(sections, title: str) -> str:
    payload = {"network": title, "sections": [
        {"title": section.title, "quantities": [
            {"name": row.name, "latex": f"{row.lhs} = {row.rhs}",
             "index_latex": (f"{row.index_lhs} = {row.index_rhs}" if row.index_lhs else None),
             "text": row.text, "sympy": row.sympy or None}
            for row in section.rows]}
        for section in sections]}
    return json.dumps(payload, indent=2) + "\n"


def render(derivation, fmt: str = "latex", standalone: bool = False) -> str:
    """The derivation in one of :data:`FORMATS`."""
    sections = document(derivation)
    title = derivation.network.name
    if fmt == "latex":
        return render_latex(sections, standalone, title=f"Gradients of {title}")
    if fmt == "markdown":
        return render_markdown(sections, title)
    if fmt == "text":
        return render_text(sections, title)
    if fmt == "json":
        return render_json(sections, title)
    raise ValueError(f"unknown format {fmt!r}")
