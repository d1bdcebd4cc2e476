"""A released answer as a FHIR R4 ``MeasureReport`` (validated with ``fhir.resources.R4B``).

- ``group[0]`` is the cohort: its ``initial-population`` count, and one ``stratifier`` per
  stratify measure (``code.text`` the measure id), a stratum per sex, age band or criterion.
- Each numeric measure is a group of its own (``code.text`` its id): the count of patients
  with a value as its population, the mean as ``measureScore`` (with the unit), the standard
  deviation in the extension ``.../StructureDefinition/stddev``, the histogram as a stratifier.
- A suppressed count has no value but the data-absent-reason extension ``masked`` on it
  (``_count``); a suppressed mean or deviation the same on its Quantity.
- Extensions on the report: the query digest, the disclosure control applied (minimum cell
  size, epsilon, rounding) and the date ages were computed at.
"""

from __future__ import annotations

from typing import Any, Final

from connector.errors import PhemsError
from connector.fulfilment.aggregate.measures import AgeBands, CodeStrata, Numeric, SexStrata
from connector.fulfilment.aggregate.release import ROUNDING, Release
from connector.fulfilment.aggregate.request import AggregateQuery
from connector.fulfilment.aggregate.terminology import GENDER

MEASURE: Final = "https://w3id.org/phems/fhir/Measure/aggregate-query"
EXT: Final = "https://w3id.org/phems/fhir/StructureDefinition/"
DATA_ABSENT: Final = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
UCUM: Final = "http://unitsofmeasure.org"
_POPULATION: Final = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/measure-population",
            "code": "initial-population",
        }
    ]
}
_MASKED: Final = {"extension": [{"url": DATA_ABSENT, "valueCode": "masked"}]}

Json = dict[str, Any]


def measure_report(query: AggregateQuery, release: Release) -> Json:
    values = release.values
    cursor = iter(range(1, len(values)))

    def population(i: int) -> Json:
        value = values[i]
        if value is None:
            return {"code": _POPULATION, "_count": _MASKED}
        return {"code": _POPULATION, "count": int(value)}

    cohort: Json = {"code": {"text": "cohort"}, "population": [population(0)]}
    groups = [cohort]
    stratifiers = []
    for m in query.measures:
        if isinstance(m, Numeric):
            groups.append(_numeric(m, values, cursor, population))
            continue
        strata = []
        for value in _strata_values(m):
            strata.append({"value": value, "population": [population(next(cursor))]})
        stratifiers.append({"code": [{"text": m.id}], "stratum": strata})
    if stratifiers:
        cohort["stratifier"] = stratifiers
    options = query.options
    report: Json = {
        "resourceType": "MeasureReport",
        "extension": [
            {"url": f"{EXT}query-digest", "valueString": f"sha256:{query.digest}"},
            {
                "url": f"{EXT}disclosure-control",
                "extension": [
                    {"url": "minCellSize", "valueInteger": options.min_cell_size},
                    {"url": "epsilon", "valueDecimal": options.epsilon},
                    {"url": "rounding", "valueInteger": ROUNDING},
                ],
            },
            {"url": f"{EXT}age-reference-date", "valueDate": release.reference.isoformat()},
        ],
        "status": "complete",
        "type": "summary",
        "measure": MEASURE,
        "date": release.computed_at.isoformat(),
        "period": {"start": release.reference.isoformat(), "end": release.reference.isoformat()},
        "group": groups,
    }
    validate(report)
    return report


def _strata_values(m: SexStrata | AgeBands | CodeStrata) -> list[Json]:
    if isinstance(m, SexStrata):
        return [{"coding": [{"system": GENDER, "code": g}], "text": g} for g in m.genders]
    if isinstance(m, AgeBands):
        return [{"text": label} for label in m.labels()]
    out = []
    for t in m.strata:
        code = t.codes[0]
        coding: Json = {"system": code.system, "code": code.code}
        if code.display:
            coding["display"] = code.display
        out.append({"coding": [coding], "text": code.display or code.code})
    return out


def _numeric(m: Numeric, values: tuple[float | None, ...], cursor: Any, population: Any) -> Json:
    n = next(cursor)
    group: Json = {"code": {"text": m.id}, "population": [population(n)]}
    unit = m.unit

    def quantity(value: float | None) -> Json:
        if value is None:
            return dict(_MASKED)
        q: Json = {"value": value}
        if unit:
            q.update({"unit": unit, "system": UCUM, "code": unit})
        return q

    extensions = []
    if m.mean or m.stddev:
        mean = values[next(cursor)]
        if m.mean:
            group["measureScore"] = quantity(mean)
        if m.stddev:
            extensions.append(
                {"url": f"{EXT}stddev", "valueQuantity": quantity(values[next(cursor)])}
            )
    extensions.append({"url": f"{EXT}numeric-column", "valueString": m.column})
    group["extension"] = extensions
    if m.histogram:
        strata = [
            {"value": {"text": b}, "population": [population(next(cursor))]} for b in m.bins()
        ]
        group["stratifier"] = [{"code": [{"text": "histogram"}], "stratum": strata}]
    return group


def validate(report: Json) -> None:
    from fhir.resources.R4B.measurereport import MeasureReport

    try:
        MeasureReport.model_validate(report)
    except Exception as exc:  # pydantic's ValidationError: our bug, not the caller's
        raise PhemsError(f"the MeasureReport built is not valid FHIR R4: {exc}") from None
