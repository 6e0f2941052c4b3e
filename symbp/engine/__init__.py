"""The derivation engine: a network as a graph of index-notation ops, and reverse mode over it.

Contract: :mod:`symbp.engine.graph` holds the graph (named tensors with
symbolic index ranges, and the equations that define them from earlier
tensors); :mod:`symbp.engine.indices` sums Kronecker deltas away;
:mod:`symbp.engine.backward` derives the gradient of every tensor as the sum
over its consumers of each consumer's vector-Jacobian product, each one
``sympy.diff`` of the consumer's forward definition, contracted;
:mod:`symbp.engine.rewrite` rewrites derived expressions in terms of named
tensors (an activation's output, softmax's output) where that is exact;
:mod:`symbp.engine.numeric` evaluates index expressions with NumPy. No
derivative is written by hand anywhere here: the ops of :mod:`symbp.ops`
hold forward definitions only.
"""
