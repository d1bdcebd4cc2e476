"""A child's record ends at death: nothing may happen afterwards.

Pathways are simulated independently, so a child who dies in intensive care may still have
follow-up visits planned by another pathway. :func:`truncate_at_death` removes every encounter
that ends after the moment of death (and all resources recorded in it), ends conditions that
were still open, and stops medication that was still active.
"""

from __future__ import annotations

from typing import Any, Final

from connector.sampledata.codes import COND_CLINICAL

_ACTIVE: Final = {"coding": [{"system": COND_CLINICAL, "code": "active"}]}


def truncate_at_death(resources: list[dict[str, Any]], death: str) -> list[dict[str, Any]]:
    """Resources of one child kept when it died at ``death`` (a FHIR dateTime in the
    generator's fixed ``YYYY-MM-DDThh:mm:00Z`` form, so strings compare chronologically)."""
    dropped = {
        f"Encounter/{r['id']}"
        for r in resources
        if r["resourceType"] == "Encounter" and r["period"]["end"] > death
    }
    kept: list[dict[str, Any]] = []
    for res in resources:
        rtype = res["resourceType"]
        if rtype == "Encounter":
            if f"Encounter/{res['id']}" in dropped:
                continue
        elif res["encounter"]["reference"] in dropped or _moment(res) > death:
            continue
        elif rtype == "Procedure" and res.get("performedPeriod", {}).get("end", "") > death:
            res["performedPeriod"] = {"start": res["performedPeriod"]["start"], "end": death}
        elif rtype == "Condition" and res.get("abatementDateTime", "") > death:
            # Still present when the child died.
            del res["abatementDateTime"]
            res["clinicalStatus"] = _ACTIVE
        elif rtype == "MedicationRequest" and res["status"] == "active":
            res["status"] = "stopped"
        kept.append(res)
    return kept


def _moment(res: dict[str, Any]) -> str:
    """When a clinical resource (other than an Encounter) happened or was recorded."""
    for key in ("effectiveDateTime", "authoredOn", "onsetDateTime", "performedDateTime"):
        if key in res:
            value: str = res[key]
            return value
    start: str = res["performedPeriod"]["start"]
    return start
