"""The request body of an aggregate query: a CCDL v2 cohort plus ``measures`` and ``options``.

The body is a CCDL document (so what the MII portal's editor exports can be sent as it is,
asking for the patient count) with two optional members of ours; ``docs/aggregate-queries.md``
describes it with an example, ``ccdl/aggregate-query.schema.json`` is its JSON schema (which
references the CCDL schema, shipped beside it with its licence).

``parse_request`` validates the body against the schema, resolves every criterion against the
flattened tables and applies the defaults, touching no data. Anything wrong is a
``BadRequestError`` whose message starts with the JSON pointer of the bad part. The query's
``digest`` is the SHA-256 of its canonical form: what decides the answer (criteria in a
canonical order, displays dropped; measures; minimum cell size; epsilon), not the purpose.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from typing import Any, Final

import orjson

from connector.canonical import canonical_json
from connector.fulfilment.aggregate.ccdl import Json, bad, parse_cohort
from connector.fulfilment.aggregate.cells import Layout, layout
from connector.fulfilment.aggregate.criteria import resolve
from connector.fulfilment.aggregate.measures import CohortTargets, Measure, parse_measures
from connector.json_depth import deeper_than

DEFAULT_MIN_CELL_SIZE: Final = 10
DEFAULT_EPSILON: Final = 0.5
MAX_BODY: Final = 256 * 1024
MAX_DEPTH: Final = 24
MAX_CRITERIA: Final = 200
MEDIA_TYPE: Final = "application/json"  # or any application/*+json


@dataclass(frozen=True)
class Options:
    min_cell_size: int
    epsilon: float
    purpose: str | None


@dataclass(frozen=True)
class AggregateQuery:
    cohort: CohortTargets
    measures: tuple[Measure, ...]
    options: Options
    canonical: bytes = field(repr=False)

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical).hexdigest()

    @cached_property
    def layout(self) -> Layout:
        return layout(self.measures)


def parse_request(
    body: bytes, *, media_type: str | None = None, policy_limits: Mapping[str, float] | None = None
) -> AggregateQuery:
    if media_type is not None:
        essence = media_type.split(";")[0].strip().lower()
        if essence != MEDIA_TYPE and not (
            essence.startswith("application/") and essence.endswith("+json")
        ):
            raise bad("", f"an aggregate query is JSON ({MEDIA_TYPE}), not {media_type}")
    if len(body) > MAX_BODY:
        raise bad("", f"the query is larger than {MAX_BODY // 1024} KiB")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad("", f"the body is not JSON ({exc})") from None
    if deeper_than(doc, MAX_DEPTH):
        raise bad("", f"the query nests deeper than {MAX_DEPTH} levels")
    _validate(doc)
    cohort_doc = parse_cohort(doc)
    if sum(len(g) for g in (*cohort_doc.inclusion, *cohort_doc.exclusion)) > MAX_CRITERIA:
        raise bad("", f"the cohort has more than {MAX_CRITERIA} criteria")
    cohort = CohortTargets(
        tuple(tuple(resolve(c) for c in g) for g in cohort_doc.inclusion),
        tuple(tuple(resolve(c) for c in g) for g in cohort_doc.exclusion),
    )
    measures = parse_measures(doc.get("measures", []), cohort)
    options = _options(doc.get("options", {}), policy_limits or {})
    canonical = canonical_json(
        {
            "cohort": _normal_cohort(doc),
            "measures": _strip(doc.get("measures", [])),
            "minCellSize": options.min_cell_size,
            "epsilon": options.epsilon,
        }
    )
    return AggregateQuery(cohort, measures, options, canonical)


def _options(doc: Json, limits: Mapping[str, float]) -> Options:
    """The request's values, else the defaults, moved inside the agreement's limits (the
    policy engine enforces them on what the request states)."""
    min_cell = doc.get("minCellSize")
    if min_cell is None:
        min_cell = max(DEFAULT_MIN_CELL_SIZE, int(limits.get("minCellSize", 0)))
    epsilon = doc.get("epsilon")
    if epsilon is None:
        epsilon = min(DEFAULT_EPSILON, float(limits.get("epsilon", DEFAULT_EPSILON)))
    return Options(int(min_cell), float(epsilon), doc.get("purpose"))


# -- schema ---------------------------------------------------------------------------------


def _schema_json(name: str) -> Json:
    text = resources.files(__package__).joinpath("ccdl").joinpath(name).read_text("utf-8")
    loaded: Json = json.loads(text)
    return loaded


@cache
def _validator() -> Any:
    import jsonschema
    from referencing import Registry, Resource

    ccdl = _schema_json("clinical-cohort-definition-language-schema.json")
    registry: Registry[Any] = Registry().with_resource(ccdl["$id"], Resource.from_contents(ccdl))
    return jsonschema.Draft202012Validator(
        _schema_json("aggregate-query.schema.json"), registry=registry
    )


def _validate(doc: Any) -> None:
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator().iter_errors(doc))
    if error is None:
        return
    pointer = "".join(f"/{part}" for part in error.absolute_path)
    message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
    raise bad(pointer, message)


# -- canonical form -------------------------------------------------------------------------


def _strip(value: Any) -> Any:
    """Drop ``display`` members (not interpreted) and write integral numbers as integers."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "display"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _sorted_set(items: list[Any]) -> list[Any]:
    unique = {canonical_json(i): i for i in items}
    return [unique[k] for k in sorted(unique)]


def _normal_criterion(c: Json) -> Json:
    c = dict(c)
    c["termCodes"] = _sorted_set(c["termCodes"])
    if "valueFilter" in c and "selectedConcepts" in c["valueFilter"]:
        c["valueFilter"] = {
            **c["valueFilter"],
            "selectedConcepts": _sorted_set(c["valueFilter"]["selectedConcepts"]),
        }
    if "attributeFilters" in c:
        c["attributeFilters"] = _sorted_set(c["attributeFilters"])
    return c


def _normal_cohort(doc: Json) -> Json:
    """Inner and outer lists are sets (AND and OR commute): sorted, duplicates dropped."""
    out: Json = {}
    for key in ("inclusionCriteria", "exclusionCriteria"):
        if key in doc:
            groups = [_sorted_set([_normal_criterion(c) for c in _strip(g)]) for g in doc[key]]
            out[key] = _sorted_set(groups)
    return out
