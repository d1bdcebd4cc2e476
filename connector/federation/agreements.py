"""The ``AgreementSource`` of a data user's connector: the agreements it holds as consumer
(``connector.federation.directory`` picks the aggregate ones)."""

from __future__ import annotations

from typing import Protocol

from connector.dsp.agreement import AgreementRecord
from connector.dsp.states import Role
from connector.federation.directory import HeldAgreement


class Agreements(Protocol):
    """What ``connector.exchange.agreements.AgreementService`` offers."""

    async def list(self) -> list[AgreementRecord]: ...


class ConsumerAgreements:
    def __init__(self, agreements: Agreements) -> None:
        self._agreements = agreements

    async def consumer_agreements(self) -> list[HeldAgreement]:
        return [
            HeldAgreement(a.id, a.provider_did, a.dataset_id, a.agreement)
            for a in await self._agreements.list()
            if a.role is Role.CONSUMER
        ]
