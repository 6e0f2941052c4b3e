"""Errors that symbp reports to the user.

Contract: every error caused by bad user input (usage, spec, expression,
data file, claim) is a :class:`SymbpError`. The command line turns it into
one line ``symbp: error: <message>`` and exit status 2, with no traceback.
Anything else that escapes is a bug in symbp, and :class:`InternalError`
marks the ones symbp detects itself (e.g. a derived formula that fails its
numeric self-check), so they are never printed as if they were results.
"""


class SymbpError(Exception):
    """Bad input from the user: exit status 2, one line, nothing written."""


class SpecError(SymbpError):
    """The network spec is invalid; the message names the field."""


class ExpressionError(SymbpError):
    """A user expression is not in the accepted syntax; the message gives the column."""


class DataError(SymbpError):
    """A data set or data file cannot be used with the spec."""


class InternalError(Exception):
    """symbp caught itself being wrong (a derived formula failed its self-check)."""
