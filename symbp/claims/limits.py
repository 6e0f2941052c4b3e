"""The limits that keep every step after parsing bounded (see :func:`~symbp.claims.parse.parse_claim`)."""

MAX_LENGTH = 2000
MAX_DEPTH = 50  # levels of the parse tree
MAX_DIGITS = 300  # of any constant a claim can produce
MAX_ORDER = 2  # of a derivative
MAX_EXPONENT = 12
MAX_NODES = 4000  # of a claim once a (a = f(z)) clause is substituted
