"""From computed cells to what may be shown: suppression, noise, rounding.

``release`` (an answer computed here): suppress on the true values (``disclosure.py``), add
Laplace noise to every cell (``noise.py``), the query's epsilon split evenly over the layout's
noise groups, then round. ``noisy`` is the draw alone and ``release_drawn`` the rest, so the
fulfilment can keep the draw and a secure-aggregation share can be masked from the same one
(``secure.py``). ``release_totals`` (a combined answer of many hospitals): the totals already
carry the hospitals' noise, so only suppression (on the totals) and rounding remain.

The released vector has the layout's positions: a count cell holds its noisy count rounded to
10 (never below 0); a sum cell holds the mean and a sum-of-squares cell the standard deviation
(of the values clamped to the bounds, computed from the noisy sums and the noisy count, three
significant digits); a suppressed cell, or a statistic not asked for, holds None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from connector.fulfilment.aggregate import noise
from connector.fulfilment.aggregate.cells import FIXED_POINT, CellKind, Layout
from connector.fulfilment.aggregate.disclosure import suppressed
from connector.fulfilment.aggregate.measures import Numeric
from connector.fulfilment.aggregate.request import AggregateQuery

ROUNDING: Final = 10


@dataclass(frozen=True)
class Release:
    values: tuple[float | None, ...]
    reference: date  # the date ages were computed at
    computed_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "values": list(self.values),
            "reference": self.reference.isoformat(),
            "computedAt": self.computed_at.isoformat(),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Release:
        return cls(
            tuple(doc["values"]),
            date.fromisoformat(doc["reference"]),
            datetime.fromisoformat(doc["computedAt"]),
        )


def round_count(value: float) -> int:
    return max(0, math.floor(value / ROUNDING + 0.5) * ROUNDING)


def significant(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}g}")


def noisy(layout: Layout, values: Sequence[float], epsilon: float) -> list[float]:
    """``values`` with Laplace noise, ``epsilon`` split evenly over the noise groups."""
    share = epsilon / len(layout.groups)
    out = list(values)
    for group in layout.groups:
        drawn = noise.laplace(
            [values[i] for i in group.cells],
            sensitivity=group.sensitivity,
            epsilon=share,
            integer=group.integer,
        )
        for i, v in zip(group.cells, drawn, strict=True):
            out[i] = v
    return out


def release(
    query: AggregateQuery, true_values: Sequence[float], *, reference: date, now: datetime
) -> Release:
    drawn = noisy(query.layout, true_values, query.options.epsilon)
    return release_drawn(query, true_values, drawn, reference=reference, now=now)


def release_drawn(
    query: AggregateQuery,
    true_values: Sequence[float],
    drawn: Sequence[float],
    *,
    reference: date,
    now: datetime,
) -> Release:
    """The release of ``drawn`` (``noisy`` of ``true_values``): suppression decided on the
    true values, then rounding."""
    hidden = suppressed(query.layout, true_values, query.options.min_cell_size)
    return Release(_shown(query, list(drawn), hidden), reference, now)


def release_totals(
    query: AggregateQuery, totals: Sequence[int | None], *, reference: date, now: datetime
) -> Release:
    """A combined vector (sums in fixed point, noise already in): a securely aggregated sum,
    or hospitals' released cells added up (None: no hospital showed the cell)."""
    layout = query.layout
    values = [
        0.0 if t is None else t / FIXED_POINT if cell.kind is not CellKind.COUNT else float(t)
        for t, cell in zip(totals, layout.cells, strict=True)
    ]
    absent = frozenset(i for i, t in enumerate(totals) if t is None)
    hidden = suppressed(layout, values, query.options.min_cell_size, absent=absent)
    return Release(_shown(query, values, hidden), reference, now)


def _shown(
    query: AggregateQuery, values: list[float], hidden: frozenset[int]
) -> tuple[float | None, ...]:
    layout = query.layout
    shown: list[float | None] = [
        None if i in hidden or cell.kind is not CellKind.COUNT else float(round_count(values[i]))
        for i, cell in enumerate(layout.cells)
    ]
    bounds = {m.id: m.bounds for m in query.measures if isinstance(m, Numeric)}
    for i, cell in enumerate(layout.cells):
        if cell.kind is CellKind.COUNT or i in hidden:
            continue
        assert cell.count_cell is not None
        lo, hi = bounds[cell.measure] or (0.0, 0.0)
        n = max(values[cell.count_cell], 1.0)
        mean = min(max(values[_sum_cell(layout, cell.count_cell)] / n, lo), hi)
        if cell.kind is CellKind.SUM:
            shown[i] = significant(mean)
        else:
            variance = values[i] / n - mean * mean
            # below what sums in fixed point resolve (secure aggregation): none
            variance = variance if variance * n >= 1 / FIXED_POINT else 0.0
            shown[i] = significant(min(math.sqrt(variance), (hi - lo) / 2))
    return tuple(shown)


def _sum_cell(layout: Layout, count_cell: int) -> int:
    return next(
        i
        for i, cell in enumerate(layout.cells)
        if cell.count_cell == count_cell and cell.kind is CellKind.SUM
    )
