"""Harvesting (data user role): the DSP catalogs of many hospital connectors, merged into one
searchable index kept in the store (`harvested_datasets`).

Targets are harvested concurrently; one failing hospital never stops the others and is reported
with its error. Re-harvests are incremental: a dataset whose `dct:modified` is unchanged keeps
its stored metadata (only its offers, which depend on who asks, are refreshed); a changed or
new dataset's HealthDCAT-AP description is fetched from the provider's public
`/catalog/datasets/{id}` (Turtle, with our DSP token: a dataset offered only to us is
described only to us) and read with `catalog.rdf.from_graph`; datasets gone from a
target's catalog leave the index.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import sqlalchemy as sa
from rdflib import Graph

from catalog.model import Dataset
from catalog.rdf import dataset_iris, from_graph
from catalog.search import Query as SearchQuery
from catalog.search import search
from catalog.serialize import TURTLE
from connector.db.database import Database
from connector.db.tables import harvested_datasets as table
from connector.errors import PhemsError, UpstreamError
from connector.exchange.remote import fetch_catalog
from connector.identity.did import did_from_url
from connector.identity.tokens import TokenIssuer
from connector.peer_http import capped_request
from connector.ports import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HarvestedDataset:
    provider_did: str
    provider_address: str  # DSP base URL
    dataset: Dataset  # policies = the offers the provider showed us

    @property
    def key(self) -> tuple[str, str]:
        return self.provider_did, self.dataset.identifier

    def as_json(self) -> dict[str, Any]:
        """What a data user needs to choose a dataset and negotiate for it."""
        ds = self.dataset
        return {
            "provider": self.provider_did,
            "providerAddress": self.provider_address,
            "publisher": ds.publisher.name,
            "id": ds.identifier,
            "title": ds.title,
            "description": ds.description,
            "keywords": list(ds.keywords),
            "outputTypes": [str(t) for t in ds.output_types],
            "formats": list(dict.fromkeys(d.dsp_format for d in ds.distributions)),
            "individuals": ds.number_of_unique_individuals,
            "minAge": ds.min_typical_age,
            "maxAge": ds.max_typical_age,
            "temporalStart": ds.temporal_start.isoformat() if ds.temporal_start else None,
            "temporalEnd": ds.temporal_end.isoformat() if ds.temporal_end else None,
            "offers": list(ds.policies),
        }


@dataclass
class TargetReport:
    address: str
    state: str = "pending"  # pending | running | ok | failed
    provider_did: str | None = None
    error: str | None = None
    datasets: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "state": self.state,
            "providerDid": self.provider_did,
            "error": self.error,
            "datasets": self.datasets,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
        }


@dataclass
class HarvestRun:
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    targets: list[TargetReport] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        done = sum(t.state in ("ok", "failed") for t in self.targets)
        return {
            "startedAt": self.started_at.isoformat(),
            "finishedAt": self.finished_at.isoformat() if self.finished_at else None,
            "progress": f"{done}/{len(self.targets)}",
            "targets": [t.as_json() for t in self.targets],
        }


def public_root(dsp_address: str) -> str:
    """Origin (plus any path before the DSP base) of a connector, from its DSP base URL."""
    return dsp_address.rstrip("/").removesuffix("/dsp/2025-1")


class HarvestService:
    def __init__(
        self,
        *,
        store: Database,
        http: httpx.AsyncClient,
        tokens: TokenIssuer,
        clock: Clock,
        targets: list[str],
        concurrency: int = 8,
    ) -> None:
        self.store = store
        self.http = http
        self.tokens = tokens
        self.clock = clock
        self.targets = targets
        self.concurrency = concurrency
        self.last_run: HarvestRun | None = None
        self._lock = asyncio.Lock()
        self._cache: tuple[tuple[int, Any], list[HarvestedDataset]] | None = None

    async def harvest(self, targets: list[str] | None = None) -> HarvestRun:
        """Harvest every target concurrently (one run at a time); returns the per-target report."""
        async with self._lock:
            run = HarvestRun(
                self.clock.now(),
                targets=[TargetReport(a.rstrip("/")) for a in (targets or self.targets)],
            )
            self.last_run = run
            await asyncio.gather(*(self._one(report) for report in run.targets))
            run.finished_at = self.clock.now()
            return run

    async def _one(self, report: TargetReport) -> None:
        report.state = "running"
        try:
            origin = urlsplit(report.address)
            did = did_from_url(f"{origin.scheme}://{origin.netloc}")
            catalog = await fetch_catalog(self.http, self.tokens, report.address, did)
            await self._merge(report, catalog, did)
            report.state = "ok"
        except PhemsError as exc:
            report.state, report.error = "failed", exc.detail
        except Exception as exc:  # a hospital's garbage must not stop the run
            log.exception("harvest of %s failed", report.address)
            report.state, report.error = "failed", f"{type(exc).__name__}: {exc}"

    async def _merge(self, report: TargetReport, catalog: dict[str, Any], did: str) -> None:
        claimed = catalog.get("participantId")
        if claimed not in (None, did):
            raise UpstreamError(
                f"catalog claims participant {claimed!r}, but {report.address} is {did}"
            )
        provider = did
        report.provider_did = provider
        items = [d for d in catalog.get("dataset", []) if isinstance(d, dict) and d.get("@id")]
        report.datasets = len(items)
        async with self.store.transaction() as conn:
            rows = (
                await conn.execute(
                    sa.select(table.c.dataset_id, table.c.modified, table.c.document).where(
                        table.c.provider_did == provider
                    )
                )
            ).all()
        stored = {r.dataset_id: (r.modified, r.document) for r in rows}
        gate = asyncio.Semaphore(self.concurrency)

        async def describe(item: dict[str, Any]) -> tuple[str, str | None, dict[str, Any], bool]:
            ident, modified = str(item["@id"]), item.get("dct:modified")
            offers = [o for o in item.get("hasPolicy", []) if isinstance(o, dict)]
            old = stored.get(ident)
            if old is not None and modified is not None and old[0] == modified:
                model = json.loads(old[1])["dataset"]
                return ident, modified, {"dataset": model, "offers": offers}, False
            async with gate:
                ds = await self._metadata(report.address, provider, ident)
            return ident, modified, {"dataset": ds.model_dump(mode="json"), "offers": offers}, True

        described = await asyncio.gather(*(describe(i) for i in items))
        now = self.clock.now()
        seen = {ident for ident, *_ in described}
        async with self.store.transaction() as conn:
            for ident, modified, doc, fetched in described:
                if ident in stored:
                    await conn.execute(
                        table.delete().where(
                            (table.c.provider_did == provider) & (table.c.dataset_id == ident)
                        )
                    )
                await conn.execute(
                    table.insert().values(
                        provider_did=provider,
                        dataset_id=ident,
                        provider_address=report.address,
                        modified=modified,
                        document=json.dumps(doc),
                        harvested_at=now,
                    )
                )
                if ident not in stored:
                    report.new += 1
                elif fetched:
                    report.updated += 1
                else:
                    report.unchanged += 1
            gone = set(stored) - seen
            if gone:
                await conn.execute(
                    table.delete().where(
                        (table.c.provider_did == provider) & table.c.dataset_id.in_(gone)
                    )
                )
            report.removed = len(gone)

    async def _metadata(self, address: str, provider: str, dataset_id: str) -> Dataset:
        url = f"{public_root(address)}/catalog/datasets/{quote(dataset_id, safe='')}"
        # With our token: a dataset offered only to us is described only to us.
        headers = {"Accept": TURTLE, "Authorization": f"Bearer {self.tokens.issue(provider)}"}
        response = await capped_request(
            self.http, "GET", url, what="dataset description", headers=headers
        )
        if response.status != 200:
            raise UpstreamError(f"dataset description: HTTP {response.status}", url=url)
        try:
            graph = Graph().parse(data=response.text, format="turtle")
            return from_graph(graph, dataset_iris(graph)[0])
        except Exception as exc:  # rdflib and pydantic raise many types for bad input
            raise UpstreamError(f"dataset description unreadable: {exc}", url=url) from None

    async def index(self) -> list[HarvestedDataset]:
        """Every harvested dataset (cached until the index changes)."""
        query = sa.select(sa.func.count(), sa.func.max(table.c.harvested_at))
        async with self.store.transaction() as conn:
            count, newest = (await conn.execute(query)).one()
            fingerprint = (int(count), newest)
            if self._cache is not None and self._cache[0] == fingerprint:
                return self._cache[1]
            rows = (await conn.execute(sa.select(table))).all()
        out = []
        for r in rows:
            doc = json.loads(r.document)
            ds = Dataset.model_validate(doc["dataset"]).model_copy(
                update={"policies": tuple(doc["offers"])}
            )
            out.append(HarvestedDataset(r.provider_did, r.provider_address, ds))
        self._cache = (fingerprint, out)
        return out

    async def search(self, query: SearchQuery) -> list[HarvestedDataset]:
        """The harvested datasets matching ``query`` (as the catalogue's search form)."""
        index = await self.index()
        by_object = {id(h.dataset): h for h in index}
        return [by_object[id(ds)] for ds in search([h.dataset for h in index], query)]
