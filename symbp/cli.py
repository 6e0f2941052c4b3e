"""The ``symbp`` command line.

Contract (CONVENTIONS §4): subcommands ``derive``, ``generate``, ``check``,
``train``, ``verify`` and ``demo``; exit 0 on success, 1 when a check or a
verified claim fails, 2 on bad input of any kind with one line
``symbp: error: ...`` on stderr and no traceback, and no file written or
overwritten half-way. Each command imports only what it needs, so start-up
stays fast.

Every input passes through one place here before any work starts: the
parser (flag values through the spec's own validators), then
:func:`check_outputs` (every output path a command declares, before it does
any slow work), then the command; :func:`main` turns every exception into one
line: :class:`~symbp.errors.SymbpError` exits 2, anything else exits 3 as an
internal error (with the traceback only under ``--debug``). Python and NumPy
warnings are not printed: a command says what went wrong in its one line.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import warnings

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


def _add_outputs(parser, *options):
    """Output-file options ``(flags, help)`` that :func:`check_outputs` checks before work."""
    names = []
    for flags, help_text in options:
        action = parser.add_argument(*flags, help=help_text)
        names.append((action.dest, max(flags, key=len)))
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    parser.set_defaults(outputs=tuple(names))


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="symbp", description=(
        "Derive, print, generate and verify the exact gradients of a neural network."))
    parser.add_argument("--version", action="version", version=f"symbp {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an internal error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    derive = commands.add_parser("derive", help="print the derived gradient formulas")
    _add_spec(derive)
    derive.add_argument("--format", choices=("latex", "markdown", "text", "json"),
                        default="latex")
    derive.add_argument("--standalone", action="store_true",
                        help="a complete LaTeX document (with --format latex)")
    _add_outputs(derive, (("-o", "--output"), "write to this file instead of stdout"))
    derive.set_defaults(run=cmd_derive)

    generate = commands.add_parser("generate", help="write a standalone NumPy training module")
    _add_spec(generate)
    _add_outputs(generate, (("-o", "--output"), "output file (default: print to stdout)"))
    generate.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    generate.set_defaults(run=cmd_generate)

    check = commands.add_parser("check", help="finite-difference check of the generated code")
    _add_spec(check)
    check.add_argument("--seed", type=_integer, default=0)
    check.add_argument("--max-entries", type=_integer, default=200,
                       help="entries checked per parameter (a random subset above this)")
    check.set_defaults(run=cmd_check)

    train = commands.add_parser("train", help="train the generated code on real data")
    _add_spec(train)
    train.add_argument("--data", required=True,
                       help="digits, iris, wine, breast_cancer, diabetes, or a .npz/.csv file")
    train.add_argument("--epochs", type=_integer)
    train.add_argument("--learning-rate", type=_number)
    train.add_argument("--batch-size", type=_integer)
    train.add_argument("--optimizer", choices=("sgd", "momentum", "adam"))
    train.add_argument("--seed", type=_integer)
    train.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    _add_outputs(train, (("--plot",), "save the loss curves to this image (PNG)"),
                 (("--save",), "save the trained parameters to this .npz file"))
    train.set_defaults(run=cmd_train)

    demo = commands.add_parser("demo", help="the whole tour on the digits examples: an MLP, then a CNN")
    demo.add_argument("--output-dir", help="keep the generated module here")
    demo.add_argument("--epochs", type=_integer)
    demo.set_defaults(run=cmd_demo)
    _register_later_commands(commands)
    return parser


def _register_later_commands(commands):
    """Commands implemented in their own modules register themselves here."""
    from symbp import commands as command_modules

    for register in command_modules.REGISTRY:
        register(commands)


def cmd_derive(args) -> int:
    from symbp.engine.derivation import derive_graph
    from symbp.printing import render
    from symbp.spec import load_spec

    if args.standalone and args.format != "latex":
        raise SymbpError("--standalone: only with --format latex")
    network = load_spec(args.spec)
    text = render(derive_graph(network), args.format, standalone=args.standalone)
    emit(text, args.output, args.force)
    return EXIT_OK


def cmd_generate(args) -> int:
    from pathlib import Path

    from symbp.codegen import generate_source
    from symbp.spec import load_spec

    network = load_spec(args.spec)
    source = generate_source(network, args.dtype, spec_name=Path(args.spec).name)
    emit(source, args.output, args.force)
    return EXIT_OK


def check_outputs(args) -> None:
    """Check every output path the command declares, before any work starts.

    Each must be writable (:func:`symbp.files.check_output`), and no two may
    name the same file (the second would overwrite the first).
    """
    from symbp.files import check_output

    seen = {}
    for dest, option in getattr(args, "outputs", ()):
        path = getattr(args, dest)
        if path is None:
            continue
        target = check_output(path, args.force, option).resolve()
        if target in seen:
            raise SymbpError(f"{option}: {path} is also the {seen[target]} file")
        seen[target] = option


def _training_flags(args, keys) -> dict:
    """The given ``[training]`` overrides among ``keys``, checked by the spec's rules."""
    from symbp.spec import check_training_overrides

    overrides = {key: getattr(args, key) for key in keys}
    return check_training_overrides(overrides, lambda key: "--" + key.replace("_", "-"))


def cmd_check(args) -> int:
    from symbp.codegen import generate_source, load_module
    from symbp.gradcheck import check_module
    from symbp.spec import load_spec

    if args.max_entries < 1:
        raise SymbpError("--max-entries: expected a positive integer")
    _training_flags(args, ("seed",))
    network = load_spec(args.spec)
    module = load_module(generate_source(network, "float64"))
    report = check_module(module, seed=args.seed, max_entries=args.max_entries)
    print(report.table())
    return EXIT_OK if report.passed else EXIT_FAIL


def cmd_train(args) -> int:
    from symbp.spec import load_spec
    from symbp.training import plot_losses, train_on_data

    overrides = _training_flags(args, ("epochs", "learning_rate", "batch_size", "seed"))
    network = load_spec(args.spec)
    result = train_on_data(network, args.data, optimizer=args.optimizer, dtype=args.dtype,
                           **overrides)
    if args.plot is not None:
        plot_losses(result, args.plot, f"{network.name} on {args.data}", force=args.force)
        print(f"wrote {args.plot}")
    if args.save is not None:
        _save_params({**result.params, **result.state}, args.save, args.force)
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

    overrides = _training_flags(args, ("epochs",))
    return run_demo(output_dir=args.output_dir, **overrides)


def emit(text: str, output: str | None, force: bool) -> None:
    """Print ``text`` or write it atomically to ``output``."""
    if output is not None:
        from symbp.files import write_atomic

        write_atomic(output, text, force=force)
        print(f"wrote {output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _run_command(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        raise SymbpError("a command is required (derive, generate, check, train, verify, "
                         "demo); see symbp --help")
    check_outputs(args)
    stdout = sys.stdout
    sys.stdout = _GuardedStream(stdout)
    try:
        status = args.run(args)
        sys.stdout.flush()
    finally:
        sys.stdout = stdout
    return status


class _GuardedStream:
    """stdout whose write errors (a full disk, ``> /dev/full``) are one-line user errors;
    a closed pipe stays a :class:`BrokenPipeError`, which ends the command quietly."""

    def __init__(self, stream):
        self._stream = stream

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def _guard(self, method, *args):
        try:
            return method(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise SymbpError(f"cannot write to standard output ({exc.strerror or exc})") from None

    def write(self, text):
        return self._guard(self._stream.write, text)

    def flush(self):
        return self._guard(self._stream.flush)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


def main(argv: list[str] | None = None) -> int:
    """Run one command; every outcome is an exit status and at most one line on stderr."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _run_command(argv)
    except SymbpError as exc:
        print(f"symbp: error: {_one_line(exc)}", file=sys.stderr)
        _silence_stdout()
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("symbp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:  # InternalError, or a bug: one line, traceback only on request
        if debug:
            import traceback

            traceback.print_exc()
        kind = "" if isinstance(exc, InternalError) else f"{exc.__class__.__name__}: "
        print(f"symbp: internal error: {kind}{_one_line(exc)}", file=sys.stderr)
        return EXIT_INTERNAL


def _silence_stdout() -> None:
    """Drop what is left in stdout's buffer when it cannot be written (a closed pipe,
    a full disk), so that interpreter shutdown does not print a second error."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass


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
