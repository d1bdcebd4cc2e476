"""Builds the policy engine's evaluation context from a verified caller."""

from __future__ import annotations

from datetime import datetime

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


def context_for(
    caller: VerifiedCaller,
    *,
    now: datetime,
    trusted_issuers: list[str],
    dataset_id: str | None = None,
    purpose: str | None = None,
    uses_so_far: int = 0,
    output_type: str | None = None,
    min_cell_size: int | None = None,
    epsilon: float | None = None,
    epsilon_spent: float = 0.0,
) -> EvaluationContext:
    return EvaluationContext(
        caller=caller.did,
        now=now,
        credentials=credentials_of(caller),
        trusted_issuers=frozenset(trusted_issuers),
        dataset_id=dataset_id,
        purpose=purpose,
        uses_so_far=uses_so_far,
        output_type=output_type,
        min_cell_size=min_cell_size,
        epsilon=epsilon,
        epsilon_spent=epsilon_spent,
    )
