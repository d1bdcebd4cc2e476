"""Generated resources are valid FHIR R4 (checked with fhir.resources), coded with the
expected terminologies, and every reference resolves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from connector.sampledata import PROFILES, RESOURCE_TYPES
from connector.sampledata.codes import ATC, ICD10, LOINC, SNOMED, UCUM, V3_ACT

from .conftest import Resources

Hospitals = dict[str, tuple[Path, Resources]]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_a_sample_of_every_type_validates_with_fhir_resources(
    hospitals: Hospitals, profile: str
) -> None:
    _, data = hospitals[profile]
    assert set(data) == set(RESOURCE_TYPES)
    checked = 0
    for rtype, resources in data.items():
        model = get_fhir_model_class(rtype)
        # Every resource of the rare types, every 25th of the common ones, plus the last.
        step = 1 if len(resources) < 200 else 25
        # ... and every resource carrying a rarer element (death, discharge disposition).
        rare = [r for r in resources if "deceasedDateTime" in r or "hospitalization" in r]
        for res in [*resources[::step], resources[-1], *rare]:
            parsed = model.model_validate(res)
            assert parsed.model_dump(mode="json")["id"] == res["id"]
            checked += 1
    assert checked > 300


def _refs(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_refs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_refs(item))
    return found


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_reference_resolves(hospitals: Hospitals, profile: str) -> None:
    _, data = hospitals[profile]
    known = {f"{rtype}/{r['id']}" for rtype, rs in data.items() for r in rs}
    total = 0
    for resources in data.values():
        for res in resources:
            for ref in _refs(res):
                assert ref in known, f"{res['resourceType']}/{res['id']} -> {ref}"
                total += 1
    assert total > 10_000
    # Clinical resources point at an encounter of the same patient.
    subject_of = {f"Encounter/{e['id']}": e["subject"]["reference"] for e in data["Encounter"]}
    for rtype in ("Condition", "Observation", "Procedure", "MedicationRequest"):
        for res in data[rtype]:
            assert subject_of[res["encounter"]["reference"]] == res["subject"]["reference"]


def test_codings_use_the_expected_systems(hospitals: Hospitals) -> None:
    _, data = hospitals["general"]
    for cond in data["Condition"]:
        systems = [c["system"] for c in cond["code"]["coding"]]
        assert systems == [SNOMED, ICD10]
        icd = cond["code"]["coding"][1]["code"]
        assert icd[0].isalpha() and icd[1:3].isdigit()
        if "abatementDateTime" in cond:
            assert cond["clinicalStatus"]["coding"][0]["code"] == "resolved"
    for obs in data["Observation"]:
        assert obs["code"]["coding"][0]["system"] == LOINC
        quantities = (
            [obs["valueQuantity"]]
            if "valueQuantity" in obs
            else [comp["valueQuantity"] for comp in obs["component"]]
        )
        for q in quantities:
            assert q["system"] == UCUM and q["code"] == q["unit"] and q["code"]
    for proc in data["Procedure"]:
        assert proc["code"]["coding"][0]["system"] == SNOMED
    for med in data["MedicationRequest"]:
        coding = med["medicationCodeableConcept"]["coding"][0]
        assert coding["system"] == ATC and len(coding["code"]) == 7
    classes = {e["class"]["code"] for e in data["Encounter"]}
    assert classes == {"AMB", "EMER", "IMP"}
    assert {e["class"]["system"] for e in data["Encounter"]} == {V3_ACT}


def test_picu_stays_are_inpatient_encounters_at_the_picu(hospitals: Hospitals) -> None:
    _, data = hospitals["picu"]
    picu_loc = [
        f"Location/{loc['id']}" for loc in data["Location"]
        if loc["type"][0]["coding"][0]["code"] == "PEDICU"
    ]  # fmt: skip
    assert len(picu_loc) == 1
    stays = [e for e in data["Encounter"] if e["serviceType"]["coding"][0]["code"] == "picu"]
    assert len(stays) > 50
    for stay in stays:
        assert stay["class"]["code"] == "IMP"
        assert stay["location"][0]["location"]["reference"] == picu_loc[0]
        assert stay["period"]["start"] < stay["period"]["end"]
