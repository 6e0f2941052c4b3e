"""Reading user files and writing output files atomically.

Contract: :func:`read_user_text` reads a UTF-8 file or raises ``error`` (a
:class:`~symbp.errors.SymbpError`) in one line naming the path. :func:`write_atomic` writes the whole text to a temporary file in
the target's directory and renames it over the target, so a reader never
sees a half-written file and a failure leaves the old file (or none). An
existing file is replaced only with ``force``; otherwise, and when the
directory does not exist or is not writable, it raises
:class:`~symbp.errors.SymbpError` naming the path.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from symbp.errors import SymbpError


def read_user_text(path: str | Path, kind: str = "file", error=SymbpError) -> str:
    """The text of ``path``; a missing or unreadable file is ``error``, naming the path."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {kind}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read the {kind} ({exc.__class__.__name__})") from None


def write_atomic(path: str | Path, text: str | bytes, force: bool = False) -> Path:
    path = Path(path)
    if path.is_dir():
        raise SymbpError(f"{path}: is a directory")
    if path.exists() and not force:
        raise SymbpError(f"{path}: already exists (use --force to overwrite)")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise SymbpError(f"{path}: directory {directory} does not exist")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise SymbpError(f"{path}: cannot write ({exc.strerror})") from None
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
        raise SymbpError(f"{path}: cannot write ({exc.strerror})") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
