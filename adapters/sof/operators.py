"""FHIRPath operators on collections (FHIRPath N1 section 6): equality, comparison, arithmetic,
three-valued logic. Every function takes and returns a collection (a Python list)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.sof.errors import ViewEvaluationError

Coll = list[Any]


def _is_number(x: Any) -> bool:
    return (type(x) is int or type(x) is float) and x is not True and x is not False


def item_equal(a: Any, b: Any) -> bool:
    if a is True or a is False or b is True or b is False:
        return a is b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _equivalent(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return " ".join(a.lower().split()) == " ".join(b.lower().split())
    return item_equal(a, b)


def singleton(coll: Coll, what: str) -> Any:
    if len(coll) > 1:
        raise ViewEvaluationError(f"{what} expects a single value, got {len(coll)}")
    return coll[0] if coll else None


def truth(coll: Coll) -> bool | None:
    """Singleton evaluation of a collection in a boolean context (FHIRPath 4.5)."""
    if not coll:
        return None
    if len(coll) > 1:
        raise ViewEvaluationError(f"a boolean was expected, got a collection of {len(coll)}")
    value = coll[0]
    return value if value is True or value is False else True


def equals(left: Coll, right: Coll) -> Coll:
    if not left or not right:
        return []
    if len(left) != len(right):
        return [False]
    return [all(item_equal(a, b) for a, b in zip(left, right, strict=True))]


def not_equals(left: Coll, right: Coll) -> Coll:
    result = equals(left, right)
    return [not result[0]] if result else []


def equivalent(left: Coll, right: Coll) -> Coll:
    if len(left) != len(right):
        return [False]
    rest = list(right)
    for a in left:
        for i, b in enumerate(rest):
            if _equivalent(a, b):
                del rest[i]
                break
        else:
            return [False]
    return [True]


def not_equivalent(left: Coll, right: Coll) -> Coll:
    return [not equivalent(left, right)[0]]


def _comparable(op: str, left: Coll, right: Coll) -> tuple[Any, Any] | None:
    a = singleton(left, f"operator {op}")
    b = singleton(right, f"operator {op}")
    if a is None or b is None:
        return None
    if (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
        return a, b
    raise ViewEvaluationError(f"cannot compare {a!r} and {b!r} with {op}")


def compare(op: str) -> Callable[[Coll, Coll], Coll]:
    test: Callable[[Any, Any], bool] = {
        "<": lambda a, b: a < b,
        ">": lambda a, b: a > b,
        "<=": lambda a, b: a <= b,
        ">=": lambda a, b: a >= b,
    }[op]

    def run(left: Coll, right: Coll) -> Coll:
        pair = _comparable(op, left, right)
        return [] if pair is None else [test(*pair)]

    return run


def arithmetic(op: str) -> Callable[[Coll, Coll], Coll]:
    def run(left: Coll, right: Coll) -> Coll:
        a = singleton(left, f"operator {op}")
        b = singleton(right, f"operator {op}")
        if a is None or b is None:
            return []
        if op == "+" and isinstance(a, str) and isinstance(b, str):
            return [a + b]
        if not (_is_number(a) and _is_number(b)):
            raise ViewEvaluationError(f"operator {op} needs numbers, got {a!r} and {b!r}")
        if op == "+":
            return [a + b]
        if op == "-":
            return [a - b]
        if op == "*":
            return [a * b]
        if b == 0:
            return []  # FHIRPath: division by zero is empty, not an error
        if op == "/":
            return [a / b]
        if op == "div":
            return [int(a // b)]
        return [a % b]  # mod

    if op == "&":

        def concat(left: Coll, right: Coll) -> Coll:
            a = singleton(left, "operator &")
            b = singleton(right, "operator &")
            return [("" if a is None else str(a)) + ("" if b is None else str(b))]

        return concat
    return run


def logic(op: str, left: bool | None, right: bool | None) -> Coll:
    if op == "and":
        if left is False or right is False:
            return [False]
        return [True] if left is True and right is True else []
    if op == "or":
        if left is True or right is True:
            return [True]
        return [False] if left is False and right is False else []
    if op == "xor":
        return [] if left is None or right is None else [left != right]
    # implies
    if left is False or right is True:
        return [True]
    if left is True:
        return [] if right is None else [right]
    return []  # left is empty and right is not true


def union(left: Coll, right: Coll) -> Coll:
    out: Coll = []
    for item in left + right:
        if not any(item_equal(item, seen) for seen in out):
            out.append(item)
    return out


def membership(item: Coll, coll: Coll) -> Coll:
    if not item:
        return []
    value = singleton(item, "operator in")
    return [any(item_equal(value, other) for other in coll)]
