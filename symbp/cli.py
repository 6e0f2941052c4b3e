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
import gc
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

    generate = commands.add_parser("generate", help="write a standalone NumPy training module")
    _add_spec(generate)
    generate.add_argument("-o", "--output", help="output file (default: print to stdout)")
    generate.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    generate.add_argument("--force", action="store_true", help="overwrite an existing file")
    generate.set_defaults(run=cmd_generate)

    check = commands.add_parser("check", help="finite-difference check of the generated code")
    _add_spec(check)
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--max-entries", type=int, default=200,
                       help="entries checked per parameter (a random subset above this)")
    check.set_defaults(run=cmd_check)

    train = commands.add_parser("train", help="train the generated code on real data")
    _add_spec(train)
    train.add_argument("--data", required=True,
                       help="digits, iris, wine, breast_cancer, diabetes, or a .npz/.csv file")
    train.add_argument("--epochs", type=int)
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--optimizer", choices=("sgd", "momentum", "adam"))
    train.add_argument("--seed", type=int)
    train.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    train.add_argument("--plot", help="save the loss curves to this image (PNG)")
    train.add_argument("--save", help="save the trained parameters to this .npz file")
    train.add_argument("--force", action="store_true", help="overwrite existing output files")
    train.set_defaults(run=cmd_train)

    demo = commands.add_parser("demo", help="the whole tour on the digits example")
    demo.add_argument("--output-dir", help="keep the generated module here")
    demo.add_argument("--epochs", type=int)
    demo.set_defaults(run=cmd_demo)
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


def cmd_generate(args) -> int:
    from pathlib import Path

    from symbp.codegen import generate_source
    from symbp.spec import load_spec

    network = load_spec(args.spec)
    if args.output:
        _refuse_existing(args.output, args.force)
    source = generate_source(network, args.dtype, spec_name=Path(args.spec).name)
    emit(source, args.output, args.force)
    return EXIT_OK


def _refuse_existing(path: str, force: bool) -> None:
    """Fail before any slow work when an output cannot be written (checked again on write)."""
    import os
    from pathlib import Path

    target = Path(path)
    if target.exists() and not force:
        raise SymbpError(f"{path}: already exists (use --force to overwrite)")
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise SymbpError(f"{path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise SymbpError(f"{path}: directory {directory} is not writable")


def cmd_check(args) -> int:
    from symbp.codegen import generate_source, load_module
    from symbp.gradcheck import check_module
    from symbp.spec import load_spec

    if args.max_entries < 1:
        raise SymbpError("--max-entries: expected a positive integer")
    network = load_spec(args.spec)
    module = load_module(generate_source(network, "float64"))
    report = check_module(module, seed=args.seed, max_entries=args.max_entries)
    print(report.table())
    return EXIT_OK if report.passed else EXIT_FAIL


def _positive(value, option: str):
    if value is not None and value <= 0:
        raise SymbpError(f"{option}: expected a positive number, got {value}")


def cmd_train(args) -> int:
    from symbp.spec import load_spec
    from symbp.training import plot_losses, train_on_data

    for value, option in ((args.epochs, "--epochs"), (args.learning_rate, "--learning-rate"),
                          (args.batch_size, "--batch-size")):
        _positive(value, option)
    for path in (args.plot, args.save):
        if path:
            _refuse_existing(path, args.force)
    network = load_spec(args.spec)
    result = train_on_data(network, args.data, epochs=args.epochs,
                           learning_rate=args.learning_rate, batch_size=args.batch_size,
                           optimizer=args.optimizer, seed=args.seed, dtype=args.dtype)
    if args.plot:
        plot_losses(result, args.plot, f"{network.name} on {args.data}", force=args.force)
        print(f"wrote {args.plot}")
    if args.save:
        _save_params(result.params, args.save, args.force)
        print(f"wrote {args.save}")
    return EXIT_OK


def _save_params(params: dict, path: str, force: bool) -> None:
    import io

    import numpy as np

    from symbp.files import write_atomic

    buffer = io.BytesIO()
    np.savez(buffer, **params)
    write_atomic(path, buffer.getvalue(), force=force)


def cmd_demo(args) -> int:
    from symbp.demo import run_demo

    _positive(args.epochs, "--epochs")
    return run_demo(output_dir=args.output_dir, epochs=args.epochs)


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


def run() -> None:
    """The console entry point (``symbp`` and ``python -m symbp``): :func:`main` tuned
    for one short-lived process. SymPy makes many small objects, so the cyclic
    garbage collector runs less often, and what is left at exit is frozen so that
    interpreter shutdown does not traverse it again (together about 0.2 s of a
    one-second ``derive``; `main` itself, as the tests call it, is unchanged)."""
    gc.set_threshold(100_000, 50, 100)
    status = main()
    gc.freeze()
    raise SystemExit(status)
