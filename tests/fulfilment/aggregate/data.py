"""Test data for aggregate queries: generated children with what the generator never varies.

``varied(resources)`` changes a copy of ``connector.sampledata`` output deterministically so
that every part of the query language meets data: weights in g and [lb_av], temperatures in
[degF], measuring methods, condition severities and onsets given only as a recorded date or a
Period, open-ended encounters, times with offsets near midnight, coded Observation values,
MedicationAdministrations, patients without a gender or a birth date, a partial birth date.
"""

from __future__ import annotations

import copy
from random import Random
from typing import Any

Resources = dict[str, list[dict[str, Any]]]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"

SEVERITIES = [("24484000", "Severe"), ("6736007", "Moderate"), ("255604002", "Mild")]
METHODS = [("LA9370-3", "Axillary"), ("LA9367-9", "Rectal"), ("LA9368-7", "Oral")]
SMOKING = [("266919005", "Never smoked"), ("8517006", "Ex-smoker"), ("77176002", "Smoker")]


def varied(original: Resources, seed: int = 1) -> Resources:
    rng = Random(seed)
    res = copy.deepcopy(original)
    for p in res["Patient"]:
        roll = rng.random()
        if roll < 0.03:
            p.pop("gender", None)
        elif roll < 0.05:
            p["gender"] = "other"
        elif roll < 0.07:
            p["gender"] = "unknown"
        roll = rng.random()
        if roll < 0.03:
            p.pop("birthDate", None)
        elif roll < 0.05 and "birthDate" in p:
            p["birthDate"] = p["birthDate"][:7]  # year and month only
    for o in res["Observation"]:
        code = o["code"]["coding"][0]["code"]
        q = o.get("valueQuantity")
        if code == "29463-7" and q:
            roll = rng.random()
            if roll < 0.3:
                o["valueQuantity"] = {
                    "value": round(q["value"] * 1000),
                    "unit": "g",
                    "system": UCUM,
                    "code": "g",
                }
            elif roll < 0.4:
                lb = round(q["value"] / 0.45359237, 1)
                o["valueQuantity"] = {"value": lb, "unit": "lb", "system": UCUM, "code": "[lb_av]"}
        if code == "8310-5" and q:
            if rng.random() < 0.3:
                f = round(q["value"] * 1.8 + 32, 1)
                o["valueQuantity"] = {"value": f, "unit": "degF", "system": UCUM, "code": "[degF]"}
            if rng.random() < 0.6:
                m, d = rng.choice(METHODS)
                o["method"] = {"coding": [{"system": LOINC, "code": m, "display": d}]}
        if rng.random() < 0.02 and "effectiveDateTime" in o:
            day = o["effectiveDateTime"][:10]
            o["effectiveDateTime"] = f"{day}T23:30:00-02:00"  # the next day in UTC
        if rng.random() < 0.01:
            o["status"] = "amended"
    for c in res["Condition"]:
        roll = rng.random()
        if roll < 0.4:
            s, d = rng.choice(SEVERITIES)
            c["severity"] = {"coding": [{"system": SNOMED, "code": s, "display": d}]}
        roll = rng.random()
        if roll < 0.1:
            c.pop("onsetDateTime", None)  # only the recorded date remains
        elif roll < 0.2 and "onsetDateTime" in c:
            c["onsetPeriod"] = {"start": c.pop("onsetDateTime")}
        if rng.random() < 0.15:
            c["clinicalStatus"] = {"coding": [{"system": CLINICAL, "code": "recurrence"}]}
        if rng.random() < 0.1:
            codings = c["code"]["coding"]
            for coding in codings:
                if coding["system"].endswith("icd-10") and coding["code"] == "J45.9":
                    coding["code"] = "J45.0"
    for e in res["Encounter"]:
        if rng.random() < 0.05:
            e.get("period", {}).pop("end", None)
    administrations = []
    for n, mr in enumerate(res["MedicationRequest"]):
        if rng.random() < 0.3:
            administrations.append(
                {
                    "resourceType": "MedicationAdministration",
                    "id": f"ma-{n}",
                    "status": rng.choice(["completed", "completed", "stopped"]),
                    "medicationCodeableConcept": copy.deepcopy(mr["medicationCodeableConcept"]),
                    "subject": copy.deepcopy(mr["subject"]),
                    "effectiveDateTime": mr["authoredOn"],
                }
            )
    res["MedicationAdministration"] = administrations
    smoking = []
    for n, p in enumerate(res["Patient"]):
        if rng.random() < 0.3:
            s, d = rng.choice(SMOKING)
            smoking.append(
                {
                    "resourceType": "Observation",
                    "id": f"smoke-{n}",
                    "status": "final",
                    "code": {"coding": [{"system": LOINC, "code": "72166-2"}]},
                    "subject": {"reference": f"Patient/{p['id']}"},
                    "effectiveDateTime": "2023-05-01",
                    "valueCodeableConcept": {
                        "coding": [{"system": SNOMED, "code": s, "display": d}]
                    },
                }
            )
    res["Observation"].extend(smoking)
    return res
