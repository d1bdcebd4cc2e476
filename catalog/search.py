"""Free-text search and filters over datasets (pure; used by the UI and the harvest index)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from catalog.codes import CodingSystem, HealthCategory
from catalog.formats import OutputType
from catalog.model import Dataset


@dataclass(frozen=True, slots=True)
class Query:
    """What a person asked for; empty fields do not filter."""

    text: str = ""
    health_categories: frozenset[HealthCategory] = field(default_factory=frozenset)
    coding_systems: frozenset[CodingSystem] = field(default_factory=frozenset)
    output_types: frozenset[OutputType] = field(default_factory=frozenset)
    hospitals: frozenset[str] = field(default_factory=frozenset)  # publisher names
    min_age: int | None = None  # the dataset's typical age range must overlap [min_age, max_age]
    max_age: int | None = None

    @classmethod
    def from_params(cls, params: Iterable[tuple[str, str]]) -> Query:
        """Build from query-string pairs (`q`, `category`, `coding`, `output`, `hospital`,
        `min_age`, `max_age`); unknown codes and non-numeric ages are ignored."""
        values: dict[str, list[str]] = {}
        for k, v in params:
            if v.strip():
                values.setdefault(k, []).append(v.strip())

        def codes(key: str, enum: type[HealthCategory] | type[CodingSystem] | type[OutputType]):  # type: ignore[no-untyped-def]
            return frozenset(enum(v) for v in values.get(key, []) if v in enum._value2member_map_)

        def age(key: str) -> int | None:
            raw = values.get(key, [""])[0]
            return int(raw) if raw.isdigit() else None

        return cls(
            text=" ".join(values.get("q", [])),
            health_categories=codes("category", HealthCategory),
            coding_systems=codes("coding", CodingSystem),
            output_types=codes("output", OutputType),
            hospitals=frozenset(values.get("hospital", [])),
            min_age=age("min_age"),
            max_age=age("max_age"),
        )


def _haystack(ds: Dataset) -> str:
    parts = [
        ds.title,
        ds.description,
        ds.identifier,
        ds.publisher.name,
        ds.population_coverage or "",
        *ds.keywords,
        *ds.code_values,
        *(c.name + " " + c.description for c in ds.columns),
        *(h.label for h in ds.health_categories),
        *(c.label for c in ds.coding_systems),
    ]
    return " ".join(parts).casefold()


def _terms(text: str) -> list[str]:
    return [t for t in re.split(r"\s+", text.casefold()) if t]


def matches(ds: Dataset, query: Query) -> bool:
    if query.text:
        hay = _haystack(ds)
        if not all(term in hay for term in _terms(query.text)):
            return False
    if query.health_categories and not query.health_categories & set(ds.health_categories):
        return False
    if query.coding_systems and not query.coding_systems & set(ds.coding_systems):
        return False
    if query.output_types and not query.output_types & set(ds.output_types):
        return False
    if query.hospitals and ds.publisher.name not in query.hospitals:
        return False
    if query.min_age is not None and (
        ds.max_typical_age is None or ds.max_typical_age < query.min_age
    ):
        return False
    if query.max_age is not None and (
        ds.min_typical_age is None or ds.min_typical_age > query.max_age
    ):
        return False
    return True


def search(datasets: Sequence[Dataset], query: Query) -> list[Dataset]:
    """Datasets matching every part of `query`; text matches in the title rank first."""
    found = list(datasets) if query == Query() else [ds for ds in datasets if matches(ds, query)]
    terms = _terms(query.text)
    if not terms:
        return sorted(found, key=lambda ds: (ds.title.casefold(), ds.iri))
    return sorted(
        found,
        key=lambda ds: (-sum(t in ds.title.casefold() for t in terms), ds.title.casefold(), ds.iri),
    )


def facets(datasets: Sequence[Dataset]) -> dict[str, list[str]]:
    """Values present in `datasets` for each filter (to build the filter form)."""
    return {
        "category": sorted({h.value for ds in datasets for h in ds.health_categories}),
        "coding": sorted({c.value for ds in datasets for c in ds.coding_systems}),
        "output": sorted({o.value for ds in datasets for o in ds.output_types}),
        "hospital": sorted({ds.publisher.name for ds in datasets}),
    }
