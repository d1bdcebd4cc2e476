"""Synthetic flat-view frames -> FHIR R4 resources, streamed as a Bundle or as NDJSON.

Every resource gets ``meta.tag`` SYNTH and nothing that identifies a person: no identifier,
name, address, telecom or photo (the flat views carry none, and nothing here adds one). Ids are
the fresh ones ``tables.decode`` made. References point inside the output: ``urn:uuid:<id>``
in a Bundle (each entry's ``fullUrl``; a ``transaction`` entry POSTs to its type, so a server
assigns its own ids and rewrites the references), ``<Type>/<id>`` in NDJSON (as Bulk Data
files do).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
import pandas as pd

from connector.ports import FhirResource
from connector.synthetic.tables import Frames

SYNTH_TAG = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SYNTH",
    "display": "synthetic",
}
UCUM = "http://unitsofmeasure.org"
_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_DISCHARGE = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

_ISO = "%Y-%m-%dT%H:%M:%SZ"

Ref = Callable[[str, str], str]


def ndjson_ref(rtype: str, rid: str) -> str:
    return f"{rtype}/{rid}"


def bundle_ref(rtype: str, rid: str) -> str:
    return f"urn:uuid:{rid}"


def resource_refs(resource: Any) -> Iterator[str]:
    """Every ``reference`` inside a resource (for checks that references resolve)."""
    if isinstance(resource, dict):
        for key, value in resource.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from resource_refs(value)
    elif isinstance(resource, list):
        for item in resource:
            yield from resource_refs(item)


def _present(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return not (isinstance(value, str) and value == "")


def _instant(value: Any) -> str:
    return str(value)  # formatted by _rows


def _coding(system: Any, code: Any, display: Any = None) -> dict[str, str]:
    coding = {"code": str(code)}
    if _present(system):
        coding = {"system": str(system), **coding}
    if _present(display):
        coding["display"] = str(display)
    return coding


def _concept(system: Any, code: Any, display: Any = None) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)]}


def _base(rtype: str, rid: str) -> FhirResource:
    return {"resourceType": rtype, "id": rid, "meta": {"tag": [dict(SYNTH_TAG)]}}


def _rows(frame: pd.DataFrame | None) -> Iterator[dict[str, Any]]:
    """Rows as dicts, dates already formatted (a vectorised strftime, not one per value)."""
    if frame is None or frame.empty:
        return iter(())
    frame = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            text = frame[column].dt.strftime("%Y-%m-%d" if column == "birth_date" else _ISO)
            frame[column] = text.astype(object).where(frame[column].notna(), None)
    records: list[dict[str, Any]] = frame.to_dict("records")  # type: ignore[assignment]
    return iter(records)


def resources(frames: Frames, ref: Ref) -> Iterator[FhirResource]:
    """Every resource of the synthetic patients, each patient's resources together: the
    Patient, then its encounters, conditions, observations, procedures, medication requests."""
    tables = {
        "encounter": _encounter,
        "condition": _condition,
        "observation": _observation,
        "procedure": _procedure,
        "medication_request": _medication_request,
    }
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in tables:
        by_patient: dict[str, list[dict[str, Any]]] = {}
        for row in _rows(frames.get(name)):
            by_patient.setdefault(row["patient_id"], []).append(row)
        grouped[name] = by_patient
    for row in _rows(frames["patient"]):
        pid = row["patient_id"]
        yield _patient(row)
        for name, build in tables.items():
            for child in grouped[name].get(pid, ()):
                yield build(child, ref)


def _patient(row: dict[str, Any]) -> FhirResource:
    out = _base("Patient", row["patient_id"])
    if _present(row["gender"]):
        out["gender"] = row["gender"]
    out["birthDate"] = row["birth_date"]
    if _present(row["deceased_at"]):
        out["deceasedDateTime"] = _instant(row["deceased_at"])
    return out


def _subject(out: FhirResource, row: dict[str, Any], ref: Ref, *, encounter: bool = True) -> None:
    out["subject"] = {"reference": ref("Patient", row["patient_id"])}
    if encounter and _present(row.get("encounter_id")):
        out["encounter"] = {"reference": ref("Encounter", row["encounter_id"])}


def _encounter(row: dict[str, Any], ref: Ref) -> FhirResource:
    out = _base("Encounter", row["encounter_id"])
    out["status"] = row["status"] if _present(row["status"]) else "finished"
    out["class"] = (
        _coding(row["class_system"], row["class_code"])
        if _present(row["class_code"])
        else {"system": _ACT_CODE, "code": "AMB"}
    )
    if _present(row["service_type_code"]):
        out["serviceType"] = _concept(row["service_type_system"], row["service_type_code"])
    _subject(out, row, ref, encounter=False)
    period = {"start": _instant(row["start"])}
    if _present(row["end"]):
        period["end"] = _instant(row["end"])
    out["period"] = period
    if _present(row["discharge_code"]):
        out["hospitalization"] = {
            "dischargeDisposition": _concept(_DISCHARGE, row["discharge_code"])
        }
    return out


def _condition(row: dict[str, Any], ref: Ref) -> FhirResource:
    out = _base("Condition", row["condition_id"])
    if _present(row["clinical_status"]):
        out["clinicalStatus"] = _concept(_CLINICAL, row["clinical_status"])
    if _present(row["verification_status"]):
        out["verificationStatus"] = _concept(_VERIFICATION, row["verification_status"])
    if _present(row.get("severity_code")):
        out["severity"] = _concept(row.get("severity_system"), row["severity_code"])
    out["code"] = _concept(row["code_system"], row["code"], row["code_display"])
    _subject(out, row, ref)
    out["onsetDateTime"] = _instant(row["onset"])
    if _present(row.get("abatement")):
        out["abatementDateTime"] = _instant(row["abatement"])
    out["recordedDate"] = _instant(row["recorded"])
    return out


def _observation(row: dict[str, Any], ref: Ref) -> FhirResource:
    out = _base("Observation", row["observation_id"])
    out["status"] = row["status"] if _present(row["status"]) else "final"
    if _present(row["category_code"]):
        out["category"] = [_concept(_CATEGORY, row["category_code"])]
    out["code"] = _concept(row["code_system"], row["code"], row["code_display"])
    _subject(out, row, ref)
    out["effectiveDateTime"] = _instant(row["effective"])
    if _present(row["value_quantity"]):
        quantity: dict[str, Any] = {"value": float(row["value_quantity"])}
        if _present(row["value_unit"]):
            quantity |= {"unit": row["value_unit_display"] or row["value_unit"],
                         "system": UCUM, "code": row["value_unit"]}  # fmt: skip
        out["valueQuantity"] = quantity
    elif _present(row["value_code"]):
        out["valueCodeableConcept"] = _concept(row["value_system"], row["value_code"])
    if _present(row["interpretation_code"]):
        out["interpretation"] = [_concept(_INTERPRETATION, row["interpretation_code"])]
    return out


def _procedure(row: dict[str, Any], ref: Ref) -> FhirResource:
    out = _base("Procedure", row["procedure_id"])
    out["status"] = row["status"] if _present(row["status"]) else "completed"
    out["code"] = _concept(row["code_system"], row["code"], row["code_display"])
    _subject(out, row, ref)
    if _present(row.get("performed_end")):
        out["performedPeriod"] = {"start": _instant(row["performed"]),
                                  "end": _instant(row["performed_end"])}  # fmt: skip
    else:
        out["performedDateTime"] = _instant(row["performed"])
    return out


def _medication_request(row: dict[str, Any], ref: Ref) -> FhirResource:
    out = _base("MedicationRequest", row["medication_request_id"])
    out["status"] = row["status"] if _present(row["status"]) else "active"
    out["intent"] = row["intent"] if _present(row["intent"]) else "order"
    out["medicationCodeableConcept"] = _concept(
        row["code_system"], row["code"], row["code_display"]
    )
    _subject(out, row, ref)
    out["authoredOn"] = _instant(row["authored"])
    dosage: dict[str, Any] = {}
    if _present(row.get("route")):
        dosage["route"] = {"text": row["route"]}
    if _present(row.get("dose_value")):
        dose: dict[str, Any] = {"value": float(row["dose_value"])}
        if _present(row.get("dose_unit")):
            dose |= {"unit": row["dose_unit"], "system": UCUM, "code": row["dose_unit"]}
        dosage["doseAndRate"] = [{"doseQuantity": dose}]
    if dosage:
        out["dosageInstruction"] = [dosage]
    return out


# -- serialisation ---------------------------------------------------------------------------

BUNDLE_TYPES = ("collection", "transaction")


def bundle_head(*, bundle_type: str, bundle_id: str, timestamp: str) -> bytes:
    """The start of a Bundle up to its first entry; entries follow from :func:`bundle_entry`
    (comma-separated), then :data:`BUNDLE_TAIL`. So a Bundle streams, never held whole."""
    head = {"resourceType": "Bundle", "id": bundle_id, "meta": {"tag": [SYNTH_TAG]},
            "type": bundle_type, "timestamp": timestamp}  # fmt: skip
    return orjson.dumps(head)[:-1] + b',"entry":['


def bundle_entry(resource: FhirResource, *, bundle_type: str) -> bytes:
    entry: dict[str, Any] = {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}
    if bundle_type == "transaction":
        entry["request"] = {"method": "POST", "url": resource["resourceType"]}
    return orjson.dumps(entry)


BUNDLE_TAIL = b"]}"


def bundle_chunks(
    items: Iterable[FhirResource], *, bundle_type: str, bundle_id: str, timestamp: str
) -> Iterator[bytes]:
    """A whole Bundle as chunks (one per entry)."""
    yield bundle_head(bundle_type=bundle_type, bundle_id=bundle_id, timestamp=timestamp)
    for n, resource in enumerate(items):
        yield (b"," if n else b"") + bundle_entry(resource, bundle_type=bundle_type)
    yield BUNDLE_TAIL


def report_document(report: bytes, page: bytes, *, document_id: str, date: str) -> FhirResource:
    """The model's report as a DocumentReference (JSON and the HTML page as attachments),
    the last entry of a synthetic Bundle."""
    import base64

    def attachment(content_type: str, title: str, data: bytes) -> dict[str, Any]:
        encoded = base64.b64encode(data).decode()
        return {"attachment": {"contentType": content_type, "title": title, "data": encoded}}

    return {
        "resourceType": "DocumentReference",
        "id": document_id,
        "meta": {"tag": [dict(SYNTH_TAG)]},
        "status": "current",
        "type": {"text": "Synthetic data quality, privacy and utility report"},
        "date": date,
        "description": "How faithful and how private the synthetic patients of this Bundle "
        "are, computed at the hospital (SDMetrics quality report, exact copies, distance to "
        "closest record, disclosure protection, cohort questions).",
        "content": [
            attachment("application/json", "report.json", report),
            attachment("text/html", "report.html", page),
        ],
    }


def ndjson_chunks(items: Iterable[FhirResource]) -> Iterator[bytes]:
    for resource in items:
        yield orjson.dumps(resource) + b"\n"
