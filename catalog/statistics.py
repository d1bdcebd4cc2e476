"""Dataset statistics safe to publish: the catalog itself must leak no small cell.

Inputs are computed elsewhere from the FHIR source (counts, ages, dates, coding systems seen);
this module only decides what may be shown. The rule (default minimum cell size k = 10):

* **Counts** (numberOfRecords, numberOfUniqueIndividuals): a count under k is not published as a
  number (the RDF property is omitted, people read "fewer than 10"); a count of k or more is
  rounded to the nearest multiple of 10 (half up), never below k.
* **Typical ages**: published only when at least k individuals contribute. The minimum is the
  larger of the 5th percentile (nearest rank) and the k-th smallest age, the maximum the smaller
  of the 95th percentile and the k-th largest age: at least k children share each bound or lie
  beyond it, so no single child's age is exposed (if the bounds cross, none is published).
* **Temporal coverage**: only with at least k dated records; start and end are coarsened to the
  first day of the first month and the last day of the last month.
* **Coding systems**: a system is listed only if at least k records use it.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from catalog.codes import CodingSystem

MIN_CELL = 10


@dataclass(frozen=True, slots=True)
class SafeStatistics:
    """What the catalog may publish about one dataset (None = withheld or unknown)."""

    number_of_records: int | None
    number_of_unique_individuals: int | None
    min_typical_age: int | None
    max_typical_age: int | None
    temporal_start: dt.date | None
    temporal_end: dt.date | None
    coding_systems: tuple[CodingSystem, ...]


def safe_count(n: int, *, min_cell: int = MIN_CELL) -> int | None:
    """Round a count for publication, or None if it is under `min_cell`."""
    if n < 0:
        raise ValueError("a count cannot be negative")
    if n < min_cell:
        return None
    return max(min_cell, int(math.floor(n / 10 + 0.5)) * 10)


def describe_count(n: int | None, *, min_cell: int = MIN_CELL) -> str:
    """Plain words for a published count: 'about 1,230' or 'fewer than 10'."""
    return f"fewer than {min_cell} or not published" if n is None else f"about {n:,}"


def _nearest_rank(sorted_values: Sequence[int], q: float) -> int:
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def safe_statistics(
    *,
    records: int,
    individuals: int,
    ages: Sequence[int] = (),
    dates: Sequence[dt.date] = (),
    coding_system_counts: Mapping[CodingSystem | str, int] | None = None,
    min_cell: int = MIN_CELL,
) -> SafeStatistics:
    """Apply the module's disclosure rule to raw statistics.

    `ages` holds one age in years per individual; `dates` the clinical dates of records;
    `coding_system_counts` how many records carry a code of each system.
    """
    min_age = max_age = None
    if len(ages) >= min_cell:
        ordered = sorted(ages)
        min_age = max(_nearest_rank(ordered, 0.05), ordered[min_cell - 1])
        max_age = min(_nearest_rank(ordered, 0.95), ordered[-min_cell])
        if min_age > max_age:  # fewer than 2k children: the bounds would cross, publish none
            min_age = max_age = None
    start = end = None
    if len(dates) >= min_cell:
        first, last = min(dates), max(dates)
        start = first.replace(day=1)
        end = last.replace(day=calendar.monthrange(last.year, last.month)[1])
    systems = tuple(
        sorted(
            (CodingSystem(s) for s, n in (coding_system_counts or {}).items() if n >= min_cell),
            key=lambda c: c.value,
        )
    )
    return SafeStatistics(
        number_of_records=safe_count(records, min_cell=min_cell),
        number_of_unique_individuals=safe_count(individuals, min_cell=min_cell),
        min_typical_age=min_age,
        max_typical_age=max_age,
        temporal_start=start,
        temporal_end=end,
        coding_systems=systems,
    )
