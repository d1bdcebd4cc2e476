"""Rules on a combined answer, as the German MII feasibility portal applies them (configurable).

- No result when the total (the cohort's patient count summed over the hospitals) is under
  ``min_total`` (20): the answer says so and shows no count.
- A per-hospital breakdown only when at least ``breakdown_min_hospitals`` (3) hospitals each
  report ``breakdown_min_each`` (20) or more. Secure mode never has one: the coordinator
  learns only the sum.

These apply on top of each hospital's own disclosure control (its cell suppression, noise and
rounding); they keep a small total, or one small hospital, from being singled out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CombinationRules:
    min_total: int = 20
    breakdown_min_hospitals: int = 3
    breakdown_min_each: int = 20

    def __post_init__(self) -> None:
        if min(self.min_total, self.breakdown_min_hospitals, self.breakdown_min_each) < 0:
            raise ValueError("combination rules: thresholds are not negative")

    def withheld(self, total: int | None) -> str | None:
        """Why the total is not shown, or None when it may be."""
        if total is None:
            return "no hospital disclosed a patient count"
        if total < self.min_total:
            return f"fewer than {self.min_total} patients in total: no result"
        return None

    def breakdown(self, totals: Sequence[int | None]) -> bool:
        """May each hospital's own answer be shown beside the total?"""
        large = sum(1 for t in totals if t is not None and t >= self.breakdown_min_each)
        return large >= self.breakdown_min_hospitals
