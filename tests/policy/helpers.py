"""Builders shared by the policy tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from connector.policy import (
    DATA_PERMIT_CREDENTIAL,
    MEMBERSHIP_CREDENTIAL,
    EvaluationContext,
    Policy,
    VerifiedCredential,
    validate_policy,
)

CALLER = "did:web:researcher.example"
AUTHORITY = "did:key:z6MkAuthority"
HDAB = "did:web:hdab.example"
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
PHEMS = "https://w3id.org/phems/ns/"


def c(left: str, op: str, right: Any) -> dict[str, Any]:
    return {"leftOperand": left, "operator": op, "rightOperand": right}


def offer(*constraints: dict[str, Any], uid: str = "urn:offer:1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "@id": uid,
        "@type": "Offer",
        "permission": [{"action": "use", "constraint": list(constraints)}],
    }
    body.update(extra)
    return body


def policy(*constraints: dict[str, Any]) -> Policy:
    return validate_policy(offer(*constraints))


def membership(
    holder: str = CALLER,
    issuer: str = AUTHORITY,
    *,
    valid_until: datetime | None = None,
    **claims: Any,
) -> VerifiedCredential:
    return VerifiedCredential(
        types=frozenset({"VerifiableCredential", MEMBERSHIP_CREDENTIAL}),
        issuer=issuer,
        subject={"id": holder, **claims},
        valid_from=NOW - timedelta(days=30),
        valid_until=valid_until or NOW + timedelta(days=30),
    )


def permit(
    datasets: list[str],
    purpose: str = "research",
    holder: str = CALLER,
    issuer: str = HDAB,
    *,
    valid_until: datetime | None = None,
) -> VerifiedCredential:
    return VerifiedCredential(
        types=frozenset({"VerifiableCredential", DATA_PERMIT_CREDENTIAL}),
        issuer=issuer,
        subject={"id": holder, "datasets": datasets, "purpose": purpose, "permitId": "P-1"},
        valid_from=NOW - timedelta(days=1),
        valid_until=valid_until or NOW + timedelta(days=365),
    )


def ctx(**fields: Any) -> EvaluationContext:
    base: dict[str, Any] = {
        "caller": CALLER,
        "now": NOW,
        "trusted_issuers": frozenset({AUTHORITY, HDAB}),
        "dataset_id": "urn:dataset:asthma",
    }
    base.update(fields)
    return EvaluationContext(**base)
