"""Builds the policy engine's evaluation context from a verified caller.

A decision the outbox loop takes after the answer to a message (an agreement, a transfer
start) is made with the caller's facts as the message brought them: ``CallerFacts``, kept
with the step as JSON (``as_json`` / ``from_json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.identity.tokens import VerifiedCaller
from connector.policy import EvaluationContext, VerifiedCredential


def credentials_of(caller: VerifiedCaller) -> tuple[VerifiedCredential, ...]:
    return tuple(
        VerifiedCredential(
            types=frozenset(c.types),
            issuer=c.issuer,
            subject={**c.claims, "id": c.subject},
            valid_until=c.expires,
        )
        for c in caller.credentials
    )


@dataclass(frozen=True)
class CallerFacts:
    """Who sent a message and the credentials its token carried (signatures checked)."""

    did: str
    credentials: tuple[VerifiedCredential, ...]

    @classmethod
    def of(cls, caller: VerifiedCaller) -> CallerFacts:
        return cls(did=caller.did, credentials=credentials_of(caller))

    def as_json(self) -> dict[str, Any]:
        return {
            "did": self.did,
            "credentials": [
                {
                    "types": sorted(c.types),
                    "issuer": c.issuer,
                    "subject": dict(c.subject),
                    "validFrom": _iso(c.valid_from),
                    "validUntil": _iso(c.valid_until),
                }
                for c in self.credentials
            ],
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> CallerFacts:
        return cls(
            did=str(value["did"]),
            credentials=tuple(
                VerifiedCredential(
                    types=frozenset(c["types"]),
                    issuer=c["issuer"],
                    subject=c["subject"],
                    valid_from=_instant(c.get("validFrom")),
                    valid_until=_instant(c.get("validUntil")),
                )
                for c in value.get("credentials", ())
            ),
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def context_for(
    caller: VerifiedCaller | CallerFacts,
    *,
    now: datetime,
    trusted_issuers: list[str] | tuple[str, ...],
    dataset_id: str | None = None,
    purpose: str | None = None,
    uses_so_far: int = 0,
    output_type: str | None = None,
    min_cell_size: int | None = None,
    epsilon: float | None = None,
    epsilon_spent: float = 0.0,
) -> EvaluationContext:
    facts = caller if isinstance(caller, CallerFacts) else CallerFacts.of(caller)
    return EvaluationContext(
        caller=facts.did,
        now=now,
        credentials=facts.credentials,
        trusted_issuers=frozenset(trusted_issuers),
        dataset_id=dataset_id,
        purpose=purpose,
        uses_so_far=uses_so_far,
        output_type=output_type,
        min_cell_size=min_cell_size,
        epsilon=epsilon,
        epsilon_spent=epsilon_spent,
    )
