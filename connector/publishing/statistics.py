"""Dataset statistics computed from the FHIR source, made safe by `catalog.statistics`.

Read through the `FhirSource` port only (file or REST source alike):

* individuals: Patient resources; records: the clinical resources below;
* ages: each child's age in whole years at its latest clinical date (or today if it has none),
  so ages stay those the data describes however old the extract is;
* dates: the clinical date of each record; coding systems: records carrying a code of a system.

Nothing here is published as is: `safe_statistics` rounds counts and withholds small cells.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from catalog.codes import CodingSystem
from catalog.statistics import MIN_CELL, SafeStatistics, safe_statistics
from connector.ports import FhirResource, FhirSource

CLINICAL_TYPES = ("Encounter", "Condition", "Observation", "Procedure", "MedicationRequest")
SYSTEMS: dict[str, CodingSystem] = {
    "http://snomed.info/sct": CodingSystem.SNOMED_CT,
    "http://loinc.org": CodingSystem.LOINC,
    "http://hl7.org/fhir/sid/icd-10": CodingSystem.ICD_10,
    "http://hl7.org/fhir/sid/icd-10-cm": CodingSystem.ICD_10,
    "http://fhir.de/CodeSystem/bfarm/icd-10-gm": CodingSystem.ICD_10_NAT,
    "http://id.who.int/icd/release/11/mms": CodingSystem.ICD_11,
    "http://www.whocc.no/atc": CodingSystem.ATC,
    "http://unitsofmeasure.org": CodingSystem.UCUM,
    "http://www.orpha.net": CodingSystem.ORPHACODE,
    "http://human-phenotype-ontology.org": CodingSystem.HPO,
    "http://www.nlm.nih.gov/research/umls/rxnorm": CodingSystem.RXNORM,
}
DATE_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Encounter": (("period", "start"),),
    "Condition": (("onsetDateTime",), ("recordedDate",)),
    "Observation": (("effectiveDateTime",), ("effectivePeriod", "start"), ("issued",)),
    "Procedure": (("performedDateTime",), ("performedPeriod", "start")),
    "MedicationRequest": (("authoredOn",),),
}


def _date(text: object) -> dt.date | None:
    if not isinstance(text, str) or len(text) < 10:
        return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def clinical_date(resource: FhirResource) -> dt.date | None:
    for path in DATE_PATHS.get(str(resource.get("resourceType")), ()):
        value: Any = resource
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        found = _date(value)
        if found:
            return found
    return None


def _systems(value: Any, found: set[CodingSystem]) -> None:
    """Every coding system under `value` (codings nest in CodeableConcepts and components)."""
    if isinstance(value, dict):
        system = value.get("system")
        if isinstance(system, str) and "code" in value and system in SYSTEMS:
            found.add(SYSTEMS[system])
        for item in value.values():
            _systems(item, found)
    elif isinstance(value, list):
        for item in value:
            _systems(item, found)


def _subject(resource: FhirResource) -> str | None:
    ref = (resource.get("subject") or resource.get("patient") or {}).get("reference")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _age(birth: dt.date, on: dt.date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


async def compute_statistics(
    source: FhirSource, *, today: dt.date, min_cell: int = MIN_CELL
) -> SafeStatistics:
    """Scan the source once and return what the catalog may publish."""
    births: dict[str, dt.date] = {}
    individuals = 0
    async for patient in source.search("Patient"):
        individuals += 1
        birth = _date(patient.get("birthDate"))
        if birth and isinstance(patient.get("id"), str):
            births[patient["id"]] = birth
    latest: dict[str, dt.date] = {}
    dates: list[dt.date] = []
    systems: Counter[CodingSystem] = Counter()
    records = 0
    for rtype in CLINICAL_TYPES:
        async for resource in source.search(rtype):
            records += 1
            found: set[CodingSystem] = set()
            _systems(resource, found)
            systems.update(found)
            when = clinical_date(resource)
            if when is None:
                continue
            dates.append(when)
            who = _subject(resource)
            if who is not None and (who not in latest or when > latest[who]):
                latest[who] = when
    system_counts: dict[CodingSystem | str, int] = dict(systems.items())
    ages = [_age(b, latest.get(pid, today)) for pid, b in births.items()]
    return safe_statistics(
        records=records,
        individuals=individuals,
        ages=[a for a in ages if a >= 0],
        dates=dates,
        coding_system_counts=system_counts,
        min_cell=min_cell,
    )
