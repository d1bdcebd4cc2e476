"""A small hospital whose counts are known: 7 girls with asthma among others.

=================  =======  ======================================
who                 number  asthma / weight
=================  =======  ======================================
girls                    7  asthma, weight 20 kg, born 2016
boys                    40  asthma, weight 30 kg, born 2012
sex "other"             12  asthma, weight 25 kg, born 2014
girls                   30  no asthma, born 2010
=================  =======  ======================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connector.ports import FlatViews
from tests.fulfilment.flat_views import build_flat_views

GIRLS_WITH_ASTHMA = 7

ASTHMA_CODE = {"coding": [{"system": "http://snomed.info/sct", "code": "195967001"}]}
WEIGHT_CODE = {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}


def _patient(n: int, gender: str, born: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": f"p{n}", "gender": gender, "birthDate": born}


def small_hospital(out: Path, version: str = "small-1") -> FlatViews:
    patients, conditions, observations = [], [], []
    groups = [(GIRLS_WITH_ASTHMA, "female", "2016-05-01", 20.0), (40, "male", "2012-05-01", 30.0),
              (12, "other", "2014-05-01", 25.0), (30, "female", "2010-05-01", None)]  # fmt: skip
    n = 0
    for size, gender, born, weight in groups:
        for _ in range(size):
            n += 1
            patients.append(_patient(n, gender, born))
            if weight is None:
                continue
            subject = {"reference": f"Patient/p{n}"}
            conditions.append(
                {
                    "resourceType": "Condition",
                    "id": f"c{n}",
                    "code": ASTHMA_CODE,
                    "subject": subject,
                    "onsetDateTime": "2020-01-01",
                }  # fmt: skip
            )
            observations.append(
                {
                    "resourceType": "Observation",
                    "id": f"o{n}",
                    "status": "final",
                    "code": WEIGHT_CODE,
                    "subject": subject,
                    "effectiveDateTime": "2023-01-01",
                    "valueQuantity": {
                        "value": weight,
                        "unit": "kg",
                        "code": "kg",
                        "system": "http://unitsofmeasure.org",
                    },
                }  # fmt: skip
            )
    resources = {"Patient": patients, "Condition": conditions, "Observation": observations}
    return build_flat_views(resources, out, dataset_id="small", version=version)
