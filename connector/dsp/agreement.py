"""A signed agreement as either party keeps it once its negotiation is FINALIZED (DESIGN.md §3:
the ODRL Agreement without its signature property, both parties' JWS over it), and what has
been spent of it (``uses``: the ODRL ``count``; ``epsilon_spent``: the privacy budget)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.dsp.states import Role


@dataclass(frozen=True)
class AgreementRecord:
    id: str
    negotiation_id: str
    role: Role
    dataset_id: str
    provider_did: str
    consumer_did: str
    agreement: dict[str, Any]
    provider_signature: str
    consumer_signature: str
    uses: int
    epsilon_spent: float
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "negotiationId": self.negotiation_id,
            "role": str(self.role),
            "datasetId": self.dataset_id,
            "providerDid": self.provider_did,
            "consumerDid": self.consumer_did,
            "agreement": self.agreement,
            "providerSignature": self.provider_signature,
            "consumerSignature": self.consumer_signature,
            "uses": self.uses,
            "epsilonSpent": self.epsilon_spent,
            "createdAt": self.created_at.isoformat(),
        }
