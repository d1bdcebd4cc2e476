"""`serve --with-sample-data`: sample FHIR files plus one example dataset (2019-2024) with open
offers and statistics computed in the background, idempotent on restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from catalog.examples import example_dataset, example_policies
from catalog.statistics import SafeStatistics
from connector.errors import NotFoundError
from connector.publishing.datasets import DatasetDraft, DatasetService
from connector.publishing.healthdcat import metadata_of
from connector.publishing.records import DatasetRecord

ACTOR = "sample-data"
SAMPLE_PATIENTS = 200
SAMPLE_SEED = 20_251
SAMPLE_PROFILE = "general"
SAMPLE_DATASET_ID = "paediatric-respiratory-2019-2024"
SAMPLE_SCOPE = {"period": {"start": "2019-01-01", "end": "2024-12-31"}}
NO_STATISTICS = SafeStatistics(None, None, None, None, None, None, ())


async def ensure_sample_data(datasets: DatasetService, fhir_dir: Path) -> DatasetRecord:
    """Generate sample FHIR files in `fhir_dir` if absent; publish the example dataset once."""
    from connector.sampledata import generate  # large module: only when asked for

    if not any(fhir_dir.glob("Patient.*.ndjson*")):
        await asyncio.to_thread(
            generate, fhir_dir, patients=SAMPLE_PATIENTS, seed=SAMPLE_SEED, profile=SAMPLE_PROFILE
        )
    try:
        return await datasets.get(SAMPLE_DATASET_ID)
    except NotFoundError:
        pass
    base = datasets.publisher.public_url
    ds = example_dataset(
        base_url=base,
        dataset_id=SAMPLE_DATASET_ID,
        hospital_name=datasets.publisher.name,
        statistics=NO_STATISTICS,
    )
    draft = DatasetDraft(
        id=ds.identifier,
        title=ds.title,
        description=ds.description,
        formats=tuple(d.dsp_format for d in ds.distributions),
        offers=example_policies(ds.identifier, base_url=base),
        metadata=metadata_of(ds),
        scope=SAMPLE_SCOPE,
    )
    record = await datasets.create(draft, actor=ACTOR)
    # Statistics come from a job: the connector serves at once and the dataset shows them
    # when it is done (on a REST source with much data that takes a while).
    await datasets.refresh_statistics(record.id, actor=ACTOR)
    return record
