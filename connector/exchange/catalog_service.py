"""The DSP catalog of this connector, from the HealthDCAT-AP model (`catalog.dsp`).

Published datasets, each with the offers the caller may use (catalog scope of the policy
engine); a dataset with none is not listed. Paged by offset/limit: only as many datasets are
evaluated as the page needs (plus one, to know whether a next page exists).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from catalog.dsp import dsp_catalog_bytes, dsp_dataset
from catalog.model import Dataset
from connector.errors import NotFoundError
from connector.exchange.policy_context import context_for
from connector.identity.tokens import VerifiedCaller
from connector.policy import EvaluationContext, Scope, evaluate
from connector.ports import Clock
from connector.publishing.snapshot import Entry, PublishedCatalog

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class CatalogPage:
    body: bytes
    offset: int
    limit: int
    has_next: bool


class CatalogService:
    def __init__(
        self,
        *,
        published: PublishedCatalog,
        clock: Clock,
        did: str,
        trusted_issuers: list[str],
    ) -> None:
        self.published = published
        self.clock = clock
        self.did = did
        self.trusted_issuers = trusted_issuers

    def _context(self, caller: VerifiedCaller) -> EvaluationContext:
        return context_for(caller, now=self.clock.now(), trusted_issuers=self.trusted_issuers)

    @staticmethod
    def _visible(entry: Entry, context: EvaluationContext) -> Dataset | None:
        ctx = dataclasses.replace(context, dataset_id=entry.record.id)
        offers = tuple(
            {k: v for k, v in offer.items() if k != "target"}
            for offer, policy in entry.offers
            if evaluate(policy, ctx, Scope.CATALOG).permitted
        )
        if not offers:
            return None
        if len(offers) == len(entry.dataset.policies):
            return entry.dataset
        return entry.dataset.model_copy(update={"policies": offers})

    async def page(self, caller: VerifiedCaller, *, offset: int, limit: int) -> CatalogPage:
        snap = await self.published.snapshot()
        context = self._context(caller)
        chosen: list[Dataset] = []
        seen = 0
        has_next = False
        for entry in snap.entries:
            ds = self._visible(entry, context)
            if ds is None:
                continue
            seen += 1
            if seen <= offset:
                continue
            if len(chosen) == limit:
                has_next = True
                break
            chosen.append(ds)
        body = dsp_catalog_bytes(
            snap.catalog, chosen, participant_id=self.did, cache=self.published.cache
        )
        return CatalogPage(body, offset, limit, has_next)

    async def visible(self, caller: VerifiedCaller, dataset_id: str) -> Dataset:
        """The dataset as ``caller`` may see it (the offers it may use), or ``NotFoundError``
        alike for a missing dataset and one it may see no offer of."""
        snap = await self.published.snapshot()
        entry = snap.by_id.get(dataset_id)
        ds = self._visible(entry, self._context(caller)) if entry else None
        if ds is None:
            raise NotFoundError(f"no dataset {dataset_id}")
        return ds

    async def dataset(self, caller: VerifiedCaller, dataset_id: str) -> dict[str, Any]:
        return dsp_dataset(await self.visible(caller, dataset_id), with_context=True)
