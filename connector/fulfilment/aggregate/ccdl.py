"""The Clinical Cohort Definition Language (CCDL v2) as typed values.

A cohort is ``inclusionCriteria`` (an AND of ORs: every inner list needs one matching
criterion) AND NOT ``exclusionCriteria`` (an OR of ANDs: a patient matching every criterion
of any inner list is excluded). ``parse_cohort`` reads a document that already passed the JSON
schema (``request.py`` validates) and checks what the schema cannot say: dates, ranges.
Every part keeps its JSON pointer (``path``), so an error can name it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from connector.errors import BadRequestError

Comparator = Literal["gt", "ge", "lt", "le", "eq", "ne"]
Json = dict[str, Any]
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def bad(path: str, message: str) -> BadRequestError:
    """A refused request naming its bad part: ``/inclusionCriteria/0/1/valueFilter: ...``."""
    return BadRequestError(f"{path or '/'}: {message}")


@dataclass(frozen=True)
class TermCode:
    system: str
    code: str
    version: str | None = None
    display: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.system, self.code)


@dataclass(frozen=True)
class ConceptFilter:
    concepts: tuple[TermCode, ...]


@dataclass(frozen=True)
class Comparison:
    comparator: Comparator
    value: float
    unit: str | None


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    unit: str | None


ValueFilter = ConceptFilter | Comparison | Range


@dataclass(frozen=True)
class ReferenceFilter:
    criteria: tuple[Criterion, ...]


@dataclass(frozen=True)
class AttributeFilter:
    attribute: TermCode
    filter: ValueFilter | ReferenceFilter
    path: str


@dataclass(frozen=True)
class TimeRestriction:
    """Dates are inclusive: a resource matches when its interval meets [after, before]."""

    after: date | None
    before: date | None


@dataclass(frozen=True)
class Criterion:
    context: TermCode
    term_codes: tuple[TermCode, ...]
    value_filter: ValueFilter | None
    attribute_filters: tuple[AttributeFilter, ...]
    time_restriction: TimeRestriction | None
    path: str


@dataclass(frozen=True)
class Cohort:
    inclusion: tuple[tuple[Criterion, ...], ...]  # AND of ORs
    exclusion: tuple[tuple[Criterion, ...], ...]  # OR of ANDs


def parse_cohort(doc: Json) -> Cohort:
    def groups(key: str) -> tuple[tuple[Criterion, ...], ...]:
        return tuple(
            tuple(parse_criterion(c, f"/{key}/{i}/{j}") for j, c in enumerate(group))
            for i, group in enumerate(doc.get(key, ()))
        )

    return Cohort(groups("inclusionCriteria"), groups("exclusionCriteria"))


def parse_criterion(doc: Json, path: str) -> Criterion:
    value = doc.get("valueFilter")
    time = doc.get("timeRestriction")
    return Criterion(
        context=term_code(doc["context"]),
        term_codes=tuple(term_code(t) for t in doc["termCodes"]),
        value_filter=None if value is None else value_filter(value, f"{path}/valueFilter"),
        attribute_filters=tuple(
            _attribute_filter(a, f"{path}/attributeFilters/{i}")
            for i, a in enumerate(doc.get("attributeFilters", ()))
        ),
        time_restriction=None if time is None else _time(time, f"{path}/timeRestriction"),
        path=path,
    )


def term_code(doc: Json) -> TermCode:
    return TermCode(doc["system"], doc["code"], doc.get("version") or None, doc.get("display", ""))


def value_filter(doc: Json, path: str) -> ValueFilter:
    unit = doc.get("unit", {}).get("code") or None
    match doc["type"]:
        case "concept":
            return ConceptFilter(tuple(term_code(c) for c in doc["selectedConcepts"]))
        case "quantity-comparator":
            return Comparison(doc["comparator"], float(doc["value"]), unit)
        case _:  # quantity-range
            low, high = float(doc["minValue"]), float(doc["maxValue"])
            if low > high:
                raise bad(path, f"minValue {low:g} is greater than maxValue {high:g}")
            return Range(low, high, unit)


def _attribute_filter(doc: Json, path: str) -> AttributeFilter:
    attribute = term_code(doc["attributeCode"])
    if doc["type"] == "reference":
        criteria = tuple(
            parse_criterion(c, f"{path}/criteria/{i}") for i, c in enumerate(doc["criteria"])
        )
        return AttributeFilter(attribute, ReferenceFilter(criteria), path)
    return AttributeFilter(attribute, value_filter(doc, path), path)


def _time(doc: Json, path: str) -> TimeRestriction:
    def day(key: str) -> date | None:
        text = doc.get(key)
        if text is None:
            return None
        try:
            if not _DATE.fullmatch(text):
                raise ValueError(text)
            return date.fromisoformat(text)
        except ValueError:
            raise bad(f"{path}/{key}", f"{text!r} is not a date (YYYY-MM-DD)") from None

    after, before = day("afterDate"), day("beforeDate")
    if after is not None and before is not None and after > before:
        raise bad(path, f"afterDate {after} is later than beforeDate {before}")
    return TimeRestriction(after, before)
