"""An aggregate answer as an integer vector, for secure aggregation (``connector.federation``).

In secure mode each hospital computes the same query's cells as integers in one order (the
layout depends on the query alone, so every hospital's vector has the same length and
meaning), adds its share of the noise and its pairwise masks, and sends only the masked vector.
The coordinator sums the vectors (the masks cancel) and turns the noisy totals into a
``MeasureReport`` with ``report_from_totals``, which applies suppression (on the noisy totals:
nobody knows true ones) and rounding.

- ``true_vector``: the hospital's true cells; count cells as counts, sum cells in fixed point
  (value * ``FIXED_POINT``, rounded). It must not leave the hospital unmasked.
- ``vector_cells``: each cell's label and the most one patient can add to it (in vector units),
  to size the masking modulus and the noise.
- ``noise_plan``: the noise groups with their L1 sensitivity (vector units) and the epsilon
  share each spends; the query's epsilon is split over them evenly, as in plain mode.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from connector.fulfilment.aggregate.cells import FIXED_POINT, CellKind
from connector.fulfilment.aggregate.fulfilment import AggregateFulfilment
from connector.fulfilment.aggregate.release import release_totals
from connector.fulfilment.aggregate.report import measure_report
from connector.fulfilment.aggregate.request import AggregateQuery
from connector.ports import FlatViews


@dataclass(frozen=True)
class CellVector:
    digest: str
    values: tuple[int, ...]
    reference: date  # the date ages were computed at (the coordinator should pick one)


@dataclass(frozen=True)
class VectorCell:
    label: str  # "cohort", "<measure id>", "<measure id>/<stratum>", "<measure id>/sum"
    kind: CellKind
    bound: int  # the most one patient adds to this cell, in vector units


@dataclass(frozen=True)
class NoiseShare:
    cells: tuple[int, ...]
    sensitivity: int  # L1, in vector units
    epsilon: float
    integer: bool  # False: a sum in fixed point (continuous noise, then rounded)


def _scale(kind: CellKind) -> int:
    return 1 if kind is CellKind.COUNT else FIXED_POINT


def vector_cells(query: AggregateQuery) -> tuple[VectorCell, ...]:
    out = []
    for cell in query.layout.cells:
        label = cell.measure if not cell.label else f"{cell.measure}/{cell.label}"
        out.append(VectorCell(label, cell.kind, int(round(cell.bound * _scale(cell.kind)))))
    return tuple(out)


def noise_plan(query: AggregateQuery) -> tuple[NoiseShare, ...]:
    groups = query.layout.groups
    share = query.options.epsilon / len(groups)
    cells = query.layout.cells
    return tuple(
        NoiseShare(
            g.cells,
            int(round(g.sensitivity * _scale(cells[g.cells[0]].kind))),
            share,
            g.integer,
        )
        for g in groups
    )


async def true_vector(
    fulfilment: AggregateFulfilment, query: AggregateQuery, views: FlatViews, reference: date
) -> CellVector:
    values = await asyncio.to_thread(fulfilment.evaluate_true, query, views, reference)
    kinds = [cell.kind for cell in query.layout.cells]
    ints = tuple(int(round(v * _scale(k))) for v, k in zip(values, kinds, strict=True))
    return CellVector(query.digest, ints, reference)


def report_from_totals(
    query: AggregateQuery, totals: tuple[int, ...] | list[int], *, reference: date, now: datetime
) -> dict[str, Any]:
    """The ``MeasureReport`` of summed, noisy vectors (suppression and rounding applied)."""
    if len(totals) != len(query.layout):
        raise ValueError(f"expected {len(query.layout)} cells, got {len(totals)}")
    released = release_totals(query, totals, reference=reference, now=now)
    return measure_report(query, released)
