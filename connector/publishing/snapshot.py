"""This connector's published catalog as HealthDCAT-AP models, kept as an in-memory snapshot.

Every request (DSP catalog, `/catalog`, the UI) reads the snapshot; it is rebuilt only when the
store's fingerprint (number of published datasets, newest `modified_at`) changes. Changes made
through this process invalidate it at once (`invalidate`); the fingerprint query itself (a scan
of the datasets table) runs at most every `recheck_seconds`, so replicas sharing one database
see each other's changes within that delay. Rendered bytes are cached
per (dataset IRI, dct:modified, media type) in one `RenderCache`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from catalog.cache import RenderCache
from catalog.model import Catalog, Dataset
from connector.db.database import Database
from connector.db.tables import datasets as datasets_table
from connector.errors import PhemsError
from connector.policy import Policy, names_recipients, validate_policy
from connector.publishing.healthdcat import Publisher, to_catalog, to_dataset
from connector.publishing.records import DatasetRecord
from connector.publishing.store import DatasetStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    record: DatasetRecord
    dataset: Dataset
    offers: tuple[tuple[dict[str, Any], Policy], ...]


@dataclass(frozen=True)
class Snapshot:
    fingerprint: tuple[int, dt.datetime | None]
    entries: tuple[Entry, ...]
    catalog: Catalog
    by_id: dict[str, Entry] = field(default_factory=dict)
    # What the public /catalog pages show: datasets with an offer not limited to named
    # recipients, with only such offers (connector.policy.audience).
    public: Catalog | None = None
    public_by_id: dict[str, Dataset] = field(default_factory=dict)

    @property
    def datasets(self) -> tuple[Dataset, ...]:
        return self.catalog.datasets

    @property
    def version(self) -> str:
        count, newest = self.fingerprint
        return f"{count}-{newest.isoformat() if newest else 'none'}"


class PublishedCatalog:
    def __init__(
        self,
        *,
        store: Database,
        datasets: DatasetStore,
        publisher: Publisher,
        recheck_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.recheck_seconds = recheck_seconds
        self._checked_at = -math.inf
        self.datasets = datasets
        self.publisher = publisher
        self.cache = RenderCache(max_entries=20_000)
        self._snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """A dataset changed through this process: recheck on the next request."""
        self._checked_at = -math.inf

    async def snapshot(self) -> Snapshot:
        current = self._snapshot
        if current is not None and time.monotonic() - self._checked_at < self.recheck_seconds:
            return current
        checked = time.monotonic()
        query = sa.select(sa.func.count(), sa.func.max(datasets_table.c.modified_at)).where(
            datasets_table.c.status == "published"
        )
        async with self.store.transaction() as conn:
            count, newest = (await conn.execute(query)).one()
        fingerprint = (int(count), newest)
        if current is not None and current.fingerprint == fingerprint:
            self._checked_at = checked
            return current
        async with self._lock:
            if self._snapshot is not None and self._snapshot.fingerprint == fingerprint:
                return self._snapshot
            async with self.store.transaction() as conn:
                records = await self.datasets.list(conn)
            # Thousands of models take seconds to build: keep the event loop serving meanwhile.
            self._snapshot = await asyncio.to_thread(self._build, fingerprint, records)
            self._checked_at = checked
            return self._snapshot

    def _build(
        self, fingerprint: tuple[int, dt.datetime | None], records: list[DatasetRecord]
    ) -> Snapshot:
        entries = []
        for record in records:
            try:
                ds = to_dataset(record, self.publisher)
                offers = tuple((o, validate_policy(o)) for o in record.offers)
            except PhemsError as exc:  # stored before metadata was checked: not served
                log.warning("dataset %s not served: %s", record.id, exc.detail)
                continue
            entries.append(Entry(record, ds, offers))
        catalog = to_catalog([e.dataset for e in entries], self.publisher)
        public = {e.record.id: view for e in entries if (view := _public(e)) is not None}
        return Snapshot(
            fingerprint,
            tuple(entries),
            catalog,
            {e.record.id: e for e in entries},
            to_catalog(list(public.values()), self.publisher),
            public,
        )


def _public(entry: Entry) -> Dataset | None:
    offers = [offer for offer, policy in entry.offers if not names_recipients(policy)]
    if not offers:
        return None
    if len(offers) == len(entry.offers):
        return entry.dataset
    return entry.dataset.model_copy(
        update={"policies": tuple({k: v for k, v in o.items() if k != "target"} for o in offers)}
    )


def public_view(dataset: Dataset) -> Dataset | None:
    """A harvested dataset as anyone may see it: without the offers its provider made to
    named recipients (us), or None when it has no other. An offer our policy engine cannot
    read is kept: nothing says it is not public."""

    def named(offer: dict[str, Any]) -> bool:
        try:
            return names_recipients(validate_policy(offer))
        except PhemsError:
            return False

    offers = tuple(o for o in dataset.policies if not named(o))
    if not offers:
        return None
    if len(offers) == len(dataset.policies):
        return dataset
    return dataset.model_copy(update={"policies": offers})
