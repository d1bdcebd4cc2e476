"""What an aggregate query asks for besides its cohort: the measures.

Every answer holds the cohort's patient count. Measures add:

- ``stratify`` by ``sex`` (female, male, other, unknown: a missing gender counts as unknown),
  by ``ageBand`` (completed years at the reference date, bands starting at ``edges``, plus
  "unknown" for a missing birth date) or by ``code`` (one stratum per CCDL criterion: the
  cohort's patients matching it; strata may overlap);
- ``numeric`` summaries of a column (``NUMERIC_COLUMNS``): one value per patient
  (``perPatient``), its count, and on request the mean and standard deviation of the values
  clamped to ``bounds`` and a histogram over cut points.

A stratum that the cohort's own criteria make empty (the "other" sex when the cohort requires
female or male; "unknown" age when it requires an age) is left out: it is known to be empty
without looking at data, and an empty stratum would force a complementary suppression.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from connector.fulfilment.aggregate.ccdl import bad, parse_criterion
from connector.fulfilment.aggregate.criteria import Target, check_unit_code, resolve
from connector.fulfilment.aggregate.terminology import GENDERS, Kind

DEFAULT_AGE_EDGES: Final = (1, 6, 12, 18)


@dataclass(frozen=True)
class NumericColumn:
    table: str
    kind: Kind | None  # the kind of the criterion selecting its rows; None: patient.age
    value: str
    unit: str | None
    time: str | None  # what orders a patient's values (first, latest)
    key: str


NUMERIC_COLUMNS: Final[dict[str, NumericColumn]] = {
    "patient.age": NumericColumn("patient", None, "birth_date", None, None, "patient_id"),
    "observation.value_quantity": NumericColumn(
        "observation", Kind.OBSERVATION, "value_quantity", "value_unit", "effective",
        "observation_id",
    ),
    "observation_component.value_quantity": NumericColumn(
        "observation_component", Kind.OBSERVATION, "value_quantity", "value_unit", "effective",
        "observation_id",
    ),
    "medication_request.dose_value": NumericColumn(
        "medication_request", Kind.MEDICATION_REQUEST, "dose_value", "dose_unit", "authored",
        "medication_request_id",
    ),
    "medication_administration.dose_value": NumericColumn(
        "medication_administration", Kind.MEDICATION_ADMINISTRATION, "dose_value", "dose_unit",
        "effective", "medication_administration_id",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class SexStrata:
    id: str
    genders: tuple[str, ...]


@dataclass(frozen=True)
class AgeBands:
    id: str
    edges: tuple[int, ...]
    unknown: bool  # whether the "unknown" band (no birth date) can be non-empty

    def labels(self) -> list[str]:
        starts = (0, *self.edges)
        ends = (*self.edges, None)
        bands = [
            f"{a}+" if b is None else (f"<{b}" if a == 0 else f"{a}-{b - 1}")
            for a, b in zip(starts, ends, strict=True)
        ]
        return [*bands, "unknown"] if self.unknown else bands


@dataclass(frozen=True)
class CodeStrata:
    id: str
    strata: tuple[Target, ...]


@dataclass(frozen=True)
class Numeric:
    id: str
    column: str
    target: Target | None
    unit: str | None
    bounds: tuple[float, float] | None
    per_patient: str
    mean: bool
    stddev: bool
    histogram: tuple[float, ...]

    @property
    def source(self) -> NumericColumn:
        return NUMERIC_COLUMNS[self.column]

    def bins(self) -> list[str]:
        cuts = self.histogram
        if not cuts:
            return []
        middle = [f"[{a:g},{b:g})" for a, b in zip(cuts, cuts[1:], strict=False)]
        return [f"<{cuts[0]:g}", *middle, f">={cuts[-1]:g}"]


Measure = SexStrata | AgeBands | CodeStrata | Numeric


def parse_measures(docs: list[dict[str, Any]], cohort: CohortTargets) -> tuple[Measure, ...]:
    measures: list[Measure] = []
    ids: set[str] = set()
    for i, doc in enumerate(docs):
        path = f"/measures/{i}"
        if doc["type"] == "count":
            continue  # the cohort count is in every answer
        mid = doc.get("id") or f"m{i}"
        if mid in ids or mid == "cohort":
            raise bad(f"{path}/id", f"measure id {mid!r} is used twice")
        ids.add(mid)
        measures.append(
            _numeric(doc, mid, path)
            if doc["type"] == "numeric"
            else _stratify(doc, mid, path, cohort)
        )
    return tuple(measures)


@dataclass(frozen=True)
class CohortTargets:
    inclusion: tuple[tuple[Target, ...], ...]
    exclusion: tuple[tuple[Target, ...], ...]

    def possible_genders(self) -> tuple[str, ...]:
        """Genders a cohort patient can have, as far as the criteria alone tell."""
        allowed = set(GENDERS)
        for group in self.inclusion:
            if all(t.kind is Kind.SEX for t in group):
                allowed &= set().union(*(t.genders for t in group))
        for group in self.exclusion:
            if len(group) == 1 and group[0].kind is Kind.SEX:
                allowed -= group[0].genders
        return tuple(g for g in GENDERS if g in allowed)

    def has_birth_date(self) -> bool:
        """Whether the criteria require every cohort patient to have a birth date."""
        return any(all(t.kind is Kind.AGE for t in group) for group in self.inclusion)


def _stratify(doc: dict[str, Any], mid: str, path: str, cohort: CohortTargets) -> Measure:
    if "edges" in doc and doc["by"] != "ageBand":
        raise bad(f"{path}/edges", "only ageBand strata take edges")
    if "strata" in doc and doc["by"] != "code":
        raise bad(f"{path}/strata", "only code strata take strata")
    match doc["by"]:
        case "sex":
            return SexStrata(mid, cohort.possible_genders())
        case "ageBand":
            edges = tuple(doc.get("edges", DEFAULT_AGE_EDGES))
            if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
                raise bad(f"{path}/edges", "edges must increase")
            return AgeBands(mid, edges, not cohort.has_birth_date())
        case _:
            strata = tuple(
                resolve(parse_criterion(c, f"{path}/strata/{j}"))
                for j, c in enumerate(doc["strata"])
            )
            return CodeStrata(mid, strata)


def _numeric(doc: dict[str, Any], mid: str, path: str) -> Numeric:
    column = NUMERIC_COLUMNS[doc["column"]]
    stats = set(doc.get("statistics", ("count",)))
    bounds_doc = doc.get("bounds")
    bounds = None if bounds_doc is None else (float(bounds_doc[0]), float(bounds_doc[1]))
    if bounds is not None and bounds[0] >= bounds[1]:
        raise bad(f"{path}/bounds", "the low bound must be below the high bound")
    if bounds is None and stats & {"mean", "stddev"}:
        raise bad(path, "mean and stddev need bounds [low, high] (values are clamped to them)")
    cuts = tuple(float(c) for c in doc.get("histogram", ()))
    if any(b <= a for a, b in zip(cuts, cuts[1:], strict=False)):
        raise bad(f"{path}/histogram", "cut points must increase")
    target = None
    unit = doc.get("unit")
    if column.kind is None:  # patient.age
        if "criterion" in doc:
            raise bad(f"{path}/criterion", "patient.age takes no criterion")
        unit = unit or "a"
        if unit not in ("a", "mo"):
            raise bad(f"{path}/unit", f"age is summarised in completed a or mo, not {unit!r}")
    else:
        if "criterion" not in doc:
            raise bad(path, f"{doc['column']} needs a criterion selecting its rows")
        target = resolve(parse_criterion(doc["criterion"], f"{path}/criterion"))
        if target.kind is not column.kind:
            raise bad(
                f"{path}/criterion/context",
                f"{doc['column']} is summarised over a {column.kind} criterion, not {target.kind}",
            )
        if unit is None:  # values recorded in g and in kg must not be summed as numbers
            raise bad(path, f"{doc['column']} needs a unit (UCUM) its values are converted to")
        check_unit_code(unit, target.codes, f"{path}/unit")
    return Numeric(
        id=mid,
        column=doc["column"],
        target=target,
        unit=unit,
        bounds=bounds,
        per_patient=doc.get("perPatient", "latest"),
        mean="mean" in stats,
        stddev="stddev" in stats,
        histogram=cuts,
    )
