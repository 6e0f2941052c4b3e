"""The ``symbp verify`` subcommand: check hand-derived gradient formulas.

Contract (CONVENTIONS §4)::

    symbp verify [SPEC] --claim 'LATEX' [--claim ...] [--convention NAME] [--let h=a ...] [--json]
    symbp verify [SPEC] --file derivation.tex [--convention NAME] [--let h=a ...] [--json]

prints one verdict per claim (``correct``, ``incorrect`` with the evidence,
or ``cannot parse`` with the column) and exits 0 when every claim is
correct, 1 when one is incorrect, 2 when one cannot be parsed (the verdicts
on stdout, and one line ``symbp: error: cannot parse ...`` with the first such
claim's column on stderr) or on bad usage (one line naming the field). On a network
with convolution, pooling or flatten layers the claims are read entry by entry
(:mod:`symbp.verify.tensors`). ``--json`` prints one JSON object: a single claim's
verdict, or ``{"verdict": <overall>, "claims": [...]}`` for several, each with the
``convention`` it was read in and the ``symbols`` mapped when the notation is not
symbp's own. ``--convention NAME`` reads the claims in a source's notation (a preset
of :mod:`symbp.verify.conventions`: nielsen, bishop, goodfellow, ng, cs231n,
wikipedia, d2l, ufldl, ioffe; default symbp), ``--let LETTER=QUANTITY`` (repeatable)
declares a letter (``--let h=a``, ``--let t=y``, ``--let o=z^{(L)}``); an unknown
name is bad usage naming the flag. Only argparse is imported at start-up; lark,
SymPy and NumPy are imported when the command runs.
"""

from __future__ import annotations

EXIT_CORRECT, EXIT_INCORRECT = 0, 1  # 2 is the command line's for every SymbpError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify", help="check a hand-derived gradient formula against the derivation",
        description=("Check hand derivations such as "
                     "\\delta^{(l)} = ((W^{(l+1)})^T \\delta^{(l+1)}) \\odot f'(z^{(l)}) "
                     "against the gradients symbp derives for SPEC; without SPEC, check a "
                     "scalar identity such as \\tanh'(z) = 1 - \\tanh^2(z)."))
    parser.add_argument("spec", nargs="?", help="network spec (TOML); optional for scalar claims")
    parser.add_argument("--claim", action="append", default=[], metavar="LATEX",
                        help="a claim 'LHS = RHS' in LaTeX (repeatable)")
    parser.add_argument("--file", metavar="TEX",
                        help="a file with one claim per line or per align row")
    parser.add_argument("--convention", metavar="NAME",
                        help="the notation the claims are written in: symbp (default), "
                             "nielsen, bishop, goodfellow, ng, cs231n, wikipedia, d2l, ufldl, ioffe")
    parser.add_argument("--let", action="append", default=[], metavar="LETTER=QUANTITY",
                        dest="lets", help="what a letter means, e.g. --let h=a (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args) -> int:
    from symbp.errors import SymbpError

    if not args.claim and not args.file:
        raise SymbpError("verify: give a claim with --claim 'LATEX' or a file with --file TEX")
    if args.claim and args.file:
        raise SymbpError("verify: give either --claim or --file, not both")

    from symbp import verify as checker
    from symbp.verify import conventions

    convention = conventions.get(args.convention).name if args.convention else None
    lets = [conventions.parse_let(text) for text in args.lets]
    network = None
    if args.spec:
        from symbp.spec import load_spec

        network = load_spec(args.spec)
    reading = {"convention": convention, "lets": lets}
    if args.file:
        verdicts = checker.verify_file(args.file, network, **reading)
    else:
        claims = [(None, text) for text in args.claim]
        verdicts = checker.verify_many(claims, network, **reading)
    _print(verdicts, args.json, checker)
    status = checker.overall(verdicts)
    if status == "cannot parse":
        raise SymbpError(_unparsed_message(verdicts))
    return {"correct": EXIT_CORRECT, "incorrect": EXIT_INCORRECT}[status]


def _unparsed_message(verdicts) -> str:
    """The one error line for claims that cannot be parsed: the first, and how many more."""
    from symbp.claims import printable

    unparsed = [v for v in verdicts if v.verdict == "cannot parse"]
    first = unparsed[0]
    if first.line is not None:
        where = f"line {first.line}"
    elif len(verdicts) > 1:
        where = f"claim {verdicts.index(first) + 1}"
    else:
        where = "the claim"
    message = f"cannot parse {where}, column {first.column}: {printable(first.summary)}"
    if len(unparsed) > 1:
        message += f" (and {len(unparsed) - 1} more that cannot be parsed)"
    return message


def _print(verdicts, as_json: bool, checker) -> None:
    if as_json:
        import json

        if len(verdicts) == 1:
            payload = verdicts[0].to_dict()
        else:
            payload = {"verdict": checker.overall(verdicts),
                       "claims": [v.to_dict() for v in verdicts]}
        print(json.dumps(payload, indent=2))
        return
    print("\n\n".join(str(v) for v in verdicts))
