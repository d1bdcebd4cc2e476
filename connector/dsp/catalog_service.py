"""The DSP catalog of this connector: published datasets, each with the offers the caller may
use (catalog scope of the policy engine); a dataset with none is not listed."""

from __future__ import annotations

from typing import Any

from connector.datasets import DatasetRecord, DatasetStore
from connector.dsp.context import DSP_CONTEXT_URL
from connector.dsp.store import DspStore
from connector.errors import NotFoundError
from connector.exchange.policy_context import context_for
from connector.identity.tokens import VerifiedCaller
from connector.policy import Scope, evaluate, validate_policy
from connector.ports import Clock


class CatalogService:
    def __init__(
        self,
        *,
        store: DspStore,
        datasets: DatasetStore,
        clock: Clock,
        did: str,
        dsp_base: str,
        trusted_issuers: list[str],
    ) -> None:
        self.store = store
        self.datasets = datasets
        self.clock = clock
        self.did = did
        self.dsp_base = dsp_base
        self.trusted_issuers = trusted_issuers

    def _visible_offers(
        self, caller: VerifiedCaller, record: DatasetRecord
    ) -> list[dict[str, Any]]:
        context = context_for(
            caller,
            now=self.clock.now(),
            trusted_issuers=self.trusted_issuers,
            dataset_id=record.id,
        )
        return [
            offer
            for offer in record.offers
            if evaluate(validate_policy(offer), context, Scope.CATALOG)
        ]

    def _service(self) -> dict[str, Any]:
        return {"@id": f"{self.did}#dsp", "@type": "DataService", "endpointURL": self.dsp_base}

    def dataset_json(self, record: DatasetRecord, offers: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "@id": record.id,
            "@type": "Dataset",
            "title": record.title,
            "description": record.description,
            "hasPolicy": [{k: v for k, v in o.items() if k != "target"} for o in offers],
            "distribution": [
                {"@type": "Distribution", "format": f, "accessService": self._service()}
                for f in record.formats
            ],
        }

    async def visible(self, caller: VerifiedCaller) -> list[dict[str, Any]]:
        async with self.store.transaction() as conn:
            records = await self.datasets.list(conn)
        out = []
        for record in records:
            offers = self._visible_offers(caller, record)
            if offers:
                out.append(self.dataset_json(record, offers))
        return out

    def catalog_json(self, datasets: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "@context": [DSP_CONTEXT_URL],
            "@id": f"{self.did}#catalog",
            "@type": "Catalog",
            "participantId": self.did,
            "service": [self._service()],
            "dataset": datasets,
        }

    async def dataset(self, caller: VerifiedCaller, dataset_id: str) -> dict[str, Any]:
        async with self.store.transaction() as conn:
            record = await self.datasets.get(conn, dataset_id)
        offers = (
            self._visible_offers(caller, record) if record and record.status == "published" else []
        )
        if record is None or not offers:
            raise NotFoundError(f"no dataset {dataset_id}")
        return {"@context": [DSP_CONTEXT_URL], **self.dataset_json(record, offers)}
