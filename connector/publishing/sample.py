"""`serve --with-sample-data`: sample FHIR files plus one example dataset (2019-2024) with open
offers and statistics computed in the background, idempotent on restart. Its formats and
offers are those this connector can deliver: aggregate statistics, and synthetic patients
(at most ``SYNTHETIC_PATIENTS`` a call) when the ``synthetic`` extra is installed."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from catalog.examples import PHEMS_NS, example_dataset, example_policies
from catalog.formats import DSP_FORMATS, OutputType
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
SYNTHETIC_PATIENTS = 1000  # the sample synthetic offer's limit a call
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
    publisher = datasets.publisher
    formats = tuple(d.dsp_format for d in ds.distributions if publisher.offers_format(d.dsp_format))
    offers = tuple(
        _limited(offer)
        for offer in example_policies(ds.identifier, base_url=base)
        if _deliverable(offer, publisher.offers_format)
    )
    draft = DatasetDraft(
        id=ds.identifier,
        title=ds.title,
        description=ds.description,
        formats=formats,
        offers=offers,
        metadata=metadata_of(ds),
        scope=SAMPLE_SCOPE,
    )
    record = await datasets.create(draft, actor=ACTOR)
    # Statistics come from a job: the connector serves at once and the dataset shows them
    # when it is done (on a REST source with much data that takes a while).
    await datasets.refresh_statistics(record.id, actor=ACTOR)
    return record


def _output_type(offer: dict[str, Any]) -> OutputType | None:
    """The output type an example offer is for (its ``phems:outputType`` constraint)."""
    for permission in offer.get("permission", ()):
        for constraint in permission.get("constraint", ()):
            for part in constraint.get("and", (constraint,)):
                if part.get("leftOperand") == PHEMS_NS + "outputType":
                    return OutputType(part["rightOperand"])
    return None


def _deliverable(offer: dict[str, Any], offers_format: Callable[[str], bool]) -> bool:
    kind = _output_type(offer)
    return kind is None or offers_format(DSP_FORMATS[kind])


def _limited(offer: dict[str, Any]) -> dict[str, Any]:
    """The synthetic offer as a hospital would write it: at most ``SYNTHETIC_PATIENTS``
    synthetic patients a call."""
    if _output_type(offer) is not OutputType.SYNTHETIC:
        return offer
    offer = copy.deepcopy(offer)
    [permission] = offer["permission"]
    [constraint] = permission["constraint"]
    constraint["and"].append(
        {
            "leftOperand": PHEMS_NS + "patients",
            "operator": "lteq",
            "rightOperand": SYNTHETIC_PATIENTS,
        }
    )
    return offer
