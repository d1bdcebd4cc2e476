"""Compile one ViewDefinition selection (``select`` with its columns, nested selects, unionAll,
forEach / forEachOrNull / repeat) into ``proc(node, env) -> list[tuple]``: the rows it
contributes, each a tuple of its columns in view order (its own columns, then nested selects,
then unionAll). Parts are combined by a cross product, as the processing model says
(https://sql-on-fhir.org/ig/processing_model.html).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.sof import definition as d
from adapters.sof import rowgen
from adapters.sof.errors import ViewEvaluationError
from adapters.sof.fhirpath import compile_node, compile_path
from adapters.sof.parser import Node, parse
from adapters.sof.runtime import Coll, Env, Fn, Scope

Row = tuple[Any, ...]
Proc = Callable[[Any, Env], list[Row]]


def _column_reader(fn: Fn, name: str, collection: bool) -> Callable[[Any, Env], Any]:
    if collection:
        return lambda node, env: fn([node], env)

    def read(node: Any, env: Env) -> Any:
        values = fn([node], env)
        if not values:
            return None
        if len(values) > 1:
            raise ViewEvaluationError(
                f"column {name!r} got {len(values)} values but is not a collection"
            )
        return values[0]

    return read


def _iterator(sel: dict[str, Any], scope: Scope) -> Fn | None:
    """The foci of a selection: forEach / forEachOrNull items, or the repeat traversal."""
    for key in ("forEach", "forEachOrNull"):
        if key in sel:
            return compile_path(sel[key], scope).fn
    if "repeat" not in sel:
        return None
    paths = [compile_path(p, scope).fn for p in sel["repeat"]]

    def repeat(focus: Coll, env: Env) -> Coll:
        out: Coll = []

        def visit(node: Any) -> None:  # depth first, pre-order: the order %rowIndex counts
            for path in paths:
                for child in path([node], env):
                    out.append(child)
                    visit(child)

        for node in focus:
            visit(node)
        return out

    return repeat


def _cross(left: list[Row], right: list[Row]) -> list[Row]:
    if len(right) == 1:
        tail = right[0]
        return [a + tail for a in left]
    if len(left) == 1:
        head = left[0]
        return [head + b for b in right]
    return [a + b for a in left for b in right]


def compile_select(
    sel: dict[str, Any], scope: Scope, where: str, seen: set[str]
) -> tuple[Proc, list[d.Column]]:
    d.check_select_keys(sel, where)
    columns: list[d.Column] = []
    readers: list[tuple[Node, Callable[[Any, Env], Any], bool]] = []
    for i, raw in enumerate(d.require_list(sel.get("column", []), f"{where}.column")):
        name, path, type_name, collection = d.check_column(raw, f"{where}.column[{i}]")
        if name in seen:
            raise d.fail(f"{where}.column[{i}]", f"column {name!r} is already defined")
        seen.add(name)
        ast = parse(path)
        compiled = compile_node(ast, scope)
        columns.append(d.Column(name, type_name or compiled.type_name, collection, path))
        readers.append((ast, _column_reader(compiled.fn, name, collection), collection))
    subs: list[Proc] = []
    for i, raw in enumerate(d.require_list(sel.get("select", []), f"{where}.select")):
        sub_where = f"{where}.select[{i}]"
        proc, sub_cols = compile_select(d.require_object(raw, sub_where), scope, sub_where, seen)
        columns.extend(sub_cols)
        plain = getattr(proc, "plain_readers", None)
        if plain is not None and not subs:  # one row, right after ours: read it with ours
            readers.extend(plain)
        else:
            subs.append(proc)
    unions: list[Proc] = []
    branches: list[list[d.Column]] = []
    for i, raw in enumerate(d.require_list(sel.get("unionAll", []), f"{where}.unionAll")):
        u_where = f"{where}.unionAll[{i}]"
        branch_seen = set(seen)  # branches share names with each other, not with the rest
        proc, u_cols = compile_select(d.require_object(raw, u_where), scope, u_where, branch_seen)
        unions.append(proc)
        branches.append(u_cols)
    if branches:
        d.check_union(branches, f"{where}.unionAll")
        columns.extend(branches[0])
        seen.update(c.name for c in branches[0])
    # The null row of an empty forEachOrNull is all nulls, except that %rowIndex is 0 there.
    null_row = tuple(
        0 if c.path.strip() == "%rowIndex" and i < len(readers) else None
        for i, c in enumerate(columns)
    )
    proc = _make_proc(sel, scope, readers, subs, unions, null_row)
    if (
        not subs
        and not unions
        and not any(k in sel for k in ("forEach", "forEachOrNull", "repeat"))
    ):
        proc.plain_readers = readers  # type: ignore[attr-defined]
    return proc, columns


def _make_proc(
    sel: dict[str, Any],
    scope: Scope,
    readers: list[rowgen.Column],
    subs: list[Proc],
    unions: list[Proc],
    null_row: Row,
) -> Proc:
    iterate = _iterator(sel, scope)
    or_null = "forEachOrNull" in sel
    uses_index = "rowIndex" in repr(sel)  # else the items can share their parent's Env
    leaf = not subs and not unions
    own_row = rowgen.row_builder(readers)
    has_columns = bool(readers)
    if leaf and iterate is not None:
        return rowgen.iterated_rows(
            readers, iterate, or_null=or_null, uses_index=uses_index, null_row=null_row
        )
    if leaf and iterate is None:

        def plain(node: Any, env: Env) -> list[Row]:
            return [own_row(node, env)]

        return plain
    if not has_columns and len(subs) == 1 and not unions and iterate is None:
        return subs[0]

    rows_for: Proc
    if has_columns and len(subs) == 1 and not unions:  # the usual: our columns + one forEach
        (only,) = subs

        def own_and_sub(node: Any, env: Env) -> list[Row]:
            own = own_row(node, env)
            return [own + row for row in only(node, env)]

        if iterate is None:
            return own_and_sub
        rows_for = own_and_sub
    else:
        rows_for = _general_rows(own_row, has_columns, subs, unions)
    if iterate is None:
        return rows_for

    def proc(node: Any, env: Env) -> list[Row]:
        foci = iterate([node], env)
        if not foci:
            return [null_row] if or_null else []
        resource = env.resource
        out: list[Row] = []
        for index, focus in enumerate(foci):
            out.extend(rows_for(focus, Env(resource, index) if uses_index else env))
        return out

    return proc


def _general_rows(
    own_row: rowgen.RowBuilder, has_columns: bool, subs: list[Proc], unions: list[Proc]
) -> Proc:
    def rows_for(node: Any, env: Env) -> list[Row]:
        # The cross product of the parts, built as we go (most parts are a single row).
        acc: list[Row] | None = [own_row(node, env)] if has_columns else None
        for sub in subs:
            rows = sub(node, env)
            if not rows:
                return []
            acc = rows if acc is None else _cross(acc, rows)
        if unions:
            urows = [row for union in unions for row in union(node, env)]
            if not urows:
                return []
            acc = urows if acc is None else _cross(acc, urows)
        return [()] if acc is None else acc

    return rows_for
