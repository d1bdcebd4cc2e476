"""An exported agreement that proves itself offline: the agreement, both parties' JWS and both
DID documents as they were when exported. ``verify_proof`` needs no network: it checks that
each signature is by a key the embedded DID document of that party lists under
``assertionMethod``, over exactly the RFC 8785 canonical agreement, and that the agreement
names the same two parties."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connector.errors import AuthenticationError
from connector.identity.agreements import SIGNATURE_PROPERTY, agreement_payload
from connector.identity.did import find_key
from connector.identity.signing import decode_jws_unverified, verify_jws

FORMAT = "https://w3id.org/phems/ns/AgreementProof"


@dataclass(frozen=True)
class ProofResult:
    agreement_id: str
    provider: str
    consumer: str


def build_proof(
    agreement: dict[str, Any],
    *,
    provider_signature: str,
    consumer_signature: str,
    provider_document: dict[str, Any],
    consumer_document: dict[str, Any],
) -> dict[str, Any]:
    return {
        "type": FORMAT,
        "agreement": {k: v for k, v in agreement.items() if k != SIGNATURE_PROPERTY},
        "providerSignature": provider_signature,
        "consumerSignature": consumer_signature,
        "providerDidDocument": provider_document,
        "consumerDidDocument": consumer_document,
    }


def verify_proof(proof: dict[str, Any]) -> ProofResult:
    """Raise ``AuthenticationError`` naming the first problem; return who signed what."""
    if proof.get("type") != FORMAT:
        raise AuthenticationError(f"not an exported agreement (type is not {FORMAT})")
    agreement = proof.get("agreement")
    if not isinstance(agreement, dict):
        raise AuthenticationError("no agreement object")
    provider, consumer = agreement.get("assigner"), agreement.get("assignee")
    if not isinstance(provider, str) or not isinstance(consumer, str):
        raise AuthenticationError("agreement names no assigner/assignee")
    payload = agreement_payload(agreement)
    for role, did in (("provider", provider), ("consumer", consumer)):
        token = proof.get(f"{role}Signature")
        document = proof.get(f"{role}DidDocument")
        if not isinstance(token, str) or not isinstance(document, dict):
            raise AuthenticationError(f"{role} signature or DID document missing")
        header, signed = decode_jws_unverified(token)
        kid = header.get("kid")
        if not isinstance(kid, str) or kid.split("#", 1)[0] != did:
            raise AuthenticationError(f"{role} signature is not by a key of {did}")
        try:
            verify_jws(token, find_key(document, kid, "assertionMethod"))
        except AuthenticationError as exc:
            raise AuthenticationError(f"{role} signature: {exc.detail}") from None
        if signed != payload:
            raise AuthenticationError(f"{role} signature is over a different agreement")
    return ProofResult(agreement_id=str(agreement.get("@id")), provider=provider, consumer=consumer)
