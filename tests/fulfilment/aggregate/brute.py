"""A brute-force evaluation of aggregate queries in plain Python over FHIR resources.

The oracle for the SQL compiler: it reads the raw request (CCDL criteria as JSON) and FHIR
resources (dicts), not the flattened tables, and implements the semantics as
``docs/aggregate-queries.md`` states them, loop by loop. It takes from the parsed query only
which strata exist (``AggregateQuery.measures``); every value is computed here. Unit
conversions use hand-written factors, not ``units.py``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connector.fulfilment.aggregate.measures import AgeBands, CodeStrata, Numeric, SexStrata
from connector.fulfilment.aggregate.request import AggregateQuery

Json = dict[str, Any]

CONTEXT_TYPES = {
    "Diagnose": "Condition",
    "Laboruntersuchung": "Observation",
    "Prozedur": "Procedure",
    "Procedure": "Procedure",
    "Medikamentenverabreichung": "MedicationAdministration",
    "Fall": "Encounter",
    "Patient": "Patient",
    "Condition": "Condition",
    "Observation": "Observation",
    "MedicationRequest": "MedicationRequest",
    "MedicationAdministration": "MedicationAdministration",
    "Encounter": "Encounter",
}
AGE_CODES = {"30525-0", "424144002"}
SEX_MAP = {"female": "female", "F": "female", "male": "male", "M": "male", "other": "other",
           "D": "other", "unknown": "unknown", "U": "unknown"}  # fmt: skip
ICD10 = {"http://hl7.org/fhir/sid/icd-10", "http://fhir.de/CodeSystem/bfarm/icd-10-gm"}
ATC = {"http://www.whocc.no/atc"}

# (from, to) -> (a, b): to = a * from + b
FACTORS: dict[tuple[str, str], tuple[float, float]] = {
    ("kg", "g"): (1000.0, 0.0),
    ("g", "kg"): (0.001, 0.0),
    ("[lb_av]", "kg"): (0.45359237, 0.0),
    ("kg", "[lb_av]"): (1 / 0.45359237, 0.0),
    ("[lb_av]", "g"): (453.59237, 0.0),
    ("g", "[lb_av]"): (1 / 453.59237, 0.0),
    ("Cel", "[degF]"): (1.8, 32.0),
    ("[degF]", "Cel"): (5 / 9, -160 / 9),
    ("cm", "m"): (0.01, 0.0),
    ("m", "cm"): (100.0, 0.0),
    ("mm[Hg]", "kPa"): (0.133322387415, 0.0),
    ("kPa", "mm[Hg]"): (1 / 0.133322387415, 0.0),
}


def convert(value: float, source: str | None, target: str | None) -> float | None:
    if target is None or source == target:
        return value
    factor = FACTORS.get((source or "", target))
    if factor is None:
        return None
    return round(factor[0] * value + factor[1], 9)


def moment(text: str | None) -> datetime | None:
    """A FHIR date or dateTime as naive UTC; a partial date is the start of its period."""
    if text is None:
        return None
    if len(text) == 4:
        return datetime(int(text), 1, 1)
    if len(text) == 7:
        return datetime(int(text[:4]), int(text[5:7]), 1)
    if len(text) == 10:
        return datetime.fromisoformat(text)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed
    return parsed.astimezone(UTC).replace(tzinfo=None)


def birth(p: Json) -> date | None:
    m = moment(p.get("birthDate"))
    return None if m is None else m.date()


def completed(b: date, ref: date, unit: str) -> int:
    if unit == "a":
        years = ref.year - b.year
        if (ref.month, ref.day) < (b.month, b.day):
            years -= 1
        return years
    if unit == "mo":
        months = (ref.year - b.year) * 12 + ref.month - b.month
        if ref.day < b.day:
            months -= 1
        return months
    days = (ref - b).days
    return days // 7 if unit == "wk" else days


def compare(v: float, op: str, x: float) -> bool:
    v, x = round(v, 9), round(x, 9)
    return {
        "gt": v > x, "ge": v >= x, "lt": v < x, "le": v <= x, "eq": v == x, "ne": v != x
    }[op]  # fmt: skip


def value_matches(v: float | None, unit: str | None, vf: Json) -> bool:
    if v is None:
        return False
    target = vf.get("unit", {}).get("code")
    inside = convert(v, unit, target) if target else v
    if inside is None:
        return False
    if vf["type"] == "quantity-range":
        return round(vf["minValue"], 9) <= round(inside, 9) <= round(vf["maxValue"], 9)
    return compare(inside, vf["comparator"], vf["value"])


def ref_key(ref: Json | None) -> str | None:
    if not ref or "reference" not in ref:
        return None
    return str(ref["reference"]).split("/")[-1]


def first_coding(cc: Json | None) -> Json:
    if not cc or not cc.get("coding"):
        return {}
    return dict(cc["coding"][0])


def code_matches(system: str | None, code: str | None, tc: Json) -> bool:
    if system != tc["system"] or code is None:
        return False
    want = tc["code"]
    if code == want:
        return True
    if tc["system"] in ICD10:
        return code.startswith(want if "." in want else want + ".")
    if tc["system"] in ATC:
        return code.startswith(want)
    return False


def main_codings(r: Json) -> list[Json]:
    rt = r["resourceType"]
    if rt in ("MedicationRequest", "MedicationAdministration"):
        return list((r.get("medicationCodeableConcept") or {}).get("coding", []))
    return list((r.get("code") or {}).get("coding", []))


def interval(r: Json) -> tuple[datetime | None, datetime | None]:
    rt = r["resourceType"]

    def choice(name: str) -> datetime | None:
        if f"{name}DateTime" in r:
            return moment(r[f"{name}DateTime"])
        if f"{name}Period" in r:
            return moment(r[f"{name}Period"].get("start"))
        return None

    if rt == "Condition":
        start = choice("onset") or moment(r.get("recordedDate"))
        return start, choice("abatement") or start
    if rt == "Observation" or rt == "MedicationAdministration":
        t = choice("effective")
        return t, t
    if rt == "Procedure":
        start = choice("performed")
        end = moment(r["performedPeriod"].get("end")) if "performedPeriod" in r else None
        return start, end or start
    if rt == "MedicationRequest":
        t = moment(r.get("authoredOn"))
        return t, t
    period = r.get("period", {})
    start = moment(period.get("start"))
    return start, moment(period.get("end")) or start


def time_matches(r: Json, tr: Json | None) -> bool:
    if tr is None:
        return True
    start, end = interval(r)
    if "afterDate" in tr:
        after = datetime.fromisoformat(tr["afterDate"])
        if end is None or end < after:
            return False
    if "beforeDate" in tr:
        before = datetime.fromisoformat(tr["beforeDate"]) + timedelta(days=1)
        if start is None or not start < before:
            return False
    return True


ATTRIBUTES: dict[tuple[str, str], Callable[[Json], Json]] = {
    ("Condition", "clinicalStatus"): lambda r: first_coding(r.get("clinicalStatus")),
    ("Condition", "status"): lambda r: first_coding(r.get("clinicalStatus")),
    ("Condition", "verificationStatus"): lambda r: first_coding(r.get("verificationStatus")),
    ("Condition", "severity"): lambda r: first_coding(r.get("severity")),
    ("Observation", "status"): lambda r: {"code": r.get("status")},
    ("Observation", "method"): lambda r: first_coding(r.get("method")),
    ("Procedure", "status"): lambda r: {"code": r.get("status")},
    ("Encounter", "status"): lambda r: {"code": r.get("status")},
    ("MedicationRequest", "status"): lambda r: {"code": r.get("status")},
    ("MedicationRequest", "intent"): lambda r: {"code": r.get("intent")},
    ("MedicationAdministration", "status"): lambda r: {"code": r.get("status")},
}
WITH_SYSTEM = {("Condition", "severity"), ("Observation", "method")}


def attributes_match(r: Json, filters: list[Json]) -> bool:
    for f in filters:
        key = (r["resourceType"], f["attributeCode"]["code"])
        got = ATTRIBUTES[key](r)
        ok = False
        for c in f["selectedConcepts"]:
            if got.get("code") != c["code"]:
                continue
            if key in WITH_SYSTEM and c.get("system") and got.get("system") != c["system"]:
                continue
            ok = True
        if not ok:
            return False
    return True


class Brute:
    def __init__(self, resources: dict[str, list[Json]], reference: date) -> None:
        self.reference = reference
        self.patients = {p["id"]: p for p in resources.get("Patient", [])}
        self.by_patient: dict[str, dict[str, list[Json]]] = defaultdict(lambda: defaultdict(list))
        for rt, items in resources.items():
            if rt == "Patient":
                continue
            for r in items:
                pid = ref_key(r.get("subject"))
                if pid is not None:
                    self.by_patient[pid][rt].append(r)

    # -- criteria ---------------------------------------------------------------------------

    def gender(self, pid: str) -> str:
        g = self.patients[pid].get("gender")
        return g if g in ("female", "male", "other") else "unknown"

    def age(self, pid: str, unit: str) -> int | None:
        b = birth(self.patients[pid])
        return None if b is None else completed(b, self.reference, unit)

    def rows(self, pid: str, c: Json) -> Iterable[tuple[Json, Json | None]]:
        """(resource, component or None) matching the criterion's codes and filters."""
        rt = CONTEXT_TYPES[c["context"]["code"]]
        vf = c.get("valueFilter")
        for r in self.by_patient[pid][rt]:
            if not time_matches(r, c.get("timeRestriction")):
                continue
            if not attributes_match(r, c.get("attributeFilters", [])):
                continue
            if rt == "Encounter":
                klass = r.get("class", {})
                if any(
                    code_matches(klass.get("system"), klass.get("code"), tc)
                    for tc in c["termCodes"]
                ):
                    yield r, None
                continue
            codes = main_codings(r)
            if any(
                code_matches(k.get("system"), k.get("code"), tc)
                for k in codes
                for tc in c["termCodes"]
            ):
                if vf is None or self._value(r, None, vf):
                    yield r, None
            if rt == "Observation" and (vf is None or vf["type"] != "concept"):
                for comp in r.get("component", []):
                    k = first_coding(comp.get("code"))
                    if any(
                        code_matches(k.get("system"), k.get("code"), tc) for tc in c["termCodes"]
                    ):
                        if vf is None or self._value(r, comp, vf):
                            yield r, comp

    def _value(self, r: Json, comp: Json | None, vf: Json) -> bool:
        holder = comp if comp is not None else r
        if vf["type"] == "concept":
            got = first_coding(holder.get("valueCodeableConcept"))
            return any(
                got.get("code") == c["code"]
                and (not c["system"] or got.get("system") == c["system"])
                for c in vf["selectedConcepts"]
            )
        q = holder.get("valueQuantity") or {}
        return value_matches(q.get("value"), q.get("code"), vf)

    def matches(self, pid: str, c: Json) -> bool:
        ctx = c["context"]["code"]
        if CONTEXT_TYPES[ctx] == "Patient":
            vf = c["valueFilter"]
            if {t["code"] for t in c["termCodes"]} <= AGE_CODES:
                unit = vf.get("unit", {}).get("code", "a")
                age = self.age(pid, unit)
                if age is None:
                    return False
                if vf["type"] == "quantity-range":
                    return vf["minValue"] <= age <= vf["maxValue"]
                return compare(age, vf["comparator"], vf["value"])
            return self.gender(pid) in {SEX_MAP[s["code"]] for s in vf["selectedConcepts"]}
        return any(True for _ in self.rows(pid, c))

    def cohort(self, doc: Json) -> list[str]:
        out = []
        for pid in self.patients:
            included = all(any(self.matches(pid, c) for c in g) for g in doc["inclusionCriteria"])
            excluded = any(
                all(self.matches(pid, c) for c in g) for g in doc.get("exclusionCriteria", [])
            )
            if included and not excluded:
                out.append(pid)
        return out

    # -- measures ---------------------------------------------------------------------------

    def cells(self, query: AggregateQuery, doc: Json) -> list[float]:
        cohort = self.cohort(doc)
        cells: list[float] = [len(cohort)]
        docs = [d for d in doc.get("measures", []) if d["type"] != "count"]
        for m, mdoc in zip(query.measures, docs, strict=True):
            if isinstance(m, SexStrata):
                cells.extend(sum(1 for p in cohort if self.gender(p) == g) for g in m.genders)
            elif isinstance(m, AgeBands):
                starts = (0, *m.edges)
                for a, b in zip(starts, (*m.edges, None), strict=True):
                    cells.append(
                        sum(
                            1
                            for p in cohort
                            if (age := self.age(p, "a")) is not None
                            and (a == 0 or age >= a)
                            and (b is None or age < b)
                        )
                    )
                if m.unknown:
                    cells.append(sum(1 for p in cohort if self.age(p, "a") is None))
            elif isinstance(m, CodeStrata):
                cells.extend(sum(1 for p in cohort if self.matches(p, c)) for c in mdoc["strata"])
            else:
                cells.extend(self._numeric(m, mdoc, cohort))
        return cells

    def _numeric(self, m: Numeric, mdoc: Json, cohort: list[str]) -> list[float]:
        values = []
        for pid in cohort:
            v = self._patient_value(pid, m, mdoc)
            if v is not None:
                values.append(v)
        out: list[float] = [len(values)]
        if m.mean or m.stddev:
            assert m.bounds is not None
            lo, hi = m.bounds
            clamped = [min(max(v, lo), hi) for v in values]
            out.append(sum(clamped))
            if m.stddev:
                out.append(sum(v * v for v in clamped))
        cuts = m.histogram
        if cuts:
            edges = [-math.inf, *cuts, math.inf]
            out.extend(
                sum(1 for v in values if edges[i] <= v < edges[i + 1]) for i in range(len(cuts) + 1)
            )
        return out

    def _patient_value(self, pid: str, m: Numeric, mdoc: Json) -> float | None:
        if m.column == "patient.age":
            age = self.age(pid, m.unit or "a")
            return None if age is None else float(age)
        crit = mdoc["criterion"]
        rows: list[tuple[datetime | None, str, float]] = []
        for r, comp in self.rows(pid, crit):
            if m.column == "observation.value_quantity" and comp is not None:
                continue
            if m.column == "observation_component.value_quantity" and comp is None:
                continue
            if m.column.endswith("dose_value"):
                q = _dose(r)
            else:
                q = (comp if comp is not None else r).get("valueQuantity") or {}
            raw = q.get("value")
            if raw is None:
                continue
            v = convert(float(raw), q.get("code"), m.unit) if m.unit else float(raw)
            if v is None:
                continue
            rows.append((interval(r)[0], r["id"], v))
        if not rows:
            return None
        if m.per_patient == "min":
            return min(v for _, _, v in rows)
        if m.per_patient == "max":
            return max(v for _, _, v in rows)
        if m.per_patient == "mean":
            return sum(v for _, _, v in rows) / len(rows)
        timed = [row for row in rows if row[0] is not None]
        pool = timed or rows
        if m.per_patient == "latest":
            return max(pool, key=lambda row: (row[0] or datetime.min, row[1]))[2]
        return min(pool, key=lambda row: (row[0] or datetime.min, row[1]))[2]


def _dose(r: Json) -> Json:
    if r["resourceType"] == "MedicationAdministration":
        return dict((r.get("dosage") or {}).get("dose") or {})
    instructions = r.get("dosageInstruction") or [{}]
    rates = instructions[0].get("doseAndRate") or [{}]
    return dict(rates[0].get("doseQuantity") or {})
