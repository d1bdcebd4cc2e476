"""The disclosure rule for published statistics."""

from __future__ import annotations

import datetime as dt

import pytest

from catalog.codes import CodingSystem
from catalog.statistics import describe_count, safe_count, safe_statistics


@pytest.mark.parametrize(
    ("n", "published"),
    [(0, None), (1, None), (9, None), (10, 10), (14, 10), (15, 20), (1874, 1870), (48_215, 48_220)],
)
def test_safe_count(n: int, published: int | None) -> None:
    assert safe_count(n) == published


def test_negative_count_is_an_error() -> None:
    with pytest.raises(ValueError):
        safe_count(-1)


def test_describe_count() -> None:
    assert describe_count(None) == "fewer than 10 or not published"
    assert describe_count(1870) == "about 1,870"


def test_small_population_publishes_nothing_identifying() -> None:
    s = safe_statistics(
        records=40,
        individuals=7,
        ages=[3, 4, 5, 6, 7, 8, 15],
        dates=[dt.date(2024, 5, 17)] * 7,
        coding_system_counts={"LOINC": 40},
    )
    assert s.number_of_records == 40
    assert s.number_of_unique_individuals is None
    assert (s.min_typical_age, s.max_typical_age) == (None, None)
    assert (s.temporal_start, s.temporal_end) == (None, None)
    assert s.coding_systems == (CodingSystem.LOINC,)


def test_typical_ages_are_percentiles_not_extremes() -> None:
    ages = [0] + [5] * 18 + [17]  # one newborn and one 17-year-old must not be exposed
    s = safe_statistics(records=20, individuals=20, ages=ages)
    assert (s.min_typical_age, s.max_typical_age) == (5, 5)


def test_dates_are_coarsened_to_months_and_rare_coding_systems_dropped() -> None:
    dates = [dt.date(2019, 1, 7)] + [dt.date(2020, 2, 10)] * 9 + [dt.date(2024, 2, 3)]
    s = safe_statistics(
        records=11,
        individuals=11,
        dates=dates,
        coding_system_counts={CodingSystem.SNOMED_CT: 11, "ATC": 3},
    )
    assert s.temporal_start == dt.date(2019, 1, 1)
    assert s.temporal_end == dt.date(2024, 2, 29)
    assert s.coding_systems == (CodingSystem.SNOMED_CT,)


def test_age_bounds_that_would_cross_are_withheld() -> None:
    s = safe_statistics(records=12, individuals=12, ages=list(range(12)))
    assert (s.min_typical_age, s.max_typical_age) == (None, None)
