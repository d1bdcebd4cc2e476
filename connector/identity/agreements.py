"""Signatures on contract agreements (DESIGN.md §3 "Signed agreements").

The provider signs every Agreement: the Agreement object carries ``SIGNATURE_PROPERTY``, a
compact JWS (EdDSA or ES256, ``kid`` = the signer's verification method) whose payload is the
RFC 8785 canonical JSON of the Agreement *without* that property. The consumer verifies it
against the provider's did:web key, then signs the same payload with its own key for the
``ContractAgreementVerificationMessage``. Both signatures are kept, so either party can prove
the contract later. A signature that does not fit is an ``AuthenticationError`` with the
reason (the DSP layer turns it into a termination).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.canonical import canonical_json
from connector.errors import AuthenticationError
from connector.identity.did import SIGNING_FRAGMENT
from connector.identity.jwt import ALGS
from connector.identity.resolver import DidResolver
from connector.identity.signing import (
    PrivateKey,
    decode_jws_unverified,
    sign_jws,
    verify_jws,
)

SIGNATURE_PROPERTY = "https://w3id.org/phems/ns/signature"


def agreement_payload(agreement: Mapping[str, Any]) -> bytes:
    """What is signed: canonical JSON of the agreement without the signature property."""
    return canonical_json({k: v for k, v in agreement.items() if k != SIGNATURE_PROPERTY})


def sign_agreement(agreement: Mapping[str, Any], did: str, key: PrivateKey) -> str:
    """This connector's compact JWS over the agreement (``kid`` = ``<did>#key-1``)."""
    return sign_jws(agreement_payload(agreement), key, f"{did}#{SIGNING_FRAGMENT}")


def with_signature(agreement: Mapping[str, Any], signature: str) -> dict[str, Any]:
    return {**agreement, SIGNATURE_PROPERTY: signature}


async def verify_agreement_signature(
    agreement: Mapping[str, Any],
    signer_did: str,
    resolver: DidResolver,
    signature: str | None = None,
) -> str:
    """Check that ``signer_did`` signed exactly this agreement; return the key id used.

    ``signature`` defaults to the agreement's own ``SIGNATURE_PROPERTY`` (the provider's);
    pass the consumer's JWS from the verification message explicitly.
    """
    token = signature if signature is not None else agreement.get(SIGNATURE_PROPERTY)
    if not isinstance(token, str) or not token:
        raise AuthenticationError(f"agreement: no signature ({SIGNATURE_PROPERTY})")
    header, payload = decode_jws_unverified(token)
    kid = header.get("kid")
    if header.get("alg") not in ALGS or not isinstance(kid, str):
        raise AuthenticationError("agreement: signature needs alg EdDSA or ES256 and a kid")
    if kid.split("#", 1)[0] != signer_did:
        raise AuthenticationError(f"agreement: signed with {kid!r}, not a key of {signer_did}")
    if payload != agreement_payload(agreement):
        raise AuthenticationError("agreement: signature is over a different agreement")
    try:
        verify_jws(token, await resolver.resolve_key(kid, "assertionMethod"))
    except AuthenticationError as exc:
        raise AuthenticationError(f"agreement: {exc.detail} (key {kid})") from None
    return kid
