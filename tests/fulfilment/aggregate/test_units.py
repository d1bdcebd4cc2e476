"""UCUM conversions (through ucumvert) and ages in completed units."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from connector.fulfilment.aggregate import ages, units


@pytest.mark.parametrize(
    ("source", "target", "value", "expected"),
    [
        ("kg", "g", 3, 3000),
        ("g", "kg", 3000, 3),
        ("[lb_av]", "kg", 10, 4.5359237),
        ("Cel", "[degF]", 37, 98.6),
        ("[degF]", "Cel", 98.6, 37),
        ("Cel", "K", 0, 273.15),
        ("mm[Hg]", "kPa", 120, 15.9986864898),
        ("10*3/uL", "10*9/L", 7.5, 7.5),
        ("mg/dL", "mg/L", 2, 20),
        ("%", "1", 50, 0.5),
        ("a", "mo", 2, 24),
        ("{score}", "{score}", 4, 4),
    ],
)
def test_conversions(source: str, target: str, value: float, expected: float) -> None:
    conversion = units.conversion(source, target)
    assert conversion is not None
    assert conversion(value) == pytest.approx(expected, rel=1e-11)


def test_exact_where_the_factor_is_exact() -> None:
    to_g = units.conversion("kg", "g")
    assert to_g is not None and to_g(3) == 3000.0 and to_g(0.1) == 100.0


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("mg/dL", "mmol/L"),
        ("kg", "cm"),
        ("{score}", "1"),
        ("{score}", "{T-score}"),
        ("kg", "furlong"),
    ],
)
def test_incompatible_units(source: str, target: str) -> None:
    assert units.conversion(source, target) is None and not units.compatible(source, target)


def test_validity() -> None:
    assert units.is_valid("kg/m2") and units.is_valid("{score}") and units.is_valid("10*3/uL")
    assert not units.is_valid("furlong") and not units.is_valid("kg//m")


REFERENCE = date(2024, 2, 29)


@pytest.mark.parametrize("unit", ["a", "mo", "wk", "d"])
def test_latest_birth_bounds_completed_units(unit: str) -> None:
    """For every n, born on or before latest_birth(n) <=> completed >= n (checked day by day
    over 25 years of birth dates, leap days included)."""
    births = [REFERENCE - timedelta(days=d) for d in range(-3, 25 * 366)]
    limit = {"a": 25, "mo": 300, "wk": 1300, "d": 9000}[unit]
    step = {"a": 1, "mo": 7, "wk": 37, "d": 311}[unit]
    for n in range(0, limit, step):
        bound = ages.latest_birth(n, REFERENCE, unit)
        assert bound is not None
        for b in births:
            assert (b <= bound) == (ages.completed(b, REFERENCE, unit) >= n), (n, b)


def test_completed_years_around_birthdays() -> None:
    assert ages.completed(date(2016, 2, 29), date(2024, 2, 28), "a") == 7
    assert ages.completed(date(2016, 2, 29), date(2024, 2, 29), "a") == 8
    assert ages.completed(date(2023, 1, 31), date(2023, 2, 28), "mo") == 0
    assert ages.completed(date(2023, 1, 31), date(2023, 3, 1), "mo") == 1
    assert ages.latest_birth(10_000, REFERENCE, "a") is None
