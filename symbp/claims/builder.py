"""From the Lark tree to the AST: the letters, layers, functions and what the grammar cannot say.

Contract: ``Builder(text).build(tree)`` is the :class:`~symbp.claims.nodes.Node` of one side
of a claim; anything the grammar accepts but the notation does not mean (a function letter
without its argument, an exponent out of range, a gradient of something that is not a
quantity) raises :class:`~symbp.claims.nodes.ClaimParseError` at its column.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

from symbp.claims.indices import IndexReading
from symbp.claims.limits import MAX_EXPONENT
from symbp.claims.nodes import (
    Add,
    Apply,
    Between,
    Cases,
    ClaimParseError,
    Compare,
    Correlate,
    Deriv,
    Div,
    Equal,
    Example,
    Func,
    Grad,
    Hadamard,
    Indexed,
    Indicator,
    LayerRef,
    Leaf,
    MatMul,
    Max,
    Member,
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
)

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
               r"\pi": ("pi", False), r"\chi": ("chi", False)}
# Letters kept as written, for a convention to map: a layer superscript may follow them.
_LAYERED = {"W", "b", "z", "a", "delta", "w", "h", "o", "g", "mu", "sigma", "sigma2", "eps",
            "xhat", "gamma", "beta", "mask", "p", "m", "chi", "deltatilde", "mu_B", "sigma_B",
            "sigma2_B"}
FUNCTION_LETTERS = {"g", "h"}  # a quantity, or with a prime an activation: h'(a_j), g'^{[l]}
_TARGETS = {"W", "b", "z", "a", "x", "w", "h", "o", "y", "yhat", "gamma", "beta", "xhat", "mu",
            "sigma2", "mu_B", "sigma2_B", "f"}
_SQUARED = {"sigma": "sigma2", "sigma_B": "sigma2_B"}  # sigma^2: the variance


@dataclass(frozen=True)
class _FnLetter:
    """While building: ``h'`` or ``g^{[l]\\prime}``, a function letter waiting for its argument."""

    letter: str
    order: int
    layer: LayerRef | None
    where: object


class Builder(IndexReading):
    """Turns the Lark tree into AST nodes, checking what the grammar cannot express."""

    def __init__(self, text: str):
        self.text = text

    def fail(self, tree_or_token, message: str, expected=()):
        column = column_of(tree_or_token)
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
        index, lower, upper, limit = None, None, None, None
        for part in sumop.children:
            if part.data == "sum_many":  # \sum_{p,q}: one sum per index, each whole
                if len(sumop.children) > 1:
                    self.fail(sumop.children[1], "a sum over several indices takes no limits")
                return self._sum_over_each(tree, part, body)
            if part.data == "sum_set":  # \sum_{\ell \in L}: over the whole set
                index = str(part.children[0])
            elif part.data == "sum_range":
                letters = [t for t in part.children if t.type in ("IDX", "ELL", "PRIME")]
                index = "".join(str(t) for t in letters)
                first = [t for t in part.children if t.type == "INT"]
                if first:
                    lower = int(str(first[0]))
                    if lower not in (0, 1):
                        self.fail(first[0], f"a sum from {lower}: symbp reads sums over a "
                                            "whole range, from 0 or 1")
            else:
                upper = " ".join(self.text[slice(*_span(part))].split())
                if upper.startswith("{") and upper.endswith("}"):
                    upper = upper[1:-1].strip()
                limit = self.iexpr(part.children[0] if part.data == "sum_upper" else part)
        return Sum(index, self.build(body), lower, upper, limit)

    def _sum_over_each(self, tree, part, body) -> Sum:
        letters, tokens = [], list(part.children)
        for token in tokens:
            if token.type == "IDX":
                letters.append(str(token))
            else:  # a prime on the letter before it
                letters[-1] += "'"
        node = self.build(body)
        start = _span(tree)
        for letter in reversed(letters):
            node = Sum(letter, node, span=start)
        return node

    def r_subscript(self, tree, base, index):
        node = self.build(base)
        indices = self.index(index)
        if isinstance(node, Indexed):
            self.fail(index, "a second subscript")
        if not isinstance(node, (Leaf, Grad)) and not (
                isinstance(node, Apply) and node.func.name in _INDEXABLE):
            self.fail(index, "an index subscript belongs on a quantity, e.g. w^l_{jk}")
        return Indexed(node, indices)

    # ----- what belongs in an index only
    def r_iletter(self, tree, token):
        self.fail(token, f"'{token}' is an index letter: it belongs in a subscript, a sum's "
                         "limits or an Iverson bracket", [_QUANTITY])

    def r_floor(self, tree, *parts):
        self.fail(tree, "\\lfloor \\rfloor belongs in an index (a subscript, a sum's "
                        "limits or an Iverson bracket)")

    def r_mod(self, tree, *parts):
        self.fail(tree, "\\bmod belongs in an index (a subscript, a sum's limits or an "
                        "Iverson bracket)")

    def r_correlate(self, tree, left, *rest):
        *stride, right = rest
        step = None
        if stride:
            params = self.params(stride[0].children[0])
            if len(params) != 1:
                self.fail(stride[0], "\\star takes one stride (dilate per axis with "
                                     "\\operatorname{dil}_{(S_1,S_2)})")
            step = params[0]
        return Correlate(self.build(left), self.build(right), step)

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
        if token.type == "BATCHSTAT":  # Ioffe & Szegedy's \mu_\mathcal{B}, \sigma^2_\mathcal{B}
            name = "mu_B" if "mu" in text else "sigma2_B" if "^" in text else "sigma_B"
            return Leaf(name, span=_span(token))
        if token.type == "TILDE":
            return Leaf("deltatilde", None, "Delta" in text, span=_span(token))
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
                if isinstance(node, Leaf) and node.name in _SQUARED and value == 2:
                    node = replace(node, name=_SQUARED[node.name],
                                   span=(node.span[0], _span(token)[1]))
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
                    elif kind == "pow" and func.power is None and 0 < value <= MAX_EXPONENT \
                            and func.name not in _RESHAPES:
                        func = replace(func, power=value)
                    elif kind == "pow" and value == -1 and func.name == "vec" and not func.power:
                        func = replace(func, name="unvec")  # vec^{-1}: the reshape back
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

    def r_conv_fn(self, tree, token, params, arg):  # pad_{P}(x), dil_{S}(x)
        name = "pad" if "pad" in str(token) else "dil"
        return Apply(Func(name, params=self.params(params)), self.build(arg))

    def function(self, fname) -> Func:
        token = fname.children[0]
        text = str(token)
        if token.type == "GENF":
            return Func("generic", letter="f" if str(token) == "f" else "phi")
        if token.type == "FUNC":
            return Func(FUNCTION_NAMES[text[1:]])
        if token.type == "ROT180":
            return Func("rot180")
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
            condition = self.build(rest[0]) if rest and rest[0].data in (
                "condition", "prose") else None
            if rest and rest[0].data == "otherwise" and "otherwise" not in str(
                    rest[0].children[0]) and "else" not in str(rest[0].children[0]):
                self.fail(rest[0], "a case needs its condition, e.g. z > 0")
            built.append((self.build(value), condition))
        if any(cond is None for _, cond in built[:-1]):
            self.fail(tree, "only the last case may be 'otherwise'")
        return Cases(tuple(built))

    def r_condition(self, tree, *parts):
        return self.build(parts[-1])

    def r_prose(self, tree, *parts):  # \text{if } j \text{ is an output neuron,}
        tokens = [t for part in parts for t in (part.children if hasattr(part, "children")
                                                 else [part])]
        words = [str(t)[str(t).index("{") + 1:-1] if "{" in str(t) else str(t) for t in tokens]
        return Prose(" ".join(" ".join(words).split()))

    def r_equality(self, tree, left, right):  # CS231n's \mathbb{1}(y_i = k)
        return Equal(self.operand(left), self.operand(right))

    def operand(self, tree) -> Node:
        """A side of an equality: an index expression where it holds an index letter
        (``k`` in ``y_i = k``), else a quantity."""
        return self.iexpr(tree) if _has_letter(tree) else self.build(tree)

    def r_compare(self, tree, left, op, right):
        text = str(op)
        if _has_letter(left) or _has_letter(right):  # [i + p - 1 \ge 0], [2i < W]: positions
            return Compare(_COMPARISONS.get(text, text), self.iexpr(left), self.iexpr(right))
        return Compare(_COMPARISONS.get(text, text), self.build(left), self.build(right))

    def r_maximum(self, tree, *parts):
        left, right = [p for p in parts if not _is_token(p, "LPAR", "RPAR")]
        return Max(self.build(left), self.build(right))

    def r_indicator(self, tree, token, *parts):
        (compare,) = [p for p in parts if not _is_token(p, "LPAR", "RPAR")]
        return Indicator(self.build(compare))

    def r_iverson(self, tree, lpar, condition, rpar):
        if "[" not in str(lpar) or "]" not in str(rpar):
            self.fail(lpar, "a condition in brackets is an Iverson bracket: write it in "
                            "\\left[ ... \\right]")
        return Indicator(self.build(condition))

    def r_between(self, tree, low, low_op, middle, high_op, high):
        ops = [_COMPARISONS.get(str(op), str(op)) for op in (low_op, high_op)]
        parts = [self.iexpr(part) for part in (low, middle, high)]
        if all(op in ("<", "<=") for op in ops):
            return Between(parts[0], ops[0], parts[1], ops[1], parts[2])
        if all(op in (">", ">=") for op in ops):  # 7 \ge i \ge 0: turned around
            flip = {">": "<", ">=": "<="}
            return Between(parts[2], flip[ops[1]], parts[1], flip[ops[0]], parts[0])
        self.fail(high_op, "a chain of comparisons goes one way: low \\le i \\le high")

    def r_member(self, tree, expr, lpar, low, high, rpar):
        if "\\{" not in str(lpar) or "\\}" not in str(rpar):
            self.fail(lpar, "a range of integers is written \\{0, \\dots, n\\}")
        return Member(self.iexpr(expr), self.iexpr(low), self.iexpr(high))

    # ----- loss gradients
    def r_nabla_short(self, tree, token, loss, *args):
        leaf = self.leaf(token)
        return self.gradient(self.loss(loss), leaf, token)

    def r_grad_of(self, tree, target, loss, *args):  # \frac{\partial}{\partial W} J(W, b)
        return self.gradient(self.loss(loss), self.target(target), target)

    def r_ng_grad(self, tree, d, target):
        return self.r_grad(tree, "d", target)

    def loss(self, tree) -> str:
        """The loss's letter; CS231n's per-example ``L_i`` keeps its subscript (``"L_i"``)."""
        if isinstance(tree, str):
            return tree
        text = str(tree.children[0])
        if tree.children[0].type == "BIGL" and len(tree.children) > 1:
            items = self.index(tree.children[1])
            if not all(isinstance(item, str) for item in items):
                self.fail(tree.children[1], "a loss's subscript names its example, e.g. L_i")
            joined = ",".join(items)
            return f"L_{joined}" if len(joined) == 1 else f"L_{{{joined}}}"
        return r"\ell" if text.startswith(r"\ell") else ("L" if "L" in text else text)

    def target(self, tree):
        if tree.data == "f_target":  # CS231n's scores f_k
            node = Leaf("f", span=_span(tree.children[0]))
            return Indexed(node, self.index(tree.children[1]), span=_span(tree)) if len(
                tree.children) > 1 else node
        if tree.data == "fn_target":  # \partial \operatorname{vec}(a^{(l)})_{s,i}
            fname, group, *index = tree.children
            node = Apply(self.function(fname), self.build(group), span=_span(tree))
            return Indexed(node, self.index(index[0]), span=_span(tree)) if index else node
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
        if isinstance(node, Apply) and node.func == Func("vec") and isinstance(node.arg, Leaf) \
                and node.arg.name in _TARGETS:
            grad = Grad(loss, node)
            return Indexed(grad, indices) if indices else grad
        if not isinstance(node, Leaf) or node.name not in _TARGETS:
            self.fail(where, "differentiate the loss with respect to W, b, z, a or x",
                      ["W^{(l)}", "b^{(l)}", "z^{(l)}", "a^{(l)}"])
        grad = Grad(loss, node)
        return Indexed(grad, indices) if indices else grad


_INDEXABLE = {"vec", "pad", "dil", "rot180"}  # an entry of vec(a), of a padded image, ...
_RESHAPES = _INDEXABLE | {"unvec"}  # operators on arrays: no powers
_QUANTITY = "a quantity (W, b, z, a, x, y, \\delta)"
_COMPARISONS = {"\\gt": ">", "\\lt": "<", "\\ge": ">=", "\\geq": ">=", "\\le": "<=",
                "\\leq": "<=", "\\geqslant": ">=", "\\leqslant": "<="}


def _has_letter(tree) -> bool:
    """Whether an operand holds an index letter (then it is an index expression)."""
    if _is_token(tree, "ILET"):
        return True
    return hasattr(tree, "scan_values") and any(
        True for _ in tree.scan_values(lambda v: _is_token(v, "ILET")))


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


def column_of(item) -> int:
    from lark import Token

    if isinstance(item, Token):
        return (item.start_pos or 0) + 1
    meta = getattr(item, "meta", None)
    if meta is None or getattr(meta, "empty", True):
        return 1
    return meta.start_pos + 1


