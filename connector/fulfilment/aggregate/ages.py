"""Ages in completed units at a reference date, and the birth dates that bound them.

An age criterion compares completed years (``a``), months (``mo``), weeks (``wk``) or days
(``d``) at the reference date, as the MII portal's current chronological age does. Completed
units fall as the birth date moves later, so "at least N" is "born on or before
``latest_birth(N)``": every comparison becomes a comparison of the birth date with a constant,
which any SQL engine runs (and uses an index for).
"""

from __future__ import annotations

import math
from datetime import date, timedelta

from connector.fulfilment.aggregate.ccdl import Comparison, Range

_DAYS = {"a": 365.2425, "mo": 30.436875, "wk": 7.0, "d": 1.0}


def completed(birth: date, reference: date, unit: str) -> int:
    """Completed ``unit``s from ``birth`` to ``reference`` (negative when born after it)."""
    if unit == "a":
        return (
            reference.year
            - birth.year
            - ((reference.month, reference.day) < (birth.month, birth.day))
        )
    if unit == "mo":
        return (
            (reference.year - birth.year) * 12
            + reference.month
            - birth.month
            - (reference.day < birth.day)
        )
    days = (reference - birth).days
    return days // 7 if unit == "wk" else days


def latest_birth(n: int, reference: date, unit: str) -> date | None:
    """The latest birth date with ``completed(...) >= n``; None if before year 1."""
    try:
        guess = reference - timedelta(days=math.floor(n * _DAYS[unit]))
    except OverflowError:
        return None
    while guess < date.max and completed(guess + timedelta(days=1), reference, unit) >= n:
        guess += timedelta(days=1)
    while completed(guess, reference, unit) < n:
        if guess == date.min:
            return None
        guess -= timedelta(days=1)
    return guess


def birth_conditions(value: Comparison | Range) -> list[list[tuple[str, int]]] | None:
    """An age filter as an OR of ANDs of ``("<=", n)`` (completed >= n) and ``(">", n)``
    (completed < n); None when nothing can match (``eq`` with a fractional value)."""
    if isinstance(value, Range):
        return [[("<=", math.ceil(value.low)), (">", math.floor(value.high) + 1)]]
    v = value.value
    match value.comparator:
        case "gt":
            return [[("<=", math.floor(v) + 1)]]
        case "ge":
            return [[("<=", math.ceil(v))]]
        case "lt":
            return [[(">", math.ceil(v))]]
        case "le":
            return [[(">", math.floor(v) + 1)]]
        case "eq":
            if not v.is_integer():
                return None
            return [[("<=", int(v)), (">", int(v) + 1)]]
        case _:  # ne
            if not v.is_integer():
                return [[]]
            return [[(">", int(v))], [("<=", int(v) + 1)]]
