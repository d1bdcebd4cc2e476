"""The MeasureReport: valid FHIR R4, the documented shape, suppressed cells masked."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from fhir.resources.R4B.measurereport import MeasureReport

from connector.errors import PhemsError
from connector.fulfilment.aggregate.release import Release
from connector.fulfilment.aggregate.report import DATA_ABSENT, EXT, measure_report, validate
from connector.fulfilment.aggregate.request import parse_request
from tests.fulfilment.aggregate.queries import ASTHMA, OTITIS, WEIGHT, lab, query

MEASURES = [
    {"type": "stratify", "by": "sex", "id": "sex"},
    {"type": "stratify", "by": "ageBand", "edges": [6]},
    {"type": "stratify", "by": "code", "strata": [OTITIS]},
    {
        "type": "numeric",
        "id": "weight",
        "column": "observation.value_quantity",
        "criterion": lab(WEIGHT),
        "unit": "kg",
        "bounds": [0, 100],
        "statistics": ["mean", "stddev"],
        "histogram": [20],
    },
]


def test_every_part_of_an_answer_in_its_place() -> None:
    q = parse_request(json.dumps(query([[ASTHMA]], measures=MEASURES)).encode())
    # cohort; female male other unknown; <6 6+ unknown; otitis; n sum sumsq <20 >=20
    values = (120.0, 60.0, 50.0, None, None, 40.0, 70.0, None, 30.0, 110.0, 21.4, 6.2, 50.0, 60.0)
    assert len(values) == len(q.layout)
    report = measure_report(
        q, Release(values, date(2024, 3, 15), datetime(2024, 3, 15, tzinfo=UTC))
    )
    MeasureReport.model_validate(report)
    assert report["status"] == "complete" and report["type"] == "summary"
    extensions = {e["url"]: e for e in report["extension"]}
    assert extensions[f"{EXT}query-digest"]["valueString"] == f"sha256:{q.digest}"
    control = {e["url"]: e for e in extensions[f"{EXT}disclosure-control"]["extension"]}
    assert (
        control["minCellSize"]["valueInteger"] == 10 and control["rounding"]["valueInteger"] == 10
    )
    cohort, weight = report["group"]
    assert cohort["population"][0]["count"] == 120
    sex, bands, codes = cohort["stratifier"]
    assert sex["code"][0]["text"] == "sex"
    assert [s["value"]["coding"][0]["code"] for s in sex["stratum"]] == [
        "female",
        "male",
        "other",
        "unknown",
    ]
    masked = sex["stratum"][2]["population"][0]
    assert "count" not in masked and masked["_count"]["extension"][0] == {
        "url": DATA_ABSENT,
        "valueCode": "masked",
    }
    assert [s["value"]["text"] for s in bands["stratum"]] == ["<6", "6+", "unknown"]
    assert codes["stratum"][0]["value"]["coding"][0]["code"] == "65363002"
    assert weight["code"]["text"] == "weight" and weight["population"][0]["count"] == 110
    assert weight["measureScore"] == {
        "value": 21.4,
        "unit": "kg",
        "system": "http://unitsofmeasure.org",
        "code": "kg",
    }
    stddev = next(e for e in weight["extension"] if e["url"] == f"{EXT}stddev")
    assert stddev["valueQuantity"]["value"] == 6.2
    assert [s["population"][0]["count"] for s in weight["stratifier"][0]["stratum"]] == [50, 60]


def test_a_masked_mean() -> None:
    q = parse_request(json.dumps(query([[ASTHMA]], measures=MEASURES[3:])).encode())
    values = (120.0, None, None, None, None, None)
    report = measure_report(
        q, Release(values, date(2024, 3, 15), datetime(2024, 3, 15, tzinfo=UTC))
    )
    weight = report["group"][1]
    assert weight["measureScore"]["extension"][0]["valueCode"] == "masked"
    MeasureReport.model_validate(report)


def test_an_invalid_report_is_our_error() -> None:
    with pytest.raises(PhemsError, match="not valid FHIR R4"):
        validate({"resourceType": "MeasureReport", "status": "bogus"})
