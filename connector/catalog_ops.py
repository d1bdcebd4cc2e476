"""Catalog operations that span the store, the FHIR source and validation: refreshing a
dataset's statistics, and `serve --with-sample-data` (sample FHIR files plus one example
dataset with computed statistics and open offers, idempotent on restart)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

from rdflib import Graph

from catalog.examples import example_dataset, example_policies
from catalog.rdf import to_graph
from catalog.statistics import SafeStatistics
from connector.catalog_bridge import (
    STATISTICS_FIELDS,
    check_publishable,
    metadata_of,
    statistics_metadata,
    to_catalog,
    to_dataset,
)
from connector.composition import Services, build_services
from connector.datasets import DatasetRecord
from connector.errors import BadRequestError, ConflictError, NotFoundError
from connector.settings import Settings
from connector.statistics import compute_statistics

ACTOR = "management-api"
SAMPLE_PATIENTS = 200
SAMPLE_SEED = 20_251
SAMPLE_PROFILE = "general"
SAMPLE_DATASET_ID = "paediatric-respiratory-2019-2024"
# A refresh that meets an edit made while it computed applies its statistics to the edited record.
REFRESH_ATTEMPTS = 3
NO_STATISTICS = SafeStatistics(None, None, None, None, None, None, ())


async def refresh_dataset_statistics(services: Services, dataset_id: str) -> DatasetRecord:
    """Recompute statistics from the FHIR source, validate, store; audit the change."""
    stats = await compute_statistics(services.fhir, today=services.clock.now().date())
    attempt = 0
    while True:
        attempt += 1
        async with services.db.transaction() as conn:
            old = await services.datasets.get(conn, dataset_id)
        if old is None:
            raise NotFoundError(f"no dataset {dataset_id}")
        described = {k: v for k, v in old.metadata.items() if k not in STATISTICS_FIELDS}
        record = dataclasses.replace(
            old,
            metadata={**described, **statistics_metadata(stats)},
            modified_at=datetime.now(UTC),
        )
        await asyncio.to_thread(check_publishable, to_dataset(record, services.published.publisher))
        try:
            async with services.db.transaction() as conn:
                await services.datasets.update(conn, record, based_on=old.modified_at)
                await services.audit.append(
                    actor=ACTOR,
                    event="dataset.statistics-refreshed",
                    details={"id": dataset_id, **statistics_metadata(stats)},
                    conn=conn,
                )
        except ConflictError:
            # Edited meanwhile: the statistics go onto the edited record instead.
            if attempt >= REFRESH_ATTEMPTS:
                raise
            continue
        services.published.invalidate()
        return record


async def ensure_sample_data(services: Services) -> DatasetRecord:
    """Generate sample FHIR files if absent; publish the example dataset once."""
    from connector.sampledata import generate  # large module: only when asked for

    fhir_dir = services.settings.effective_fhir_files_dir
    if not any(fhir_dir.glob("Patient.*.ndjson*")):
        await asyncio.to_thread(
            generate, fhir_dir, patients=SAMPLE_PATIENTS, seed=SAMPLE_SEED, profile=SAMPLE_PROFILE
        )
    async with services.db.transaction() as conn:
        existing = await services.datasets.get(conn, SAMPLE_DATASET_ID)
    if existing is not None:
        return existing
    base = services.public_url
    ds = example_dataset(
        base_url=base,
        dataset_id=SAMPLE_DATASET_ID,
        hospital_name=services.settings.participant_name,
        statistics=NO_STATISTICS,
    )
    now = datetime.now(UTC)
    record = DatasetRecord(
        id=ds.identifier,
        title=ds.title,
        description=ds.description,
        formats=tuple(d.dsp_format for d in ds.distributions),
        offers=example_policies(ds.identifier, base_url=base),
        metadata=metadata_of(ds),
        created_at=now,
        modified_at=now,
    )
    async with services.db.transaction() as conn:
        await services.datasets.insert(conn, record)
        await services.audit.append(
            actor="sample-data", event="dataset.created", details={"id": record.id}, conn=conn
        )
    return await refresh_dataset_statistics(services, record.id)


async def own_catalog_graph(settings: Settings) -> tuple[Graph, list[str]]:
    """The graph of this connector's published catalog, and the datasets whose metadata
    cannot even be read into the model (in plain words)."""
    services = await build_services(settings)
    try:
        async with services.db.transaction() as conn:
            records = await services.datasets.list(conn)
    finally:
        await services.aclose()
    datasets, problems = [], []
    for record in records:
        try:
            datasets.append(to_dataset(record, services.published.publisher))
        except BadRequestError as exc:
            problems.append(exc.detail)
    return to_graph(to_catalog(datasets, services.published.publisher)), problems
