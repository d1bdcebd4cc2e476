"""CCDL semantics: the compiled SQL (DuckDB over the flattened tables) against a brute-force
evaluation in plain Python over the FHIR resources (``brute.py``), cell by cell.

Targeted queries for each part of the language, then random queries built from those parts,
on generated children (varied: ``data.py``) and on the 40 Synthea patients.
"""

from __future__ import annotations

import json
from random import Random
from typing import Any

import pytest

from connector.fulfilment.aggregate.engine import DuckDbEngine
from connector.fulfilment.aggregate.request import parse_request
from connector.ports import FlatViews
from tests.fulfilment.aggregate.brute import Brute
from tests.fulfilment.aggregate.conftest import REFERENCE
from tests.fulfilment.aggregate.data import Resources
from tests.fulfilment.aggregate.queries import (
    ACT,
    ASTHMA,
    ATC,
    ICD10,
    LOINC,
    OTITIS,
    SNOMED,
    SYSTOLIC,
    TEMPERATURE,
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


def check(data: tuple[Resources, FlatViews], engine: DuckDbEngine, doc: Json) -> list[float]:
    resources, views = data
    parsed = parse_request(json.dumps(doc).encode())
    got = engine.evaluate(parsed, views, REFERENCE)
    want = Brute(resources, REFERENCE).cells(parsed, doc)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-6), json.dumps(doc)
    return got


def count(data: tuple[Resources, FlatViews], engine: DuckDbEngine, doc: Json) -> int:
    return int(check(data, engine, doc)[0])


# -- logic ------------------------------------------------------------------------------------


def test_inclusion_is_an_and_of_ors(sample: Any, engine: DuckDbEngine) -> None:
    asthma = count(sample, engine, query([[ASTHMA]]))
    otitis = count(sample, engine, query([[OTITIS]]))
    either = count(sample, engine, query([[ASTHMA, OTITIS]]))
    both = count(sample, engine, query([[ASTHMA], [OTITIS]]))
    assert 0 < both < min(asthma, otitis) and either == asthma + otitis - both


def test_exclusion_is_an_or_of_ands(sample: Any, engine: DuckDbEngine) -> None:
    everyone = age(quantity("ge", 0))
    female = sex("female")
    total = count(sample, engine, query([[everyone]]))
    not_female_asthma = count(sample, engine, query([[everyone]], [[ASTHMA, female]]))
    neither = count(sample, engine, query([[everyone]], [[ASTHMA], [female]]))
    assert neither < not_female_asthma < total


# -- codes ------------------------------------------------------------------------------------


def test_a_criterion_matches_any_coding_and_icd10_descendants(
    sample: Any, engine: DuckDbEngine
) -> None:
    snomed = count(sample, engine, query([[ASTHMA]]))
    category = count(sample, engine, query([[diagnosis(ICD10, "J45")]]))
    exact = count(sample, engine, query([[diagnosis(ICD10, "J45.9")]]))
    varied = count(sample, engine, query([[diagnosis(ICD10, "J45.0")]]))
    assert category == snomed and 0 < varied and exact < category
    assert count(sample, engine, query([[diagnosis(ICD10, "J4")]])) == 0  # not a category


def test_atc_levels_match_their_descendants(sample: Any, engine: DuckDbEngine) -> None:
    def drugs(code: str, context: str = "MedicationRequest") -> Json:
        return {
            "context": tc("http://hl7.org/fhir/resource-types", context),
            "termCodes": [tc(ATC, code)],
        }

    nervous = count(sample, engine, query([[drugs("N")]]))
    paracetamol = count(sample, engine, query([[drugs("N02BE01")]]))
    assert nervous > paracetamol > 0
    given = count(sample, engine, query([[crit("Medikamentenverabreichung", tc(ATC, "N"))]]))
    assert 0 < given < nervous


def test_encounter_class_procedures_and_components(sample: Any, engine: DuckDbEngine) -> None:
    inpatient = count(sample, engine, query([[crit("Fall", tc(ACT, "IMP"))]]))
    echo = count(sample, engine, query([[crit("Prozedur", tc(SNOMED, "40701008"))]]))
    systolic = count(
        sample, engine, query([[lab(SYSTOLIC, valueFilter=quantity("gt", 120, "mm[Hg]"))]])
    )
    assert inpatient > 0 and echo > 0 and systolic > 0


# -- value filters with units -----------------------------------------------------------------


@pytest.mark.parametrize(
    "vf",
    [
        quantity("gt", 20, "kg"),
        quantity("gt", 20000, "g"),
        quantity("ge", 44.1, "[lb_av]"),
        quantity("le", 12.5, "kg"),
        quantity("eq", 20, "kg"),
        quantity("ne", 20, "kg"),
        quantity("lt", 30),
        qrange(15, 25, "kg"),
        qrange(15000, 25000, "g"),
    ],
)
def test_weight_filters_convert_units(sample: Any, engine: DuckDbEngine, vf: Json) -> None:
    check(sample, engine, query([[lab(WEIGHT, valueFilter=vf)]]))


def test_units_convert_both_ways(sample: Any, engine: DuckDbEngine) -> None:
    kg = count(sample, engine, query([[lab(WEIGHT, valueFilter=qrange(15, 25, "kg"))]]))
    g = count(sample, engine, query([[lab(WEIGHT, valueFilter=qrange(15000, 25000, "g"))]]))
    raw = count(sample, engine, query([[lab(WEIGHT, valueFilter=qrange(15, 25))]]))
    assert kg == g and raw < kg  # without a unit, grams and pounds compare as numbers


def test_temperatures_convert_with_an_offset(sample: Any, engine: DuckDbEngine) -> None:
    cel = count(
        sample, engine, query([[lab(TEMPERATURE, valueFilter=quantity("ge", 38.5, "Cel"))]])
    )
    fahrenheit = count(
        sample, engine, query([[lab(TEMPERATURE, valueFilter=quantity("ge", 101.3, "[degF]"))]])
    )
    assert cel == fahrenheit > 0


def test_components_compare_in_kilopascal(sample: Any, engine: DuckDbEngine) -> None:
    mmhg = count(
        sample, engine, query([[lab(SYSTOLIC, valueFilter=quantity("gt", 105, "mm[Hg]"))]])
    )
    kpa = count(sample, engine, query([[lab(SYSTOLIC, valueFilter=quantity("gt", 14, "kPa"))]]))
    same = count(
        sample,
        engine,
        query([[lab(SYSTOLIC, valueFilter=quantity("gt", 14 / 0.133322387415, "mm[Hg]"))]]),
    )
    assert kpa == same > 0 and mmhg > 0


def test_concept_values(sample: Any, engine: DuckDbEngine) -> None:
    smokers = count(
        sample, engine, query([[lab("72166-2", valueFilter=concept(tc(SNOMED, "77176002")))]])
    )
    anyone = count(sample, engine, query([[lab("72166-2")]]))
    assert 0 < smokers < anyone


# -- time restrictions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tr",
    [
        when("2023-01-01", "2023-06-30"),
        when(after="2023-06-01"),
        when(before="2021-12-31"),
        when("2023-05-01", "2023-05-01"),
    ],
)
def test_time_restrictions(sample: Any, engine: DuckDbEngine, tr: Json) -> None:
    for c in (
        crit("Diagnose", tc(SNOMED, "195967001"), timeRestriction=tr),
        crit("Fall", tc(ACT, "AMB"), timeRestriction=tr),
        crit("Fall", tc(ACT, "IMP"), timeRestriction=tr),
        lab(WEIGHT, timeRestriction=tr),
        lab("72166-2", timeRestriction=tr),
        crit("Prozedur", tc(SNOMED, "29303009"), timeRestriction=tr),
        crit("Medikamentenverabreichung", tc(ATC, "N02BE01"), timeRestriction=tr),
    ):
        check(sample, engine, query([[c]]))


def test_time_restriction_narrows(sample: Any, engine: DuckDbEngine) -> None:
    wide = count(
        sample, engine, query([[lab(WEIGHT, timeRestriction=when("2020-01-01", "2024-12-31"))]])
    )
    narrow = count(
        sample, engine, query([[lab(WEIGHT, timeRestriction=when("2023-03-01", "2023-03-31"))]])
    )
    assert 0 < narrow < wide


# -- attribute filters ------------------------------------------------------------------------


def test_attribute_filters(sample: Any, engine: DuckDbEngine) -> None:
    severe = diagnosis(
        SNOMED, "195967001", attributeFilters=[attribute("severity", tc(SNOMED, "24484000"))]
    )
    active = diagnosis(
        SNOMED, "65363002", attributeFilters=[attribute("clinicalStatus", tc("", "resolved"))]
    )
    axillary = lab(
        TEMPERATURE,
        valueFilter=quantity("ge", 38, "Cel"),
        attributeFilters=[
            attribute("method", tc(LOINC, "LA9370-3")),
            attribute("status", tc("", "final")),
        ],
    )
    for c in (severe, active, axillary):
        assert (
            0
            < count(sample, engine, query([[c]]))
            < count(sample, engine, query([[{**c, "attributeFilters": []}]]))
        )


# -- patients ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vf",
    [
        quantity("gt", 5),
        quantity("ge", 5, "a"),
        quantity("lt", 2.5, "a"),
        quantity("le", 2.5, "a"),
        quantity("eq", 7, "a"),
        quantity("eq", 7.5, "a"),
        quantity("ne", 7, "a"),
        quantity("lt", 18, "mo"),
        quantity("ge", 100, "wk"),
        quantity("le", 400, "d"),
        qrange(3, 6, "a"),
        qrange(2.5, 6.5, "a"),
    ],
)
def test_age(sample: Any, engine: DuckDbEngine, vf: Json) -> None:
    check(sample, engine, query([[age(vf)]]))


@pytest.mark.parametrize(
    "codes", [("female",), ("male",), ("other", "unknown"), ("female", "male")]
)
def test_sex(sample: Any, engine: DuckDbEngine, codes: tuple[str, ...]) -> None:
    assert count(sample, engine, query([[sex(*codes)]])) > 0


# -- measures ---------------------------------------------------------------------------------


def test_stratifiers_and_numeric_measures(sample: Any, engine: DuckDbEngine) -> None:
    measures = [
        {"type": "stratify", "by": "sex"},
        {"type": "stratify", "by": "ageBand", "edges": [2, 6, 12]},
        {
            "type": "stratify",
            "by": "code",
            "strata": [OTITIS, lab(WEIGHT, valueFilter=quantity("gt", 30, "kg"))],
        },
        {
            "type": "numeric",
            "column": "patient.age",
            "unit": "mo",
            "bounds": [0, 216],
            "statistics": ["mean", "stddev"],
            "histogram": [12, 60, 120],
        },
        {
            "type": "numeric",
            "column": "observation.value_quantity",
            "criterion": lab(WEIGHT),
            "unit": "kg",
            "bounds": [0, 120],
            "statistics": ["mean", "stddev"],
            "histogram": [10, 20, 40],
        },
        {
            "type": "numeric",
            "column": "observation.value_quantity",
            "criterion": lab(WEIGHT),
            "unit": "g",
            "perPatient": "first",
            "bounds": [0, 90000],
            "statistics": ["mean"],
        },
        {
            "type": "numeric",
            "column": "observation.value_quantity",
            "criterion": lab(TEMPERATURE),
            "unit": "[degF]",
            "perPatient": "max",
            "histogram": [100, 102],
        },
        {
            "type": "numeric",
            "column": "observation_component.value_quantity",
            "criterion": lab(SYSTOLIC),
            "unit": "kPa",
            "perPatient": "mean",
            "bounds": [5, 25],
            "statistics": ["stddev"],
        },
        {
            "type": "numeric",
            "column": "medication_request.dose_value",
            "criterion": crit("MedicationRequest", tc(ATC, "N02BE01"))
            | {"context": tc("http://hl7.org/fhir/resource-types", "MedicationRequest")},
            "unit": "mg",
            "perPatient": "min",
            "histogram": [100, 250],
        },
    ]
    cells = check(sample, engine, query([[ASTHMA, OTITIS]], measures=measures))
    assert all(c >= 0 for c in cells) and cells[0] > 0


def test_structurally_empty_strata_are_left_out(sample: Any, engine: DuckDbEngine) -> None:
    measures = [{"type": "stratify", "by": "sex"}, {"type": "stratify", "by": "ageBand"}]
    doc = query([[ASTHMA], [sex("female", "male")], [age(quantity("lt", 18))]], measures=measures)
    cells = check(sample, engine, doc)
    assert len(cells) == 1 + 2 + 5  # female, male; five bands, no "unknown"
    assert cells[1] + cells[2] == cells[0] == sum(cells[3:])


# -- random queries ---------------------------------------------------------------------------


def _pool() -> list[Json]:
    return [
        ASTHMA,
        OTITIS,
        diagnosis(ICD10, "J45"),
        diagnosis(SNOMED, "57089007", timeRestriction=when("2022-01-01", "2023-12-31")),
        diagnosis(
            SNOMED,
            "65363002",
            attributeFilters=[
                attribute("severity", tc(SNOMED, "6736007"), tc(SNOMED, "255604002"))
            ],
        ),
        diagnosis(SNOMED, "84757009", timeRestriction=when(after="2023-01-01")),
        lab(WEIGHT, valueFilter=quantity("gt", 25, "kg")),
        lab(WEIGHT, valueFilter=qrange(30, 60, "[lb_av]")),
        lab(TEMPERATURE, valueFilter=quantity("ge", 100.4, "[degF]")),
        lab(TEMPERATURE, attributeFilters=[attribute("method", tc(LOINC, "LA9367-9"))]),
        lab(SYSTOLIC, valueFilter=quantity("lt", 100, "mm[Hg]")),
        lab("59408-5", valueFilter=quantity("lt", 94, "%")),
        lab("72166-2", valueFilter=concept(tc(SNOMED, "266919005"))),
        crit("Fall", tc(ACT, "EMER")),
        crit("Fall", tc(ACT, "IMP"), timeRestriction=when(before="2022-06-30")),
        crit("Prozedur", tc(SNOMED, "29303009")),
        crit(
            "Medikamentenverabreichung",
            tc(ATC, "J01"),
            attributeFilters=[attribute("status", tc("", "completed"))],
        ),
        age(quantity("lt", 4)),
        age(qrange(6, 11)),
        age(quantity("ge", 30, "mo")),
        sex("female"),
        sex("male", "unknown"),
    ]


def _random_query(rng: Random, pool: list[Json]) -> Json:
    inclusion = [rng.sample(pool, rng.randint(1, 3)) for _ in range(rng.randint(1, 3))]
    exclusion = [rng.sample(pool, rng.randint(1, 2)) for _ in range(rng.randint(0, 2))]
    measures: list[Json] = []
    if rng.random() < 0.5:
        measures.append({"type": "stratify", "by": rng.choice(["sex", "ageBand"])})
    if rng.random() < 0.3:
        measures.append({"type": "stratify", "by": "code", "strata": rng.sample(pool, 2)})
    if rng.random() < 0.3:
        measures.append(
            {
                "type": "numeric",
                "column": "observation.value_quantity",
                "criterion": lab(WEIGHT),
                "unit": rng.choice(["kg", "g", "[lb_av]"]),
                "perPatient": rng.choice(["latest", "first", "min", "max", "mean"]),
            }
        )
    return query(inclusion, exclusion, measures)


def test_random_queries_on_generated_children(sample: Any, engine: DuckDbEngine) -> None:
    rng = Random(20)
    pool = _pool()
    nonempty = 0
    for _ in range(60):
        nonempty += count(sample, engine, _random_query(rng, pool)) > 0
    assert nonempty >= 15  # the random queries are not all trivially empty


def test_queries_on_synthea_patients(synthea: Any, engine: DuckDbEngine) -> None:
    hypertension = diagnosis(SNOMED, "59621000")
    prediabetes = diagnosis(SNOMED, "15777000")
    bmi = lab("39156-5", valueFilter=quantity("gt", 30, "kg/m2"))
    glucose = lab("2339-0", valueFilter=quantity("gt", 100, "mg/dL"))
    adults = age(quantity("ge", 18))
    measures = [
        {"type": "stratify", "by": "sex"},
        {"type": "stratify", "by": "ageBand", "edges": [18, 40, 65]},
        {
            "type": "numeric",
            "column": "observation.value_quantity",
            "criterion": lab("8302-2"),
            "unit": "m",
            "bounds": [0.4, 2.2],
            "statistics": ["mean", "stddev"],
        },
        {
            "type": "numeric",
            "column": "observation_component.value_quantity",
            "criterion": lab(SYSTOLIC),
            "unit": "mm[Hg]",
            "perPatient": "max",
            "histogram": [120, 140],
        },
    ]
    assert count(synthea, engine, query([[adults]], measures=measures)) > 0
    for doc in (
        query([[hypertension, prediabetes]]),
        query([[adults], [bmi, glucose]], [[sex("female"), hypertension]]),
        query([[crit("Fall", tc(ACT, "AMB"), timeRestriction=when("2015-01-01", "2016-12-31"))]]),
        query([[crit("Prozedur", tc(SNOMED, "430193006"))]]),
    ):
        check(synthea, engine, doc)
