"""The simulated child and the helpers every care pathway uses.

Times are days relative to the reference date (0 = reference date, negative = past). A child's
record covers its diagnoses since birth plus routine and follow-up care within the last
``LOOKBACK_DAYS``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from random import Random

from connector.sampledata import growth
from connector.sampledata.resources import Emitter

LOOKBACK_DAYS = 3 * 365.0
DAYS_PER_YEAR = 365.25


@dataclass
class Child:
    ref: str
    sex: str  # "male" | "female"
    birth: float
    height_z: float
    weight_z: float
    death: float | None = None  # set by a pathway in which the child dies
    gestation: float = 40.0  # weeks at birth, set by the birth pathway

    def age(self, t: float) -> float:
        return (t - self.birth) / DAYS_PER_YEAR

    def corrected_age(self, t: float) -> float:
        """Years since term-equivalent age (40 weeks postmenstrual): what growth follows."""
        return self.age(t) - (40.0 - self.gestation) * 7.0 / DAYS_PER_YEAR

    def _weeks(self, t: float) -> float:
        return 40.0 + self.corrected_age(t) * DAYS_PER_YEAR / 7.0

    def weight(self, t: float) -> float:
        age = self.corrected_age(t)
        if age < 0:
            return growth.fetal_weight_kg(self._weeks(t), self.sex, self.weight_z)
        return growth.weight_kg(age, self.sex, self.weight_z)

    def height(self, t: float) -> float:
        age = self.corrected_age(t)
        if age < 0:
            return growth.fetal_length_cm(self._weeks(t), self.sex, self.height_z)
        return growth.height_cm(age, self.sex, self.height_z)

    def head(self, t: float) -> float:
        age, z = self.corrected_age(t), 0.5 * self.height_z
        if age < 0:
            return growth.fetal_head_cm(self._weeks(t), self.sex, z)
        return growth.head_circumference_cm(age, self.sex, z)


class Sim:
    """One child's simulation: random stream, emitter, and the child's state."""

    def __init__(self, rng: Random, em: Emitter, child: Child) -> None:
        self.rng = rng
        self.em = em
        self.child = child
        self.window_start = max(child.birth + 1.0, -LOOKBACK_DAYS)

    # -- time helpers --------------------------------------------------------------------------
    def at_age(self, years: float) -> float:
        """Time at which the child has the given age (a daytime hour)."""
        t = self.child.birth + years * DAYS_PER_YEAR
        return math.floor(t) + self.rng.uniform(0.33, 0.75)

    def random_time(self, lo: float, hi: float) -> float | None:
        """A daytime moment in [lo, hi), or None if the interval is empty."""
        lo = max(lo, self.child.birth + 1.0)
        hi = min(hi, -1.0)
        if hi <= lo:
            return None
        return math.floor(self.rng.uniform(lo, hi)) + self.rng.uniform(0.33, 0.75)

    def in_window_age(
        self, min_age: float, max_age: float, *, latest: float = -1.0
    ) -> float | None:
        """A time in the lookback window, no later than ``latest``, when the child's age is
        within [min_age, max_age]. ``latest`` keeps whole episodes before the reference date."""
        c = self.child
        return self.random_time(
            max(self.window_start, c.birth + min_age * DAYS_PER_YEAR),
            min(latest, c.birth + max_age * DAYS_PER_YEAR),
        )

    def follow_ups(self, start: float, every_days: float) -> Iterator[float]:
        """Regular visits after ``start`` that fall in the lookback window, with jitter."""
        t = start + every_days * self.rng.uniform(0.8, 1.2)
        while t < -1.0:
            if t >= self.window_start:
                yield math.floor(t) + self.rng.uniform(0.33, 0.7)
            t += every_days * self.rng.uniform(0.8, 1.2)

    def poisson(self, lam: float) -> int:
        """Knuth's method; lam is small here."""
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1

    # -- shared observation sets ---------------------------------------------------------------
    def growth_set(self, enc: str, t: float) -> None:
        c, em = self.child, self.em
        age = c.age(t)
        w = c.weight(t) * math.exp(self.rng.gauss(0.0, 0.02))
        h = c.height(t) + self.rng.gauss(0.0, 0.3)
        em.observation(c.ref, enc, "weight", t, round(w, 2 if age < 2 else 1))
        em.observation(c.ref, enc, "height", t, round(h, 1))
        if age < 2:
            em.observation(c.ref, enc, "head_circ", t, round(c.head(t), 1))
        else:
            em.observation(c.ref, enc, "bmi", t, round(growth.bmi(w, h), 1))

    def prescribe(
        self, enc: str, drug: str, t: float, *, active: bool, dose_factor: float = 1.0
    ) -> None:
        """A weight-based order at ``t``; the child is weighed in the encounter first unless it
        already was (a dose needs the weight it was calculated from)."""
        c, em = self.child, self.em
        if em.weighed_at(enc) > t:
            w = c.weight(t) * math.exp(self.rng.gauss(0.0, 0.02))
            when = max(em.started_at(enc), t - 0.01)
            em.observation(c.ref, enc, "weight", when, round(w, 2 if c.age(t) < 2 else 1))
        em.medication(c.ref, enc, drug, t, c.weight(t) * dose_factor, active=active)

    def vitals(
        self,
        enc: str,
        t: float,
        *,
        hr_factor: float = 1.0,
        rr_factor: float = 1.0,
        temp: float = 36.8,
        spo2: float = 98.5,
        bp_factor: float = 1.0,
    ) -> None:
        c, em, g = self.child, self.em, self.rng.gauss
        age = c.age(t)
        # Clipped to what monitors record in sick children (sinus tachycardia tops out ~220).
        hr = min(220.0, growth.heart_rate(age) * hr_factor * (1 + g(0, 0.06)))
        rr = min(80.0, growth.resp_rate(age) * rr_factor * (1 + g(0, 0.08)))
        em.observation(c.ref, enc, "heart_rate", t, round(hr))
        em.observation(c.ref, enc, "resp_rate", t, round(rr))
        em.observation(c.ref, enc, "temperature", t, round(temp + g(0, 0.15), 1))
        em.observation(c.ref, enc, "spo2", t, min(100, round(spo2 + g(0, 0.8))))
        sys_bp = growth.systolic(age) * bp_factor * (1 + g(0, 0.06))
        dia_bp = growth.diastolic(age) * bp_factor * (1 + g(0, 0.07))
        em.blood_pressure(c.ref, enc, t, round(sys_bp), round(min(dia_bp, sys_bp - 15)))
