"""A derivation arranged as titled sections of printable rows.

Contract: :func:`document` takes a
:class:`~symbp.engine.derivation.GraphDerivation` and returns, in reading
order: the forward pass (every equation of the training graph, in index form
and, where every tensor has rank <= 2, matrix form for the batch and for one
sample), the notation of convolutions and pooling (definitions only: the
Iverson bracket, the correlation, pad/dil/rot, how argmax ties resolve),
evaluation mode where it differs (running statistics, no dropout,
the running updates), the activation derivatives (``sympy.diff``, rewritten
in the output), each layer type's derived backward formulas (the VJP of each
of its equations, as derived for the equation with the most of them), the
backward pass in the order it is computed (a tensor read by two layers, such
as a residual's source, first as the sum of its paths), the same for one
sample where rows do not interact, the general layer ``l`` of a plain MLP,
the general convolution layer ``l``, and the SGD step. A
:class:`Row` holds a quantity's name, its aligned LaTeX lines, a plain-text
line, its index form and its SymPy string. Every formula is one of the
engine's gradients (or one VJP of them); the printer only reads and names.
"""

from __future__ import annotations

from dataclasses import replace

import sympy as sp

from symbp.engine.argmax import IsArgmax
from symbp.engine.backward import backward
from symbp.engine.indices import FREE, Inside
from symbp.engine.simplify import simplify
from symbp.printing import general, general_conv
from symbp.printing.axes import is_spatial
from symbp.printing.matrix import matrix_latex, matrix_text
from symbp.printing.names import WEIGHTED_OPS, gradient_quantity, readable, tensor_quantity
from symbp.printing.rows import (
    Row,
    Section,
    View,
    formula_row,
    index_form,
    matrix_form,
    matrix_line,
)
from symbp.printing.sample import sample_equation, sample_gradient
from symbp.printing.scalar import ScalarLatex, ScalarText


# -------------------------------------------------------------------- sections
class Document:
    """Everything one derivation prints; :meth:`sections` in reading order."""

    def __init__(self, derivation):
        self.d = derivation
        self.graph = derivation.graph
        self.raw = backward(self.graph)  # every gradient with its paths, before inlining
        self.kept = {g.adjoint.name: g for g in derivation.gradients}
        self.batch = View.of(self.graph, self.raw, "batch")
        self.sample = View.of(self.graph, self.raw, "sample")
        self.adjoints = {g.adjoint.name: g.adjoint for g in self.raw}
        self.several = {g.adjoint.name for g in self.raw
                        if g.of.role == "value" and self._paths_of_layers(g) > 1}
        self.shown = display_gradients(self.graph, derivation.gradients, self.several)
        self.samples = self._sample_gradients()

    def sections(self) -> list:
        found = [self.forward(), notation(self.graph), self.evaluation(), self.activations(),
                 *self.op_sections(),
                 self.backward_pass(), self.backward_sample(),
                 general.section(self), general_conv.section(self), self.step()]
        return [section for section in found if section is not None and section.rows]

    # ----- forward
    def forward(self) -> Section:
        rows = []
        for equation in self.graph.equations:
            rows.append(self._equation_row(equation, self.graph))
        return Section("Forward pass (training mode; the rows of X are the B samples of a "
                       "batch, a vector added to a matrix is added to each row)", tuple(rows))

    def _equation_row(self, equation, graph, relation="="):
        out = equation.out
        extra = ()
        row = sample_equation(equation, graph)
        if row is not None:
            line = matrix_line(tensor_quantity(out, "sample"), row, out.rank - 1, self.sample)
            extra = () if line is None else (line,)
        return formula_row(out.name, tensor_quantity(out, "batch"), equation.expr, out.shape,
                           self.batch, relation, extra)

    def evaluation(self) -> Section:
        train = {e.out.name: e.expr for e in self.graph.equations}
        graph = self.d.eval.graph
        view = View.of(graph, [], "batch")
        rows = [formula_row("eval_" + e.out.name, tensor_quantity(e.out, "batch"), e.expr,
                            e.out.shape, view)
                for e in graph.equations if train.get(e.out.name) != e.expr
                and e.out.role != "loss"]
        for state, value in self.graph.updates:
            rows.append(formula_row("update_" + state.name, tensor_quantity(state, "batch"),
                                    value, state.shape, self.batch, r"\leftarrow"))
        return Section("Evaluation mode (where it differs; running statistics updated after "
                       "each training step)", tuple(rows))

    def activations(self) -> Section:
        from symbp.engine.rewrite import activation_derivative
        from symbp.registry import A, X
        rows, seen = [], set()
        for layer in self.d.network.layers:
            name = layer.options.get("activation")
            if name is None or name in seen:
                continue
            seen.add(name)
            activation = self.d.network.activation_named(name)
            if activation.is_softmax:
                continue
            derivative = activation_derivative(name, activation.expr)
            lhs = rf"\operatorname{{{name.replace('_', chr(92) + '_')}}}'(z)"
            in_z = ScalarLatex({X: "z"}).doprint(derivative.in_input)
            rows.append(Row(f"{name}_prime", ((lhs, "=", in_z),),
                            f"{name}'(z) = {ScalarText({X: 'z'}).doprint(derivative.in_input)}",
                            sympy=sp.srepr(derivative.in_input)))
            if derivative.uses_output:
                in_a = ScalarLatex({A: "a"}).doprint(derivative.in_output)
                rows.append(Row(f"{name}_prime_in_output",
                                ((lhs, "=", in_a + r" \quad (a = f(z))"),),
                                f"{name}'(z) = {ScalarText({A: 'a'}).doprint(derivative.in_output)}"
                                "  (a = f(z))", sympy=sp.srepr(derivative.in_output)))
        return Section("Activation derivatives (sympy.diff of the forward definitions)",
                       tuple(rows))

    # ----- each op's backward formulas
    def op_sections(self) -> list:
        """One section per op family: the VJPs of the equation of that op that has the
        most of them (the output layer's dense equation, which also reads a hidden layer)."""
        contributions = {}
        for gradient in self.raw:
            for consumer, contribution in gradient.paths:
                contributions.setdefault(consumer.out.name, []).append((gradient, contribution))
        best = {}
        for equation in self.graph.equations:
            count = len(contributions.get(equation.out.name, ()))
            if count and count > best.get(equation.op, (None, 0))[1]:
                best[equation.op] = (equation, count)
        chosen = [(equation, contributions[equation.out.name]) for equation, _ in best.values()]
        simplified = iter(self._simplified([item for _, items in chosen for item in items]))
        return [self._op_section(equation, [(g, next(simplified)) for g, _ in items])
                for equation, items in chosen]

    def _simplified(self, items: list) -> list:
        """Each ``(gradient, expression)``'s expression simplified by the engine, in one call
        (each under a name of its own, so none is inlined into another)."""
        renamed = [replace(gradient, adjoint=replace(gradient.adjoint, name=f"vjp{n}"),
                           expr=expr) for n, (gradient, expr) in enumerate(items)]
        return [g.expr for g in simplify(self.graph, renamed)]

    def _op_section(self, equation, vjps) -> Section:
        rows = []
        for gradient, vjp in vjps:
            if vjp == 0:  # a path the graph's identities cancel (the sum of x - mean)
                continue
            several = len({consumer.out.name for consumer, path in gradient.paths
                           if path != 0}) > 1  # chi reads a max pool's input, off the path
            target = gradient_quantity(self.graph, gradient.of, gradient.adjoint, "batch")
            rows.append(formula_row(
                f"vjp_{equation.out.name}_{gradient.of.name}", target, vjp,
                gradient.of.shape, self.batch, r"\mathrel{+}=" if several else "="))
        where = "the objective" if equation.out.role == "loss" else \
            f"{equation.out.name} of layer {equation.layer}"
        return Section(f"Backward formulas of the op {equation.op} (as derived for {where}; "
                       "+= where a tensor is read by several ops)", tuple(rows))

    def _decay(self) -> bool:
        return bool(self.d.network.training.get("weight_decay"))

    # ----- the backward pass
    def backward_pass(self) -> Section:
        rows = []
        several = [g for g in self.raw if g.adjoint.name in self.several]
        groups = [(g, self._printed(path)) for g in several for path in self._paths(g)]
        simplified = iter(self._simplified(groups))
        paths = {g.adjoint.name: [next(simplified) for _ in self._paths(g)] for g in several}
        for gradient in self.raw:
            name = gradient.adjoint.name
            if name in paths:  # its definition: the sum of its paths
                rows.append(self._paths_row(gradient, paths[name]))
                continue
            shown = self.shown.get(name)
            if shown is not None:
                target = gradient_quantity(self.graph, gradient.of, gradient.adjoint, "batch")
                rows.append(formula_row(name, target, shown, gradient.of.shape, self.batch))
        return Section("Backward pass (training mode, in the order it is computed; L is the "
                       "mean of the B per-sample losses" + (" plus the weight decay"
                                                             if self._decay() else "") + ")",
                       tuple(rows))

    @staticmethod
    def _paths_of_layers(gradient) -> int:
        return len({consumer.layer for consumer, _ in gradient.paths})

    @staticmethod
    def _paths(gradient) -> list:
        """The contributions of each consuming layer, the last layer's first."""
        groups = {}
        for consumer, contribution in gradient.paths:
            groups[consumer.layer] = groups.get(consumer.layer, 0) + contribution
        return [groups[layer] for layer in sorted(groups, reverse=True)]

    def _paths_row(self, gradient, paths: list) -> Row:
        """A tensor read by several layers: its gradient as the sum of each layer's path."""
        target = gradient_quantity(self.graph, gradient.of, gradient.adjoint, "batch")
        if any(is_spatial(expr, self.batch.axes, self.batch.axes[gradient.adjoint.name])
               for expr in paths):  # in index form, each path with its letters and ranges
            forms = [index_form(target, expr, gradient.of.shape, self.batch) for expr in paths]
            rhs = " + ".join(rf"\left({rhs}\right)" for _, rhs, _ in forms)
            text = " + ".join(f"({line.split(' = ', 1)[1]})" for _, _, line in forms)
            lhs = forms[0][0]
            return Row(f"paths_{gradient.adjoint.name}", ((lhs, "=", rhs),),
                       f"{forms[0][2].split(' = ', 1)[0]} = {text}", f"{lhs} = {rhs}",
                       sp.srepr(gradient.expr))
        parts, index_parts, texts = [], [], []
        rank = gradient.of.rank
        for expr in paths:
            node = matrix_form(expr, rank, self.batch)
            named, _ = readable(expr, gradient.of.shape)
            index_parts.append(ScalarLatex({}, self.batch.quantities).doprint(named))
            texts.append(ScalarText({}, self.batch.quantities).doprint(named) if node is None
                         else matrix_text(node))
            parts.append(index_parts[-1] if node is None else matrix_latex(node))
        join = " + ".join(rf"\left({p}\right)" if " + " in p or " - " in p else p
                          for p in parts)
        _, letters = readable(sp.Integer(0), gradient.of.shape)
        index_lhs = target.entry(("," if target.comma else "").join(letters))
        index = " + ".join(rf"\left({p}\right)" for p in index_parts)
        return Row(f"paths_{gradient.adjoint.name}", ((target.latex, "=", join),),
                   f"{target.text} = " + " + ".join(f"({t})" if " + " in t or " - " in t
                                                     else t for t in texts),
                   f"{index_lhs} = {index}", sp.srepr(gradient.expr))

    def _printed(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` reading only printed gradients: each one the engine inlined is replaced
        by its derived expression (recursively)."""
        raw = {g.adjoint.name: g.expr for g in self.raw}

        def inlined(e):
            return isinstance(e, sp.Indexed) and e.base.label.name in raw \
                and e.base.label.name not in self.kept

        while expr.has(*[e for e in expr.atoms(sp.Indexed) if inlined(e)]):
            expr = expr.replace(inlined, lambda e: raw[e.base.label.name].xreplace(
                dict(zip(FREE, e.indices, strict=False))))
        return expr

    def _sample_gradients(self) -> dict:
        readable_names, found = set(), {}
        for gradient in self.d.gradients:
            expr = self.shown.get(gradient.adjoint.name, gradient.expr)
            per_sample = sample_gradient(gradient.__class__(gradient.of, gradient.adjoint, expr,
                                                            gradient.paths),
                                         self.graph, self.adjoints, readable_names)
            if per_sample is not None:
                readable_names.add(gradient.adjoint.name)
                found[gradient.adjoint.name] = per_sample
        return found

    def backward_sample(self) -> Section:
        rows = []
        for gradient in self.d.gradients:
            name = gradient.adjoint.name
            if name not in self.shown or name not in self.samples:
                continue
            target = gradient_quantity(self.graph, gradient.of, gradient.adjoint, "sample")
            shape = gradient.of.shape[1:] if gradient.of.role != "parameter" else \
                gradient.of.shape
            rows.append(formula_row("sample_" + name, target, self.samples[name], shape,
                                    self.sample))
        return Section("Backward pass for one sample (row s of each batch tensor as a column "
                       "vector; l the sample's loss; only where the rows of a batch do not "
                       "interact)", tuple(rows))

    def step(self) -> Section:
        rows = []
        for tensor in self.graph.given("parameter"):
            gradient = self.kept.get(f"g_{tensor.name}")
            if gradient is None:
                continue
            own = tensor_quantity(tensor, "batch")
            grad = gradient_quantity(self.graph, tensor, gradient.adjoint, "batch")
            rows.append(Row(f"update_{tensor.name}",
                            ((own.latex, r"\leftarrow", rf"{own.latex} - \eta {grad.latex}"),),
                            f"{own.text} <- {own.text} - eta {grad.text}"))
        return Section("Gradient descent step (learning rate eta)", tuple(rows))


def notation(graph) -> Section | None:
    """The notation the index forms and readings of convolutions and pooling use: definitions,
    nothing derived. None for a graph without range conditions or window argmaxes."""
    exprs = [e.expr for e in graph.equations]
    rows = []
    if any(e.has(Inside) for e in exprs):
        rows.append(Row("iverson", ((r"\left[P\right]", "=", r"1 \text{ where } P "
                                     r"\text{ holds, else } 0 \quad \text{(Iverson bracket: "
                                     r"the borders, padding and strides)}"),),
                        "[P] = 1 where P holds, else 0 (Iverson bracket: the borders, padding "
                        "and strides)"))
    if any(e.op in WEIGHTED_OPS[1:] for e in graph.equations):
        rows += [
            Row("correlation", ((r"\left(x \star_{S} k\right)_{i,j}", "=",
                                 r"\sum_{p,q} x_{iS+p,\,jS+q}\, k_{p,q} \quad \text{(valid "
                                 r"cross-correlation; } \star = \star_{1}\text{; one index "
                                 r"in 1-d)}"),),
                "(x ⋆_S k)[i,j] = sum_{p,q} x[iS+p,jS+q] k[p,q]  (valid cross-correlation; "
                "⋆ = ⋆_1; one index in 1-d)"),
            Row("pad", ((r"\operatorname{pad}_{P}(x)", ":", r"x \text{ with } P \text{ zeros "
                         r"around it (per axis: } \operatorname{pad}_{(P_1,P_2)}\text{)}"),),
                "pad_P(x): x with P zeros around it (per axis: pad_(P1,P2))"),
            Row("dilate", ((r"\operatorname{dil}_{S}(x)", ":", r"x \text{ with } S - 1 "
                            r"\text{ zeros between neighbours}"),),
                "dil_S(x): x with S - 1 zeros between neighbours"),
            Row("rotate", ((r"\operatorname{rot}_{180^{\circ}}(k)_{p,q}", "=",
                            r"k_{K-1-p,\,K-1-q} \quad \text{(the kernel rotated by } "
                            r"180^{\circ}\text{)}"),),
                "rot180(k)[p,q] = k[K-1-p, K-1-q]  (the kernel rotated by 180 degrees)")]
    if any(isinstance(e, IsArgmax) for e in exprs):
        rows.append(Row("argmax_ties", ((r"\operatorname*{argmax}", ":",
                                         r"\text{the first maximum of a window in row-major "
                                         r"order (ties resolved as PyTorch on the CPU)}"),),
                        "argmax: the first maximum of a window in row-major order (ties "
                        "resolved as PyTorch on the CPU)"))
    return Section("Notation (convolution and pooling)", tuple(rows)) if rows else None


def display_gradients(graph, gradients, several: set = frozenset()) -> dict:
    """Each gradient's expression as printed: a gradient whose one reader is a dense layer's
    pre-activation gradient (``dL/da^{(l)}`` into ``Delta^{(l)}``) is substituted into it,
    so the printed delta reads ``((W^{(l+1)})^T delta^{(l+1)}) ⊙ f'``; that gradient is then
    not printed on its own. The gradients in ``several`` (printed as the sum of their
    paths) stay named."""
    readers = {}
    for gradient in gradients:
        for name in {e.base.label.name for e in gradient.expr.atoms(sp.Indexed)}:
            readers.setdefault(name, []).append(gradient)
    shown, folded = {}, set()
    for gradient in gradients:
        expr = gradient.expr
        for name in {e.base.label.name for e in expr.atoms(sp.Indexed)}:
            source = next((g for g in gradients if g.adjoint.name == name), None)
            if source is None or name in several or len(readers.get(name, [])) != 1 \
                    or not _dense_pre(graph, gradient):
                continue
            expr = expr.replace(
                lambda e, n=name: isinstance(e, sp.Indexed) and e.base.label.name == n,
                lambda e, s=source: shown.get(s.adjoint.name, s.expr).xreplace(
                    dict(zip(FREE, e.indices, strict=False))))
            folded.add(name)
        shown[gradient.adjoint.name] = expr
    return {name: expr for name, expr in shown.items() if name not in folded}


def _dense_pre(graph, gradient) -> bool:
    equation = graph.definition(gradient.of.name)
    return equation is not None and equation.op == "dense"
