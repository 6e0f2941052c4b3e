"""The ``symbp`` command line.

Contract (CONVENTIONS §4): subcommands ``derive``, ``generate``, ``check``,
``train``, ``verify`` and ``demo``; exit 0 on success, 1 when a check or a
verified claim fails, 2 on bad input of any kind with one line
``symbp: error: ...`` on stderr and no traceback, and no file written or
overwritten half-way. Each command imports only what it needs, so start-up
stays fast.
"""

from __future__ import annotations

import argparse
import sys

from symbp import __version__
from symbp.errors import InternalError, SymbpError

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting."""

    def error(self, message):
        raise SymbpError(message)


def _add_spec(parser, optional: bool = False):
    if optional:
        parser.add_argument("spec", nargs="?", help="network spec (TOML)")
    else:
        parser.add_argument("spec", help="network spec (TOML), e.g. examples/digits_mlp.toml")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="symbp", description=(
        "Derive, print, generate and verify the exact gradients of a neural network."))
    parser.add_argument("--version", action="version", version=f"symbp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    derive = commands.add_parser("derive", help="print the derived gradient formulas")
    _add_spec(derive)
    derive.add_argument("--format", choices=("latex", "markdown", "text", "json"),
                        default="latex")
    derive.add_argument("--standalone", action="store_true",
                        help="a complete LaTeX document (with --format latex)")
    derive.add_argument("-o", "--output", help="write to this file instead of stdout")
    derive.add_argument("--force", action="store_true", help="overwrite an existing file")
    derive.set_defaults(run=cmd_derive)
    _register_later_commands(commands)
    return parser


def _register_later_commands(commands):
    """Commands implemented in their own modules register themselves here."""
    from symbp import commands as command_modules

    for register in command_modules.REGISTRY:
        register(commands)


def cmd_derive(args) -> int:
    from symbp.derive import derive
    from symbp.printing import render
    from symbp.spec import load_spec

    if args.standalone and args.format != "latex":
        raise SymbpError("--standalone: only with --format latex")
    network = load_spec(args.spec)
    text = render(derive(network), args.format, standalone=args.standalone)
    emit(text, args.output, args.force)
    return EXIT_OK


def emit(text: str, output: str | None, force: bool) -> None:
    """Print ``text`` or write it atomically to ``output``."""
    if output:
        from symbp.files import write_atomic

        write_atomic(output, text, force=force)
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "run", None):
            parser.print_help()
            return EXIT_USAGE
        return args.run(args)
    except SymbpError as exc:
        message = " ".join(str(exc).split())
        print(f"symbp: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except InternalError as exc:
        print(f"symbp: internal error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print("symbp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
