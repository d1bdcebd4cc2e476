"""CCDL criteria resolved against the flattened tables (``terminology.py`` has the mapping).

``resolve`` turns a parsed criterion into a ``Target`` the SQL compiler reads, or refuses it
with a ``BadRequestError`` naming the part the tables cannot answer: an unknown context, a
patient criterion that is neither age nor sex, a value filter on a table without values, an
attribute the tables do not keep, a unit that cannot be converted.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.fulfilment.aggregate import units
from connector.fulfilment.aggregate.ccdl import (
    Comparison,
    ConceptFilter,
    Criterion,
    Range,
    ReferenceFilter,
    TermCode,
    TimeRestriction,
    ValueFilter,
    bad,
)
from connector.fulfilment.aggregate.terminology import (
    AGE_CODES,
    AGE_UNITS,
    ATTRIBUTES,
    CONTEXTS,
    LOINC,
    LOINC_UNITS,
    PATIENT,
    SEX_CODES,
    SEX_CONCEPTS,
    Attribute,
    Kind,
)


@dataclass(frozen=True)
class AttributeMatch:
    attribute: Attribute
    concepts: tuple[TermCode, ...]


@dataclass(frozen=True)
class Target:
    """One criterion on one table (or on the patient): ``codes`` for the table's main code;
    ``value`` for Observation values and age; ``genders`` for sex."""

    kind: Kind
    codes: tuple[TermCode, ...]
    value: ValueFilter | None
    genders: frozenset[str]
    attributes: tuple[AttributeMatch, ...]
    time: TimeRestriction | None
    path: str


def _contexts() -> str:
    by_system: dict[str, list[str]] = {}
    for system, code in CONTEXTS:
        by_system.setdefault(system, []).append(code)
    return "; ".join(f"{', '.join(codes)} ({system})" for system, codes in by_system.items())


def resolve(criterion: Criterion) -> Target:
    path = criterion.path
    ctx = criterion.context
    table = CONTEXTS.get(ctx.key)
    if table is None:
        raise bad(
            f"{path}/context",
            f"context {ctx.code!r} ({ctx.system}) is not answered by the flattened tables; "
            f"known contexts: {_contexts()}",
        )
    if table == PATIENT:
        return _patient(criterion)
    kind = Kind(table)
    if criterion.value_filter is not None and kind is not Kind.OBSERVATION:
        raise bad(f"{path}/valueFilter", f"a {kind} criterion takes no value filter")
    value = criterion.value_filter
    if value is not None:
        check_unit(value, criterion.term_codes, f"{path}/valueFilter")
    return Target(
        kind=kind,
        codes=criterion.term_codes,
        value=value,
        genders=frozenset(),
        attributes=tuple(
            _attribute(kind, criterion, i) for i in range(len(criterion.attribute_filters))
        ),
        time=criterion.time_restriction,
        path=path,
    )


def check_unit(value: ValueFilter, codes: tuple[TermCode, ...], path: str) -> None:
    """A quantity filter's unit must be UCUM and, for a well-known LOINC code, convertible to
    the unit that code is measured in."""
    if isinstance(value, ConceptFilter) or value.unit is None:
        return
    check_unit_code(value.unit, codes, f"{path}/unit")


def check_unit_code(unit: str, codes: tuple[TermCode, ...], path: str) -> None:
    if not units.is_valid(unit):
        raise bad(path, f"{unit!r} is not a UCUM unit")
    for code in codes:
        expected = LOINC_UNITS.get(code.code) if code.system == LOINC else None
        if expected is not None and not units.compatible(unit, expected):
            raise bad(
                path,
                f"{unit!r} cannot be converted to {expected!r}, the unit of LOINC {code.code}",
            )


def _attribute(kind: Kind, criterion: Criterion, index: int) -> AttributeMatch:
    flt = criterion.attribute_filters[index]
    known = ATTRIBUTES[kind]
    name = flt.attribute.code
    attribute = known.get(name)
    if attribute is None:
        supported = ", ".join(sorted(known)) or "none"
        raise bad(
            f"{flt.path}/attributeCode",
            f"attribute {name!r} of {kind} is not in the flattened tables; supported: {supported}",
        )
    if isinstance(flt.filter, ReferenceFilter):
        raise bad(
            flt.path,
            "reference attribute filters are not supported: the flattened tables keep no links "
            "between the resources they would need",
        )
    if not isinstance(flt.filter, ConceptFilter):
        raise bad(flt.path, f"attribute {name!r} takes a concept filter")
    return AttributeMatch(attribute, flt.filter.concepts)


def _patient(criterion: Criterion) -> Target:
    path = criterion.path
    keys = {t.key for t in criterion.term_codes}
    if not (keys <= AGE_CODES or keys <= SEX_CODES):
        raise bad(
            f"{path}/termCodes",
            "Patient criteria are age (LOINC 30525-0, SNOMED CT 424144002) and sex (LOINC "
            "76689-9, 46098-0, LL2191-6, SNOMED CT 263495000), each on its own",
        )
    if criterion.attribute_filters:
        raise bad(f"{path}/attributeFilters", "age and sex criteria take no attribute filters")
    if criterion.time_restriction is not None:
        raise bad(f"{path}/timeRestriction", "age and sex criteria take no time restriction")
    value = criterion.value_filter
    if keys <= AGE_CODES:
        if not isinstance(value, Comparison | Range):
            raise bad(f"{path}/valueFilter", "an age criterion needs a quantity value filter")
        unit = value.unit or "a"
        if unit not in AGE_UNITS:
            raise bad(
                f"{path}/valueFilter/unit",
                f"age is compared in completed {', '.join(AGE_UNITS)}, not {unit!r}",
            )
        fixed: ValueFilter = (
            Comparison(value.comparator, value.value, unit)
            if isinstance(value, Comparison)
            else Range(value.low, value.high, unit)
        )
        return Target(Kind.AGE, criterion.term_codes, fixed, frozenset(), (), None, path)
    if not isinstance(value, ConceptFilter):
        raise bad(f"{path}/valueFilter", "a sex criterion needs a concept value filter")
    genders = set()
    for i, concept in enumerate(value.concepts):
        gender = SEX_CONCEPTS.get(concept.code)
        if gender is None:
            raise bad(
                f"{path}/valueFilter/selectedConcepts/{i}",
                f"{concept.code!r} is not a sex code; known: {', '.join(SEX_CONCEPTS)}",
            )
        genders.add(gender)
    return Target(Kind.SEX, criterion.term_codes, None, frozenset(genders), (), None, path)
