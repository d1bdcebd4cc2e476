"""FHIRPath functions: the subset SQL-on-FHIR v2 requires (``where``, ``exists``, ``empty``,
``extension``, ``join``, ``ofType``, ``first``, ``lowBoundary``/``highBoundary``, ``not``,
``getResourceKey``, ``getReferenceKey``) plus a few common ones (``select``, ``count``, ``iif``,
string helpers). Arguments are evaluated against the expression's input (``$this``); the
criteria of ``where``/``select``/``exists``/``all`` against each item.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from adapters.sof import operators
from adapters.sof.boundaries import boundary
from adapters.sof.errors import ViewDefinitionError
from adapters.sof.fastpath import predicate
from adapters.sof.fhirtypes import is_type, reference_key
from adapters.sof.parser import Node, type_argument
from adapters.sof.runtime import Coll, Compiled, Env, Fn, Scope

CompileNode = Callable[[Node, Scope], Compiled]

# name -> (min args, max args, result type)
_ARITY: dict[str, tuple[int, int, str | None]] = {
    "where": (1, 1, None),
    "select": (1, 1, None),
    "exists": (0, 1, "boolean"),
    "all": (1, 1, "boolean"),
    "empty": (0, 0, "boolean"),
    "not": (0, 0, "boolean"),
    "hasValue": (0, 0, "boolean"),
    "first": (0, 0, None),
    "last": (0, 0, None),
    "tail": (0, 0, None),
    "single": (0, 0, None),
    "skip": (1, 1, None),
    "take": (1, 1, None),
    "count": (0, 0, "integer"),
    "distinct": (0, 0, None),
    "union": (1, 1, None),
    "combine": (1, 1, None),
    "join": (0, 1, "string"),
    "ofType": (1, 1, None),
    "is": (1, 1, "boolean"),
    "as": (1, 1, None),
    "extension": (1, 1, "Extension"),
    "getResourceKey": (0, 0, "id"),
    "getReferenceKey": (0, 1, "id"),
    "lowBoundary": (0, 1, None),
    "highBoundary": (0, 1, None),
    "iif": (2, 3, None),
    "toString": (0, 0, "string"),
    "toInteger": (0, 0, "integer"),
    "toDecimal": (0, 0, "decimal"),
    "startsWith": (1, 1, "boolean"),
    "endsWith": (1, 1, "boolean"),
    "contains": (1, 1, "boolean"),
    "matches": (1, 1, "boolean"),
    "lower": (0, 0, "string"),
    "upper": (0, 0, "string"),
    "length": (0, 0, "integer"),
    "substring": (1, 2, "string"),
    "replace": (2, 2, "string"),
}


def _resource_key(item: Any) -> Any:
    return item.get("id") if type(item) is dict and "resourceType" in item else None


def _string_fn(name: str, args: list[Fn]) -> Callable[[str, Coll, Env], Any]:
    def arg(i: int, focus: Coll, env: Env) -> Any:
        return operators.singleton(args[i](focus, env), f"{name}() argument")

    table: dict[str, Callable[[str, Coll, Env], Any]] = {
        "startsWith": lambda s, f, e: s.startswith(arg(0, f, e)),
        "endsWith": lambda s, f, e: s.endswith(arg(0, f, e)),
        "contains": lambda s, f, e: arg(0, f, e) in s,
        "matches": lambda s, f, e: re.search(arg(0, f, e), s) is not None,
        "lower": lambda s, f, e: s.lower(),
        "upper": lambda s, f, e: s.upper(),
        "length": lambda s, f, e: len(s),
        "replace": lambda s, f, e: s.replace(arg(0, f, e), arg(1, f, e)),
        "substring": lambda s, f, e: (
            s[arg(0, f, e) :] if len(args) == 1 else s[arg(0, f, e) : arg(0, f, e) + arg(1, f, e)]
        ),
    }
    return table[name]


def compile_function(
    name: str, target: Compiled | None, arg_nodes: tuple[Node, ...], scope: Scope, comp: CompileNode
) -> Compiled:
    if name not in _ARITY:
        raise ViewDefinitionError(f"unsupported FHIRPath function {name}()")
    low, high, result_type = _ARITY[name]
    if not low <= len(arg_nodes) <= high:
        raise ViewDefinitionError(f"{name}() takes {low}..{high} arguments, got {len(arg_nodes)}")
    src: Fn = target.fn if target is not None else (lambda focus, env: focus)
    src_type = target.type_name if target is not None else None
    truth = operators.truth

    if name in ("ofType", "is", "as"):
        type_name = type_argument(arg_nodes[0], name)
        if name == "is":
            return Compiled(lambda f, e: [is_type(x, type_name) for x in src(f, e)][:1], "boolean")
        return Compiled(lambda f, e: [x for x in src(f, e) if is_type(x, type_name)], type_name)
    if name == "getReferenceKey":
        wanted = type_argument(arg_nodes[0], name) if arg_nodes else None
        return Compiled(
            lambda f, e: [k for x in src(f, e) if (k := reference_key(x, wanted)) is not None],
            result_type,
        )
    if name in ("lowBoundary", "highBoundary"):
        high_edge = name == "highBoundary"
        return Compiled(
            lambda f, e: [
                b for x in src(f, e) if (b := boundary(x, src_type, high=high_edge)) is not None
            ],
            src_type,
        )

    args = [comp(a, scope).fn for a in arg_nodes]
    run: Fn
    if name in ("where", "exists", "all") and args:
        test = predicate(arg_nodes[0], scope, args[0])
    if name == "where":
        run = lambda f, e: [x for x in src(f, e) if test(x, e) is True]  # noqa: E731
    elif name == "select":
        proj = args[0]
        run = lambda f, e: [y for x in src(f, e) for y in proj([x], e)]  # noqa: E731
    elif name == "exists":
        if args:

            def run(f: Coll, e: Env) -> Coll:
                for x in src(f, e):
                    if test(x, e) is True:
                        return [True]
                return [False]

        else:
            run = lambda f, e: [bool(src(f, e))]  # noqa: E731
    elif name == "all":
        run = lambda f, e: [all(test(x, e) is True for x in src(f, e))]  # noqa: E731
    elif name == "empty":
        run = lambda f, e: [not src(f, e)]  # noqa: E731
    elif name == "not":

        def run(f: Coll, e: Env) -> Coll:
            value = truth(src(f, e))
            return [] if value is None else [not value]

    elif name == "hasValue":
        run = lambda f, e: [len(c := src(f, e)) == 1 and not isinstance(c[0], dict)]  # noqa: E731
    elif name in ("first", "last", "tail", "single", "distinct", "count"):
        run = _collection_fn(name, src)
    elif name in ("skip", "take"):
        count = args[0]

        def run(f: Coll, e: Env) -> Coll:
            n = operators.singleton(count(f, e), f"{name}()")
            coll = src(f, e)
            return coll[n:] if name == "skip" else coll[:n]

    elif name in ("union", "combine"):
        other = args[0]
        both = operators.union if name == "union" else (lambda a, b: a + b)
        run = lambda f, e: both(src(f, e), other(f, e))  # noqa: E731
    elif name == "join":
        sep = args[0] if args else (lambda f, e: [""])
        run = lambda f, e: [  # noqa: E731
            operators.singleton(sep(f, e), "join() separator").join(str(x) for x in src(f, e))
        ]
    elif name == "extension":
        url = args[0]

        def run(f: Coll, e: Env) -> Coll:
            wanted = operators.singleton(url(f, e), "extension() url")
            return [
                ext
                for x in src(f, e)
                if type(x) is dict
                for ext in x.get("extension", ())
                if type(ext) is dict and ext.get("url") == wanted
            ]

    elif name == "getResourceKey":

        def run(f: Coll, e: Env) -> Coll:
            coll = src(f, e) if target is not None else [e.resource]
            return [k for x in coll if (k := _resource_key(x)) is not None]

    elif name == "iif":
        cond, then = args[0], args[1]
        otherwise: Fn = args[2] if len(args) > 2 else (lambda f, e: [])
        run = lambda f, e: then(f, e) if truth(cond(src(f, e), e)) else otherwise(f, e)  # noqa: E731
    elif name in ("toString", "toInteger", "toDecimal"):
        run = _conversion(name, src)
    else:
        string_fn = _string_fn(name, args)

        def run(f: Coll, e: Env) -> Coll:
            value = operators.singleton(src(f, e), f"{name}()")
            return [] if not isinstance(value, str) else [string_fn(value, f, e)]

    if result_type is None and name in ("where", "first", "last", "tail", "single", "skip"):
        result_type = src_type
    return Compiled(run, result_type)


def _collection_fn(name: str, src: Fn) -> Fn:
    if name == "first":
        return lambda f, e: src(f, e)[:1]
    if name == "last":
        return lambda f, e: src(f, e)[-1:]
    if name == "tail":
        return lambda f, e: src(f, e)[1:]
    if name == "count":
        return lambda f, e: [len(src(f, e))]
    if name == "single":
        return lambda f, e: [] if (v := operators.singleton(src(f, e), "single()")) is None else [v]
    return lambda f, e: operators.union(src(f, e), [])


def _conversion(name: str, src: Fn) -> Fn:
    def convert(value: Any) -> Any:
        try:
            if name == "toString":
                return ("true" if value else "false") if isinstance(value, bool) else str(value)
            if name == "toInteger":
                return int(value) if not isinstance(value, float) else None
            return float(value)
        except (TypeError, ValueError):
            return None

    def run(f: Coll, e: Env) -> Coll:
        value = operators.singleton(src(f, e), f"{name}()")
        converted = None if value is None or isinstance(value, dict) else convert(value)
        return [] if converted is None else [converted]

    return run
