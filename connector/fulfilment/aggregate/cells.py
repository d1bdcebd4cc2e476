"""An answer as an ordered vector of cells, and what disclosure control needs to know about it.

The layout depends on the query alone, never on data, so every hospital of a federated query
produces vectors of the same length and meaning (secure aggregation adds them cell by cell).

Cell 0 is the cohort's patient count. Then, measure by measure: a stratifier's strata; a
numeric measure's count ``n`` (patients with a value), then the sum and the sum of squares of
the clamped values when the mean or standard deviation is asked for, then the histogram bins.

- ``partitions``: members that add up exactly to a margin (sex and age strata to the cohort
  count, histogram bins to ``n``); secondary suppression works on these.
- ``groups``: the cells released by one noise draw, with their L1 sensitivity (how much one
  patient more or less can change the group in total): 1 for a count or a partition, the
  number of strata for code strata (a patient may be in all), the largest absolute bound for
  a sum, its square for a sum of squares.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from connector.fulfilment.aggregate.measures import AgeBands, CodeStrata, Measure, Numeric

COHORT: Final = "cohort"
#: Sums travel as integers in secure mode: value * FIXED_POINT, rounded.
FIXED_POINT: Final = 1000


class CellKind(StrEnum):
    COUNT = "count"
    SUM = "sum"
    SUMSQ = "sumsq"


@dataclass(frozen=True)
class Cell:
    measure: str
    label: str  # "" for a measure's own count, the stratum or bin otherwise
    kind: CellKind
    count_cell: int | None = None  # a sum's count: the sum is suppressed with it
    bound: float = 1.0  # the most one patient adds to this cell (absolute value)


@dataclass(frozen=True)
class Partition:
    margin: int
    members: tuple[int, ...]


@dataclass(frozen=True)
class NoiseGroup:
    cells: tuple[int, ...]
    sensitivity: float
    integer: bool


@dataclass(frozen=True)
class Layout:
    cells: tuple[Cell, ...]
    partitions: tuple[Partition, ...]
    groups: tuple[NoiseGroup, ...]

    def __len__(self) -> int:
        return len(self.cells)


def layout(measures: tuple[Measure, ...]) -> Layout:
    cells: list[Cell] = [Cell(COHORT, "", CellKind.COUNT)]
    partitions: list[Partition] = []
    groups: list[NoiseGroup] = [NoiseGroup((0,), 1.0, True)]

    def add(new: list[Cell]) -> tuple[int, ...]:
        start = len(cells)
        cells.extend(new)
        return tuple(range(start, len(cells)))

    for m in measures:
        if isinstance(m, Numeric):
            n = add([Cell(m.id, "", CellKind.COUNT)])[0]
            groups.append(NoiseGroup((n,), 1.0, True))
            if m.mean or m.stddev:
                assert m.bounds is not None  # parse_measures requires them
                top = max(abs(m.bounds[0]), abs(m.bounds[1]))
                total = add([Cell(m.id, "sum", CellKind.SUM, n, top)])
                groups.append(NoiseGroup(total, top, False))
                if m.stddev:
                    squares = add([Cell(m.id, "sumsq", CellKind.SUMSQ, n, top * top)])
                    groups.append(NoiseGroup(squares, top * top, False))
            if m.histogram:
                bins = add([Cell(m.id, b, CellKind.COUNT, n) for b in m.bins()])
                partitions.append(Partition(n, bins))
                groups.append(NoiseGroup(bins, 1.0, True))
            continue
        labels = _strata_labels(m)
        strata = add([Cell(m.id, label, CellKind.COUNT) for label in labels])
        if isinstance(m, CodeStrata):  # overlapping strata: no margin, a patient counts k times
            groups.append(NoiseGroup(strata, float(len(strata)), True))
        else:
            partitions.append(Partition(0, strata))
            groups.append(NoiseGroup(strata, 1.0, True))
    return Layout(tuple(cells), tuple(partitions), tuple(groups))


def _strata_labels(m: Measure) -> list[str]:
    if isinstance(m, AgeBands):
        return m.labels()
    if isinstance(m, CodeStrata):
        return [f"{t.codes[0].system}|{t.codes[0].code}" for t in m.strata]
    assert not isinstance(m, Numeric)
    return list(m.genders)
