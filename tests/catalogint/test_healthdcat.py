"""DatasetRecord <-> HealthDCAT-AP model: derived fields, refused input, SHACL on publish."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from catalog.examples import example_dataset
from catalog.model import OutputType
from catalog.rdf import to_graph
from catalog.statistics import safe_statistics
from catalog.validation import validate
from connector.errors import BadRequestError
from connector.publishing.healthdcat import (
    Publisher,
    check_operator_metadata,
    check_publishable,
    metadata_of,
    statistics_metadata,
    to_catalog,
    to_dataset,
)
from connector.publishing.records import DatasetRecord

PUB = Publisher("http://127.0.0.1:9000", "did:web:127.0.0.1%3A9000", "Kinderklinik Nord")
OFFER = {
    "@id": "o1",
    "@type": "Offer",
    "target": "cohort",
    "permission": [{"action": "use"}],
}


def record(**metadata: object) -> DatasetRecord:
    return DatasetRecord(
        id="cohort",
        title="Cohort",
        description="A cohort",
        formats=("FHIR-Aggregate-PULL", "FHIR-Synthetic-PULL"),
        offers=(OFFER,),
        metadata={**metadata_of(example_dataset()), **metadata},
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        modified_at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
    )


def test_derived_fields_come_from_the_record_and_settings() -> None:
    ds = to_dataset(record(), PUB)
    assert ds.iri == "http://127.0.0.1:9000/catalog/datasets/cohort"
    assert ds.publisher.iri == PUB.did and ds.publisher.name == "Kinderklinik Nord"
    assert ds.output_types == (OutputType.AGGREGATE, OutputType.SYNTHETIC)
    assert ds.distributions[0].access_service is not None
    assert ds.distributions[0].access_service.endpoint_url == "http://127.0.0.1:9000/dsp/2025-1"
    assert ds.policies == ({k: v for k, v in OFFER.items() if k != "target"},)
    assert ds.modified == dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    assert validate(to_graph(to_catalog([ds], PUB))).conforms


def test_an_offer_is_published_in_the_compact_form_the_dsp_schema_wants() -> None:
    # Prefixed keys, IRIs as objects, a full-IRI operator, a target: all mean the same offer.
    written = {
        "@id": "o2",
        "@type": "odrl:Offer",
        "odrl:target": "cohort",
        "odrl:permission": [
            {
                "odrl:action": {"@id": "odrl:use"},
                "odrl:constraint": [
                    {
                        "odrl:leftOperand": {"@id": "odrl:purpose"},
                        "odrl:operator": {"@id": "http://www.w3.org/ns/odrl/2/eq"},
                        "odrl:rightOperand": "research",
                    },
                    {
                        "leftOperand": "phems:minCellSize",
                        "operator": "odrl:gteq",
                        "rightOperand": 10,
                    },
                ],
            }
        ],
    }
    ds = to_dataset(replace(record(), offers=(written,)), PUB)
    integer = "http://www.w3.org/2001/XMLSchema#integer"
    assert ds.policies == (
        {
            "@id": "o2",
            "@type": "Offer",
            "permission": [
                {
                    "action": "use",
                    "constraint": [
                        {
                            "leftOperand": "https://w3id.org/phems/ns/minCellSize",
                            "operator": "gteq",
                            "rightOperand": {"@value": "10", "@type": integer},
                        },
                        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"},
                    ],
                }
            ],
        },
    )
    assert validate(to_graph(to_catalog([ds], PUB))).conforms


def test_statistics_enter_as_metadata() -> None:
    stats = safe_statistics(
        records=1234, individuals=321, ages=list(range(18)) * 3, dates=[dt.date(2020, 5, 5)] * 10
    )
    ds = to_dataset(record(**statistics_metadata(stats)), PUB)
    assert ds.number_of_records == 1230 and ds.number_of_unique_individuals == 320
    assert ds.temporal_start == dt.date(2020, 5, 1) and ds.temporal_end == dt.date(2020, 5, 31)
    check_publishable(ds)


@pytest.mark.parametrize(
    ("field", "words"),
    [("title", "derived"), ("publisher", "derived"), ("number_of_records", "computed")],
)
def test_operator_may_not_send_derived_or_computed_fields(field: str, words: str) -> None:
    with pytest.raises(BadRequestError, match=f"{field} are {words}"):
        check_operator_metadata({field: 1})


def test_bad_metadata_is_named() -> None:
    meta = metadata_of(example_dataset())
    del meta["hdab"]
    with pytest.raises(BadRequestError, match="hdab: Field required"):
        to_dataset(record().__class__(**{**record().__dict__, "metadata": meta}), PUB)
    with pytest.raises(BadRequestError, match="health_categories"):
        to_dataset(record(health_categories=["NOPE"]), PUB)


def test_shacl_violations_are_listed_in_plain_words() -> None:
    ds = to_dataset(record(spatial=["http://example.org/nowhere"]), PUB)
    with pytest.raises(BadRequestError) as err:
        check_publishable(ds)
    assert "dct:spatial: Value does not have class dct:Location" in err.value.detail
