"""The federated query coordinator's view of aggregate answers (``connector.federation.ports
.CellCodec``): a query's cells as a vector, a hospital's MeasureReport as that vector, and a
MeasureReport from a combined vector.

- ``layout``: the cell names of ``secure.cell_names``, from the query alone (every hospital
  computes the same ones); the first is ``cohort``, the patient count.
- ``cells``: a hospital's MeasureReport (plain mode) read back in layout order, counts as
  they are and None where the hospital suppressed a cell. A numeric measure's mean and
  standard deviation become its sum and sum of squares in fixed point (mean * n and
  (sd^2 + mean^2) * n, times ``FIXED_POINT``), so that hospitals' answers add up; the
  combined mean is then the mean over all of them, weighted by their counts (from released,
  rounded values: an approximation of the true one, like every released value).
- ``report``: the MeasureReport of a combined vector, with the aggregate presentation rules:
  suppression on the totals (below the query's minimum cell size, with secondary suppression
  on a securely aggregated vector, where no hospital released anything on its own), counts
  rounded to 10 and never negative, means and deviations to three significant digits.

The query is parsed as a hospital parses it, without an agreement's limits: its own
``minCellSize`` or the default applies to the totals.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from connector.errors import BadRequestError
from connector.fulfilment.aggregate.cells import FIXED_POINT, CellKind
from connector.fulfilment.aggregate.measures import Numeric
from connector.fulfilment.aggregate.report import EXT
from connector.fulfilment.aggregate.request import AggregateQuery, parse_request
from connector.fulfilment.aggregate.secure import cell_names, report_from_totals
from connector.ports import Clock

_PARSED_KEPT = 32
Json = Mapping[str, Any]


class AggregateCodec:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._parsed: OrderedDict[bytes, AggregateQuery] = OrderedDict()

    def parse(self, query: Mapping[str, Any]) -> AggregateQuery:
        """``query`` parsed and validated (``BadRequestError`` naming the bad part)."""
        try:
            body = orjson.dumps(dict(query))
        except orjson.JSONEncodeError as exc:  # an integer beyond 64 bits, a lone surrogate
            raise BadRequestError(f"query: not a query a hospital can read ({exc})") from None
        found = self._parsed.get(body)
        if found is None:
            found = parse_request(body)
            self._parsed[body] = found
            if len(self._parsed) > _PARSED_KEPT:
                self._parsed.popitem(last=False)
        return found

    def layout(self, query: Mapping[str, Any]) -> list[str]:
        return cell_names(self.parse(query))

    def cells(self, query: Mapping[str, Any], report: Mapping[str, Any]) -> list[int | None]:
        q = self.parse(query)
        try:
            out = _cells(q, report)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ValueError(
                f"nothing where the query's cells are ({type(exc).__name__})"
            ) from None
        if len(out) != len(q.layout):
            raise ValueError(f"{len(out)} cells, the query has {len(q.layout)}")
        return out

    def report(self, query: Mapping[str, Any], cells: Sequence[int | None]) -> dict[str, Any]:
        now = self._clock.now()
        return report_from_totals(self.parse(query), cells, reference=now.date(), now=now)


def _count(population: Json) -> int | None:
    count = population.get("count")
    if count is None:
        return None
    if type(count) is not int:
        raise ValueError(f"a count is {type(count).__name__}, not an integer")
    return count


def _strata(stratifier: Json, expected: str, size: int) -> list[int | None]:
    code = stratifier["code"][0].get("text")
    if code != expected:
        raise ValueError(f"stratifier {code!r} where the query has {expected!r}")
    strata = stratifier["stratum"]
    if len(strata) != size:
        raise ValueError(f"stratifier {expected!r} has {len(strata)} strata, the query {size}")
    return [_count(s["population"][0]) for s in strata]


def _quantity(value: Json | None) -> float | None:
    if value is None or "value" not in value:
        return None
    number = value["value"]
    if type(number) not in (int, float):
        raise ValueError(f"a value is {type(number).__name__}, not a number")
    return float(number)


def _fixed(value: float) -> int | None:
    return int(round(value * FIXED_POINT)) if math.isfinite(value) else None


def _stddev(group: Json) -> float | None:
    for extension in group.get("extension", []):
        if extension.get("url") == f"{EXT}stddev":
            return _quantity(extension.get("valueQuantity"))
    return None


def _cells(q: AggregateQuery, report: Json) -> list[int | None]:
    groups = report["group"]
    cohort = groups[0]
    out: list[int | None] = [_count(cohort["population"][0])]
    stratifiers = iter(cohort.get("stratifier", []))
    numeric_groups = iter(groups[1:])
    sizes: dict[str, int] = {}
    for cell in q.layout.cells[1:]:
        if cell.kind is CellKind.COUNT and cell.label:
            sizes[cell.measure] = sizes.get(cell.measure, 0) + 1
    for m in q.measures:
        if not isinstance(m, Numeric):
            out += _strata(next(stratifiers), m.id, sizes[m.id])
            continue
        group = next(numeric_groups)
        if group["code"]["text"] != m.id:
            raise ValueError(f"group {group['code']['text']!r} where the query has {m.id!r}")
        n = _count(group["population"][0])
        out.append(n)
        if m.mean or m.stddev:
            mean = _quantity(group.get("measureScore")) if m.mean else None
            out.append(None if n is None or mean is None else _fixed(mean * n))
            if m.stddev:
                sd = _stddev(group)
                known = n is not None and mean is not None and sd is not None
                out.append(
                    _fixed(((sd or 0) ** 2 + (mean or 0) ** 2) * (n or 0)) if known else None
                )
        if m.histogram:
            out += _strata(group["stratifier"][0], "histogram", len(m.bins()))
    if next(stratifiers, None) is not None or next(numeric_groups, None) is not None:
        raise ValueError("more groups or stratifiers than the query asks for")
    return out
