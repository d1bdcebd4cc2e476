"""The catalog UI's cohort builder: the CCDL it writes is what the form says, valid CCDL v2,
and accepted by the aggregate fulfilment's own parser; a bad field is named."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from connector.api.cohort_builder import CohortForm
from connector.errors import BadRequestError
from connector.fulfilment.aggregate.measures import AgeBands, SexStrata
from connector.fulfilment.aggregate.request import parse_request

MII = "fdpg.mii.cds"


def _ccdl_schema() -> Draft202012Validator:
    text = (
        resources.files("connector.fulfilment.aggregate")
        / "ccdl"
        / "clinical-cohort-definition-language-schema.json"
    ).read_text()
    return Draft202012Validator(json.loads(text))


def _valid(query: dict[str, Any]) -> None:
    cohort = {k: v for k, v in query.items() if k not in ("measures", "options")}
    errors = [e.message for e in _ccdl_schema().iter_errors(cohort)]
    assert errors == []
    parse_request(json.dumps(query).encode(), media_type="application/json")


def test_the_whole_form() -> None:
    form = CohortForm.from_fields(
        {
            "sex": "female-male",
            "age_from": "6",
            "age_to": "11",
            "condition_system": "icd-10",
            "condition_code": " J45 ",
            "stratify": "age",
            "purpose": "asthma-research",
        }
    )
    query = form.ccdl()
    assert query == {
        "version": "2",
        "display": "Female or male patients aged 6 to 11 with ICD-10 (WHO) J45",
        "inclusionCriteria": [
            [
                {
                    "context": {"system": MII, "code": "Patient", "display": "Patient"},
                    "termCodes": [
                        {
                            "system": "http://loinc.org",
                            "code": "76689-9",
                            "display": "Sex assigned at birth",
                        }  # fmt: skip
                    ],
                    "valueFilter": {
                        "type": "concept",
                        "selectedConcepts": [
                            {
                                "system": "http://hl7.org/fhir/administrative-gender",
                                "code": g,
                                "display": g,
                            }  # fmt: skip
                            for g in ("female", "male")
                        ],
                    },
                }
            ],
            [
                {
                    "context": {"system": MII, "code": "Patient", "display": "Patient"},
                    "termCodes": [
                        {"system": "http://loinc.org", "code": "30525-0", "display": "Age"}
                    ],  # fmt: skip
                    "valueFilter": {
                        "type": "quantity-range",
                        "minValue": 6,
                        "maxValue": 11,
                        "unit": {"code": "a", "display": "years"},
                    },
                }
            ],
            [
                {
                    "context": {"system": MII, "code": "Diagnose", "display": "Diagnose"},
                    "termCodes": [
                        {
                            "system": "http://hl7.org/fhir/sid/icd-10",
                            "code": "J45",
                            "display": "J45",
                        }
                    ],  # fmt: skip
                }
            ],
        ],
        "measures": [{"type": "stratify", "by": "ageBand", "id": "age", "edges": [1, 6, 12, 18]}],
        "options": {"purpose": "asthma-research"},
    }
    _valid(query)
    parsed = parse_request(json.dumps(query).encode())
    assert parsed.options.purpose == "asthma-research"
    [bands] = parsed.measures
    assert isinstance(bands, AgeBands)
    assert "unknown" not in bands.labels()  # the age criterion leaves no "unknown" band


def test_an_empty_form_asks_for_every_patient() -> None:
    query = CohortForm.from_fields({}).ccdl()
    [[sex]] = query["inclusionCriteria"]
    codes = [c["code"] for c in sex["valueFilter"]["selectedConcepts"]]
    assert codes == ["female", "male", "other", "unknown"]  # "unknown": no gender recorded
    assert "measures" not in query and "options" not in query
    assert query["display"] == "Patients"
    _valid(query)


def test_any_sex_is_no_criterion_beside_others() -> None:
    query = CohortForm.from_fields(
        {
            "sex": "any",
            "condition_system": "snomed",
            "condition_code": "195967001",
            "stratify": "sex",
        }  # fmt: skip
    ).ccdl()
    [[diagnosis]] = query["inclusionCriteria"]
    assert diagnosis["termCodes"][0]["system"] == "http://snomed.info/sct"
    _valid(query)
    [sex] = parse_request(json.dumps(query).encode()).measures
    assert isinstance(sex, SexStrata) and sex.genders == ("female", "male", "other", "unknown")


@pytest.mark.parametrize(
    ("fields", "comparator", "value"),
    [({"age_from": "12"}, "ge", 12), ({"age_to": "5"}, "le", 5), ({"age_from": "0"}, "ge", 0)],
)
def test_one_age_bound(fields: dict[str, str], comparator: str, value: int) -> None:
    query = CohortForm.from_fields(fields).ccdl()
    [[age]] = query["inclusionCriteria"]
    assert age["valueFilter"] == {
        "type": "quantity-comparator",
        "comparator": comparator,
        "value": value,
        "unit": {"code": "a", "display": "years"},
    }
    _valid(query)


def test_female_only_by_sex_has_one_stratum() -> None:
    query = CohortForm.from_fields({"sex": "female", "stratify": "sex"}).ccdl()
    [sex] = parse_request(json.dumps(query).encode()).measures
    assert isinstance(sex, SexStrata) and sex.genders == ("female",)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"sex": "everyone"}, "Sex"),
        ({"age_from": "-1"}, "Age from"),
        ({"age_from": "six"}, "Age from"),
        ({"age_to": "151"}, "Age to"),
        ({"age_from": "12", "age_to": "6"}, "Age: from 12 is above to 6"),
        ({"condition_code": "J45' OR 1=1"}, "Diagnosis code"),
        ({"condition_system": "icd-9"}, "Coding system"),
        ({"stratify": "postcode"}, "Split the counts by"),
        ({"purpose": "x" * 2049}, "Purpose"),
    ],
)
def test_a_bad_field_is_named(fields: dict[str, str], named: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        CohortForm.from_fields(fields)
    assert caught.value.detail.startswith(named)
