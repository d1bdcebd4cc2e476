"""Generate the Python function that reads one selection's own columns into a tuple.

Per column, a path of plain member steps (``subject.reference``, ``value.ofType(Quantity).value``,
``subject.getReferenceKey(Patient)``) becomes inline ``dict.get`` code; anything else, and any
data off the simple case (a list on the way, a choice element stored under another key), calls
the column's general compiled reader, so the result is always that of the general path. This is
what makes a view cost about as much as the hand-written loop it replaces.

Only names we generate go into the source: keys and constants are passed in the namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.sof.fastpath import Source, key_chain
from adapters.sof.fhirtypes import reference_key
from adapters.sof.parser import Call, External, Literal, Node, type_argument
from adapters.sof.runtime import Env

Reader = Callable[[Any, Env], Any]
Column = tuple[Node, Reader, bool]  # path AST, general reader, collection
RowBuilder = Callable[[Any, Env], tuple[Any, ...]]


def _cached_reference_key(cache: dict[Any, Any], ref: Any, wanted: str | None) -> Any:
    text = ref.get("reference") if type(ref) is dict else None
    if type(text) is not str:
        return reference_key(ref, wanted)
    try:
        return cache[text]
    except KeyError:
        if len(cache) > 100_000:
            cache.clear()
        key = cache[text] = reference_key(ref, wanted)
        return key


def _emit_chain(
    src: Source, depth: int, var: str, keys: list[tuple[str, bool]], general: str, post: str
) -> None:
    # ``general`` is the call expression, e.g. "G3(node, env)"
    """Walk ``var`` down ``keys``; ``post`` (a format with {v}) maps the found value."""
    key, exact = keys[0]
    src.add(depth, f"{var} = {var}.get({src.bind('K', key)})")
    if len(keys) == 1:
        src.add(depth, f"if {var} is None:")
        src.add(depth + 1, "pass" if exact else f"{var} = {general}")
        src.add(depth, f"elif type({var}) is list:")
        src.add(depth + 1, f"{var} = {general}")
        if post:
            src.add(depth, "else:")
            src.add(depth + 1, f"{var} = {post.format(v=var)}")
        return
    src.add(depth, f"if type({var}) is dict:")
    _emit_chain(src, depth + 1, var, keys[1:], general, post)
    if exact:
        src.add(depth, f"elif {var} is not None:")
    else:
        src.add(depth, "else:")
    src.add(depth + 1, f"{var} = {general}")


def _emit_column(
    src: Source, depth: int, var: str, column: tuple[Node, Reader, bool], node: str, env: str
) -> None:
    ast, reader, collection = column
    general = f"{src.bind('G', reader)}({node}, {env})"
    if collection:
        src.add(depth, f"{var} = {general}")
        return
    if isinstance(ast, Literal) and len(ast.values) == 1:
        src.add(depth, f"{var} = {src.bind('C', ast.values[0])}")
        return
    if isinstance(ast, External) and ast.name == "rowIndex":
        src.add(depth, f"{var} = {env}.row_index")
        return
    if isinstance(ast, Call) and ast.name == "getResourceKey" and ast.target is None:
        src.add(depth, f"{var} = {env}.resource.get('id')")
        return
    post = ""
    keys = key_chain(ast)
    if keys is None and isinstance(ast, Call) and ast.name == "getReferenceKey" and ast.target:
        keys = key_chain(ast.target)
        wanted = type_argument(ast.args[0], "getReferenceKey") if ast.args else None
        cache: dict[Any, Any] = {}  # references repeat (every Condition of one patient)
        memo, kind = src.bind("M", cache), src.bind("T", wanted)
        post = (
            f"{memo}[_r] if type({{v}}) is dict and type(_r := {{v}}.get('reference')) is str "
            f"and _r in {memo} else CACHED({memo}, {{v}}, {kind})"
        )
    if keys is None:
        src.add(depth, f"{var} = {general}")
        return
    src.add(depth, f"if type({node}) is dict:")
    src.add(depth + 1, f"{var} = {node}")
    _emit_chain(src, depth + 1, var, keys, general, post)
    src.add(depth, "else:")
    src.add(depth + 1, f"{var} = {general}")


def _emit_row(src: Source, depth: int, columns: list[Column], node: str, env: str) -> str:
    """Emit the columns' reads; return the tuple expression."""
    names = []
    for i, column in enumerate(columns):
        names.append(f"v{i}")
        _emit_column(src, depth, f"v{i}", column, node, env)
    return f"({', '.join(names)}{',' if len(names) == 1 else ''})"


def row_builder(columns: list[Column]) -> RowBuilder:
    """``(node, env) -> tuple`` for columns given as (path AST, general reader, collection)."""
    src = Source(CACHED=_cached_reference_key)
    src.add(0, "def build(node, env):")
    src.add(1, f"return {_emit_row(src, 1, columns, 'node', 'env')}")
    build: RowBuilder = src.function("build")
    return build


def iterated_rows(
    columns: list[Column],
    foci: Callable[[list[Any], Env], list[Any]],
    *,
    or_null: bool,
    uses_index: bool,
    null_row: tuple[Any, ...],
) -> Callable[[Any, Env], list[tuple[Any, ...]]]:
    """The rows of a forEach / forEachOrNull / repeat selection without nested selections:
    one generated loop over the foci instead of a row-builder call per item."""
    src = Source(CACHED=_cached_reference_key, FOCI=foci, ENV=Env, NULL=null_row)
    src.add(0, "def rows(node, env):")
    src.add(1, "out = []")
    if uses_index:
        src.add(1, "resource = env.resource")
        src.add(1, "for index, focus in enumerate(FOCI([node], env)):")
        src.add(2, "item_env = ENV(resource, index)")
        row = _emit_row(src, 2, columns, "focus", "item_env")
    else:
        src.add(1, "for focus in FOCI([node], env):")
        row = _emit_row(src, 2, columns, "focus", "env")
    src.add(2, f"out.append({row})")
    if or_null:
        src.add(1, "if not out:")
        src.add(2, "return [NULL]")
    src.add(1, "return out")
    rows: Callable[[Any, Env], list[tuple[Any, ...]]] = src.function("rows")
    return rows
