"""Building blocks of CCDL queries for tests."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

MII = "fdpg.mii.cds"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ATC = "http://www.whocc.no/atc"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def tc(system: str, code: str) -> Json:
    return {"system": system, "code": code, "display": code}


def crit(context: str, *codes: Json, **extra: Any) -> Json:
    return {"context": tc(MII, context), "termCodes": list(codes), **extra}


def diagnosis(system: str, code: str, **extra: Any) -> Json:
    return crit("Diagnose", tc(system, code), **extra)


def lab(code: str, **extra: Any) -> Json:
    return crit("Laboruntersuchung", tc(LOINC, code), **extra)


def quantity(comparator: str, value: float, unit: str | None = None) -> Json:
    vf: Json = {"type": "quantity-comparator", "comparator": comparator, "value": value}
    if unit:
        vf["unit"] = {"code": unit, "display": unit}
    return vf


def qrange(low: float, high: float, unit: str | None = None) -> Json:
    vf: Json = {"type": "quantity-range", "minValue": low, "maxValue": high}
    if unit:
        vf["unit"] = {"code": unit, "display": unit}
    return vf


def concept(*codes: Json) -> Json:
    return {"type": "concept", "selectedConcepts": list(codes)}


def attribute(name: str, *codes: Json) -> Json:
    return {
        "type": "concept",
        "attributeCode": tc("mii.abide", name),
        "selectedConcepts": list(codes),
    }


def age(vf: Json) -> Json:
    return crit("Patient", tc(LOINC, "30525-0"), valueFilter=vf)


def sex(*codes: str) -> Json:
    return crit(
        "Patient",
        tc(LOINC, "76689-9"),
        valueFilter=concept(*(tc("http://hl7.org/fhir/administrative-gender", c) for c in codes)),
    )


def when(after: str | None = None, before: str | None = None) -> Json:
    tr: Json = {}
    if after:
        tr["afterDate"] = after
    if before:
        tr["beforeDate"] = before
    return tr


def query(
    inclusion: list[list[Json]],
    exclusion: list[list[Json]] | None = None,
    measures: list[Json] | None = None,
    **options: Any,
) -> Json:
    doc: Json = {"version": "2", "inclusionCriteria": inclusion}
    if exclusion:
        doc["exclusionCriteria"] = exclusion
    if measures:
        doc["measures"] = measures
    if options:
        doc["options"] = options
    return doc


ASTHMA = diagnosis(SNOMED, "195967001")
OTITIS = diagnosis(SNOMED, "65363002")
WEIGHT = "29463-7"
TEMPERATURE = "8310-5"
SYSTOLIC = "8480-6"
