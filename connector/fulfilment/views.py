"""The flattened tables every fulfilment reads: SQL-on-FHIR v2 ViewDefinitions, one per table.

The seam runs these views over a dataset's part of the FHIR data (its scope), removes opted-out
patients and keeps the result as a columnar cache per data version (``FlatViews``). Fulfilments
(aggregate queries, synthetic bundles, extracts) read only these tables, never FHIR, so the
privacy-critical steps happen once, before any of them.

Tables and their columns (SQL types of the cache; ``*_id`` columns are resource ids, joined on
``patient_id``):

``patient``
    patient_id, birth_date DATE, gender, deceased_at TIMESTAMP
``encounter``
    encounter_id, patient_id, status, class_system, class_code, service_type_system,
    service_type_code, start TIMESTAMP, end TIMESTAMP, discharge_code
``condition``
    condition_id, patient_id, encounter_id, code_system, code, code_display, onset TIMESTAMP,
    abatement TIMESTAMP, recorded TIMESTAMP, clinical_status, verification_status,
    severity_system, severity_code
``observation``
    observation_id, patient_id, encounter_id, status, category_code, code_system, code,
    code_display, effective TIMESTAMP, value_quantity DOUBLE, value_unit (UCUM code),
    value_unit_display, value_system, value_code, interpretation_code, method_system,
    method_code
``observation_component``
    observation_id, patient_id, code_system, code, value_quantity DOUBLE, value_unit
``procedure``
    procedure_id, patient_id, encounter_id, status, code_system, code, code_display,
    performed TIMESTAMP, performed_end TIMESTAMP
``medication_request``
    medication_request_id, patient_id, encounter_id, status, intent, code_system, code,
    code_display, authored TIMESTAMP, dose_value DOUBLE, dose_unit, route
``medication_administration``
    medication_administration_id, patient_id, encounter_id, status, code_system, code,
    code_display, effective TIMESTAMP, dose_value DOUBLE, dose_unit
``coding``
    resource_type, resource_id, patient_id, system, code: every coding of each clinical
    resource's main code (``Condition.code``, ``Observation.code``, ``Procedure.code``, the
    medication of ``MedicationRequest`` / ``MedicationAdministration``), so a criterion
    matches whichever coding system it names; the clinical tables carry the first coding.

Timestamps are UTC without a zone; partial FHIR dates (``2012-03``) take the start of their
period. A ``dateTime`` column whose element is a ``Period`` in the data takes its start.
"""

from __future__ import annotations

from typing import Any, Final

ViewDefinition = dict[str, Any]


def _col(name: str, path: str, type_: str = "string") -> dict[str, str]:
    return {"name": name, "path": path, "type": type_}


def _first(element: str) -> str:
    return f"{element}.coding.first()"


def _code_columns(element: str) -> list[dict[str, str]]:
    return [
        _col("code_system", f"{_first(element)}.system", "uri"),
        _col("code", f"{_first(element)}.code", "code"),
        _col(
            "code_display",
            f"iif({_first(element)}.display.exists(), {_first(element)}.display, {element}.text)",
        ),
    ]


def _when(choice: str) -> str:
    """A choice element as dateTime, or the start of its Period."""
    return (
        f"iif({choice}.ofType(dateTime).exists(), {choice}.ofType(dateTime), "
        f"{choice}.ofType(Period).start)"
    )


_PATIENT_REF = "subject.getReferenceKey(Patient)"
_ENCOUNTER_REF = "encounter.getReferenceKey(Encounter)"

VIEWS: Final[dict[str, ViewDefinition]] = {
    "patient": {
        "resource": "Patient",
        "select": [
            {
                "column": [
                    _col("patient_id", "getResourceKey()", "id"),
                    _col("birth_date", "birthDate", "date"),
                    _col("gender", "gender", "code"),
                    _col("deceased_at", "deceased.ofType(dateTime)", "dateTime"),
                ]
            }
        ],
    },
    "encounter": {
        "resource": "Encounter",
        "select": [
            {
                "column": [
                    _col("encounter_id", "getResourceKey()", "id"),
                    _col("patient_id", _PATIENT_REF, "id"),
                    _col("status", "status", "code"),
                    _col("class_system", "class.system", "uri"),
                    _col("class_code", "class.code", "code"),
                    _col("service_type_system", f"{_first('serviceType')}.system", "uri"),
                    _col("service_type_code", f"{_first('serviceType')}.code", "code"),
                    _col("start", "period.start", "dateTime"),
                    _col("end", "period.end", "dateTime"),
                    _col(
                        "discharge_code",
                        f"{_first('hospitalization.dischargeDisposition')}.code",
                        "code",
                    ),
                ]
            }
        ],
    },
    "condition": {
        "resource": "Condition",
        "select": [
            {
                "column": [
                    _col("condition_id", "getResourceKey()", "id"),
                    _col("patient_id", _PATIENT_REF, "id"),
                    _col("encounter_id", _ENCOUNTER_REF, "id"),
                    *_code_columns("code"),
                    _col("onset", _when("onset"), "dateTime"),
                    _col("abatement", _when("abatement"), "dateTime"),
                    _col("recorded", "recordedDate", "dateTime"),
                    _col("clinical_status", f"{_first('clinicalStatus')}.code", "code"),
                    _col("verification_status", f"{_first('verificationStatus')}.code", "code"),
                    _col("severity_system", f"{_first('severity')}.system", "uri"),
                    _col("severity_code", f"{_first('severity')}.code", "code"),
                ]
            }
        ],
    },
    "observation": {
        "resource": "Observation",
        "select": [
            {
                "column": [
                    _col("observation_id", "getResourceKey()", "id"),
                    _col("patient_id", _PATIENT_REF, "id"),
                    _col("encounter_id", _ENCOUNTER_REF, "id"),
                    _col("status", "status", "code"),
                    _col("category_code", f"{_first('category.first()')}.code", "code"),
                    *_code_columns("code"),
                    _col("effective", _when("effective"), "dateTime"),
                    _col("value_quantity", "value.ofType(Quantity).value", "decimal"),
                    _col("value_unit", "value.ofType(Quantity).code", "code"),
                    _col("value_unit_display", "value.ofType(Quantity).unit"),
                    _col(
                        "value_system",
                        "value.ofType(CodeableConcept).coding.first().system",
                        "uri",
                    ),
                    _col("value_code", "value.ofType(CodeableConcept).coding.first().code", "code"),
                    _col(
                        "interpretation_code",
                        f"{_first('interpretation.first()')}.code",
                        "code",
                    ),
                    _col("method_system", f"{_first('method')}.system", "uri"),
                    _col("method_code", f"{_first('method')}.code", "code"),
                ]
            }
        ],
    },
    "observation_component": {
        "resource": "Observation",
        "select": [
            {
                "column": [
                    _col("observation_id", "getResourceKey()", "id"),
                    _col("patient_id", _PATIENT_REF, "id"),
                ]
            },
            {
                "forEach": "component",
                "column": [
                    _col("code_system", "code.coding.first().system", "uri"),
                    _col("code", "code.coding.first().code", "code"),
                    _col("value_quantity", "value.ofType(Quantity).value", "decimal"),
                    _col("value_unit", "value.ofType(Quantity).code", "code"),
                ],
            },
        ],
    },
    "procedure": {
        "resource": "Procedure",
        "select": [
            {
                "column": [
                    _col("procedure_id", "getResourceKey()", "id"),
                    _col("patient_id", _PATIENT_REF, "id"),
                    _col("encounter_id", _ENCOUNTER_REF, "id"),
                    _col("status", "status", "code"),
                    *_code_columns("code"),
                    _col("performed", _when("performed"), "dateTime"),
                    _col("performed_end", "performed.ofType(Period).end", "dateTime"),
                ]
            }
        ],
    },
    "medication_request": {
        "resource": "MedicationRequest",
        "select": [
            {
                "column": [
                    _col("medication_request_id", "getResourceKey()", "id"),
                    _col("patient_id", _PATIENT_REF, "id"),
                    _col("encounter_id", _ENCOUNTER_REF, "id"),
                    _col("status", "status", "code"),
                    _col("intent", "intent", "code"),
                    *_code_columns("medication.ofType(CodeableConcept)"),
                    _col("authored", "authoredOn", "dateTime"),
                    _col(
                        "dose_value",
                        "dosageInstruction.first().doseAndRate.first().dose.ofType(Quantity).value",
                        "decimal",
                    ),
                    _col(
                        "dose_unit",
                        "dosageInstruction.first().doseAndRate.first().dose.ofType(Quantity).code",
                        "code",
                    ),
                    _col("route", "dosageInstruction.first().route.text"),
                ]
            }
        ],
    },
    "medication_administration": {
        "resource": "MedicationAdministration",
        "select": [
            {
                "column": [
                    _col("medication_administration_id", "getResourceKey()", "id"),
                    _col("patient_id", _PATIENT_REF, "id"),
                    _col("encounter_id", "context.getReferenceKey(Encounter)", "id"),
                    _col("status", "status", "code"),
                    *_code_columns("medication.ofType(CodeableConcept)"),
                    _col("effective", _when("effective"), "dateTime"),
                    _col("dose_value", "dosage.dose.value", "decimal"),
                    _col("dose_unit", "dosage.dose.code", "code"),
                ]
            }
        ],
    },
}

# Every coding of each clinical resource's main code (the ``coding`` table is their union).
_CODED: Final = {
    "Condition": "code",
    "Observation": "code",
    "Procedure": "code",
    "MedicationRequest": "medication.ofType(CodeableConcept)",
    "MedicationAdministration": "medication.ofType(CodeableConcept)",
}
CODING_VIEWS: Final[dict[str, ViewDefinition]] = {
    rtype: {
        "resource": rtype,
        "constant": [{"name": "rtype", "valueString": rtype}],
        "select": [
            {
                "column": [
                    _col("resource_type", "%rtype"),
                    _col("resource_id", "getResourceKey()", "id"),
                    _col("patient_id", _PATIENT_REF, "id"),
                ]
            },
            {
                "forEach": f"{element}.coding",
                "column": [_col("system", "system", "uri"), _col("code", "code", "code")],
            },
        ],
    }
    for rtype, element in _CODED.items()
}

#: The FHIR resource types the tables are built from (what a dataset's scope may select).
RESOURCE_TYPES: Final = tuple(
    dict.fromkeys(v["resource"] for v in (*VIEWS.values(), *CODING_VIEWS.values()))
)
TABLES: Final = (*VIEWS, "coding")

# Read while building the cache to apply a dataset's scope and the patients' opt-outs; never
# part of what a fulfilment sees.
CONSENT_SCOPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
SCOPE_VIEWS: Final[dict[str, ViewDefinition]] = {
    "consent": {
        "resource": "Consent",
        "select": [
            {
                "column": [
                    _col("consent_id", "getResourceKey()", "id"),
                    _col("patient_id", "patient.getReferenceKey(Patient)", "id"),
                    _col("status", "status", "code"),
                    _col("provision_type", "provision.type", "code"),
                    _col("period_start", "provision.period.start", "dateTime"),
                    _col("period_end", "provision.period.end", "dateTime"),
                ]
            },
            {
                "forEachOrNull": "scope.coding",
                "column": [
                    _col("scope_system", "system", "uri"),
                    _col("scope_code", "code", "code"),
                ],
            },
        ],
    },
    "group_member": {
        "resource": "Group",
        "select": [
            {"column": [_col("group_id", "getResourceKey()", "id")]},
            {
                "forEach": "member",
                "column": [
                    _col("patient_id", "entity.getReferenceKey(Patient)", "id"),
                    _col("inactive", "inactive", "boolean"),
                ],
            },
        ],
    },
}
