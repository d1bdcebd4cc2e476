"""The request body: what is refused (a 400 naming the bad part), defaults, the digest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector.errors import BadRequestError
from connector.fulfilment.aggregate.measures import AgeBands, Numeric, SexStrata
from connector.fulfilment.aggregate.request import parse_request
from tests.fulfilment.aggregate.queries import (
    ASTHMA,
    ICD10,
    LOINC,
    OTITIS,
    WEIGHT,
    Json,
    age,
    attribute,
    concept,
    crit,
    diagnosis,
    lab,
    qrange,
    quantity,
    query,
    sex,
    tc,
    when,
)


def parse(doc: Any, **kwargs: Any) -> Any:
    return parse_request(json.dumps(doc).encode(), **kwargs)


def refused(doc: Any, **kwargs: Any) -> str:
    with pytest.raises(BadRequestError) as caught:
        parse(doc, **kwargs)
    assert caught.value.status == 400
    return caught.value.detail


def test_the_ccdl_example_with_every_property_is_refused_at_its_specimen(shared_dir: Path) -> None:
    body = (shared_dir / "conformance" / "ccdl" / "ccdl-all-properties.json").read_bytes()
    with pytest.raises(BadRequestError) as caught:
        parse_request(body)
    assert caught.value.detail.startswith("/inclusionCriteria/3/0/context: context 'Specimen'")


def test_the_ccdl_example_without_its_specimen_criterion_parses(shared_dir: Path) -> None:
    doc = json.loads((shared_dir / "conformance" / "ccdl" / "ccdl-all-properties.json").read_text())
    del doc["inclusionCriteria"][3]
    # The example gives one age in "year", which is not UCUM ("a" is):
    assert refused(doc) == (
        "/exclusionCriteria/1/0/valueFilter/unit: age is compared in completed a, mo, wk, d, "
        "not 'year'"
    )
    doc["exclusionCriteria"][1][0]["valueFilter"]["unit"]["code"] = "a"
    # and puts body temperature in the Patient context: refused by name.
    assert refused(doc).startswith("/exclusionCriteria/2/1/termCodes: Patient criteria are age")
    doc["exclusionCriteria"][2][1]["context"]["code"] = "Laboruntersuchung"
    parsed = parse(doc)
    assert len(parsed.cohort.inclusion) == 3 and len(parsed.cohort.exclusion) == 3


ANYONE = query([[ASTHMA]])


@pytest.mark.parametrize(
    ("doc", "pointer", "words"),
    [
        ({"version": "2"}, "/", "'inclusionCriteria' is a required property"),
        ({**ANYONE, "version": "1"}, "/version", "'2' was expected"),
        ({**ANYONE, "extra": 1}, "/", "'extra' was unexpected"),
        (query([[]]), "/inclusionCriteria/0", "should be non-empty"),
        (query([[{**ASTHMA, "termCodes": []}]]), "/inclusionCriteria/0/0/termCodes", "non-empty"),
        (query([[{"termCodes": ASTHMA["termCodes"]}]]), "/inclusionCriteria/0/0", "'context'"),
        (
            query([[ASTHMA], [crit("Bioprobe", tc(LOINC, "x"))]]),
            "/inclusionCriteria/1/0/context",
            "Bioprobe",
        ),
        (
            query([[ASTHMA]], [[ASTHMA, crit("Einwilligung", tc(LOINC, "x"))]]),
            "/exclusionCriteria/0/1/context",
            "Einwilligung",
        ),
        (
            query([[diagnosis(ICD10, "J45", valueFilter=quantity("gt", 1))]]),
            "/inclusionCriteria/0/0/valueFilter",
            "takes no value filter",
        ),
        (
            query([[lab(WEIGHT, valueFilter={"type": "quantity-comparator", "value": 1})]]),
            "/inclusionCriteria/0/0/valueFilter",
            "'comparator'",
        ),
        (
            query([[lab(WEIGHT, valueFilter=quantity("about", 1))]]),
            "/inclusionCriteria/0/0/valueFilter/comparator",
            "'about'",
        ),
        (
            query([[lab(WEIGHT, valueFilter=qrange(5, 1, "kg"))]]),
            "/inclusionCriteria/0/0/valueFilter",
            "greater than maxValue",
        ),
        (
            query([[lab(WEIGHT, valueFilter=quantity("gt", 1, "furlong"))]]),
            "/inclusionCriteria/0/0/valueFilter/unit",
            "not a UCUM unit",
        ),
        (
            query([[lab(WEIGHT, valueFilter=quantity("gt", 1, "mmol/L"))]]),
            "/inclusionCriteria/0/0/valueFilter/unit",
            "cannot be converted to 'kg'",
        ),
        (
            query([[{**ASTHMA, "timeRestriction": {}}]]),
            "/inclusionCriteria/0/0/timeRestriction",
            "not valid under any",
        ),
        (
            query([[{**ASTHMA, "timeRestriction": when("2024-02-01", "2024-01-01")}]]),
            "/inclusionCriteria/0/0/timeRestriction",
            "later than beforeDate",
        ),
        (
            query([[{**ASTHMA, "timeRestriction": when("2024-13-01")}]]),
            "/inclusionCriteria/0/0/timeRestriction/afterDate",
            "not a date",
        ),
        (
            query([[{**ASTHMA, "timeRestriction": when("20240101")}]]),
            "/inclusionCriteria/0/0/timeRestriction/afterDate",
            "not a date",
        ),
        (
            query([[{**ASTHMA, "attributeFilters": [attribute("bodySite", tc(LOINC, "x"))]}]]),
            "/inclusionCriteria/0/0/attributeFilters/0/attributeCode",
            "'bodySite' of Condition",
        ),
        (
            query(
                [
                    [
                        {
                            **ASTHMA,
                            "attributeFilters": [
                                {
                                    "type": "quantity-comparator",
                                    "attributeCode": tc("", "severity"),
                                    "comparator": "gt",
                                    "value": 1,
                                }
                            ],
                        }
                    ]
                ]
            ),
            "/inclusionCriteria/0/0/attributeFilters/0",
            "takes a concept filter",
        ),
        (
            query(
                [
                    [
                        {
                            **ASTHMA,
                            "attributeFilters": [
                                {
                                    "type": "reference",
                                    "attributeCode": tc("", "severity"),
                                    "criteria": [OTITIS],
                                }
                            ],
                        }
                    ]
                ]
            ),
            "/inclusionCriteria/0/0/attributeFilters/0",
            "reference attribute filters are not supported",
        ),
        (
            query([[age(quantity("gt", 3, "kg"))]]),
            "/inclusionCriteria/0/0/valueFilter/unit",
            "age is compared in completed",
        ),
        (
            query([[age(concept(tc("", "x")))]]),
            "/inclusionCriteria/0/0/valueFilter",
            "needs a quantity value filter",
        ),
        (
            query([[{**sex("female"), "timeRestriction": when("2020-01-01")}]]),
            "/inclusionCriteria/0/0/timeRestriction",
            "no time restriction",
        ),
        (
            query([[sex("female", "alien")]]),
            "/inclusionCriteria/0/0/valueFilter/selectedConcepts/1",
            "'alien' is not a sex code",
        ),
        (
            query([[crit("Patient", tc(LOINC, "8310-5"))]]),
            "/inclusionCriteria/0/0/termCodes",
            "Patient criteria are age",
        ),
        (
            query([[ASTHMA]], measures=[{"type": "stratify", "by": "colour"}]),
            "/measures/0/by",
            "'colour'",
        ),
        (
            query([[ASTHMA]], measures=[{"type": "stratify", "by": "sex", "edges": [1]}]),
            "/measures/0/edges",
            "only ageBand",
        ),
        (
            query([[ASTHMA]], measures=[{"type": "stratify", "by": "ageBand", "edges": [6, 2]}]),
            "/measures/0/edges",
            "must increase",
        ),
        (
            query([[ASTHMA]], measures=[{"type": "stratify", "by": "code"}]),
            "/measures/0",
            "'strata'",
        ),
        (
            query(
                [[ASTHMA]],
                measures=[
                    {"type": "stratify", "by": "code", "strata": [crit("Bioprobe", tc(LOINC, "x"))]}
                ],
            ),
            "/measures/0/strata/0/context",
            "Bioprobe",
        ),
        (
            query([[ASTHMA]], measures=[{"type": "numeric", "column": "patient.weight"}]),
            "/measures/0/column",
            "'patient.weight'",
        ),
        (
            query(
                [[ASTHMA]],
                measures=[{"type": "numeric", "column": "patient.age", "statistics": ["mean"]}],
            ),
            "/measures/0",
            "need bounds",
        ),
        (
            query(
                [[ASTHMA]],
                measures=[
                    {
                        "type": "numeric",
                        "column": "patient.age",
                        "bounds": [5, 1],
                        "statistics": ["mean"],
                    }
                ],
            ),
            "/measures/0/bounds",
            "low bound",
        ),
        (
            query(
                [[ASTHMA]], measures=[{"type": "numeric", "column": "observation.value_quantity"}]
            ),
            "/measures/0",
            "needs a criterion",
        ),
        (
            query(
                [[ASTHMA]],
                measures=[
                    {"type": "numeric", "column": "observation.value_quantity", "criterion": ASTHMA}
                ],
            ),
            "/measures/0/criterion/context",
            "Observation criterion",
        ),
        (
            query(
                [[ASTHMA]],
                measures=[
                    {
                        "type": "numeric",
                        "column": "observation.value_quantity",
                        "criterion": lab(WEIGHT),
                    }
                ],
            ),
            "/measures/0",
            "needs a unit",
        ),
        (
            query(
                [[ASTHMA]],
                measures=[
                    {
                        "type": "numeric",
                        "column": "observation.value_quantity",
                        "criterion": lab(WEIGHT),
                        "unit": "cm",
                    }
                ],
            ),
            "/measures/0/unit",
            "cannot be converted",
        ),
        (
            query(
                [[ASTHMA]],
                measures=[{"type": "numeric", "column": "patient.age", "histogram": [3, 1]}],
            ),
            "/measures/0/histogram",
            "must increase",
        ),
        (
            query(
                [[ASTHMA]],
                measures=[
                    {"type": "count", "id": "a"},
                    {"type": "stratify", "by": "sex", "id": "x"},
                    {"type": "stratify", "by": "sex", "id": "x"},
                ],
            ),
            "/measures/2/id",
            "used twice",
        ),
        (
            query([[ASTHMA]], measures=[{"type": "count", "extra": 1}]),
            "/measures/0",
            "'extra' was unexpected",
        ),
        (query([[ASTHMA]], minCellSize=3), "/options/minCellSize", "less than the minimum of 5"),
        (
            query([[ASTHMA]], epsilon=0),
            "/options/epsilon",
            "less than or equal to the minimum of 0",
        ),
        (query([[ASTHMA]], epsilon=50), "/options/epsilon", "greater than the maximum of 5"),
        (query([[ASTHMA]], budget=1), "/options", "'budget' was unexpected"),
    ],
)
def test_invalid_queries_are_refused_naming_the_part(doc: Json, pointer: str, words: str) -> None:
    detail = refused(doc)
    assert detail.startswith(f"{pointer}: "), detail
    assert words in detail, detail


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b"[]", "is not of type 'object'"),
        (b'{"version": "2", "inclusionCriteria": ' + b"[" * 40 + b"]" * 40 + b"}", "nests deeper"),
        (b" " * (300 * 1024), "larger than"),
    ],
)
def test_bodies_that_are_not_queries(body: bytes, words: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_request(body)
    assert words in caught.value.detail


def test_media_type() -> None:
    body = json.dumps(ANYONE).encode()
    assert parse_request(body, media_type="application/json; charset=utf-8")
    assert parse_request(body, media_type="application/fhir+json")
    with pytest.raises(BadRequestError, match="not text/csv"):
        parse_request(body, media_type="text/csv")


def test_defaults_and_the_agreements_limits() -> None:
    assert parse(ANYONE).options.min_cell_size == 10
    assert parse(ANYONE).options.epsilon == 0.5
    limited = parse(ANYONE, policy_limits={"minCellSize": 20, "epsilon": 0.2}).options
    assert (limited.min_cell_size, limited.epsilon) == (20, 0.2)
    loose = parse(ANYONE, policy_limits={"minCellSize": 5, "epsilon": 2.0}).options
    assert (loose.min_cell_size, loose.epsilon) == (10, 0.5)  # defaults, inside the limits
    stated = parse(query([[ASTHMA]], minCellSize=15, epsilon=0.1, purpose="research")).options
    assert (stated.min_cell_size, stated.epsilon, stated.purpose) == (15, 0.1, "research")


def test_the_digest_ignores_order_displays_duplicates_and_purpose() -> None:
    a = query(
        [[ASTHMA, OTITIS], [age(quantity("lt", 10))]],
        measures=[{"type": "stratify", "by": "sex"}],
        purpose="a",
    )
    b = query(
        [[age(quantity("lt", 10.0))], [OTITIS, ASTHMA, ASTHMA]],
        measures=[{"type": "stratify", "by": "sex"}],
        purpose="b",
    )
    b["inclusionCriteria"][1][0]["termCodes"][0]["display"] = "Otitis media"
    assert parse(a).digest == parse(b).digest
    different = [
        query(
            [[ASTHMA, OTITIS], [age(quantity("lt", 11))]],
            measures=[{"type": "stratify", "by": "sex"}],
        ),
        query(
            [[ASTHMA, OTITIS], [age(quantity("lt", 10))]],
            measures=[{"type": "stratify", "by": "ageBand"}],
        ),
        query(
            [[ASTHMA, OTITIS], [age(quantity("lt", 10))]],
            measures=[{"type": "stratify", "by": "sex"}],
            epsilon=0.4,
        ),
        query(
            [[ASTHMA, OTITIS], [age(quantity("lt", 10))]],
            measures=[{"type": "stratify", "by": "sex"}],
            minCellSize=11,
        ),
        query(
            [[ASTHMA], [OTITIS], [age(quantity("lt", 10))]],
            measures=[{"type": "stratify", "by": "sex"}],
        ),
    ]
    digests = {parse(d).digest for d in different} | {parse(a).digest}
    assert len(digests) == len(different) + 1


def test_measures_become_typed_with_structural_strata() -> None:
    doc = query(
        [[ASTHMA], [sex("female", "male")]],
        measures=[
            {"type": "count"},
            {"type": "stratify", "by": "sex", "id": "sex"},
            {"type": "stratify", "by": "ageBand"},
            {
                "type": "numeric",
                "column": "patient.age",
                "bounds": [0, 18],
                "statistics": ["count", "mean"],
            },
        ],
    )
    measures = parse(doc).measures
    assert measures[0] == SexStrata("sex", ("female", "male"))
    assert isinstance(measures[1], AgeBands) and measures[1].labels() == [
        "<1",
        "1-5",
        "6-11",
        "12-17",
        "18+",
        "unknown",
    ]
    assert isinstance(measures[2], Numeric) and measures[2].mean and not measures[2].stddev
    excluded = parse(
        query(
            [[ASTHMA]],
            [[sex("other")], [ASTHMA, sex("male")]],
            measures=[{"type": "stratify", "by": "sex"}],
        )
    )
    assert excluded.measures[0] == SexStrata("m0", ("female", "male", "unknown"))
    aged = parse(
        query(
            [[ASTHMA], [age(qrange(1, 5))]],
            measures=[{"type": "stratify", "by": "ageBand", "edges": [2]}],
        )
    )
    assert isinstance(aged.measures[0], AgeBands) and aged.measures[0].labels() == ["<2", "2+"]
    assert parse(
        query(
            [[ASTHMA]],
            measures=[
                {
                    "type": "numeric",
                    "column": "observation.value_quantity",
                    "criterion": lab(WEIGHT, valueFilter=quantity("gt", 3, "kg")),
                    "unit": "[lb_av]",
                }
            ],
        )
    )
    assert parse(
        query(
            [[diagnosis(ICD10, "J45")]],
            measures=[{"type": "stratify", "by": "code", "strata": [ASTHMA, OTITIS]}],
        )
    )
