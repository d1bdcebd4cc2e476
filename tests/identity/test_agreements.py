from __future__ import annotations

import json
from typing import Any

import pytest

from connector.errors import AuthenticationError
from connector.identity.agreements import (
    SIGNATURE_PROPERTY,
    agreement_payload,
    sign_agreement,
    verify_agreement_signature,
    with_signature,
)
from connector.identity.resolver import DidResolver
from connector.identity.signing import decode_jws_unverified
from tests.identity.conftest import DidServer, new_keys

AGREEMENT: dict[str, Any] = {
    "@type": "odrl:Agreement",
    "@id": "urn:uuid:7c1e1e9e-0d7d-4f6b-9f53-1b1f3b0d2a10",
    "target": "urn:dataset:ds-1",
    "assigner": "did:web:provider.example",
    "assignee": "did:web:consumer.example",
    "timestamp": "2026-03-01T12:00:00Z",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"}
            ],
        }
    ],
}


def test_payload_is_canonical_and_excludes_the_signature() -> None:
    shuffled = dict(reversed(list(AGREEMENT.items())))
    assert agreement_payload(shuffled) == agreement_payload(AGREEMENT)
    assert agreement_payload(with_signature(AGREEMENT, "x.y.z")) == agreement_payload(AGREEMENT)
    assert json.loads(agreement_payload(AGREEMENT)) == AGREEMENT
    assert b" " not in agreement_payload(AGREEMENT).replace(b"odrl:Agreement", b"")


async def test_provider_and_consumer_signatures(
    did_server: DidServer, resolver: DidResolver
) -> None:
    provider_keys, consumer_keys = new_keys(), new_keys("P-256")
    provider, consumer = did_server.publish(provider_keys), did_server.publish(consumer_keys)
    signed = with_signature(AGREEMENT, sign_agreement(AGREEMENT, provider, provider_keys.signing))
    assert await verify_agreement_signature(signed, provider, resolver) == f"{provider}#key-1"
    consumer_jws = sign_agreement(signed, consumer, consumer_keys.signing)
    assert decode_jws_unverified(consumer_jws)[1] == agreement_payload(AGREEMENT)
    kid = await verify_agreement_signature(signed, consumer, resolver, consumer_jws)
    assert kid == f"{consumer}#key-1"


async def test_refusals(did_server: DidServer, resolver: DidResolver) -> None:
    keys, other_keys = new_keys(), new_keys()
    provider, other = did_server.publish(keys), did_server.publish(other_keys)
    signed = with_signature(AGREEMENT, sign_agreement(AGREEMENT, provider, keys.signing))
    with pytest.raises(AuthenticationError, match="agreement: no signature"):
        await verify_agreement_signature(AGREEMENT, provider, resolver)
    with pytest.raises(AuthenticationError, match="different agreement"):
        await verify_agreement_signature(
            {**signed, "target": "urn:dataset:ds-2"}, provider, resolver
        )
    with pytest.raises(AuthenticationError, match="not a key of"):
        await verify_agreement_signature(signed, other, resolver)
    forged = with_signature(AGREEMENT, sign_agreement(AGREEMENT, provider, other_keys.signing))
    with pytest.raises(AuthenticationError, match="agreement: signature does not verify"):
        await verify_agreement_signature(forged, provider, resolver)
    assert SIGNATURE_PROPERTY in signed
