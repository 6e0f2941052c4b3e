"""Reading user files and writing output files atomically.

Contract:

- :func:`open_user_file` opens a user's input file for reading, or raises
  ``error`` (a :class:`~symbp.errors.SymbpError`) in one line naming the path.
  Only a regular file up to ``limit`` bytes is opened: a device (a symlink to
  ``/dev/zero``), a FIFO or a directory is refused before a byte is read, so
  no input can make symbp read forever. :func:`read_user_text` reads such a
  file as UTF-8 text.
- :func:`check_output` is the one check of an output path that every command
  runs before any work starts: a non-empty name, not a directory, not an
  existing file unless ``force``, in an existing directory where a file can
  really be created (probed with a temporary file, so ``/proc`` or a
  read-only mount fail here and not after training).
- :func:`write_atomic` writes the whole text to a temporary file in the
  target's directory and renames it over the target, so a reader never sees a
  half-written file and a failure leaves the old file (or none). It applies
  the same checks as :func:`check_output` again at write time.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from symbp.errors import SymbpError

TEXT_LIMIT = 16 * 2**20  # spec files and claim files: 16 MiB is far beyond any real one


def open_user_file(path: str | Path, kind: str = "file", error=SymbpError,
                   limit: int | None = None, mode: str = "rb", **options):
    """``path`` opened for reading after checking that it is a regular file within ``limit``
    bytes (default :data:`TEXT_LIMIT`)."""
    path = Path(path)
    limit = TEXT_LIMIT if limit is None else limit
    try:
        handle = open(path, mode, **options)
    except FileNotFoundError:
        raise error(f"{path}: no such {kind}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {kind}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {kind} ({_reason(exc)})") from None
    try:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: not a regular file (a device, pipe or socket)")
        if info.st_size > limit:
            raise error(f"{path}: the {kind} is {info.st_size} bytes, "
                        f"more than the {limit} symbp reads")
    except BaseException:
        handle.close()
        raise
    return handle


def read_user_text(path: str | Path, kind: str = "file", error=SymbpError,
                   limit: int | None = None) -> str:
    """The UTF-8 text of ``path``; an unusable file is ``error``, naming the path."""
    limit = TEXT_LIMIT if limit is None else limit
    with open_user_file(path, kind, error, limit) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise error(f"{path}: cannot read the {kind} ({_reason(exc)})") from None
    if len(data) > limit:
        raise error(f"{path}: the {kind} is more than the {limit} bytes symbp reads")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: the {kind} is not UTF-8 text "
                    f"(byte {exc.start} cannot be decoded)") from None


def _reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


def check_output(path: str | Path, force: bool = False, option: str | None = None) -> Path:
    """Refuse an output path that could not be written, before any work is done."""
    label = f"{option}: " if option else ""
    if not os.fspath(path):
        raise SymbpError(f"{label}empty file name")
    path = Path(path)
    if path.is_dir():
        raise SymbpError(f"{label}{path}: is a directory")
    if (path.exists() or path.is_symlink()) and not force:
        raise SymbpError(f"{label}{path}: already exists (use --force to overwrite)")
    directory = path.parent
    if not directory.is_dir():
        raise SymbpError(f"{label}{path}: directory {directory} "
                         "does not exist")
    try:
        handle, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise SymbpError(f"{label}{path}: cannot write in {directory} "
                         f"({_reason(exc)})") from None
    os.close(handle)
    os.unlink(probe)
    return path


def write_atomic(path: str | Path, text: str | bytes, force: bool = False) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = check_output(path, force)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise SymbpError(f"{path}: cannot write ({_reason(exc)})") from None
    try:
        if isinstance(text, bytes):
            with os.fdopen(handle, "wb") as stream:
                stream.write(text)
        else:
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
                stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise SymbpError(f"{path}: cannot write ({_reason(exc)})") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
