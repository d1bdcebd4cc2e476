"""Compile a FHIRPath AST once into a Python closure ``fn(focus, env) -> collection``.

Collections are Python lists of JSON values. Navigation chains (``code.coding.code``) are fused
into one loop, choice elements followed by ``ofType`` become a direct key lookup
(``value.ofType(Quantity)`` reads ``valueQuantity``), and constants are folded in at compile
time, so evaluating a view does no parsing and little dispatch per resource.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.sof import functions, operators
from adapters.sof.errors import ViewDefinitionError
from adapters.sof.fastpath import Source, emit_predicate, predicate
from adapters.sof.fhirtypes import CHOICE_NAMES, choice_key, choice_values, is_type
from adapters.sof.parser import (
    Binary,
    Call,
    External,
    Index,
    Literal,
    Member,
    Node,
    Special,
    TypeOp,
    Unary,
    parse,
    type_argument,
)
from adapters.sof.runtime import Coll, Compiled, Env, Fn, Scope


def _identity(focus: Coll, env: Env) -> Coll:
    return focus


def _navigate(names: list[str], test: tuple[Node, Scope, Fn] | None = None) -> Any:
    """One generated loop nest for a chain of member steps (``code.coding.code``): flatten
    lists, skip nulls, resolve choice elements stored under a typed key.

    Without ``test`` it returns ``nav(focus, env) -> collection``; with one, it returns
    ``exists(focus, env) -> [bool]``, true at the first item the test holds for (``where``
    criteria then ``exists()`` fused into one loop, no intermediate list).
    """
    src = Source(CHOICE=choice_values)
    src.add(0, "def nav(focus, env=None):")
    if test is None:
        src.add(1, "out = []")
    src.add(1, "for x0 in focus:")
    depth = 2
    for i, name in enumerate(names):
        item, value = f"x{i}", f"v{i + 1}"
        src.add(depth, f"if type({item}) is not dict:")
        src.add(depth + 1, "continue")
        key = src.bind("K", name)
        src.add(depth, f"{value} = {item}.get({key})")
        src.add(depth, f"if {value} is None:")
        if name in CHOICE_NAMES:
            src.add(depth + 1, f"{value} = CHOICE({item}, {key})")
            src.add(depth + 1, f"if {value} is None:")
            src.add(depth + 2, "continue")
        else:
            src.add(depth + 1, "continue")
        if i + 1 == len(names) and test is None:
            src.add(depth, f"if type({value}) is list:")
            src.add(depth + 1, f"out.extend({value} if None not in {value} else ")
            src.lines[-1] += f"[y for y in {value} if y is not None])"
            src.add(depth, "else:")
            src.add(depth + 1, f"out.append({value})")
        else:
            src.add(depth, f"for x{i + 1} in ({value} if type({value}) is list else ({value},)):")
            depth += 1
    if test is None:
        src.add(1, "return out")
    else:
        last = f"x{len(names)}"
        criteria, scope, general = test
        checker = predicate(criteria, scope, general)
        src.names["TEST"] = checker
        src.names["SLOW"] = getattr(checker, "slow", checker)
        src.add(depth, f"if {last} is None:")
        src.add(depth + 1, "continue")
        if not emit_predicate(
            src, criteria, scope, item=last, result="hit", depth=depth, slow="SLOW"
        ):
            src.add(depth, f"hit = TEST({last}, env)")
        src.add(depth, "if hit is True:")
        src.add(depth + 1, "return [True]")
        src.add(1, "return [False]")
    return src.function("nav")


def _exists_over_chain(node: Call, scope: Scope) -> Compiled | None:
    """``a.b.exists(criteria)`` as one generated loop, when ``a.b`` is plain member steps."""
    names: list[str] = []
    target = node.target
    while isinstance(target, Member) and not target.name[:1].isupper():
        names.append(target.name)
        target = target.target
    if target is not None or not names or len(node.args) != 1:
        return None
    names.reverse()
    test = (node.args[0], scope, compile_node(node.args[0], scope).fn)
    return Compiled(_navigate(names, test), "boolean")


def _choice_of_type(name: str, type_name: str) -> Callable[[Coll], Coll]:
    key = choice_key(name, type_name)

    def step(focus: Coll) -> Coll:
        out: Coll = []
        for item in focus:
            if type(item) is dict:
                value = item.get(key)
                if value is None:  # a plain element of that name and type (Identifier.value)
                    value = item.get(name)
                    if value is None or not is_type(value, type_name):
                        continue
                if type(value) is list:
                    out.extend(value)
                else:
                    out.append(value)
        return out

    return step


def _then(target: Compiled | None, step: Callable[[Coll], Coll]) -> Fn:
    if target is None:
        return lambda focus, env: step(focus)
    inner = target.fn
    return lambda focus, env: step(inner(focus, env))


def _member(node: Member, scope: Scope) -> Compiled:
    names = [node.name]
    target = node.target
    while isinstance(target, Member):
        names.append(target.name)
        target = target.target
    names.reverse()
    base = None if target is None else compile_node(target, scope)
    if target is None and names[0][:1].isupper():  # Patient.name: a type filter at the root
        root = names.pop(0)

        def of_root(focus: Coll) -> Coll:
            return [r for r in focus if type(r) is dict and r.get("resourceType") == root]

        if not names:
            return Compiled(_then(base, of_root), root)
        rest = _navigate(names)
        return Compiled(_then(base, lambda focus: rest(of_root(focus))), None)
    nav = _navigate(names)
    if base is None:  # the generated loop already takes (focus, env): no wrapper
        return Compiled(nav, None)
    return Compiled(_then(base, nav), None)


def _external(node: External, scope: Scope) -> Compiled:
    if node.name == "rowIndex":
        return Compiled(lambda focus, env: [env.row_index], "integer")
    if node.name in ("resource", "rootResource", "context"):
        return Compiled(lambda focus, env: [env.resource], None)
    fixed = {"ucum": "http://unitsofmeasure.org", "sct": "http://snomed.info/sct"}
    fixed["loinc"] = "http://loinc.org"
    if node.name in fixed:
        uri = [fixed[node.name]]
        return Compiled(lambda focus, env: list(uri), "uri")
    if node.name not in scope.constants:
        raise ViewDefinitionError(f"undefined constant %{node.name}")
    values, type_name = scope.constants[node.name]
    return Compiled(lambda focus, env: list(values), type_name)


def _binary(node: Binary, scope: Scope) -> Compiled:
    left = compile_node(node.left, scope).fn
    right = compile_node(node.right, scope).fn
    op = node.op
    if op in ("and", "or", "xor", "implies"):
        truth = operators.truth
        logic = operators.logic

        def boolean(focus: Coll, env: Env) -> Coll:
            lhs = truth(left(focus, env))
            if op == "and" and lhs is False:
                return [False]
            if op == "or" and lhs is True:
                return [True]
            return logic(op, lhs, truth(right(focus, env)))

        return Compiled(boolean, "boolean")
    table: dict[str, Callable[[Coll, Coll], Coll]] = {
        "=": operators.equals,
        "!=": operators.not_equals,
        "~": operators.equivalent,
        "!~": operators.not_equivalent,
        "|": operators.union,
        "in": operators.membership,
        "contains": lambda a, b: operators.membership(b, a),
    }
    if op in ("<", ">", "<=", ">="):
        apply = operators.compare(op)
    elif op in table:
        apply = table[op]
    else:
        apply = operators.arithmetic(op)
    result_type = "boolean" if op not in ("|", "+", "-", "*", "/", "div", "mod", "&") else None
    return Compiled(lambda focus, env: apply(left(focus, env), right(focus, env)), result_type)


def _index(node: Index, scope: Scope) -> Compiled:
    target = compile_node(node.target, scope).fn
    index = compile_node(node.index, scope).fn

    def at(focus: Coll, env: Env) -> Coll:
        coll = target(focus, env)
        pos = operators.singleton(index(focus, env), "indexer")
        if type(pos) is not int:
            return []
        return [coll[pos]] if 0 <= pos < len(coll) else []

    return Compiled(at, None)


def _unary(node: Unary, scope: Scope) -> Compiled:
    inner = compile_node(node.operand, scope)
    if node.op == "+":
        return inner
    fn = inner.fn
    negate = operators.arithmetic("-")
    return Compiled(lambda focus, env: negate([0], fn(focus, env)), inner.type_name)


def _type_op(node: TypeOp, scope: Scope) -> Compiled:
    call = Call(
        node.operand, "ofType" if node.op == "as" else "is", (Member(None, node.type_name),)
    )
    return compile_node(call, scope)


def _call(node: Call, scope: Scope) -> Compiled:
    where = node.target
    if (
        node.name == "exists"
        and not node.args
        and isinstance(where, Call)
        and where.name == "where"
    ):
        node = Call(where.target, "exists", where.args)  # X.where(p).exists() is X.exists(p)
    if node.name == "exists" and (fused := _exists_over_chain(node, scope)) is not None:
        return fused
    if node.name == "ofType" and isinstance(node.target, Member) and len(node.args) == 1:
        member = node.target
        type_name = type_argument(node.args[0], "ofType")
        if member.name in CHOICE_NAMES:
            base = None if member.target is None else compile_node(member.target, scope)
            return Compiled(_then(base, _choice_of_type(member.name, type_name)), type_name)
    target = None if node.target is None else compile_node(node.target, scope)
    return functions.compile_function(node.name, target, node.args, scope, compile_node)


def compile_node(node: Node, scope: Scope) -> Compiled:
    if isinstance(node, Literal):
        values = list(node.values)
        return Compiled(lambda focus, env: list(values), node.type_name)
    if isinstance(node, Special):
        if node.name != "this":
            raise ViewDefinitionError(f"${node.name} is not supported")
        return Compiled(_identity, None)
    if isinstance(node, Member):
        return _member(node, scope)
    if isinstance(node, External):
        return _external(node, scope)
    if isinstance(node, Binary):
        return _binary(node, scope)
    if isinstance(node, Index):
        return _index(node, scope)
    if isinstance(node, Unary):
        return _unary(node, scope)
    if isinstance(node, TypeOp):
        return _type_op(node, scope)
    return _call(node, scope)


def compile_path(src: str, scope: Scope) -> Compiled:
    """Parse and compile ``src``; raise ``ViewDefinitionError`` if it is invalid."""
    return compile_node(parse(src), scope)
