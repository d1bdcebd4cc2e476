"""Agreements as the management API shows them: stored ones, and the export that proves an
agreement offline (both signatures with both parties' DID documents)."""

from __future__ import annotations

from typing import Any

from connector.dsp.agreement import AgreementRecord
from connector.errors import NotFoundError
from connector.exchange.ports import DspStores
from connector.identity.agreement_proof import build_proof
from connector.identity.resolver import DidResolver


class AgreementService:
    def __init__(
        self, *, stores: DspStores, resolver: DidResolver, did: str, did_document: dict[str, Any]
    ) -> None:
        self.stores = stores
        self.resolver = resolver
        self.did = did
        self.did_document = did_document

    async def list(self) -> list[AgreementRecord]:
        """Agreements of this connector in either role, oldest first."""
        async with self.stores.db.reading() as conn:
            return await self.stores.agreements.list(conn)

    async def get(self, id: str) -> AgreementRecord:
        async with self.stores.db.reading() as conn:
            record = await self.stores.agreements.get(conn, id)
        if record is None:
            raise NotFoundError(f"no agreement {id}")
        return record

    async def proof(self, id: str) -> dict[str, Any]:
        """The agreement with both signatures and both parties' DID documents (ours as we
        publish it, the counterparty's resolved now), for ``agreements verify`` offline."""
        record = await self.get(id)
        return build_proof(
            record.agreement,
            provider_signature=record.provider_signature,
            consumer_signature=record.consumer_signature,
            provider_document=await self._document(record.provider_did),
            consumer_document=await self._document(record.consumer_did),
        )

    async def _document(self, did: str) -> dict[str, Any]:
        return self.did_document if did == self.did else await self.resolver.resolve(did)
