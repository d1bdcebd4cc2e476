"""FHIR R4 resource builders for the generator's hot loop: plain dicts, no model classes.

Times are floats in days relative to the run's reference date (midnight UTC; negative is the
past) and are written as FHIR ``dateTime`` with minute precision. Ids are deterministic:
``<prefix>-<counter>`` shaped like a UUID, the prefix hashed from seed, profile and resource
type, so two hospitals generated with different seeds never share ids.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Any

from connector.sampledata.codes import (
    COND_CATEGORY,
    COND_CLINICAL,
    COND_VERIFICATION,
    DIAGNOSES,
    DRUGS,
    ENCOUNTER_CLASSES,
    LOINC,
    MEASURES,
    OBS_CATEGORY,
    PROCEDURES,
    SNOMED,
    UCUM,
    UNITS,
    V3_ROLE,
    Json,
    concept,
)
from connector.sampledata.record import truncate_at_death
from connector.sampledata.writer import NdjsonWriter

_CLINICAL = {s: {"coding": [{"system": COND_CLINICAL, "code": s}]} for s in ("active", "resolved")}
_CONFIRMED = {"coding": [{"system": COND_VERIFICATION, "code": "confirmed"}]}
_COND_CATEGORY = [
    {"coding": [{"system": COND_CATEGORY, "code": "encounter-diagnosis",
                 "display": "Encounter Diagnosis"}]}
]  # fmt: skip
_OBS_CATEGORIES = {
    c: [{"coding": [{"system": OBS_CATEGORY, "code": c}]}]
    for c in ("vital-signs", "laboratory", "exam")
}
_EXPIRED = concept("http://terminology.hl7.org/CodeSystem/discharge-disposition", "exp", "Expired")
_OBS_CODES = {k: concept(LOINC, m.loinc, m.display) for k, m in MEASURES.items()}
_PROC_CODES = {k: concept(SNOMED, code, display) for k, (code, display) in PROCEDURES.items()}
_DIAG_CODES = {k: d.codeable() for k, d in DIAGNOSES.items()}
_DRUG_CODES = {k: concept("http://www.whocc.no/atc", d.atc, d.display) for k, d in DRUGS.items()}


def _prefix(seed: int, profile: str, rtype: str) -> str:
    h = hashlib.sha256(f"{seed}:{profile}:{rtype}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-8{h[17:20]}-"


class Emitter:
    """Builds resources and hands them to the writer; returns references to them."""

    def __init__(self, writer: NdjsonWriter, *, seed: int, profile: str, reference: date) -> None:
        self._writer = writer
        self._seed = seed
        self._profile = profile
        self._ref_day = reference
        self._prefixes: dict[str, str] = {}
        self._counters: dict[str, int] = {}
        self._days: dict[int, str] = {}
        self.org_ref = ""
        self.unit_refs: dict[str, Json] = {}
        self._service: dict[str, Json] = {}
        # The current child's clinical resources, written when the child is complete.
        self._pending: list[dict[str, Any]] = []
        # The current child's encounters: when each started and was first weighed.
        self._started: dict[str, float] = {}
        self._weighed: dict[str, float] = {}

    # -- ids and times ---------------------------------------------------------------------
    def new_id(self, rtype: str) -> str:
        prefix = self._prefixes.get(rtype)
        if prefix is None:
            prefix = self._prefixes[rtype] = _prefix(self._seed, self._profile, rtype)
        n = self._counters.get(rtype, 0) + 1
        self._counters[rtype] = n
        return f"{prefix}{n:012x}"

    def day(self, t: float) -> str:
        d = int(t // 1)
        s = self._days.get(d)
        if s is None:
            s = self._days[d] = (self._ref_day + timedelta(days=d)).isoformat()
        return s

    def dt(self, t: float) -> str:
        minutes = round(t * 1440.0)
        d, m = divmod(minutes, 1440)
        return f"{self.day(d)}T{m // 60:02d}:{m % 60:02d}:00Z"

    # -- hospital ----------------------------------------------------------------------------
    def hospital(self, name: str, city: str, country: str, org_system: str) -> None:
        org_id = self.new_id("Organization")
        self.org_ref = f"Organization/{org_id}"
        self._writer.write(
            {
                "resourceType": "Organization",
                "id": org_id,
                "identifier": [{"system": org_system, "value": self._profile.upper()}],
                "active": True,
                "type": [concept("http://terminology.hl7.org/CodeSystem/organization-type",
                                 "prov", "Healthcare Provider")],
                "name": name,
                "address": [{"city": city, "country": country}],
            }
        )  # fmt: skip
        org = {"reference": self.org_ref}
        for key, (role, unit_name, _cls) in UNITS.items():
            loc_id = self.new_id("Location")
            self._writer.write(
                {
                    "resourceType": "Location",
                    "id": loc_id,
                    "status": "active",
                    "name": f"{unit_name}, {name}",
                    "mode": "instance",
                    "type": [concept(V3_ROLE, role, unit_name)],
                    "managingOrganization": org,
                }
            )
            self.unit_refs[key] = {"reference": f"Location/{loc_id}", "display": unit_name}
            self._service[key] = {
                "coding": [{"system": f"{org_system}/service", "code": key, "display": unit_name}],
                "text": unit_name,
            }

    # -- clinical resources ------------------------------------------------------------------
    def begin_child(self) -> str:
        """Reserves the next Patient id; returns its reference."""
        self._pending = []
        self._started = {}
        self._weighed = {}
        return f"Patient/{self.new_id('Patient')}"

    def started_at(self, encounter: str) -> float:
        return self._started[encounter]

    def weighed_at(self, encounter: str) -> float:
        """When the child was first weighed in the encounter (infinity: not yet)."""
        return self._weighed.get(encounter, float("inf"))

    def end_child(self, patient: str, fields: dict[str, Any], death: float | None) -> None:
        """Writes the Patient (``fields``: demographics) and its clinical resources, cut at
        ``death`` if the child died."""
        res = {"resourceType": "Patient", "id": patient.removeprefix("Patient/"), **fields}
        pending = self._pending
        if death is not None:
            when = self.dt(death)
            res["deceasedDateTime"] = when
            pending = truncate_at_death(pending, when)
        res["managingOrganization"] = {"reference": self.org_ref}
        self._writer.write(res)
        for r in pending:
            self._writer.write(r)
        self._pending = []

    def encounter(
        self,
        patient: str,
        unit: str,
        start: float,
        end: float,
        reason: str | None = None,
        *,
        died: bool = False,
    ) -> str:
        eid = self.new_id("Encounter")
        cls = UNITS[unit][2]
        period = {"start": self.dt(start), "end": self.dt(end)}
        res: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": eid,
            "status": "finished",
            "class": ENCOUNTER_CLASSES[cls],
            "serviceType": self._service[unit],
            "subject": {"reference": patient},
            "period": period,
            "location": [
                {"location": self.unit_refs[unit], "status": "completed", "period": period}
            ],
            "serviceProvider": {"reference": self.org_ref},
        }
        if reason is not None:
            res["reasonCode"] = [_DIAG_CODES[reason]]
        if died:
            res["hospitalization"] = {"dischargeDisposition": _EXPIRED}
        if cls == "IMP":
            res["length"] = {"value": round(end - start, 1), "unit": "days",
                             "system": UCUM, "code": "d"}  # fmt: skip
        self._pending.append(res)
        self._started[f"Encounter/{eid}"] = start
        return f"Encounter/{eid}"

    def condition(
        self,
        patient: str,
        encounter: str,
        diagnosis: str,
        onset: float,
        abatement: float | None = None,
    ) -> None:
        res: dict[str, Any] = {
            "resourceType": "Condition",
            "id": self.new_id("Condition"),
            "clinicalStatus": _CLINICAL["active" if abatement is None else "resolved"],
            "verificationStatus": _CONFIRMED,
            "category": _COND_CATEGORY,
            "code": _DIAG_CODES[diagnosis],
            "subject": {"reference": patient},
            "encounter": {"reference": encounter},
            "onsetDateTime": self.dt(onset),
            "recordedDate": self.dt(onset),
        }
        if abatement is not None:
            res["abatementDateTime"] = self.dt(abatement)
        self._pending.append(res)

    def observation(
        self, patient: str, encounter: str, measure: str, t: float, value: float
    ) -> None:
        m = MEASURES[measure]
        if measure == "weight" and t < self._weighed.get(encounter, float("inf")):
            self._weighed[encounter] = t
        self._pending.append(
            {
                "resourceType": "Observation",
                "id": self.new_id("Observation"),
                "status": "final",
                "category": _OBS_CATEGORIES[m.category],
                "code": _OBS_CODES[measure],
                "subject": {"reference": patient},
                "encounter": {"reference": encounter},
                "effectiveDateTime": self.dt(t),
                "valueQuantity": {"value": value, "unit": m.unit, "system": UCUM, "code": m.unit},
            }
        )

    def blood_pressure(
        self, patient: str, encounter: str, t: float, systolic: int, diastolic: int
    ) -> None:
        self._pending.append(
            {
                "resourceType": "Observation",
                "id": self.new_id("Observation"),
                "status": "final",
                "category": _OBS_CATEGORIES["vital-signs"],
                "code": _OBS_CODES["bp"],
                "subject": {"reference": patient},
                "encounter": {"reference": encounter},
                "effectiveDateTime": self.dt(t),
                "component": [
                    {"code": _OBS_CODES["bp_sys"],
                     "valueQuantity": {"value": systolic, "unit": "mm[Hg]", "system": UCUM,
                                       "code": "mm[Hg]"}},
                    {"code": _OBS_CODES["bp_dia"],
                     "valueQuantity": {"value": diastolic, "unit": "mm[Hg]", "system": UCUM,
                                       "code": "mm[Hg]"}},
                ],
            }
        )  # fmt: skip

    def procedure(
        self, patient: str, encounter: str, proc: str, start: float, end: float | None = None
    ) -> None:
        res: dict[str, Any] = {
            "resourceType": "Procedure",
            "id": self.new_id("Procedure"),
            "status": "completed",
            "code": _PROC_CODES[proc],
            "subject": {"reference": patient},
            "encounter": {"reference": encounter},
        }
        if end is None:
            res["performedDateTime"] = self.dt(start)
        else:
            res["performedPeriod"] = {"start": self.dt(start), "end": self.dt(end)}
        self._pending.append(res)

    def medication(
        self,
        patient: str,
        encounter: str,
        drug: str,
        t: float,
        weight_kg: float,
        *,
        active: bool,
    ) -> None:
        d = DRUGS[drug]
        # A rate already per kg (vasoactive infusions) is not multiplied by the weight.
        per_kg = "/kg" in d.dose_unit
        dose = d.dose_per_kg if per_kg else min(d.dose_per_kg * weight_kg, d.max_dose)
        dose = round(dose, 2) if dose < 10 else float(round(dose))
        self._pending.append(
            {
                "resourceType": "MedicationRequest",
                "id": self.new_id("MedicationRequest"),
                "status": "active" if active else "completed",
                "intent": "order",
                "medicationCodeableConcept": _DRUG_CODES[drug],
                "subject": {"reference": patient},
                "encounter": {"reference": encounter},
                "authoredOn": self.dt(t),
                "dosageInstruction": [
                    {
                        "text": f"{dose:g} {d.dose_unit} {d.route} {d.frequency}",
                        "route": {"text": d.route},
                        "doseAndRate": [
                            {"doseQuantity": {"value": dose, "unit": d.dose_unit,
                                              "system": UCUM, "code": d.dose_unit}}
                        ],
                    }
                ],
            }
        )  # fmt: skip
