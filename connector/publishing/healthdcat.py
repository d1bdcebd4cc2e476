"""DatasetRecord (what the management API stores) <-> HealthDCAT-AP model (`catalog.model`).

A record's ``metadata`` holds the `catalog.model.Dataset` fields an operator describes
(snake_case keys, JSON values: ``keywords``, ``hdab``, ``contact_point``, ``provenance``,
``health_categories``, ``columns`` ...). The rest is derived, never typed twice:

* ``identifier``, ``title``, ``description`` from the record; ``iri`` from the public URL;
* ``distributions`` from ``formats`` (one per output type, served by our DSP endpoint);
* ``policies`` from ``offers``; ``modified`` from the record's ``modified_at``;
* ``publisher`` from the participant name and DID (contact: the dataset's contact point);
* the statistics fields are computed from the FHIR source (`connector.publishing.statistics`) and
  refused in operator input.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from catalog.examples import data_service
from catalog.formats import Format
from catalog.html import OUTPUT_LABELS
from catalog.model import Agent, Catalog, ContactPoint, Dataset, Distribution
from catalog.odrl import PolicyError
from catalog.rdf import to_graph
from catalog.statistics import SafeStatistics
from catalog.validation import ShapesNotFound, validate
from catalog.vocab import PREFIXES
from connector.errors import BadRequestError, ConfigurationError, PhemsError
from connector.policy import to_jsonld, validate_policy
from connector.publishing.records import DatasetRecord

DERIVED_FIELDS = frozenset(
    {"iri", "identifier", "title", "description", "distributions", "policies", "publisher"}
    | {"modified"}
)
STATISTICS_FIELDS = frozenset(
    {
        "number_of_records",
        "number_of_unique_individuals",
        "min_typical_age",
        "max_typical_age",
        "temporal_start",
        "temporal_end",
        "coding_systems",
    }
)
DISTRIBUTION_TEXT = {
    "aggregate": "Cohort counts and summaries with disclosure control and noise.",
    "synthetic": "Synthetic FHIR patients generated at the hospital, with quality and privacy "
    "reports.",
    "anonymized": "Record-level FHIR with identifiers removed and k-anonymity verified.",
}


@dataclass(frozen=True, slots=True)
class Publisher:
    """Who publishes this connector's catalog (from the settings and the DID)."""

    public_url: str
    did: str
    name: str
    # The transfer formats this connector can fulfil (``FulfilmentRegistry.formats``): a
    # dataset's other formats are not published. None: no fulfilment installed, all kept.
    formats: tuple[str, ...] | None = None

    def offers_format(self, fmt: str) -> bool:
        return self.formats is None or fmt in self.formats

    @property
    def catalog_url(self) -> str:
        return f"{self.public_url}/catalog"

    def dataset_iri(self, dataset_id: str) -> str:
        return f"{self.catalog_url}/datasets/{dataset_id}"


def check_operator_metadata(
    metadata: dict[str, Any], stored: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Refuse derived or computed fields in what an operator sends (400, naming them); return
    the operator's own part of ``metadata``.

    With ``stored`` (an update of a stored dataset), computed fields equal to the stored ones
    are accepted and left out, so that what a GET returned can be sent back as it is."""
    derived = sorted(set(metadata) & DERIVED_FIELDS)
    if derived:
        raise BadRequestError(
            f"metadata: {', '.join(derived)} are derived from the dataset record; remove them"
        )
    computed = sorted(
        k
        for k in set(metadata) & STATISTICS_FIELDS
        if stored is None or k not in stored or metadata[k] != stored[k]
    )
    if computed:
        unchanged = " (or sent back unchanged)" if stored is not None else ""
        raise BadRequestError(
            f"metadata: {', '.join(computed)} are computed from the data and can only be "
            f"left out{unchanged}; use POST /management/datasets/{{id}}/refresh-statistics"
        )
    return {k: v for k, v in metadata.items() if k not in STATISTICS_FIELDS}


def _words(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"]) or "metadata"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def _distributions(record: DatasetRecord, pub: Publisher) -> tuple[Distribution, ...]:
    svc = data_service(pub.public_url)
    iri = pub.dataset_iri(record.id)
    out = []
    for fmt in record.formats:
        if not pub.offers_format(fmt):  # stored before its fulfilment was uninstalled
            continue
        kind = Format(fmt).output_type
        out.append(
            Distribution(
                iri=f"{iri}/distributions/{kind.value}",
                title=OUTPUT_LABELS[kind.value],
                description=DISTRIBUTION_TEXT[kind.value],
                output_type=kind,
                access_url=svc.endpoint_url,
                access_service=svc,
            )
        )
    return tuple(out)


def to_dataset(record: DatasetRecord, pub: Publisher) -> Dataset:
    """The HealthDCAT-AP model of `record`; BadRequestError says which metadata is wrong."""
    contact = record.metadata.get("contact_point") or {}
    try:
        return Dataset.model_validate(
            {
                **record.metadata,
                "iri": pub.dataset_iri(record.id),
                "identifier": record.id,
                "title": record.title,
                "description": record.description or record.title,
                "publisher": {"iri": pub.did, "name": pub.name, "contact": contact},
                "distributions": _distributions(record, pub),
                "policies": tuple(_published_offer(o) for o in record.offers),
                "modified": record.modified_at,
            }
        )
    except ValidationError as exc:
        raise BadRequestError(f"dataset {record.id}: metadata invalid: {_words(exc)}") from None


def _published_offer(offer: dict[str, Any]) -> dict[str, Any]:
    """An offer as the catalog shows it: its normalised compact form (ODRL terms bare, the
    operators the DSP schema enumerates, typed literals), however the operator wrote it,
    without ``target`` (the dataset is the target). A stored offer that no longer validates
    is shown as written, and refused where it is used."""
    try:
        shown = to_jsonld(validate_policy(offer))
    except PhemsError:
        shown = offer
    return {k: v for k, v in shown.items() if k != "target"}


def to_catalog(datasets: Sequence[Dataset], pub: Publisher) -> Catalog:
    contact = datasets[0].contact_point if datasets else None
    return Catalog(
        iri=pub.catalog_url,
        title=f"{pub.name}: health data catalogue",
        description=f"Datasets {pub.name} offers for secondary use through phems-connector.",
        publisher=Agent(
            iri=pub.did, name=pub.name, contact=contact or ContactPoint(url=pub.catalog_url)
        ),
        homepage=f"{pub.public_url}/",
        modified=max((d.modified for d in datasets if d.modified), default=None),
        datasets=tuple(datasets),
        service=data_service(pub.public_url),
    )


def check_publishable(ds: Dataset) -> None:
    """Refuse (400) a dataset whose graph violates the HealthDCAT-AP R8 NON_PUBLIC shapes."""
    try:
        report = validate(to_graph(ds))
    except ShapesNotFound as exc:
        raise ConfigurationError(str(exc)) from None
    except PolicyError as exc:  # an offer the catalog cannot read as ODRL
        raise BadRequestError(f"dataset {ds.identifier}: {exc}") from None
    if not report.conforms:
        lines = [f"{_compact(v.path) or 'dataset'}: {v.message}" for v in report.violations]
        raise BadRequestError(
            f"dataset {ds.identifier} violates HealthDCAT-AP R8 (NON_PUBLIC) in "
            f"{len(lines)} place(s): " + "; ".join(lines)
        )


def _compact(iri: str | None) -> str | None:
    """`dct:spatial` rather than the full IRI, for people."""
    for prefix, ns in PREFIXES.items():
        if iri and iri.startswith(str(ns)):
            return f"{prefix}:{iri[len(str(ns)) :]}"
    return iri


def metadata_of(ds: Dataset) -> dict[str, Any]:
    """The operator-described part of a model (JSON values), e.g. to publish an example."""
    return ds.model_dump(mode="json", exclude=set(DERIVED_FIELDS | STATISTICS_FIELDS))


def statistics_metadata(stats: SafeStatistics) -> dict[str, Any]:
    """Computed statistics as metadata entries (JSON values; withheld ones absent)."""
    out: dict[str, Any] = {
        "number_of_records": stats.number_of_records,
        "number_of_unique_individuals": stats.number_of_unique_individuals,
        "min_typical_age": stats.min_typical_age,
        "max_typical_age": stats.max_typical_age,
        "temporal_start": _iso(stats.temporal_start),
        "temporal_end": _iso(stats.temporal_end),
        "coding_systems": [c.value for c in stats.coding_systems],
    }
    return {k: v for k, v in out.items() if v is not None}


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None
