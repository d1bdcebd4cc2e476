"""Structural checks of a ViewDefinition (SQL-on-FHIR v2, ``StructureDefinition-ViewDefinition``
and the "Validate Columns" step of the processing model): everything that can be refused before
any data is read. FHIRPath syntax is checked when the paths are compiled."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from adapters.sof.errors import ViewDefinitionError
from adapters.sof.fhirtypes import INTEGER_TYPES

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
RESOURCE_RE = re.compile(r"^[A-Z][A-Za-z]+$")
SELECT_KEYS = frozenset(
    {"column", "select", "unionAll", "forEach", "forEachOrNull", "repeat", "id", "extension"}
)
COLUMN_KEYS = frozenset({"name", "path", "type", "collection", "description", "tags", "id"})
COLUMN_KEYS |= {"extension"}

# valueX of ViewDefinition.constant -> (FHIR type, the JSON type it must have)
CONSTANT_TYPES: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "value" + t[0].upper() + t[1:]: (t, str)
    for t in (
        "base64Binary canonical code date dateTime id instant oid string time uri url uuid".split()
    )
}
CONSTANT_TYPES["valueBoolean"] = ("boolean", bool)
CONSTANT_TYPES["valueDecimal"] = ("decimal", (int, float))
for _t in INTEGER_TYPES:
    CONSTANT_TYPES["value" + _t[0].upper() + _t[1:]] = (_t, int)


@dataclass(frozen=True, slots=True)
class Column:
    """One output column, in view order."""

    name: str
    type: str | None  # the FHIR type given (or inferred from the path), e.g. "string", "integer"
    collection: bool  # True: the value is a list
    path: str


def fail(where: str, message: str) -> ViewDefinitionError:
    return ViewDefinitionError(f"{where}: {message}")


def require_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise fail(where, f"must be a list, got {type(value).__name__}")
    return value


def require_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(where, f"must be an object, got {type(value).__name__}")
    return value


def require_string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(where, f"must be a non-empty string, got {value!r}")
    return value


def check_view(view: Any) -> tuple[str, list[dict[str, Any]]]:
    """Check the top level; return (resource type, selects)."""
    view = require_object(view, "ViewDefinition")
    if "resource" not in view:
        raise fail("ViewDefinition", "'resource' is required")
    resource = require_string(view["resource"], "ViewDefinition.resource")
    if not RESOURCE_RE.match(resource):
        raise fail("ViewDefinition.resource", f"{resource!r} is not a FHIR resource type")
    if "select" not in view:
        raise fail("ViewDefinition", "'select' is required")
    selects = require_list(view["select"], "ViewDefinition.select")
    if not selects:
        raise fail("ViewDefinition.select", "must not be empty")
    return resource, [require_object(s, f"select[{i}]") for i, s in enumerate(selects)]


def check_constants(view: dict[str, Any]) -> dict[str, tuple[list[Any], str]]:
    constants: dict[str, tuple[list[Any], str]] = {}
    for i, const in enumerate(require_list(view.get("constant", []), "ViewDefinition.constant")):
        where = f"constant[{i}]"
        const = require_object(const, where)
        name = require_string(const.get("name"), f"{where}.name")
        if not NAME_RE.match(name):
            raise fail(f"{where}.name", f"{name!r} is not a valid name")
        if name in constants:
            raise fail(where, f"constant {name!r} is defined twice")
        keys = [k for k in const if k.startswith("value")]
        if len(keys) != 1:
            raise fail(where, f"constant {name!r} needs exactly one value[x], got {keys}")
        key = keys[0]
        if key not in CONSTANT_TYPES:
            raise fail(where, f"{key} is not an allowed constant type")
        type_name, json_type = CONSTANT_TYPES[key]
        value = const[key]
        is_bool = isinstance(value, bool)
        if not isinstance(value, json_type) or (is_bool and json_type is not bool):
            raise fail(where, f"{key} has the wrong JSON type: {value!r}")
        if type_name == "time" and isinstance(value, str):
            value = value.removeprefix("T")
        constants[name] = ([value], type_name)
    return constants


def check_select_keys(sel: dict[str, Any], where: str) -> None:
    unknown = set(sel) - SELECT_KEYS
    if unknown:
        raise fail(where, f"unknown properties {sorted(unknown)}")
    iterators = [k for k in ("forEach", "forEachOrNull", "repeat") if k in sel]
    if len(iterators) > 1:
        raise fail(where, f"only one of forEach, forEachOrNull, repeat allowed, got {iterators}")
    for key in ("forEach", "forEachOrNull"):
        if key in sel:
            require_string(sel[key], f"{where}.{key}")
    if "repeat" in sel:
        paths = require_list(sel["repeat"], f"{where}.repeat")
        if not paths:
            raise fail(f"{where}.repeat", "must not be empty")
        for j, p in enumerate(paths):
            require_string(p, f"{where}.repeat[{j}]")


def check_column(col: Any, where: str) -> tuple[str, str, str | None, bool]:
    col = require_object(col, where)
    unknown = set(col) - COLUMN_KEYS
    if unknown:
        raise fail(where, f"unknown properties {sorted(unknown)}")
    name = require_string(col.get("name"), f"{where}.name")
    if not NAME_RE.match(name):
        raise fail(f"{where}.name", f"{name!r} is not a valid column name")
    path = require_string(col.get("path"), f"{where}.path")
    type_name = col.get("type")
    if type_name is not None:
        require_string(type_name, f"{where}.type")
    collection = col.get("collection", False)
    if not isinstance(collection, bool):
        raise fail(f"{where}.collection", f"must be a boolean, got {collection!r}")
    return name, path, type_name, collection


def check_union(branches: list[list[Column]], where: str) -> None:
    first = branches[0]
    for i, other in enumerate(branches[1:], start=1):
        if [c.name for c in other] != [c.name for c in first]:
            raise fail(
                where,
                f"unionAll branches must have the same columns in the same order: "
                f"{[c.name for c in first]} vs branch {i} {[c.name for c in other]}",
            )
        for a, b in zip(first, other, strict=True):
            if a.type and b.type and a.type != b.type or a.collection != b.collection:
                raise fail(where, f"unionAll column {a.name!r} differs in type between branches")
