"""Code generation: a standalone NumPy training module from the derived formulas.

Contract: :func:`generate_source` renders the Jinja templates in
``templates/`` (installed as the package ``symbp.templates``) into one Python
module that imports only NumPy and the standard library and exposes the
interface of CONVENTIONS §5. Every line of the backward pass is printed from
the batch-form trees of :mod:`symbp.derive` (the ones that passed the
self-check) by :class:`CodePrinter`, a subclass of SymPy's ``NumPyPrinter``,
after ``cse``. Forward expressions are printed in numerically stable forms
by printer rules (``log(1 + exp(u))`` -> ``np.logaddexp(0, u)``, a logistic
``1/(1 + exp(u))`` -> ``_expit(-u)``), and the loss takes its logarithms from
the pre-activations (log-sum-exp), never ``log(0)``. The same spec and dtype
always give the same bytes.

Safe rendering: nothing from a spec or a file name can become code. Every
value a template renders passes through one function, :func:`render_slot`
(the Jinja environment's ``finalize`` hook), which lets a value through
verbatim only when it is :class:`Code` (text made by this module: the code
printer's output, ``repr`` of a value, fixed strings) or a number. Every
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
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from symbp import __version__, forms
from symbp.derive import BATCH, derive
from symbp.printing import join_signed_terms, matrix_text, print_add_positive_first
from symbp.registry import A, X, Y

DTYPES = ("float64", "float32")


# ------------------------------------------------------------------ printers
class expit(sp.Function):  # noqa: N801 - printed as the generated helper ``_expit``
    """The logistic function, a printing device only: it is never differentiated."""


class log1pexp(sp.Function):  # noqa: N801 - printed as ``np.logaddexp(0, u)``
    """``log(1 + exp(u))``, a printing device only: it is never differentiated."""


class CodePrinter(NumPyPrinter):
    """NumPy code with ``np.`` names and numerically stable forms of exp/log patterns."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "inline": True,
                          "allow_unknown_functions": False, "strict": True})

    def _module_format(self, fqn, register=True):
        name = super()._module_format(fqn, register)
        return "np." + name[len("numpy."):] if name.startswith("numpy.") else name

    def _print_Add(self, expr, order=None):
        """Positive terms first: ``a2 - Y`` rather than ``-Y + a2``."""
        return print_add_positive_first(self, expr)

    def _print_Min(self, expr):
        return self._pairwise("np.minimum", expr.args)

    def _print_Max(self, expr):
        return self._pairwise("np.maximum", expr.args)

    def _pairwise(self, function, args):
        code = self._print(args[0])
        for arg in args[1:]:
            code = f"{function}({code}, {self._print(arg)})"
        return code

    def _print_erf(self, expr):
        return f"_erf({self._print(expr.args[0])})"

    def _print(self, expr, **kwargs):
        """Numeric constants as Python floats: NumPy scalars would upcast float32 arrays."""
        if isinstance(expr, sp.Expr) and expr.is_number and not expr.is_Integer and expr.is_real:
            return repr(float(expr))
        return super()._print(expr, **kwargs)

    def _print_expit(self, expr):
        return f"_expit({self._print(expr.args[0])})"

    def _print_log1pexp(self, expr):
        return f"np.logaddexp(0.0, {self._print(expr.args[0])})"

    def _print_Piecewise(self, expr):
        """Two-branch piecewise as ``np.where`` (the usual form for activations)."""
        if len(expr.args) == 2 and expr.args[1].cond == sp.true:
            (then, cond), (otherwise, _) = expr.args
            if _is_positive_part(then, cond, otherwise):  # relu: one ufunc, can write in place
                return f"np.maximum({self._print(then)}, 0.0)"
            then, otherwise = _clamp_branches(then, cond, otherwise)
            code = f"np.where({self._print(cond)}, {self._print(then)}, {self._print(otherwise)})"
            if then.is_number and otherwise.is_number:  # keep the array's dtype (float32)
                anchor = sorted(cond.free_symbols, key=str)[0]
                code += f".astype({self._print(anchor)}.dtype)"
            return code
        return super()._print_Piecewise(expr)

    def _print_Rational(self, expr):
        return repr(float(expr))

    def _print_Integer(self, expr):
        return str(int(expr))

    def _print_Float(self, expr):
        return repr(float(expr))


def _is_positive_part(then, cond, otherwise) -> bool:
    """``u if u > 0 (or u >= 0) else 0``, which is ``max(u, 0)``."""
    return (otherwise == 0 and isinstance(cond, (sp.StrictGreaterThan, sp.GreaterThan))
            and cond.rhs == 0 and cond.lhs == then)


def _clamp_branches(then, cond, otherwise):
    """``np.where`` evaluates both branches: clamp ``u`` in a branch with ``exp`` to the
    side where that branch is used (``u > 0`` -> ``min(u, 0)`` otherwise), so that
    the unused branch cannot overflow (elu at +1000)."""
    if isinstance(cond, (sp.StrictGreaterThan, sp.GreaterThan)) and cond.rhs == 0:
        variable = cond.lhs
        if otherwise.has(sp.exp):
            otherwise = otherwise.subs(variable, sp.Min(variable, 0))
        if then.has(sp.exp):
            then = then.subs(variable, sp.Max(variable, 0))
    return then, otherwise


def stable(expr: sp.Expr) -> sp.Expr:
    """Exact rewrites that keep large ``|w|`` from overflowing ``exp(w)``.

    ``log(1 + exp(w))`` becomes ``log1pexp(w)`` (``np.logaddexp``); any other
    ``exp(w)`` next to ``1 + exp(w)`` goes through the logistic ``s = expit(-w)``
    by ``1 + exp(w) = 1/s`` and ``exp(w) = (1 - s)/s`` (e.g. silu's derivative).
    """
    expr = expr.replace(
        lambda e: isinstance(e, sp.log) and e.args[0].is_Add
        and isinstance(e.args[0] - 1, sp.exp),
        lambda e: log1pexp((e.args[0] - 1).args[0]))
    replacements = {}
    for term in expr.atoms(sp.exp):
        w = term.args[0]
        if expr.has(1 + term):
            s = expit(-w)
            replacements[term] = (1 - s) / s
    if not replacements:
        return expr
    return sp.factor_terms(sp.cancel(expr.xreplace(replacements)))


def print_expr(expr: sp.Expr) -> str:
    return CodePrinter().doprint(stable(expr))


def print_elementwise(node: forms.Elementwise, temporaries: list | None = None,
                      prefix: str = "t") -> str:
    """An elementwise node as code; common subexpressions go to ``temporaries``."""
    expr = stable(node.expr)
    if temporaries is None:
        return CodePrinter().doprint(expr)
    # numbered on from the temporaries already taken: one tree may hold several nodes
    symbols = sp.numbered_symbols(f"{prefix}_", start=len(temporaries))
    shared, (reduced,) = sp.cse(expr, symbols=symbols, optimizations="basic")
    for symbol, value in shared:
        temporaries.append((str(symbol), CodePrinter().doprint(value)))
    return CodePrinter().doprint(reduced)


# -------------------------------------------------------- matrix trees -> code
def tree_code(node, temporaries: list, prefix: str) -> str:
    """NumPy code for a batch-form tree (rows are samples)."""
    if isinstance(node, forms.Leaf):
        return node.tensor.code
    if isinstance(node, forms.MatMul):
        if isinstance(node.right, forms.Ones) and isinstance(node.left, forms.Transpose):
            return f"{_operand(node.left.arg, temporaries, prefix)}.sum(axis=0)"
        if isinstance(node.right, forms.Ones):  # a sum along each row
            return f"{_operand(node.left, temporaries, prefix)}.sum(axis=1, keepdims=True)"
        left = _operand(node.left, temporaries, prefix)
        right = _operand(node.right, temporaries, prefix)
        return f"{left} @ {right}"
    if isinstance(node, forms.Transpose):
        return f"{_operand(node.arg, temporaries, prefix)}.T"
    if isinstance(node, forms.Hadamard):
        return " * ".join(_operand(arg, temporaries, prefix) for arg in node.args)
    if isinstance(node, forms.Add):
        return join_signed_terms([tree_code(arg, temporaries, prefix) for arg in node.args])
    if isinstance(node, forms.Scale):
        operand = _operand(node.arg, temporaries, prefix)
        return f"-{operand}" if node.factor == -1 else f"{print_expr(node.factor)} * {operand}"
    if isinstance(node, forms.Elementwise):
        return print_elementwise(node, temporaries=temporaries, prefix=prefix)
    raise TypeError(f"no code for {type(node).__name__}")


def _operand(node, temporaries, prefix) -> str:
    code = tree_code(node, temporaries, prefix)
    simple = isinstance(node, (forms.Leaf, forms.Transpose)) or code.isidentifier()
    return code if simple else f"({code})"


def _delta_statements(node, target: str, temporaries: list, scale: bool) -> list:
    """Statements computing ``target`` into its work array ``work["<target>"]``.

    A product whose first factor is a matrix product (``(Delta W) * f'``) or a
    difference ``a - y`` writes that factor into the work array and multiplies the
    rest in place. Anything else is one expression, written into the work array
    with the scale (``1/B`` or the step size) applied on the way.
    """
    factors = node.args if isinstance(node, forms.Hadamard) else (node,)
    first = into_code(factors[0], f'work["{target}"]', temporaries, target)
    if first is None:  # one expression, which may be a caller's array (``Y``): never in place
        code = tree_code(node, temporaries, target)
        if scale:
            return [f'{target} = np.multiply({code}, scale, out=work["{target}"])']
        return [f"{target} = {code}.copy()" if code.isidentifier() else f"{target} = {code}"]
    statements = [f"{target} = {first}"]
    statements += [f"{target} *= {tree_code(arg, temporaries, target)}" for arg in factors[1:]]
    if scale:
        statements.append(f"{target} *= scale")
    return statements


def into_code(node, out: str, temporaries: list, prefix: str) -> str | None:
    """A call that writes ``node`` into the existing array ``out`` and returns it
    (``np.matmul(.., out=)``, ``np.sum(.., out=)``, ``np.subtract(.., out=)``), or
    None when ``node`` has no such form."""
    if isinstance(node, forms.MatMul):
        if isinstance(node.right, forms.Ones) and isinstance(node.left, forms.Transpose):
            return f"np.sum({_operand(node.left.arg, temporaries, prefix)}, axis=0, out={out})"
        if not isinstance(node.right, forms.Ones):
            left = _operand(node.left, temporaries, prefix)
            right = _operand(node.right, temporaries, prefix)
            return f"np.matmul({left}, {right}, out={out})"
    if isinstance(node, forms.Elementwise):
        difference = _difference_of_symbols(node.expr)
        if difference is not None:
            minuend, subtrahend = (node.symbol_map[symbol].code for symbol in difference)
            return f"np.subtract({minuend}, {subtrahend}, out={out})"
    return None


def _difference_of_symbols(expr: sp.Expr):
    """``(u, v)`` when ``expr`` is exactly ``u - v`` for two symbols, else None."""
    if not (expr.is_Add and len(expr.args) == 2):
        return None
    positive = [term for term in expr.args if term.is_Symbol]
    negative = [-term for term in expr.args if (-term).is_Symbol]
    if len(positive) == 1 and len(negative) == 1:
        return positive[0], negative[0]
    return None


def gradient_statement(node, out: str) -> str:
    """The statement writing a gradient tree (``Delta^T A``, ``Delta^T 1``) into ``out``."""
    code = into_code(node, out, [], "")
    return code if code is not None else f"{out}[...] = {tree_code(node, [], '')}"


def without_batch_mean(node):
    """``(1/B) T`` -> ``T``: the generated code folds ``1/B`` into the output delta once."""
    if isinstance(node, forms.Scale) and node.factor == 1 / BATCH:
        return node.arg
    raise ValueError("expected a gradient scaled by 1/B")


# ------------------------------------------------------------ safe rendering
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


# --------------------------------------------------------------- the context
@dataclass
class LayerCode:
    """What the template needs to know about one layer."""

    index: int
    units: int
    activation: str  # the activation's name (text)
    forward: Code  # computing a{l} from z{l}, into its work array when it can
    keeps_z: bool  # the backward pass reads z{l}, so a{l} may not overwrite it
    own_buffer: bool  # a{l} is written into a work array of its own, work["a{l}"]
    softmax: bool
    init_scale: str  # "glorot" or "he"
    delta_lines: list  # Code statements, temporaries first
    delta_formula: str  # text
    dW: Code  # statement writing (scaled) dL/dW{l} into grads["W{l}"]
    db: Code


# one call on z{l}, with at most a numeric constant beside it: np.tanh(z1),
# np.logaddexp(0.0, z2), np.maximum(z3, 0.0), _expit(z1), _softmax(z4)
_NUMBER = r"-?\d+\.\d*(e-?\d+)?"
_UFUNC_CALL = re.compile(rf"(np\.(?P<ufunc>\w+)|_expit|_softmax)\(({_NUMBER}, )?z\d+(, {_NUMBER})?\)")


def _activation_code(activation, layer: int, keeps_z: bool) -> tuple[str, bool]:
    """Code for ``a{layer}`` from ``z{layer}`` and whether it writes into ``work["a{layer}"]``.

    A single elementwise call (``np.tanh(z1)``, ``np.maximum(z1, 0.0)``, ``_expit(z2)``,
    ``_softmax(z3)``) gets ``out=``: ``z{layer}`` itself when nothing later reads it, else a work
    array of its own. Any other expression is computed into a new array.
    """
    z = sp.Symbol(f"z{layer}", real=True)
    code = f"_softmax({z})" if activation.is_softmax else print_expr(activation.expr.subs(X, z))
    call = _UFUNC_CALL.fullmatch(code)
    if call is None or (call["ufunc"] and not isinstance(getattr(np, call["ufunc"], None),
                                                         np.ufunc)):
        return code, False
    out = f'work.get("a{layer}")' if keeps_z else f"{z}"
    return f"{code[:-1]}, out={out})", keeps_z


def _init_scale(activation) -> str:
    return "he" if activation.name in ("relu", "leaky_relu", "elu", "gelu", "silu") else "glorot"


def _read_pre_activations(derivation) -> set:
    """The layers whose ``z`` the backward pass reads (directly or through an ``f'``)."""
    return {tensor.layer for formulas in derivation.layers
            for tensor in forms.leaves(formulas.batch_delta.matrix) if tensor.letter == "z"}


def _layer_code(formulas, units: int, is_output: bool, keeps_z: bool) -> LayerCode:
    layer = formulas.layer
    temporaries: list = []
    statements = _delta_statements(formulas.batch_delta.matrix, f"delta{layer}", temporaries,
                                   scale=is_output)
    forward, own_buffer = _activation_code(formulas.activation, layer, keeps_z)
    return LayerCode(
        index=layer, units=units, activation=formulas.activation.name,
        forward=Code(forward), keeps_z=keeps_z, own_buffer=own_buffer,
        softmax=formulas.activation.is_softmax, init_scale=_init_scale(formulas.activation),
        delta_lines=[Code(f"{name} = {code}") for name, code in temporaries]
        + [Code(statement) for statement in statements],
        delta_formula=matrix_text(formulas.batch_delta.matrix),
        dW=Code(gradient_statement(without_batch_mean(formulas.batch_dW.matrix),
                                   f'grads["W{layer}"]')),
        db=Code(gradient_statement(without_batch_mean(formulas.batch_db.matrix),
                                   f'grads["b{layer}"]')),
    )


LOG_A = sp.Symbol("log_a", real=True)  # log(a{L}) of a softmax output, from _log_softmax


def loss_expression(network) -> sp.Expr:
    """The per-element loss in terms of ``a{L}``, ``Y`` and stable logarithms."""
    depth = network.depth
    activation = network.activation_of(depth)
    expr = network.loss_definition.expr
    a_name, z = sp.Symbol(f"a{depth}", real=True), sp.Symbol(f"z{depth}", real=True)
    if activation.is_softmax:
        expr = expr.subs(sp.log(A), LOG_A)
    else:
        expr = expr.replace(
            lambda e: isinstance(e, sp.log) and e.args[0].has(A),
            lambda e: _log_of_output(e.args[0], activation.expr.subs(X, z)))
    return expr.subs({A: a_name, Y: sp.Symbol("Y", real=True)})


def _log_of_output(argument: sp.Expr, output: sp.Expr) -> sp.Expr:
    """``log(g(a))`` with ``a = f(z)`` substituted, expanded so nothing takes ``log(0)``."""
    composed = sp.simplify(argument.subs(A, output))
    return sp.expand_log(sp.log(composed), force=True)


def template_context(network, dtype: str, spec_name: str | None = None) -> dict:
    """What the templates render: :class:`Code` for code, plain strings for text."""
    derivation = derive(network)
    loss = loss_expression(network)
    widths = network.widths
    read_z = _read_pre_activations(derivation) | {network.depth}  # the loss reads z{L}
    layers = [
        _layer_code(formulas, widths[formulas.layer], formulas.layer == network.depth,
                    formulas.layer in read_z)
        for formulas in derivation.layers
    ]
    codes = [line for layer in layers for line in layer.delta_lines]
    loss_code = print_expr(loss)
    codes += [layer.forward for layer in layers] + [loss_code]
    return {
        "uses_erf": any("_erf(" in code for code in codes),
        "version": __version__,
        "name": network.name,
        "spec_name": spec_name or f"{network.name}.toml",
        "spec": network.to_dict(),
        "widths": tuple(widths),
        "param_names": tuple(f"{kind}{n}" for n in range(1, network.depth + 1)
                             for kind in ("W", "b")),
        "layers": layers,
        "depth": network.depth,
        "task": network.task,
        "loss_name": network.loss,
        "loss_code": Code(loss_code),
        "uses_log_a": loss.has(LOG_A),
        "forward_names": Code(", ".join(["a0"] + [name for layer in layers for name in (
            [f"z{layer.index}"] if layer.keeps_z else []) + [f"a{layer.index}"]])),
        "output_names": Code(f"z{network.depth}, a{network.depth}"),
        "dtype": dtype,
        "dtype_code": Code(f"np.{dtype}"),  # one of DTYPES, checked by generate_source
        "architecture": " -> ".join([str(widths[0])] + [
            f"{layer.units} ({layer.activation})" for layer in network.layers]),
        "dW_formula": matrix_text(derivation.layers[0].batch_dW.matrix),
        "db_formula": matrix_text(derivation.layers[0].batch_db.matrix),
    }


# ------------------------------------------------------------------ rendering
def _template_environment():
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_directory())),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        trim_blocks=True, lstrip_blocks=True, autoescape=False, finalize=render_slot)
    environment.filters["literal"] = literal
    return environment


def template_directory() -> Path:
    """``templates/``: inside the installed package, or beside it in a checkout."""
    return package_data_directory("templates")


def package_data_directory(name: str) -> Path:
    """A data folder (``templates``, ``examples``) that the wheel installs as
    ``symbp/<name>`` and that lives at the top level of a source checkout."""
    package = Path(__file__).resolve().parent
    installed = package / name
    return installed if installed.is_dir() else package.parent / name


def generate_source(network, dtype: str = "float64", spec_name: str | None = None) -> str:
    """The generated module's source text for ``network``."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}")
    context = template_context(network, dtype, spec_name)
    return _template_environment().get_template("module.py.j2").render(**context)


def load_module(source: str, name: str = "symbp_generated"):
    """Import generated source as a module object (for check, train and tests)."""
    import types

    module = types.ModuleType(name)
    module.__file__ = f"<{name}>"
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our own code
    return module
