"""The view cache: built once per data version by a job, rebuilt when the data, the scope or
the opt-outs change, and never served stale."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ndjson_source import NdjsonFileSource
from adapters.sof.port import SqlOnFhirRunner
from connector.audit import AuditLog
from connector.clock import SystemClock
from connector.db.engine import create_engine, migrate
from connector.errors import NotReadyError
from connector.fulfilment.cache import ViewCache
from connector.fulfilment.scope import DatasetScope
from connector.jobs import JobRunner, JobState, SqlJobStore
from connector.optouts import OptOutService
from connector.ports import FhirResource
from tests.fulfilment.conftest import column, every_patient_id, patient_ids


@dataclass
class World:
    cache: ViewCache
    optouts: OptOutService
    jobs: JobRunner
    data: Path


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    await migrate(eng)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
async def world(engine: AsyncEngine, sample_files: Path, tmp_path: Path) -> AsyncIterator[World]:
    data = tmp_path / "data"
    shutil.copytree(sample_files, data)
    clock = SystemClock()
    jobs = JobRunner(SqlJobStore(engine), clock, work_dir=tmp_path / "jobs", poll_seconds=0.2)
    optouts = OptOutService(engine, AuditLog(engine, clock), clock)
    cache = ViewCache(
        root=tmp_path / "views",
        jobs=jobs,
        source=NdjsonFileSource(data),
        runner=SqlOnFhirRunner(),
        optouts=optouts,
        clock=clock,
        version_seconds=0.0,
    )
    try:
        yield World(cache, optouts, jobs, data)
    finally:
        await jobs.aclose()


async def _built(world: World, scope: DatasetScope, dataset: str = "ds") -> Any:
    views, job = await world.cache.request(dataset, scope)
    if views is None:
        await world.jobs.drain()
        views = await world.cache.current(dataset, scope)
    assert views is not None
    return views


async def test_built_once_then_served_from_the_cache(world: World) -> None:
    scope = DatasetScope()
    with pytest.raises(NotReadyError) as refused:
        await world.cache.ensure("ds", scope, wait=0)
    assert refused.value.retry_after > 0 and "being prepared" in refused.value.detail
    views = await _built(world, scope)
    assert views.patients == 150 and set(views.tables) >= {"patient", "coding"}
    manifest = json.loads((views.directory / "manifest.json").read_text())
    assert manifest["rows"]["patient"] == 150
    again, job = await world.cache.request("ds", scope)
    assert again == views and job.state is JobState.DONE
    assert await world.cache.ensure("ds", scope, wait=0) == views


async def test_an_opt_out_makes_a_new_version_without_the_patient(world: World) -> None:
    scope = DatasetScope()
    before = await _built(world, scope)
    patient = patient_ids(world.data)[3]
    assert patient in set(every_patient_id(dict(before.tables)))
    assert await world.optouts.add([f"Patient/{patient}"], actor="dpo") == [patient]
    assert await world.cache.current("ds", scope) is None  # the old tables are not served
    after = await _built(world, scope)
    assert after.version != before.version and after.patients == 149
    assert patient not in set(every_patient_id(dict(after.tables)))
    assert not before.directory.exists()  # older versions are removed
    await world.optouts.remove([patient], actor="dpo")
    assert (await _built(world, scope)).patients == 150


async def test_data_and_scope_changes_make_new_versions(world: World) -> None:
    first = await _built(world, DatasetScope())
    narrow = DatasetScope.parse({"period": {"start": "2022-01-01"}})
    second = await _built(world, narrow)
    assert second.version != first.version and second.patients < first.patients
    # Another dataset over the same data has its own tables.
    other = await _built(world, DatasetScope(), dataset="other")
    assert other.directory != first.directory
    (world.data / "Patient.000.ndjson").unlink()
    empty = await _built(world, DatasetScope())
    assert empty.patients == 0 and empty.version != first.version


class ListSource:
    """A FHIR source that is not files on this machine (as a REST server is): the cache
    copies what ``search`` returns before flattening it."""

    def __init__(self, resources: Mapping[str, list[FhirResource]]) -> None:
        self.resources = resources
        self.searched: list[str] = []

    async def search(
        self, resource_type: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[FhirResource]:
        self.searched.append(resource_type)
        for resource in self.resources.get(resource_type, []):
            yield resource

    async def count(self, resource_type: str, params: Mapping[str, str] | None = None) -> int:
        return len(self.resources.get(resource_type, []))

    async def resource_types(self) -> list[str]:
        return sorted(t for t, r in self.resources.items() if r)

    async def version(self) -> str:
        return str(sum(len(r) for r in self.resources.values()))

    async def aclose(self) -> None:
        return None


async def test_a_source_without_local_files_is_copied_first(world: World, tmp_path: Path) -> None:
    resources: dict[str, list[FhirResource]] = {}
    for path in world.data.glob("*.ndjson"):
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        resources.setdefault(path.name.split(".")[0], []).extend(rows)
    source = ListSource(resources)
    world.cache.source = source
    views = await _built(world, DatasetScope.parse({"resourceTypes": ["Condition"]}))
    assert views.patients == 150
    assert sorted(source.searched) == ["Condition", "Patient"]  # present types only
    assert len(column(views.tables["condition"], "condition_id")) == len(resources["Condition"])
    assert not list((world.cache.root / "staging").glob("*/*"))
