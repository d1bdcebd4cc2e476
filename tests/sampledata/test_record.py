"""A child who dies in intensive care has nothing recorded after death."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connector.sampledata.record import truncate_at_death

from .conftest import Resources

Hospitals = dict[str, tuple[Path, Resources]]
MOMENTS = ("effectiveDateTime", "authoredOn", "onsetDateTime", "performedDateTime",
           "abatementDateTime")  # fmt: skip


def _enc(eid: str, start: str, end: str) -> dict[str, Any]:
    return {"resourceType": "Encounter", "id": eid, "period": {"start": start, "end": end}}


def test_truncate_at_death_drops_later_care_and_closes_what_was_open() -> None:
    death = "2023-05-01T10:00:00Z"
    resources: list[dict[str, Any]] = [
        _enc("a", "2023-04-01T08:00:00Z", "2023-04-01T09:00:00Z"),
        _enc("fatal", "2023-04-28T08:00:00Z", death),
        _enc("later", "2023-06-01T08:00:00Z", "2023-06-01T09:00:00Z"),
        {"resourceType": "Observation", "id": "o1", "encounter": {"reference": "Encounter/a"},
         "effectiveDateTime": "2023-04-01T08:10:00Z"},
        {"resourceType": "Observation", "id": "o2", "encounter": {"reference": "Encounter/later"},
         "effectiveDateTime": "2023-06-01T08:10:00Z"},
        {"resourceType": "Observation", "id": "o3", "encounter": {"reference": "Encounter/fatal"},
         "effectiveDateTime": "2023-05-01T11:00:00Z"},
        {"resourceType": "Condition", "id": "c1", "encounter": {"reference": "Encounter/a"},
         "onsetDateTime": "2023-04-01T08:00:00Z", "abatementDateTime": "2023-06-01T00:00:00Z",
         "clinicalStatus": {"coding": [{"code": "resolved"}]}},
        {"resourceType": "MedicationRequest", "id": "m1", "status": "active",
         "encounter": {"reference": "Encounter/a"}, "authoredOn": "2023-04-01T08:20:00Z"},
        {"resourceType": "Procedure", "id": "p1", "encounter": {"reference": "Encounter/fatal"},
         "performedPeriod": {"start": "2023-04-28T09:00:00Z", "end": "2023-05-02T00:00:00Z"}},
    ]  # fmt: skip
    kept = {r["id"]: r for r in truncate_at_death(resources, death)}
    assert sorted(kept) == ["a", "c1", "fatal", "m1", "o1", "p1"]
    assert "abatementDateTime" not in kept["c1"]
    assert kept["c1"]["clinicalStatus"]["coding"][0]["code"] == "active"
    assert kept["m1"]["status"] == "stopped"
    assert kept["p1"]["performedPeriod"]["end"] == death


def test_deaths_in_picu_end_the_record(hospitals: Hospitals) -> None:
    _, data = hospitals["picu"]
    deaths = {f"Patient/{p['id']}": p["deceasedDateTime"] for p in data["Patient"]
              if "deceasedDateTime" in p}  # fmt: skip
    assert 3 <= len(deaths) < 0.1 * len(data["Patient"])
    fatal = [e for e in data["Encounter"] if "hospitalization" in e]
    assert {e["subject"]["reference"] for e in fatal} == set(deaths)
    for enc in fatal:
        assert enc["hospitalization"]["dischargeDisposition"]["coding"][0]["code"] == "exp"
        assert enc["period"]["end"] == deaths[enc["subject"]["reference"]]
        assert enc["serviceType"]["coding"][0]["code"] == "picu"
    for rtype in ("Encounter", "Condition", "Observation", "Procedure", "MedicationRequest"):
        for res in data[rtype]:
            death = deaths.get(res["subject"]["reference"])
            if death is None:
                continue
            holders = [res, res.get("period", {}), res.get("performedPeriod", {})]
            for h in holders:
                for key in (*MOMENTS, "start", "end"):
                    if key in h:
                        assert h[key] <= death, (rtype, key, h[key], death)
            if rtype == "MedicationRequest":
                assert res["status"] != "active"
    # In every profile, a death always comes with its fatal PICU stay.
    for name, (_, other) in hospitals.items():
        dead = {p["id"] for p in other["Patient"] if "deceasedDateTime" in p}
        stays = {e["subject"]["reference"].split("/")[1] for e in other["Encounter"]
                 if "hospitalization" in e}  # fmt: skip
        assert dead == stays, name
