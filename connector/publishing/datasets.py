"""Datasets as the management API changes them: create, update, retire, refresh statistics,
list. Each change is checked (offers by the policy engine, the HealthDCAT-AP graph by the
official shapes) before it is stored, stored with its audit entry in one transaction, and
then shown by the published catalog (`PublishedCatalog.invalidate`).

Updates are conditional. ``modified_at`` is the dataset's version: every change (an edit, a
statistics refresh, a retirement) sets a new one from the injected clock, and an update made
from a record read earlier is written only if the row still has that record's ``modified_at``;
otherwise it is refused with a 409 (``ConflictError``) instead of undoing the other change.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from rdflib import Graph
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.rdf import to_graph
from connector.audit import AuditLog
from connector.clock import as_utc
from connector.errors import BadRequestError, ConflictError, NotFoundError
from connector.fulfilment.cache import ViewCache
from connector.fulfilment.scope import DatasetScope
from connector.jobs import Job, JobContext, JobRunner, JobState
from connector.ports import Clock
from connector.publishing.healthdcat import (
    STATISTICS_FIELDS,
    Publisher,
    check_operator_metadata,
    check_publishable,
    statistics_metadata,
    to_catalog,
    to_dataset,
)
from connector.publishing.records import DatasetRecord, Status, check_dataset, with_offer_type
from connector.publishing.snapshot import PublishedCatalog
from connector.publishing.statistics import statistics_from_views
from connector.publishing.store import DatasetStore

# A refresh that meets an edit made while it computed applies its statistics to the edited record.
REFRESH_ATTEMPTS = 3
STATISTICS_JOB = "dataset-statistics"
# The smallest step the stores keep (PostgreSQL and SQLite timestamps hold microseconds).
TICK = timedelta(microseconds=1)


class Transactions(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[AsyncConnection]: ...


@dataclass(frozen=True)
class DatasetDraft:
    """What an operator describes of a dataset; the connector adds status, times and the
    statistics computed from the data."""

    id: str
    title: str
    description: str
    formats: tuple[str, ...]
    offers: tuple[dict[str, Any], ...]
    metadata: dict[str, Any]
    scope: dict[str, Any] | None = None  # connector.fulfilment.scope.DatasetScope, as JSON


@dataclass(frozen=True)
class AsRead:
    """The read-only parts of a dataset as a client read them (a PUT body carries back what
    GET returned): each given one must still be what is stored. ``modified_at`` is the
    precondition of a conditional update (409 if stale); the others are refused (400) when
    they differ, since an update never changes them."""

    modified_at: datetime | None = None
    status: Status | None = None
    created_at: datetime | None = None


class DatasetService:
    def __init__(
        self,
        *,
        store: Transactions,
        datasets: DatasetStore,
        audit: AuditLog,
        clock: Clock,
        published: PublishedCatalog,
        views: ViewCache,
        jobs: JobRunner,
    ) -> None:
        self.store = store
        self.datasets = datasets
        self.audit = audit
        self.clock = clock
        self.published = published
        self.views = views
        self.jobs = jobs
        jobs.register(STATISTICS_JOB, self._statistics_job)

    @property
    def publisher(self) -> Publisher:
        return self.published.publisher

    async def get(self, dataset_id: str) -> DatasetRecord:
        async with self.store.transaction() as conn:
            record = await self.datasets.get(conn, dataset_id)
        if record is None:
            raise NotFoundError(f"no dataset {dataset_id}")
        return record

    async def create(self, draft: DatasetDraft, *, actor: str) -> DatasetRecord:
        """Publish a new dataset (409 if its id exists); statistics are left to a refresh."""
        check_operator_metadata(draft.metadata)
        now = self.clock.now()
        record = self._record(draft, draft.metadata, created_at=now, modified_at=now)
        await self._check_publishable(record)
        async with self.store.transaction() as conn:
            await self.datasets.insert(conn, record)
            await self.audit.append(
                actor=actor, event="dataset.created", details={"id": record.id}, conn=conn
            )
        self.published.invalidate()
        return record

    async def update(
        self, dataset_id: str, draft: DatasetDraft, *, as_read: AsRead, actor: str
    ) -> DatasetRecord:
        """Replace what the operator describes; keep status, creation time and statistics."""
        if draft.id != dataset_id:
            raise NotFoundError(f"body id {draft.id} is not {dataset_id}")
        old = await self.get(dataset_id)
        _check_as_read(old, as_read)
        described = check_operator_metadata(draft.metadata, stored=old.metadata)
        computed = {k: v for k, v in old.metadata.items() if k in STATISTICS_FIELDS}
        record = self._record(
            draft,
            {**described, **computed},
            status=old.status,
            created_at=old.created_at,
            modified_at=self._next_version(old),
        )
        await self._check_publishable(record)
        async with self.store.transaction() as conn:
            await self.datasets.update(conn, record, based_on=old.modified_at)
            await self.audit.append(
                actor=actor, event="dataset.updated", details={"id": record.id}, conn=conn
            )
        self.published.invalidate()
        return record

    async def retire(self, dataset_id: str, *, actor: str) -> DatasetRecord:
        """Take a dataset out of the catalog; agreements and transfers made for it stay."""
        async with self.store.transaction() as conn:
            old = await self.datasets.get(conn, dataset_id)
            if old is None:
                raise NotFoundError(f"no dataset {dataset_id}")
            record = dataclasses.replace(old, status="retired", modified_at=self._next_version(old))
            await self.datasets.set_status(conn, dataset_id, "retired", record.modified_at)
            await self.audit.append(
                actor=actor, event="dataset.retired", details={"id": dataset_id}, conn=conn
            )
        self.published.invalidate()
        return record

    async def refresh_statistics(
        self, dataset_id: str, *, actor: str, wait: float = 0.0
    ) -> DatasetRecord | Job:
        """Recompute the dataset's statistics from its flattened tables (its scope, opt-outs
        removed; rounded, no small cells) as a job. Waits up to ``wait`` seconds: the updated
        dataset if the job finished by then, else the job (its progress)."""
        await self.get(dataset_id)  # 404 for an unknown dataset, before any job
        key = f"{STATISTICS_JOB}:{self.jobs.node}:{dataset_id}:{uuid.uuid4().hex}"
        job = await self.jobs.enqueue(
            STATISTICS_JOB, key, {"dataset": dataset_id, "actor": actor}, local=True
        )
        if wait > 0:
            job = await self.jobs.wait(job.id, wait) or job
        if job.state is JobState.DONE:
            return await self.get(dataset_id)
        if job.state is JobState.FAILED:
            raise ConflictError(f"the statistics of dataset {dataset_id} failed: {job.error}")
        return job

    async def statistics_job(self, dataset_id: str) -> Job | None:
        """The newest statistics job of the dataset (pending, running, done or failed)."""
        jobs = await self.jobs.store.recent(kind=STATISTICS_JOB, limit=500)
        return next((j for j in jobs if j.params.get("dataset") == dataset_id), None)

    async def _statistics_job(self, job: Job, context: JobContext) -> dict[str, Any]:
        dataset_id = str(job.params["dataset"])
        record = await self.get(dataset_id)
        views = await self.views.load_or_build(
            dataset_id, DatasetScope.parse(record.scope), context
        )
        await context.progress("computing statistics", 90.0)
        stats = await context.run_cpu(
            statistics_from_views,
            {t: str(p) for t, p in views.tables.items()},
            self.clock.now().date().isoformat(),
        )
        await self._apply_statistics(
            dataset_id, statistics_metadata(stats), str(job.params["actor"])
        )
        return {"dataset": dataset_id, "dataVersion": views.version}

    async def _apply_statistics(
        self, dataset_id: str, computed: dict[str, Any], actor: str
    ) -> None:
        """Check and store them. An edit made while they were computed keeps its changes: the
        statistics go onto the edited record (read again, at most ``REFRESH_ATTEMPTS`` times)."""
        attempt = 0
        while True:
            attempt += 1
            old = await self.get(dataset_id)
            described = {k: v for k, v in old.metadata.items() if k not in STATISTICS_FIELDS}
            record = dataclasses.replace(
                old, metadata={**described, **computed}, modified_at=self._next_version(old)
            )
            await self._check_publishable(record)
            try:
                async with self.store.transaction() as conn:
                    await self.datasets.update(conn, record, based_on=old.modified_at)
                    await self.audit.append(
                        actor=actor,
                        event="dataset.statistics-refreshed",
                        details={"id": dataset_id, **computed},
                        conn=conn,
                    )
            except ConflictError:
                if attempt == REFRESH_ATTEMPTS:
                    raise
                continue
            self.published.invalidate()
            return

    async def catalog_graph(self) -> tuple[Graph, list[str]]:
        """The graph of the published catalog, and the datasets whose metadata cannot even be
        read into the model (in plain words)."""
        return catalog_graph(await self.list(), self.publisher)

    # After the methods annotated with `list[...]`: below this one, `list` names it.
    async def list(self, *, include_retired: bool = False) -> list[DatasetRecord]:
        async with self.store.transaction() as conn:
            return await self.datasets.list(conn, status=None if include_retired else "published")

    def _next_version(self, old: DatasetRecord) -> datetime:
        """The clock's time, or just after the stored one if the clock has not moved past it
        (a fixed test clock, a clock stepped back): every change gets a new version."""
        return max(self.clock.now(), old.modified_at + TICK)

    @staticmethod
    def _record(
        draft: DatasetDraft,
        metadata: dict[str, Any],
        *,
        status: Status = "published",
        created_at: datetime,
        modified_at: datetime,
    ) -> DatasetRecord:
        return DatasetRecord(
            id=draft.id,
            title=draft.title,
            description=draft.description,
            formats=draft.formats,
            offers=tuple(with_offer_type(o) for o in draft.offers),
            metadata=metadata,
            scope=draft.scope,
            status=status,
            created_at=created_at,
            modified_at=modified_at,
        )

    async def _check_publishable(self, record: DatasetRecord) -> None:
        """The record's offers and its HealthDCAT-AP graph (SHACL, in a thread: it takes a
        while) before it is stored."""
        check_dataset(record)
        publisher = self.publisher
        missing = [f for f in record.formats if not publisher.offers_format(f)]
        if missing:
            raise BadRequestError(
                f"formats {', '.join(missing)}: nothing on this connector can deliver "
                f"{'it' if len(missing) == 1 else 'them'}; it can deliver "
                f"{', '.join(publisher.formats or ()) or 'nothing yet'}"
            )
        await asyncio.to_thread(check_publishable, to_dataset(record, self.publisher))


def _check_as_read(old: DatasetRecord, seen: AsRead) -> None:
    if seen.modified_at is not None and as_utc(seen.modified_at) != old.modified_at:
        raise ConflictError(
            f"dataset {old.id} was last modified at {old.modified_at.isoformat()}, not at "
            f"the modifiedAt sent ({seen.modified_at.isoformat()}): it changed since it was "
            "read; read it again and repeat the change"
        )
    if seen.status is not None and seen.status != old.status:
        raise BadRequestError(
            f"status is {old.status}; PUT does not change it "
            f"(POST /management/datasets/{{id}}/retire retires a dataset)"
        )
    if seen.created_at is not None and as_utc(seen.created_at) != old.created_at:
        raise BadRequestError(
            f"createdAt is {old.created_at.isoformat()}, set by the connector; "
            "send it unchanged or leave it out"
        )


def catalog_graph(records: list[DatasetRecord], publisher: Publisher) -> tuple[Graph, list[str]]:
    """The catalog graph of ``records``, and the ones whose metadata cannot even be read into
    the model (in plain words)."""
    datasets, problems = [], []
    for record in records:
        try:
            datasets.append(to_dataset(record, publisher))
        except BadRequestError as exc:
            problems.append(exc.detail)
    return to_graph(to_catalog(datasets, publisher)), problems
