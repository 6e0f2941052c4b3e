"""Verify hand derivations: is a gradient formula right, and where does it go wrong?

Contract: :func:`verify` takes one claim in the LaTeX of :mod:`symbp.claims`
(in symbp's notation, CONVENTIONS §1, or a named source's convention) and,
for claims about a network, the network (dense, activation, layer_norm,
batch_norm, residual and dropout layers, weight decay, and convolution,
pooling and flatten layers); it returns a
:class:`Verdict` (``correct``, ``incorrect`` or ``cannot parse``) and never
raises for a malformed claim.
:func:`verify_parsed` decides a claim already parsed (or rewritten from
another notation). :func:`verify_file` checks every claim of a ``.tex`` or
text file. The modules, one per idea:

- :mod:`~symbp.verify.check`: the entry points;
- :mod:`~symbp.verify.notation`, :mod:`~symbp.verify.conventions`: the sources'
  notations and conventions, read into symbp's;
- :mod:`~symbp.verify.truth`: the truth, the graph engine's gradients read in
  the notation of claims (matrix trees, general-layer formulas, values at
  random points);
- :mod:`~symbp.verify.context`: the claim's target, the network with its width
  sets and random instances;
- :mod:`~symbp.verify.shapes`, :mod:`~symbp.verify.evaluate`,
  :mod:`~symbp.verify.functions`: a claim's right-hand side evaluated at an
  instance (values, shapes in the claim's terms, entries);
- :mod:`~symbp.verify.entries`: both sides entrywise in SymPy, and their
  difference;
- :mod:`~symbp.verify.decide`: the decision over layers, width sets and points;
- :mod:`~symbp.verify.tensors`, :mod:`~symbp.verify.tensor_values`: claims entry by entry
  over tensors of any rank (every claim on a network with convolutions, pooling or
  flatten, and index forms without a matrix reading), decided on the engine's arrays;
  :mod:`~symbp.verify.conv_rewrites` (with :mod:`~symbp.verify.index_rewrites`, the
  algebra of index expressions): their likely mistakes;
- :mod:`~symbp.verify.mistakes`: the likely mistake, by testing variants
  (:mod:`~symbp.verify.rewrites`, :mod:`~symbp.verify.op_rewrites`: the rewritten claims);
- :mod:`~symbp.verify.scalar`: claims without a network;
- :mod:`~symbp.verify.echo`: LaTeX of truths and differences;
- :mod:`~symbp.verify.verdict`: the verdict and its report;
- :mod:`~symbp.verify.claim_files`: the claims of a file.
"""

from symbp.verify.check import verify, verify_file, verify_many, verify_parsed
from symbp.verify.claim_files import MAX_CLAIMS, read_claims
from symbp.verify.verdict import VERDICTS, Verdict, overall

__all__ = ["MAX_CLAIMS", "VERDICTS", "Verdict", "overall", "read_claims", "verify", "verify_file",
           "verify_many", "verify_parsed"]
