"""The ``symbp verify`` subcommand: check hand-derived gradient formulas.

Contract (CONVENTIONS §4)::

    symbp verify [SPEC] --claim 'LATEX' [--claim ...] [--json]
    symbp verify [SPEC] --file derivation.tex [--json]

prints one verdict per claim (``correct``, ``incorrect`` with the evidence,
or ``cannot parse`` with the column) and exits 0 when every claim is
correct, 1 when one is incorrect, 2 when one cannot be parsed or on bad
usage. ``--json`` prints one JSON object: a single claim's verdict, or
``{"verdict": <overall>, "claims": [...]}`` for several. Only argparse is
imported at start-up; lark, SymPy and NumPy are imported when the command runs.
"""

from __future__ import annotations

EXIT_CORRECT, EXIT_INCORRECT, EXIT_UNPARSED = 0, 1, 2


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
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args) -> int:
    from symbp.errors import SymbpError

    if not args.claim and not args.file:
        raise SymbpError("verify: give a claim with --claim 'LATEX' or a file with --file TEX")
    if args.claim and args.file:
        raise SymbpError("verify: give either --claim or --file, not both")

    from symbp import verify as checker

    network = None
    if args.spec:
        from symbp.spec import load_spec

        network = load_spec(args.spec)
    if args.file:
        verdicts = checker.verify_file(args.file, network)
    else:
        claims = [(None, text) for text in args.claim]
        verdicts = checker.verify_many(claims, network)
    _print(verdicts, args.json, checker)
    status = checker.overall(verdicts)
    return {"correct": EXIT_CORRECT, "incorrect": EXIT_INCORRECT}.get(status, EXIT_UNPARSED)


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
