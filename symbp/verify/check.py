"""The entry points of symbp verify: one claim, several, a file.

Contract: :func:`verify` takes one claim in the LaTeX of :mod:`symbp.claims`
as the user wrote it (in symbp's notation, CONVENTIONS §1, or in a named
convention of :mod:`symbp.verify.conventions`) and, for claims about a
network, the network (a :class:`~symbp.spec.Network` or a spec path); the
conventions module reads it into symbp's notation and returns
:func:`verify_parsed`'s :class:`~symbp.verify.verdict.Verdict`. ``verdict`` is ``correct``,
``incorrect`` or ``cannot parse``; neither function raises for a malformed
claim. They raise :class:`~symbp.errors.SymbpError` only for bad usage (a
network claim without a network, a generic-layer claim on a network without
the layers it speaks about).

On a network with convolution, pooling or flatten layers every claim about a network
quantity (a gradient, a delta, a forward quantity, or an entry of one) is a tensor claim,
decided entry by entry by :class:`~symbp.verify.tensors.TensorCheck`; on any other
network an index form that the matrix reading refuses (an entry of a norm's statistic, a
sum up to a concrete number) is decided that way too.

:func:`verify_parsed` decides a :class:`~symbp.claims.Claim` that is already
parsed (and possibly rewritten from another notation, as
:mod:`symbp.verify.conventions` does); ``text`` is what the verdict quotes.
A claim about a network quantity (``\\delta``, a loss gradient) is decided by
:mod:`symbp.verify.decide`, any other by :mod:`symbp.verify.scalar`.
:func:`verify_many` and :func:`verify_file` apply :func:`verify` to the
``(line, claim)`` pairs of :func:`~symbp.verify.claim_files.read_claims`.
"""

from __future__ import annotations

from pathlib import Path

from symbp import claims as C
from symbp.errors import SymbpError
from symbp.files import read_user_text
from symbp.verify.claim_files import read_claims
from symbp.verify.context import Context, target_of
from symbp.verify.decide import NetworkCheck
from symbp.verify.scalar import verify_scalar
from symbp.verify.tensors import TensorCheck, claim_kind, has_tensor_ops
from symbp.verify.verdict import Verdict, unparsed


def verify(claim: str, network=None, *, convention=None, lets=()) -> Verdict:
    """Decide one claim as the user wrote it; ``network`` is a Network, a spec path, or None
    for scalar claims; ``convention`` a preset of :mod:`symbp.verify.conventions` (default
    symbp's own notation), ``lets`` declarations such as ``"h=a"``."""
    from symbp.verify.conventions import verify_written

    network = as_network(network)
    if has_tensor_ops(network):
        verdict = _verify_tensor_claim(claim, network, convention, lets, KINDS)
        return verdict or verify_written(claim, network, convention, lets)
    verdict = verify_written(claim, network, convention, lets)
    if verdict.verdict == "cannot parse" and network is not None and convention is None \
            and not lets:
        try:
            entrywise = _verify_tensor_claim(claim, network, None, (), ("gradient",),
                                             index_forms_only=True)
        except SymbpError:  # the entrywise reading refuses the network: keep the reason
            entrywise = None
        if entrywise is not None and entrywise.verdict != "cannot parse":
            return entrywise  # an index form the matrix reading has no layout for
    return verdict


KINDS = ("gradient", "forward")  # the claims TensorCheck reads on a network with tensor ops


def _verify_tensor_claim(text, network, convention, lets, kinds, index_forms_only=False
                         ) -> Verdict | None:
    """A claim read entry by entry (:class:`~symbp.verify.tensors.TensorCheck`): every claim
    on a network with convolutions, pooling or flatten, and an index form the matrix
    reading refuses; read in the convention (the letters only: entries keep their
    indices). None for a claim whose kind (:func:`~symbp.verify.tensors.claim_kind`) is
    not one of ``kinds``, or that does not parse (left to the matrix reading), and with
    ``index_forms_only`` for a claim without entries."""
    from symbp.verify import conventions

    conv = conventions.get(convention)
    pairs = [conventions.parse_let(item) if isinstance(item, str) else item for item in lets]
    try:
        parsed = claim = C.parse_claim(text)
    except C.ClaimParseError:
        return None
    if claim_kind(claim) not in kinds or (index_forms_only and not any(
            isinstance(node, (C.Indexed, C.Sum)) for side in claim.sides
            for _, node in C.walk(side))):
        return None
    try:
        symbols = {}
        if convention is not None or pairs:
            claim, symbols = conventions.rewrite(claim, conv, dict(pairs))
        check = TensorCheck(claim, network)
        verdict = check.run()
        if verdict.verdict == "incorrect":
            _other_tensor_conventions(verdict, parsed, conv, pairs, check,
                                      convention is not None or bool(pairs))
    except C.ClaimParseError as error:
        return unparsed(text if isinstance(text, str) else repr(text), error)
    verdict.claim = text
    return conventions.label(verdict, conv, symbols, convention is not None or bool(pairs))


def _other_tensor_conventions(verdict, parsed, current, pairs, check, named) -> None:
    """As :func:`~symbp.verify.conventions.verify_written` does for matrix claims: if the
    claim read in another preset holds entry by entry, the verdict says so."""
    from symbp.verify import conventions

    seen = [check.claim.sides]
    for conv in conventions.other_presets(parsed, current):
        try:
            other, _ = conventions.rewrite(parsed, conv, dict(pairs))
        except C.ClaimParseError:
            continue
        if other.sides in seen:
            continue
        seen.append(other.sides)
        try:
            holds = TensorCheck(other, check.network).holds(other)
        except (C.ClaimParseError, SymbpError):
            continue
        if holds:
            conventions.add_convention_note(verdict, conv, named)
            return


def verify_parsed(claim: C.Claim, network, text: str | None = None) -> Verdict:
    """Decide a parsed claim (``network`` as for :func:`verify`); the verdict quotes
    ``text`` (default: the claim's own text). A claim that turns out unreadable while
    it is decided (a per-sample quantity in a batch formula, a missing layer index) is
    a ``cannot parse`` verdict at its column, never an exception."""
    network = as_network(network)
    text = claim.text if text is None else text
    try:
        target = target_of(claim.lhs)
        if target is None:
            verdict = verify_scalar(claim, network)
        elif network is None:
            raise SymbpError(
                f"the claim is about {claim.source(claim.lhs)}, a quantity of a network: "
                "give the network spec (symbp verify SPEC --claim ...)")
        else:
            verdict = NetworkCheck(claim, target, Context.of(network)).run()
    except C.ClaimParseError as error:
        return unparsed(text, error)
    verdict.claim = text
    return verdict


def verify_many(claims, network=None, *, convention=None, lets=()) -> list[Verdict]:
    """Verify ``(line, claim)`` pairs (as :func:`read_claims` returns them)."""
    network = as_network(network)
    verdicts = []
    for line, text in claims:
        verdict = verify(text, network, convention=convention, lets=lets)
        verdict.line = line
        verdicts.append(verdict)
    return verdicts


def verify_file(path, network=None, *, convention=None, lets=()) -> list[Verdict]:
    """Verify every claim of a ``.tex`` or text file (see :func:`read_claims`)."""
    text = read_user_text(path)
    try:
        claims = read_claims(text)
    except SymbpError as error:
        raise SymbpError(f"{path}: {error}") from None
    if not claims:
        raise SymbpError(f"{path}: no claims found (one claim per line, or align rows)")
    return verify_many(claims, network, convention=convention, lets=lets)


def as_network(network):
    if network is None or hasattr(network, "depth"):
        return network
    if isinstance(network, (str, Path)):
        from symbp.spec import load_spec

        return load_spec(network)
    raise SymbpError(f"network: expected a Network or a spec path, got {type(network).__name__}")
