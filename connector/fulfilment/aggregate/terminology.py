"""What CCDL codes mean on the flattened tables: contexts, patient criteria, sex codes, the
attributes a filter may name, and code systems whose codes form a hierarchy.

The MII feasibility portal resolves a criterion (its ``context`` plus a term code) through its
ontology to a FHIR search. We read the same CCDL on ``connector.fulfilment.views`` tables and
keep the mapping here, in one place, documented in ``docs/aggregate-queries.md``:

- ``context`` picks the table. The FDPG ontology's codes (system ``fdpg.mii.cds``) as the portal
  sends them, and the FHIR resource type names (system ``http://hl7.org/fhir/resource-types``)
  for tools that do not use the MII ontology.
- A criterion matches a resource when one of its ``termCodes`` equals (system and code; the
  ``version`` is not compared) any coding of the resource's main code (the ``coding`` table), or
  a descendant of it in a hierarchical system (ICD-10 categories, ATC levels).
- ``Patient`` criteria are the patient's age and sex, identified by the LOINC or SNOMED CT codes
  the portal uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Kind(StrEnum):
    """What a criterion is about: one flattened table, or a property of the patient."""

    CONDITION = "Condition"
    OBSERVATION = "Observation"
    PROCEDURE = "Procedure"
    MEDICATION_REQUEST = "MedicationRequest"
    MEDICATION_ADMINISTRATION = "MedicationAdministration"
    ENCOUNTER = "Encounter"
    AGE = "age"
    SEX = "sex"


MII_CONTEXT: Final = "fdpg.mii.cds"
FHIR_TYPES: Final = "http://hl7.org/fhir/resource-types"
LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
GENDER: Final = "http://hl7.org/fhir/administrative-gender"

PATIENT = "Patient"  # the context of age and sex criteria

#: (context system, context code) -> the table (or PATIENT for age and sex).
CONTEXTS: Final[dict[tuple[str, str], Kind | str]] = {
    (MII_CONTEXT, "Diagnose"): Kind.CONDITION,
    (MII_CONTEXT, "Laboruntersuchung"): Kind.OBSERVATION,
    (MII_CONTEXT, "Prozedur"): Kind.PROCEDURE,
    (MII_CONTEXT, "Procedure"): Kind.PROCEDURE,
    (MII_CONTEXT, "Medikamentenverabreichung"): Kind.MEDICATION_ADMINISTRATION,
    (MII_CONTEXT, "Fall"): Kind.ENCOUNTER,
    (MII_CONTEXT, "Patient"): PATIENT,
    (FHIR_TYPES, "Condition"): Kind.CONDITION,
    (FHIR_TYPES, "Observation"): Kind.OBSERVATION,
    (FHIR_TYPES, "Procedure"): Kind.PROCEDURE,
    (FHIR_TYPES, "MedicationRequest"): Kind.MEDICATION_REQUEST,
    (FHIR_TYPES, "MedicationAdministration"): Kind.MEDICATION_ADMINISTRATION,
    (FHIR_TYPES, "Encounter"): Kind.ENCOUNTER,
    (FHIR_TYPES, "Patient"): PATIENT,
}

#: Term codes of the patient's current age ("Gegenwärtiges chronologisches Alter").
AGE_CODES: Final = frozenset({(LOINC, "30525-0"), (SNOMED, "424144002")})
#: Term codes of the patient's sex ("Geschlecht").
SEX_CODES: Final = frozenset(
    {(LOINC, "76689-9"), (LOINC, "46098-0"), (LOINC, "LL2191-6"), (SNOMED, "263495000")}
)

#: FHIR ``Patient.gender`` values; "unknown" also stands for a patient without a gender.
GENDERS: Final = ("female", "male", "other", "unknown")
#: Selected concepts of a sex criterion (by code, whatever the system: the portal and the CCDL
#: example use several) -> ``Patient.gender``. LOINC answer list LL2191-6 and the German
#: "divers" (D) and "unbestimmt" (X) included.
SEX_CONCEPTS: Final[dict[str, str]] = {
    "female": "female",
    "F": "female",
    "LA3-6": "female",
    "male": "male",
    "M": "male",
    "LA2-8": "male",
    "other": "other",
    "D": "other",
    "X": "other",
    "LA46-8": "other",
    "unknown": "unknown",
    "U": "unknown",
    "LA4489-6": "unknown",
}

# Units of age: completed years, months, weeks or days at the reference date.
AGE_UNITS: Final = ("a", "mo", "wk", "d")


@dataclass(frozen=True)
class Attribute:
    """A column an attribute filter reads: its code column and, if the table keeps one, the
    code system column (selected concepts with a system must then match it too)."""

    code_column: str
    system_column: str | None = None


#: attributeCode.code -> column, per table (the attribute's system is not compared: the
#: portal and the CCDL example use several).
ATTRIBUTES: Final[dict[Kind, dict[str, Attribute]]] = {
    Kind.CONDITION: {
        "clinicalStatus": Attribute("clinical_status"),
        "status": Attribute("clinical_status"),
        "verificationStatus": Attribute("verification_status"),
        "severity": Attribute("severity_code", "severity_system"),
    },
    Kind.OBSERVATION: {
        "status": Attribute("status"),
        "method": Attribute("method_code", "method_system"),
        "interpretation": Attribute("interpretation_code"),
        "category": Attribute("category_code"),
    },
    Kind.PROCEDURE: {"status": Attribute("status")},
    Kind.ENCOUNTER: {
        "status": Attribute("status"),
        "serviceType": Attribute("service_type_code", "service_type_system"),
        "dischargeDisposition": Attribute("discharge_code"),
    },
    Kind.MEDICATION_REQUEST: {"status": Attribute("status"), "intent": Attribute("intent")},
    Kind.MEDICATION_ADMINISTRATION: {"status": Attribute("status")},
    Kind.AGE: {},
    Kind.SEX: {},
}

#: ICD-10 variants: a category ("J45") matches its subcodes ("J45.9"), a subcode its
#: extensions ("E11.9" matches "E11.90").
ICD10_SYSTEMS: Final = frozenset(
    {
        "http://hl7.org/fhir/sid/icd-10",
        "http://hl7.org/fhir/sid/icd-10-cm",
        "http://fhir.de/CodeSystem/bfarm/icd-10-gm",
        "http://fhir.de/CodeSystem/dimdi/icd-10-gm",
    }
)
#: ATC: each level's code is a prefix of its descendants' ("R03" matches "R03AC02").
ATC_SYSTEMS: Final = frozenset({"http://www.whocc.no/atc", "http://fhir.de/CodeSystem/bfarm/atc"})


def descendant_prefix(system: str, code: str) -> str | None:
    """The prefix every descendant code of (system, code) starts with, or None when the
    system is not hierarchical here (only the code itself matches)."""
    if system in ICD10_SYSTEMS:
        return code if "." in code else f"{code}."
    if system in ATC_SYSTEMS:
        return code
    return None


#: The UCUM unit well-known LOINC codes are measured in: a value filter or a numeric measure
#: in a unit that cannot be converted to it is refused up front (for other codes, values in a
#: unit that cannot be converted simply do not match).
LOINC_UNITS: Final[dict[str, str]] = {
    "8867-4": "/min",  # heart rate
    "9279-1": "/min",  # respiratory rate
    "8310-5": "Cel",  # body temperature
    "59408-5": "%",  # SpO2
    "2708-6": "%",  # oxygen saturation in arterial blood
    "8480-6": "mm[Hg]",  # systolic blood pressure
    "8462-4": "mm[Hg]",  # diastolic blood pressure
    "29463-7": "kg",  # body weight
    "8302-2": "cm",  # body height
    "39156-5": "kg/m2",  # BMI
    "9843-4": "cm",  # head circumference
    "2524-7": "mmol/L",  # lactate
    "1988-5": "mg/L",  # CRP
    "6690-2": "10*3/uL",  # leukocytes
    "718-7": "g/dL",  # haemoglobin
    "4548-4": "%",  # HbA1c
    "2339-0": "mg/dL",  # glucose (mass)
    "2345-7": "mg/dL",  # glucose in serum or plasma
    "33959-8": "ng/mL",  # procalcitonin
    "3209-4": "%",  # factor VIII activity
    "3187-2": "%",  # factor IX activity
    "33762-6": "pg/mL",  # NT-proBNP
}
