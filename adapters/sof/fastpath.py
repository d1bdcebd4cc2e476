"""Fast paths for the shapes most view paths have, used in front of the general closures.

Most columns are a plain chain of single-valued elements (``gender``,
``value.ofType(Quantity).value``, ``subject.getReferenceKey(Patient)``) and most ``where``
criteria compare such a chain with a constant. For those we walk the JSON with ``dict.get``
directly; the moment the data is not the simple case (a list on the way, a choice element
stored under another type) the general compiled closure answers instead, so results never
differ from the general path, only the cost does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.sof.fhirtypes import CHOICE_NAMES, choice_key, reference_key
from adapters.sof.operators import item_equal
from adapters.sof.parser import Binary, Call, External, Literal, Member, Node, type_argument
from adapters.sof.runtime import Env, Fn, Scope

_GENERAL = object()  # "ask the general path"
Reader = Callable[[Any, Env], Any]


def key_chain(node: Node) -> list[tuple[str, bool]] | None:
    """The JSON keys of a path made only of member steps from the focus (and ``ofType`` right
    after a choice element), or None for any other shape. Each key comes with whether its
    absence means "empty" (True) or needs the general path (a choice element, whose value may
    be stored under another key)."""
    keys: list[tuple[str, bool]] = []
    while True:
        if isinstance(node, Member):
            if node.name[:1].isupper():
                return None
            keys.append((node.name, node.name not in CHOICE_NAMES))
            if node.target is None:
                break
            node = node.target
        elif (
            isinstance(node, Call)
            and node.name == "ofType"
            and len(node.args) == 1
            and isinstance(node.target, Member)
            and node.target.name in CHOICE_NAMES
        ):
            type_name = type_argument(node.args[0], "ofType")
            keys.append((choice_key(node.target.name, type_name), False))
            if node.target.target is None:
                break
            node = node.target.target
        else:
            return None
    keys.reverse()
    return keys


def _walk(keys: list[tuple[str, bool]]) -> Callable[[Any], Any]:
    """Follow ``keys`` through dicts; None when absent, _GENERAL when not the simple case."""
    if len(keys) == 1:
        ((only, exact),) = keys

        def walk1(node: Any) -> Any:
            if type(node) is not dict:
                return _GENERAL
            value = node.get(only)
            if value is None:
                return None if exact else _GENERAL
            return _GENERAL if type(value) is list else value

        return walk1

    def walk(node: Any) -> Any:
        value = node
        for key, exact in keys:
            if type(value) is not dict:
                return _GENERAL
            value = value.get(key)
            if value is None:
                return None if exact else _GENERAL
        return _GENERAL if type(value) is list else value

    return walk


def scalar_reader(ast: Node, general: Callable[[Any, Env], Any]) -> Reader | None:
    """A column reader for a single-valued column, or None when there is no fast path."""
    keys = key_chain(ast)
    if keys is not None:
        walk = _walk(keys)

        def read(node: Any, env: Env) -> Any:
            value = walk(node)
            return general(node, env) if value is _GENERAL else value

        return read
    if isinstance(ast, Call) and ast.name == "getResourceKey" and ast.target is None:
        return lambda node, env: env.resource.get("id")
    if isinstance(ast, Call) and ast.name == "getReferenceKey" and ast.target is not None:
        target_keys = key_chain(ast.target)
        if target_keys is None:
            return None
        walk_ref = _walk(target_keys)
        wanted = type_argument(ast.args[0], "") if ast.args else None

        def read_ref(node: Any, env: Env) -> Any:
            ref = walk_ref(node)
            if ref is _GENERAL:
                return general(node, env)
            return None if ref is None else reference_key(ref, wanted)

        return read_ref
    return None


def _constant(node: Node, scope: Scope) -> tuple[bool, Any]:
    if isinstance(node, Literal) and len(node.values) == 1:
        return True, node.values[0]
    if isinstance(node, External) and node.name in scope.constants:
        values = scope.constants[node.name][0]
        if len(values) == 1:
            return True, values[0]
    if isinstance(node, External) and node.name == "loinc":
        return True, "http://loinc.org"
    if isinstance(node, External) and node.name == "sct":
        return True, "http://snomed.info/sct"
    return False, None


Predicate = Callable[[Any, Env], "bool | None"]


def predicate(ast: Node, scope: Scope, general: Fn) -> Predicate:
    """``truth(criteria([item]))`` for a ``where``/``exists`` criteria, fast when possible."""
    fast = _predicate(ast, scope)
    if fast is None:
        from adapters.sof.operators import truth

        return lambda item, env: truth(general([item], env))

    def run(item: Any, env: Env) -> bool | None:
        result = fast(item)
        if result is _GENERAL:
            from adapters.sof.operators import truth

            return truth(general([item], env))
        return result  # type: ignore[no-any-return]

    return run


def _predicate(ast: Node, scope: Scope) -> Callable[[Any], Any] | None:
    if isinstance(ast, Binary) and ast.op in ("and", "or"):
        left, right = _predicate(ast.left, scope), _predicate(ast.right, scope)
        if left is None or right is None:
            return None
        if ast.op == "and":

            def both(item: Any) -> Any:
                a = left(item)
                if a is False or a is _GENERAL:
                    return a
                b = right(item)
                if b is _GENERAL or b is False:
                    return b
                return True if a is True and b is True else None

            return both

        def either(item: Any) -> Any:
            a = left(item)
            if a is True or a is _GENERAL:
                return a
            b = right(item)
            if b is _GENERAL or b is True:
                return b
            return False if a is False and b is False else None

        return either
    if isinstance(ast, Binary) and ast.op in ("=", "!="):
        for side, other in ((ast.left, ast.right), (ast.right, ast.left)):
            is_const, const = _constant(other, scope)
            keys = key_chain(side)
            if is_const and keys is not None:
                walk = _walk(keys)
                negate = ast.op == "!="

                def compare(item: Any) -> Any:
                    value = walk(item)
                    if value is None or value is _GENERAL:
                        return value
                    return item_equal(value, const) is not negate

                return compare
    return None
