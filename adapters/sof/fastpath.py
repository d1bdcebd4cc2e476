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

from adapters.sof.fhirtypes import CHOICE_NAMES, choice_key
from adapters.sof.operators import item_equal, truth
from adapters.sof.parser import Binary, Call, External, Literal, Member, Node, type_argument
from adapters.sof.runtime import Env, Fn, Scope


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


class Source:
    """Python source being generated, with the values it refers to bound by generated names."""

    def __init__(self, **names: Any) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = dict(names)

    def bind(self, prefix: str, value: Any) -> str:
        name = f"{prefix}{len(self.names)}"
        self.names[name] = value
        return name

    def add(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def function(self, name: str) -> Any:
        namespace = dict(self.names)
        exec(compile("\n".join(self.lines), "<sql-on-fhir view>", "exec"), namespace)
        return namespace[name]


class Fallback(Exception):
    """Raised inside generated criteria when the data is not the simple case."""


def predicate(ast: Node, scope: Scope, general: Fn) -> Predicate:
    """``truth(criteria([item]))`` for a ``where``/``exists`` criteria.

    Criteria made of ``and``/``or`` over ``path = constant`` / ``path != constant`` compile to
    generated code; when the data is not the simple case it raises ``Fallback`` and the
    general closure decides (try/except costs nothing when nothing is raised).
    """

    def slow(item: Any, env: Env) -> bool | None:
        return truth(general([item], env))

    src = Source(SLOW=slow)
    src.add(0, "def test(item, env):")
    if not emit_predicate(src, ast, scope, item="item", result="answer", depth=1, slow="SLOW"):
        return slow
    src.add(1, "return answer")
    test: Predicate = src.function("test")
    test.slow = slow  # type: ignore[attr-defined]
    return test


def emit_predicate(
    src: Source, ast: Node, scope: Scope, *, item: str, result: str, depth: int, slow: str
) -> bool:
    """Emit code setting ``result`` to the criteria's truth for ``item`` (with a fallback to
    ``slow(item, env)``); False, and nothing emitted, if the criteria has no fast form."""
    mark = len(src.lines)
    src.names.setdefault("FALLBACK", Fallback)
    src.names.setdefault("EQ", item_equal)
    src.add(depth, "try:")
    src.add(depth + 1, f"if type({item}) is not dict:")
    src.add(depth + 2, "raise FALLBACK")
    expr = _emit_predicate(src, ast, scope, item, depth + 1)
    if expr is None:
        del src.lines[mark:]
        return False
    src.add(depth + 1, f"{result} = {expr}")
    src.add(depth, "except FALLBACK:")
    src.add(depth + 1, f"{result} = {slow}({item}, env)")
    return True


def _emit_predicate(src: Source, ast: Node, scope: Scope, item: str, depth: int) -> str | None:
    """Emit statements computing ``ast`` for ``item``; return the expression holding it."""
    if isinstance(ast, Binary) and ast.op in ("and", "or"):
        left = _emit_predicate(src, ast.left, scope, item, depth)
        right = _emit_predicate(src, ast.right, scope, item, depth)
        if left is None or right is None:
            return None
        var = src.bind("r", None)
        if ast.op == "and":
            src.add(depth, f"{var} = False if {left} is False or {right} is False else ")
            src.lines[-1] += f"(True if {left} is True and {right} is True else None)"
        else:
            src.add(depth, f"{var} = True if {left} is True or {right} is True else ")
            src.lines[-1] += f"(False if {left} is False and {right} is False else None)"
        return var
    if not (isinstance(ast, Binary) and ast.op in ("=", "!=")):
        return None
    for side, other in ((ast.left, ast.right), (ast.right, ast.left)):
        is_const, const = _constant(other, scope)
        keys = key_chain(side)
        if not is_const or keys is None:
            continue
        var = src.bind("r", None)
        src.add(depth, f"{var} = {item}")
        for step, (key, exact) in enumerate(keys):
            src.add(depth, f"if {var} is not None:")
            if step:
                src.add(depth + 1, f"if type({var}) is not dict:")
                src.add(depth + 2, "raise FALLBACK")
            src.add(depth + 1, f"{var} = {var}.get({src.bind('K', key)})")
            if not exact:
                src.add(depth + 1, f"if {var} is None:")
                src.add(depth + 2, "raise FALLBACK")
        src.add(depth, f"if type({var}) is list:")
        src.add(depth + 1, "raise FALLBACK")
        test = "is not" if ast.op == "!=" else "is"
        src.add(depth, f"if {var} is not None:")
        name = src.bind("C", const)
        if isinstance(const, str):  # item_equal, inlined for the usual string constant
            src.add(depth + 1, f"{var} = ({var} == {name}) {test} True")
        else:
            src.add(depth + 1, f"{var} = EQ({var}, {name}) {test} True")
        return var
    return None
