"""``lowBoundary()`` / ``highBoundary()`` (FHIRPath 3.0 draft, section 5.7): the least / greatest
value a value of lower precision could stand for (``1.0`` -> 0.95..1.05, ``1970-06`` ->
1970-06-01..1970-06-30). The type decides the shape of the result, so the caller passes the
static type when it is known and the runtime shape of the value decides otherwise.
"""

from __future__ import annotations

import calendar
from decimal import Decimal
from typing import Any

from adapters.sof.fhirtypes import DATE_RE, DATETIME_RE, TIME_RE

_LOW_TZ = "+14:00"  # the earliest instant a local time without a zone could be
_HIGH_TZ = "-12:00"


def _decimal(value: int | float, high: bool) -> float:
    d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    exponent = d.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return float(d + half if high else d - half)


def _date(text: str, high: bool) -> str:
    parts = text.split("-")
    year = int(parts[0])
    month = int(parts[1]) if len(parts) > 1 else (12 if high else 1)
    if len(parts) > 2:
        day = int(parts[2])
    else:
        day = calendar.monthrange(year, month)[1] if high else 1
    return f"{year:04d}-{month:02d}-{day:02d}"


def _time(text: str, high: bool) -> str:
    parts = text.split(":")
    hh = parts[0]
    mm = parts[1] if len(parts) > 1 else ("59" if high else "00")
    if len(parts) > 2:
        ss = parts[2] if "." in parts[2] else parts[2] + (".999" if high else ".000")
    else:
        ss = "59.999" if high else "00.000"
    return f"{hh}:{mm}:{ss}"


def _datetime(text: str, high: bool) -> str:
    date_part, _, rest = text.partition("T")
    tz = ""
    for sep in ("Z", "+", "-"):
        idx = rest.find(sep)
        if idx >= 0:
            rest, tz = rest[:idx], rest[idx:]
            break
    clock = _time(rest, high) if rest else ("23:59:59.999" if high else "00:00:00.000")
    return f"{_date(date_part, high)}T{clock}{tz or (_HIGH_TZ if high else _LOW_TZ)}"


def boundary(value: Any, type_name: str | None, *, high: bool) -> Any:
    """The boundary of ``value``, or None when it has none (the empty collection)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _decimal(value, high)
    if isinstance(value, dict):  # a Period: from its start's low to its end's high boundary
        edge = value.get("end" if high else "start")
        return _datetime(edge, high) if isinstance(edge, str) else None
    if not isinstance(value, str):
        return None
    if type_name in ("dateTime", "instant") or (type_name is None and DATETIME_RE.match(value)):
        return _datetime(value, high) if DATE_RE.match(value.partition("T")[0]) else None
    if type_name in ("date", None) and DATE_RE.match(value):
        return _date(value, high)
    if type_name in ("time", None) and TIME_RE.match(value):
        return _time(value, high)
    return None
