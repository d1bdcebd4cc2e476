"""An aggregate answer as an integer vector, for secure aggregation (``connector.federation``).

In secure mode each hospital computes the same query's cells as integers in one order (the
layout depends on the query alone, so every hospital's vector has the same length and
meaning), adds its full noise and its pairwise masks, and sends only the masked vector.
The coordinator sums the vectors (the masks cancel) and turns the noisy totals into a
``MeasureReport`` with ``report_from_totals``, which applies suppression (on the noisy totals:
nobody knows true ones) and rounding.

- ``cell_names``: the names of the cells in order (the session's ``layout``): ``cohort`` (the
  patient count), ``<measure id>/<stratum>``, ``<measure id>`` (a numeric measure's count),
  ``<measure id>/sum``, ``<measure id>/sumsq``, ``<measure id>/<histogram bin>``.
- ``share_vector``: the hospital's noisy vector from the fulfilment's kept draw (the one its
  plain answer is released from): counts as they are, sums in fixed point (value *
  ``FIXED_POINT``, rounded). What the fulfilment masks (``AggregateFulfilment.fulfil``).
- ``true_vector``: the hospital's true cells, as integers (tests). It must not leave the
  hospital.
- ``vector_cells``: each cell's label and the most one patient can add to it (in vector units),
  to size the masking modulus and the noise.
- ``noise_plan``: the noise groups with their L1 sensitivity (vector units) and the epsilon
  share each spends; the query's epsilon is split over them evenly, as in plain mode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from connector.fulfilment.aggregate.cells import FIXED_POINT, CellKind
from connector.fulfilment.aggregate.release import release_totals
from connector.fulfilment.aggregate.report import measure_report
from connector.fulfilment.aggregate.request import AggregateQuery
from connector.ports import FlatViews

if TYPE_CHECKING:
    from connector.fulfilment.aggregate.fulfilment import AggregateFulfilment


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


def cell_names(query: AggregateQuery) -> list[str]:
    """The layout of a secure session for ``query``: its cells' labels in order."""
    return [cell.label for cell in vector_cells(query)]


def share_vector(query: AggregateQuery, drawn: Sequence[float]) -> list[int]:
    """The noisy vector a hospital masks: ``drawn`` (``release.noisy`` of its true cells) in
    vector units."""
    if len(drawn) != len(query.layout):
        raise ValueError(f"expected {len(query.layout)} cells, got {len(drawn)}")
    return [
        int(round(v * _scale(cell.kind))) for v, cell in zip(drawn, query.layout.cells, strict=True)
    ]


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
    query: AggregateQuery, totals: Sequence[int | None], *, reference: date, now: datetime
) -> dict[str, Any]:
    """The ``MeasureReport`` of summed, noisy vectors (suppression and rounding applied; a
    None cell is one no hospital showed)."""
    if len(totals) != len(query.layout):
        raise ValueError(f"expected {len(query.layout)} cells, got {len(totals)}")
    released = release_totals(query, totals, reference=reference, now=now)
    return measure_report(query, released)
