"""Registration of the subcommands that live in their own modules.

Contract: ``REGISTRY`` lists functions ``register(subparsers)``; each adds
one subcommand whose ``run(args)`` returns the exit status. Keeping the list
here lets :mod:`symbp.cli` stay small and import nothing heavy at start-up.
"""

REGISTRY: list = []
REGISTRY.append(lambda sub: __import__("symbp.verify_cli").verify_cli.register(sub))
