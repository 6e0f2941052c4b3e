"""Verify hand derivations: is a gradient formula right, and where does it go wrong?

Contract: :func:`verify` takes one claim in the LaTeX of :mod:`symbp.claims`
(per sample, column vectors, CONVENTIONS §1) and, for claims about a
network, the network (a plain MLP: dense layers, no weight decay); it returns
a :class:`Verdict` (``correct``, ``incorrect`` or ``cannot parse``) and never
raises for a malformed claim. :func:`verify_file` checks every claim of a
``.tex`` or text file. The modules, one per idea:

- :mod:`~symbp.verify.truth`: the truth, the graph engine's gradients read in
  the notation of claims (matrix trees, general-layer formulas, values at
  random points);
- :mod:`~symbp.verify.check`: deciding a claim against it (layers, shapes,
  symbols, numbers) and naming the likely mistake; scalar claims;
- :mod:`~symbp.verify.verdict`: the verdict and its report;
- :mod:`~symbp.verify.claim_files`: the claims of a file.
"""

from symbp.verify.check import verify, verify_file, verify_many
from symbp.verify.claim_files import MAX_CLAIMS, read_claims
from symbp.verify.verdict import VERDICTS, Verdict, overall

__all__ = ["MAX_CLAIMS", "VERDICTS", "Verdict", "overall", "read_claims", "verify", "verify_file",
           "verify_many"]
