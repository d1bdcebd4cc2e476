"""DatasetService: every change is timed by the injected clock and moves the dataset's version
(``modifiedAt``) even when the clock has not moved, so a client holding an older version gets a
409 and the stored dataset stays as it was; each change is audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from catalog.examples import example_dataset
from connector.clock import FixedClock, as_utc
from connector.composition import Services, build_services
from connector.errors import BadRequestError, ConflictError, NotFoundError
from connector.jobs import Job, JobState
from connector.publishing.datasets import AsRead, DatasetDraft
from connector.publishing.healthdcat import STATISTICS_FIELDS, metadata_of
from connector.publishing.records import DatasetRecord
from connector.settings import Settings

TEN = Path(__file__).resolve().parents[3] / "shared/conformance/fhir/bulk-ndjson-10-patients"
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)
ACTOR = "tester"
DRAFT = DatasetDraft(
    id="cohort",
    title="Cohort",
    description="",
    formats=("FHIR-Aggregate-PULL",),
    offers=(),
    metadata=metadata_of(example_dataset()),
)


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    s = await build_services(Settings(data_dir=tmp_path, fhir_files_dir=TEN), clock=FixedClock(T0))
    try:
        yield s
    finally:
        await s.aclose()


def _clock(services: Services) -> FixedClock:
    assert isinstance(services.clock, FixedClock)
    return services.clock


async def test_times_come_from_the_injected_clock(services: Services) -> None:
    created = await services.datasets.create(DRAFT, actor=ACTOR)
    assert created.created_at == created.modified_at == T0

    _clock(services).advance(60)
    refreshed = await _refreshed(services, "cohort")
    assert refreshed.modified_at == T0 + timedelta(seconds=60)
    assert set(refreshed.metadata) & STATISTICS_FIELDS
    assert refreshed.created_at == T0

    _clock(services).advance(60)
    retired = await services.datasets.retire("cohort", actor=ACTOR)
    assert (retired.status, retired.modified_at) == ("retired", T0 + timedelta(seconds=120))
    assert await services.datasets.get("cohort") == retired
    assert await services.datasets.list() == []
    assert await services.datasets.list(include_retired=True) == [retired]

    await services.audit.flush()
    entries = [(e.event, e.actor, e.recorded_at) async for e in services.audit.entries()]
    assert [(event, actor) for event, actor, _ in entries] == [
        ("dataset.created", ACTOR),
        ("dataset.statistics-refreshed", ACTOR),
        ("dataset.retired", ACTOR),
    ]
    assert [as_utc(recorded) for _, _, recorded in entries] == [
        T0 + timedelta(seconds=s) for s in (0, 60, 120)
    ]


async def test_a_change_at_the_same_instant_still_makes_a_new_version(services: Services) -> None:
    """A clock that has not moved (or moved back) must not let a stale update through."""
    created = await services.datasets.create(DRAFT, actor=ACTOR)
    first = await services.datasets.update(
        "cohort", replace(DRAFT, title="First"), as_read=AsRead(modified_at=T0), actor=ACTOR
    )
    assert first.modified_at == T0 + TICK

    # A client still holding the created version: refused, nothing written.
    with pytest.raises(ConflictError, match="changed since it was read"):
        await services.datasets.update(
            "cohort",
            replace(DRAFT, title="Second"),
            as_read=AsRead(modified_at=created.modified_at),
            actor=ACTOR,
        )
    assert await services.datasets.get("cohort") == first

    retired = await services.datasets.retire("cohort", actor=ACTOR)
    assert retired.modified_at == T0 + 2 * TICK


async def test_read_only_parts_are_checked_not_applied(services: Services) -> None:
    await services.datasets.create(DRAFT, actor=ACTOR)
    with pytest.raises(BadRequestError, match="PUT does not change it"):
        await services.datasets.update(
            "cohort", DRAFT, as_read=AsRead(status="retired"), actor=ACTOR
        )
    with pytest.raises(BadRequestError, match="createdAt"):
        await services.datasets.update(
            "cohort", DRAFT, as_read=AsRead(created_at=T0 - TICK), actor=ACTOR
        )
    with pytest.raises(NotFoundError):
        await services.datasets.update("other", DRAFT, as_read=AsRead(), actor=ACTOR)
    unchanged = await services.datasets.get("cohort")
    assert (unchanged.status, unchanged.modified_at) == ("published", T0)


async def test_the_scope_is_checked_and_kept(services: Services) -> None:
    with pytest.raises(BadRequestError, match="scope: unknown member"):
        await services.datasets.create(replace(DRAFT, scope={"cohort": "x"}), actor=ACTOR)
    assert await services.datasets.list(include_retired=True) == []

    scope = {"resourceTypes": ["Condition"], "period": {"start": "2019-01-01"}}
    created = await services.datasets.create(replace(DRAFT, scope=scope), actor=ACTOR)
    refreshed = await _refreshed(services, "cohort")
    assert created.scope == refreshed.scope == (await services.datasets.get("cohort")).scope
    assert refreshed.scope == scope


async def _refreshed(services: Services, dataset_id: str) -> DatasetRecord:
    """A statistics refresh runs as a job: run it (no job loop runs in these tests)."""
    job = await services.datasets.refresh_statistics(dataset_id, actor=ACTOR)
    assert isinstance(job, Job) and job.state is JobState.QUEUED
    await services.jobs.drain()
    done = await services.jobs.store.get(job.id)
    assert done is not None and done.state is JobState.DONE, done
    return await services.datasets.get(dataset_id)
