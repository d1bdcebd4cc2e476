"""SQL-on-FHIR v2 ViewDefinitions compiled to DuckDB SQL over Bulk NDJSON files.

    sql = view_sql(view, ["Observation.000.ndjson", ...])   # a SELECT, or None

The SELECT reads the files with DuckDB's ``read_json`` and an explicit schema holding only the
elements the view reads, each with its FHIR R4 shape (list or single, struct or primitive; from
the ``fhir.resources.R4B`` models). DuckDB parses the files on all cores without building a
Python object per resource, which makes it several times faster than the runner of this package
over the same files.

**What compiles** (anything else gives None, and the caller runs the runner): columns whose
paths are member steps (``code.coding``), ``first()``, ``ofType(T)`` right after a choice
element (``value.ofType(Quantity)`` reads ``valueQuantity``), ``exists()`` and ``exists(c)`` /
``where(c).exists()``, ``iif(c, a, b)``, ``getResourceKey()``, ``X.getReferenceKey(Type)``,
string literals and constants, ``=``/``!=`` between strings, ``and``/``or``; selects nested
in each other with at most one ``forEach`` / ``forEachOrNull`` among them; a view-level
``where``. Not: ``unionAll``, ``repeat``, ``%rowIndex``, collection columns, date arithmetic.

**The rows are the runner's** (same columns in the same order, same values, one row per row),
for FHIR JSON of the R4 shape: each column's SQL type follows its JSON value (VARCHAR for
strings, DOUBLE for decimals, BIGINT for integers, BOOLEAN). Wherever the data could make the
two differ, the query fails instead (a DuckDB error, whose message holds no data values), and
the caller runs the runner over those files, which gives its rows or its own error:

- a line that is not a JSON object of the view's resource type, or not JSON at all;
- an element of another shape than R4's (a list where R4 has one value, an object where it has
  a string, a string where a number belongs, ...), or a key given twice;
- a non-collection column that gets several values (the runner's ``ViewEvaluationError``);
- a string column whose value starts with ``{`` or ``[`` (an object or list in a string
  element, which DuckDB would give as JSON text).

Known limits: a choice element is read by its typed keys only (``valueQuantity``; the runner
also looks at other keys starting with the element's name when the plain key is missing), and
a JSON number or boolean in a string element is read as its JSON text (``5``, ``true``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from adapters.sof import definition as d
from adapters.sof.errors import ViewDefinitionError
from adapters.sof.fhirtypes import CHOICE_NAMES, DATE_TIME_TYPES, choice_key
from adapters.sof.parser import (
    Binary,
    Call,
    External,
    Literal,
    Member,
    Node,
    Special,
    parse,
    type_argument,
)
from adapters.sof.structure import INTEGER_TYPES, element, resource_model

_DUCK = {"string": "VARCHAR", "decimal": "DOUBLE", "integer": "BIGINT", "boolean": "BOOLEAN"}
_ITEM = '"__item"'
_FIXED = {
    "loinc": "http://loinc.org",
    "sct": "http://snomed.info/sct",
    "ucum": "http://unitsofmeasure.org",
}
# getReferenceKey's pattern (adapters.sof.fhirtypes), in RE2: Python's ``$`` also matches
# before a final newline.
_REFERENCE = r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?\n?$"
_ID = r"[A-Za-z0-9\-.]{1,64}"


class Unsupported(Exception):
    """The view has a shape this compiler does not translate (the runner will run it)."""


def view_sql(view: Mapping[str, Any], files: Sequence[str | Path]) -> str | None:
    """A DuckDB SELECT giving ``view``'s rows over the NDJSON ``files`` (optionally gzipped),
    or None if the view's shape is not compiled. ``ViewDefinitionError`` if the view is
    invalid (as ``compile_view`` says)."""
    from adapters.sof.view import compile_view

    compiled = compile_view(dict(view))  # validates, and knows the columns' order and types
    try:
        return _Compiler(dict(view), compiled.resource).select(
            [(c.name, c.type) for c in compiled.columns], [str(f) for f in files]
        )
    except Unsupported:
        return None


# -- the schema DuckDB reads ------------------------------------------------------------------


@dataclass
class _Schema:
    """One element of the schema handed to ``read_json``: its children are what views read."""

    many: bool
    leaf: str | None  # the DuckDB type of a primitive; None for a complex type
    children: dict[str, _Schema] = field(default_factory=dict)

    def child(self, key: str, many: bool, leaf: str | None) -> _Schema:
        found = self.children.get(key)
        if found is None:
            found = self.children[key] = _Schema(many, leaf)
        elif found.many != many or found.leaf != leaf:
            raise Unsupported(key)
        return found

    def render(self) -> str:
        if self.leaf is not None:
            text = self.leaf
        elif self.children:
            members = ", ".join(f"{_ident(k)} {c.render()}" for k, c in self.children.items())
            text = f"STRUCT({members})"
        else:  # a complex element read only for its presence: not compiled
            raise Unsupported("complex element without fields")
        return text + "[]" if self.many else text


# -- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Val:
    """A compiled FHIRPath expression: ``sql`` holds a LIST (``many``: a collection that may
    hold several items, nulls skipped where it is read) or a single value (NULL: empty)."""

    sql: str
    many: bool
    kind: str  # complex | string | decimal | integer | boolean
    type_name: str | None = None  # the FHIR type, when known
    model: Any = None  # complex: the fhir.resources model of its elements
    schema: _Schema | None = None  # complex: where its elements are declared
    raw: bool = False  # a string element as read from the JSON (checked for JSON text)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _kind_of(type_name: str | None) -> str:
    if type_name == "boolean":
        return "boolean"
    if type_name in INTEGER_TYPES:
        return "integer"
    return "decimal" if type_name == "decimal" else "string"


class _Compiler:
    def __init__(self, view: dict[str, Any], resource: str) -> None:
        model = resource_model(resource)
        if model is None:
            raise Unsupported(resource)
        self.view = view
        self.resource = resource
        self.constants = d.check_constants(view)
        self.root_schema = _Schema(False, None)
        self.root_schema.child("resourceType", False, "VARCHAR")
        self.root = _Val("r", False, "complex", resource, model, self.root_schema)
        self.names = (f"_y{n}" for n in itertools.count())
        self.iterated: tuple[_Val, bool] | None = None  # the one forEach: foci, or null

    # -- the view --------------------------------------------------------------------------

    def select(self, columns: list[tuple[str, str | None]], files: list[str]) -> str:
        """The SELECT: ``read_json`` with the schema, the resource type and ``where``
        checks, the one iteration (unnested), then the columns in the view's order."""
        out: list[tuple[str, str, str]] = []
        self._selection({"select": self.view["select"]}, self.root, False, out)
        if [name for name, _, _ in out] != [name for name, _ in columns]:
            raise Unsupported("column order")
        declared = dict(columns)
        values = []
        for name, kind, sql in out:
            if kind != _kind_of(declared[name]):
                raise Unsupported(f"column {name}: a {kind} value in a {declared[name]} column")
            values.append(f"{sql} AS {_ident(name)}")
        conditions = [self._boolean(parse(_path(w)), self.root) for w in self.view.get("where", [])]
        condition = " AND ".join(f"({c})" for c in conditions) or "true"
        check = (
            f'CASE WHEN r."resourceType" = {_lit(self.resource)} THEN {condition} '
            f"ELSE error({_lit(f'not a {self.resource} resource')}) END"
        )
        source = (
            f"read_json([{', '.join(_lit(f) for f in files)}], format='newline_delimited', "
            f"columns={{{self._columns()}}}, hive_partitioning=false)"
        )
        inner = f"SELECT *{self._unnest()} FROM {source} AS r WHERE {check}"
        return f"SELECT {', '.join(values)} FROM ({inner}) AS r"

    def _columns(self) -> str:
        children = self.root_schema.children.items()
        return ", ".join(f"{_lit(k)}: {_lit(s.render())}" for k, s in children)

    def _unnest(self) -> str:
        if self.iterated is None:
            return ""
        foci, or_null = self.iterated
        listed = foci.sql if foci.many else f"[{foci.sql}]"
        y = next(self.names)
        present = f"[{y} for {y} in {listed} if {y} IS NOT NULL]"
        if or_null:
            present = f"CASE WHEN list_any_value({listed}) IS NULL THEN [NULL] ELSE {present} END"
        return f", unnest({present}) AS {_ITEM}"

    def _selection(
        self, sel: dict[str, Any], focus: _Val, or_null: bool, out: list[tuple[str, str, str]]
    ) -> None:
        """Columns (name, kind, SQL) in the runner's order: this selection's own, then its
        nested selections' (unionAll is not compiled)."""
        if "unionAll" in sel or "repeat" in sel:
            raise Unsupported("unionAll / repeat")
        for key in ("forEach", "forEachOrNull"):
            if key in sel:
                if self.iterated is not None or focus is not self.root:
                    raise Unsupported("more than one forEach")
                foci = self._expr(parse(sel[key]), focus)
                self.iterated = (foci, key == "forEachOrNull")
                focus = replace(foci, sql=f"r.{_ITEM}", many=False)
                or_null = key == "forEachOrNull"
        for raw in sel.get("column", []):
            path = raw["path"].strip()
            if raw.get("collection", False) or path == "%rowIndex":
                raise Unsupported("collection column / %rowIndex")
            kind, sql = self._value(self._expr(parse(path), focus), raw["name"])
            if or_null:  # the null row of an empty forEachOrNull is all nulls
                sql = f"CASE WHEN r.{_ITEM} IS NULL THEN NULL ELSE {sql} END"
            out.append((raw["name"], kind, sql))
        for sub in sel.get("select", []):
            self._selection(sub, focus, or_null, out)

    def _value(self, val: _Val, name: str) -> tuple[str, str]:
        """The kind and SQL of a non-collection column."""
        if val.kind == "complex":
            raise Unsupported(f"column {name} is not a primitive")
        sql = val.sql
        if val.many:
            y = next(self.names)
            present = f"[{y} for {y} in {sql} if {y} IS NOT NULL]"
            message = _lit(f"column {name!r} got several values but is not a collection")
            sql = f"CASE WHEN len({present}) > 1 THEN error({message}) ELSE {present}[1] END"
        if val.raw:
            message = _lit(f"column {name!r}: an object or list where a string belongs")
            sql = (
                f"CASE WHEN left({sql}, 1) IN ('{{', '[') AND json_valid({sql}) "
                f"THEN error({message}) ELSE {sql} END"
            )
        return val.kind, sql

    # -- expressions ------------------------------------------------------------------------

    def _boolean(self, node: Node, focus: _Val) -> str:
        val = self._expr(node, focus)
        if val.kind != "boolean" or val.many:
            raise Unsupported("not a boolean")
        return val.sql

    def _expr(self, node: Node, focus: _Val) -> _Val:
        if isinstance(node, Member):
            if node.name[:1].isupper():
                raise Unsupported("type name")
            base = focus if node.target is None else self._expr(node.target, focus)
            return self._member(base, node.name)
        if isinstance(node, Call):
            return self._call(node, focus)
        if isinstance(node, Special) and node.name == "this":
            return focus
        if isinstance(node, External):
            return self._constant(node.name)
        if isinstance(node, Literal) and node.type_name == "string" and len(node.values) == 1:
            return _Val(_lit(str(node.values[0])), False, "string", "string")
        if isinstance(node, Binary):
            return self._binary(node, focus)
        raise Unsupported(type(node).__name__)

    def _member(self, base: _Val, key: str) -> _Val:
        if base.kind != "complex" or base.schema is None:
            raise Unsupported(key)
        found = element(base.model, key)
        if found is None:
            raise Unsupported(key)
        leaf = None if found.model is not None else _DUCK[found.kind]
        schema = base.schema.child(key, found.many, leaf)
        if not base.many:
            sql = (
                f"r.{_ident(key)}"
                if base.sql == "r"
                else f"struct_extract({base.sql}, {_lit(key)})"
            )
            many = found.many
        else:
            y = next(self.names)
            sql = f"[struct_extract({y}, {_lit(key)}) for {y} in {base.sql}]"
            sql = f"flatten({sql})" if found.many else sql
            many = True
        complex_ = found.model is not None
        return _Val(
            sql,
            many,
            found.kind,
            found.type_name,
            found.model,
            schema if complex_ else None,
            raw=found.kind == "string",
        )

    def _call(self, node: Call, focus: _Val) -> _Val:
        name, args, target = node.name, node.args, node.target
        if name == "exists" and not args and isinstance(target, Call) and target.name == "where":
            name, args, target = "exists", target.args, target.target  # where(c).exists()
        if name == "ofType" and len(args) == 1 and isinstance(target, Member):
            if target.name not in CHOICE_NAMES:
                raise Unsupported("ofType")
            base = focus if target.target is None else self._expr(target.target, focus)
            return self._member(base, choice_key(target.name, type_argument(args[0], "ofType")))
        if name == "getResourceKey" and not args and target is None:
            return self._member(self.root, "id")
        if name == "iif" and target is None and len(args) in (2, 3):
            return self._iif(args, focus)
        if target is None:
            raise Unsupported(name)
        base = self._expr(target, focus)
        if name == "first" and not args:
            if not base.many:
                return base
            # The first item that is not null: list_any_value alone is several times slower.
            first = f"coalesce(({base.sql})[1], list_any_value({base.sql}))"
            return replace(base, sql=first, many=False)
        if name == "exists" and not args:
            test = f"list_any_value({base.sql})" if base.many else base.sql
            return _Val(f"({test} IS NOT NULL)", False, "boolean", "boolean")
        if name == "exists" and len(args) == 1:
            return self._exists(base, args[0])
        if name == "where" and len(args) == 1:
            y = next(self.names)
            item = replace(base, sql=y, many=False)
            test = self._boolean(args[0], item)
            listed = base.sql if base.many else f"[{base.sql}]"
            return replace(
                base, sql=f"[{y} for {y} in {listed} if {y} IS NOT NULL AND ({test})]", many=True
            )
        if name == "getReferenceKey" and len(args) == 1:
            return self._reference_key(base, type_argument(args[0], name))
        raise Unsupported(name)

    def _exists(self, base: _Val, criteria: Node) -> _Val:
        if base.many:
            y = next(self.names)
            item = _Val(y, False, base.kind, base.type_name, base.model, base.schema, base.raw)
            test = self._boolean(criteria, item)
            sql = f"(len([{y} for {y} in {base.sql} if {y} IS NOT NULL AND ({test})]) > 0)"
        else:
            test = self._boolean(criteria, base)
            sql = f"(CASE WHEN {base.sql} IS NULL THEN false ELSE coalesce({test}, false) END)"
        return _Val(sql, False, "boolean", "boolean")

    def _iif(self, args: tuple[Node, ...], focus: _Val) -> _Val:
        condition = self._boolean(args[0], focus)
        then = self._expr(args[1], focus)
        other = self._expr(args[2], focus) if len(args) == 3 else None
        parts = [then] + ([other] if other else [])
        if any(p.many or p.kind == "complex" for p in parts) or (other and other.kind != then.kind):
            raise Unsupported("iif")
        otherwise = other.sql if other else "NULL"
        return _Val(
            f"(CASE WHEN {condition} THEN {then.sql} ELSE {otherwise} END)",
            False,
            then.kind,
            then.type_name,
            raw=any(p.raw for p in parts),
        )

    def _reference_key(self, base: _Val, wanted: str) -> _Val:
        reference = self._member(base, "reference")
        if reference.kind != "string":
            raise Unsupported("reference")

        def key(text: str) -> str:
            # Type/id, the usual, checked cheaply; else adapters.sof's pattern.
            prefix = f"{wanted}/"
            fast = (
                f"starts_with({text}, {_lit(prefix)}) AND "
                f"regexp_full_match(substr({text}, {len(prefix) + 1}), {_lit(_ID)})"
            )
            pattern = _lit(_REFERENCE)
            return (
                f"(CASE WHEN {fast} THEN substr({text}, {len(prefix) + 1}) "
                f"WHEN regexp_extract({text}, {pattern}, 1) = {_lit(wanted)} "
                f"THEN regexp_extract({text}, {pattern}, 2) END)"
            )

        if not reference.many:
            return _Val(key(reference.sql), False, "string", "id")
        y, k = next(self.names), next(self.names)
        keys = f"[{key(y)} for {y} in {reference.sql}]"
        return _Val(f"[{k} for {k} in {keys} if {k} IS NOT NULL]", True, "string", "id")

    def _constant(self, name: str) -> _Val:
        if name in _FIXED:
            return _Val(_lit(_FIXED[name]), False, "string", "uri")
        if name not in self.constants:
            raise Unsupported(f"%{name}")
        values, type_name = self.constants[name]
        if len(values) != 1 or not isinstance(values[0], str) or type_name in DATE_TIME_TYPES:
            raise Unsupported(f"%{name}")
        return _Val(_lit(values[0]), False, "string", type_name)

    def _binary(self, node: Binary, focus: _Val) -> _Val:
        if node.op in ("and", "or"):
            left = self._boolean(node.left, focus)
            right = self._boolean(node.right, focus)
            return _Val(f"({left} {node.op.upper()} {right})", False, "boolean", "boolean")
        if node.op in ("=", "!="):
            sides = self._expr(node.left, focus), self._expr(node.right, focus)
            for side in sides:
                if side.many or side.kind != "string" or side.type_name in DATE_TIME_TYPES:
                    raise Unsupported("comparison")
            return _Val(
                f"({sides[0].sql} {'=' if node.op == '=' else '<>'} {sides[1].sql})",
                False,
                "boolean",
                "boolean",
            )
        raise Unsupported(node.op)


def _path(where: Any) -> str:
    if not isinstance(where, dict) or not isinstance(where.get("path"), str):
        raise ViewDefinitionError("ViewDefinition.where: each needs a path")
    return str(where["path"])
