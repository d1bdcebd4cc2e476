"""The catalog UI's cohort builder: a few form fields as an aggregate query (CCDL v2 plus
``measures`` and ``options``, docs/aggregate-queries.md).

The form asks for sex, an age range in completed years, one diagnosis code, one attribute to
split the counts by, and the purpose. Sex "any" is no criterion, except when the form names no
other: CCDL needs at least one inclusion criterion, and every administrative gender ("unknown"
included) matches every patient. The sex strata are those the sex criterion allows, so
"female or male" leaves out the "other" and "unknown" strata, which are mostly empty and so
suppressed (and make the disclosure control suppress one more). A bad field is a
``BadRequestError`` naming the field as the form labels it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from connector.errors import BadRequestError

MII: Final = "fdpg.mii.cds"
LOINC: Final = "http://loinc.org"
GENDER: Final = "http://hl7.org/fhir/administrative-gender"
# What the form offers for the diagnosis code: (system, label).
CONDITION_SYSTEMS: Final = {
    "icd-10": ("http://hl7.org/fhir/sid/icd-10", "ICD-10 (WHO)"),
    "icd-10-gm": ("http://fhir.de/CodeSystem/bfarm/icd-10-gm", "ICD-10-GM"),
    "snomed": ("http://snomed.info/sct", "SNOMED CT"),
}
SEXES: Final = {
    "any": ("female", "male", "other", "unknown"),
    "female-male": ("female", "male"),
    "female": ("female",),
    "male": ("male",),
}
STRATIFY: Final = {
    "none": None,
    "sex": {"type": "stratify", "by": "sex", "id": "sex"},
    "age": {"type": "stratify", "by": "ageBand", "id": "age", "edges": [1, 6, 12, 18]},
}
MAX_AGE: Final = 150
_CODE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,63}$")


def _context(code: str) -> dict[str, str]:
    return {"system": MII, "code": code, "display": code}


def _age(field: str, value: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isdigit() or int(value) > MAX_AGE:
        raise BadRequestError(f"{field}: a whole number of years from 0 to {MAX_AGE}")
    return int(value)


@dataclass(frozen=True)
class CohortForm:
    sex: str = "any"
    age_from: int | None = None
    age_to: int | None = None
    condition_system: str = "icd-10"
    condition_code: str = ""
    stratify: str = "none"
    purpose: str = ""

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> CohortForm:
        sex = fields.get("sex", "any")
        if sex not in SEXES:
            raise BadRequestError(f"Sex: one of {', '.join(SEXES)}")
        system = fields.get("condition_system", "icd-10")
        if system not in CONDITION_SYSTEMS:
            raise BadRequestError(f"Coding system: one of {', '.join(CONDITION_SYSTEMS)}")
        code = fields.get("condition_code", "").strip()
        if code and not _CODE.match(code):
            raise BadRequestError(
                f"Diagnosis code: {code[:70]!r} is not a code (letters, digits, '.' and '-')"
            )
        stratify = fields.get("stratify", "none")
        if stratify not in STRATIFY:
            raise BadRequestError(f"Split the counts by: one of {', '.join(STRATIFY)}")
        low = _age("Age from", fields.get("age_from", ""))
        high = _age("Age to", fields.get("age_to", ""))
        if low is not None and high is not None and low > high:
            raise BadRequestError(f"Age: from {low} is above to {high}")
        purpose = fields.get("purpose", "").strip()
        if len(purpose) > 2048:
            raise BadRequestError("Purpose: at most 2048 characters")
        return cls(sex, low, high, system, code, stratify, purpose)

    def ccdl(self) -> dict[str, Any]:
        """The aggregate query the form describes."""
        sex = {
            "context": _context("Patient"),
            "termCodes": [{"system": LOINC, "code": "76689-9", "display": "Sex assigned at birth"}],
            "valueFilter": {
                "type": "concept",
                "selectedConcepts": [
                    {"system": GENDER, "code": g, "display": g} for g in SEXES[self.sex]
                ],
            },
        }
        inclusion: list[list[dict[str, Any]]] = [] if self.sex == "any" else [[sex]]
        age = self._age_filter()
        if age is not None:
            inclusion.append(
                [
                    {
                        "context": _context("Patient"),
                        "termCodes": [{"system": LOINC, "code": "30525-0", "display": "Age"}],
                        "valueFilter": age,
                    }
                ]
            )
        if self.condition_code:
            system, _ = CONDITION_SYSTEMS[self.condition_system]
            code = {"system": system, "code": self.condition_code, "display": self.condition_code}
            inclusion.append([{"context": _context("Diagnose"), "termCodes": [code]}])
        if not inclusion:
            inclusion.append([sex])
        query: dict[str, Any] = {
            "version": "2",
            "display": self.describe(),
            "inclusionCriteria": inclusion,
        }
        measure = STRATIFY[self.stratify]
        if measure is not None:
            query["measures"] = [dict(measure)]
        if self.purpose:
            query["options"] = {"purpose": self.purpose}
        return query

    def _age_filter(self) -> dict[str, Any] | None:
        unit = {"code": "a", "display": "years"}
        if self.age_from is not None and self.age_to is not None:
            return {
                "type": "quantity-range",
                "minValue": self.age_from,
                "maxValue": self.age_to,
                "unit": unit,
            }
        if self.age_from is not None:
            return {"type": "quantity-comparator", "comparator": "ge", "value": self.age_from,
                    "unit": unit}  # fmt: skip
        if self.age_to is not None:
            return {"type": "quantity-comparator", "comparator": "le", "value": self.age_to,
                    "unit": unit}  # fmt: skip
        return None

    def describe(self) -> str:
        """The cohort in words, e.g. "Female patients aged 6 to 11 with ICD-10 (WHO) J45"."""
        who = {
            "any": "Patients",
            "female-male": "Female or male patients",
            "female": "Female patients",
            "male": "Male patients",
        }[self.sex]
        if self.age_from is not None and self.age_to is not None:
            who += f" aged {self.age_from} to {self.age_to}"
        elif self.age_from is not None:
            who += f" aged {self.age_from} or more"
        elif self.age_to is not None:
            who += f" aged {self.age_to} or less"
        if self.condition_code:
            who += f" with {CONDITION_SYSTEMS[self.condition_system][1]} {self.condition_code}"
        return who
