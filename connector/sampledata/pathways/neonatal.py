"""Birth: every child's gestational age, which its growth follows (corrected for prematurity).

Infants born preterm spend their first weeks in the neonatal intensive care unit (NICU), a
diagnosis recorded since birth like the other pathways' diagnoses: birth weight and gestational
age, vitals daily for three days and weekly after, weekly growth, caffeine and
ventilation for the most immature. About half of the term infants born within the record window
are seen for a newborn examination in their first days, where their birth weight and
gestational age are recorded. Both are effective at the moment of birth."""

from __future__ import annotations

import math
from typing import Final

from connector.sampledata.pathways.base import LOOKBACK_DAYS, Sim

# (share, weeks from, weeks to): 10 % preterm, above Europe's 6-9 % of births because preterm
# infants are over-represented among a children's hospital's patients.
PRETERM: Final = ((0.005, 23.0, 28.0), (0.015, 28.0, 32.0), (0.015, 32.0, 34.0),
                  (0.065, 34.0, 37.0))  # fmt: skip
NEWBORN_EXAM: Final = 0.5  # share of term infants born in the window seen in their first days


def _gestation(sim: Sim) -> float:
    r = sim.rng.random()
    for share, lo, hi in PRETERM:
        if r < share:
            return sim.rng.uniform(lo, hi)
        r -= share
    return _term(sim)


def _term(sim: Sim) -> float:
    return sim.rng.triangular(37.0, 42.0, 39.5)


def _nicu_days(sim: Sim, weeks: float) -> float:
    # Until about 36-38 weeks postmenstrual age for the very preterm; days for the late preterm.
    if weeks < 34.0:
        return max(7.0, (37.0 - weeks) * 7.0 + sim.rng.uniform(-5.0, 14.0))
    return sim.rng.uniform(2.0, 10.0)


def birth(sim: Sim) -> None:
    """Run first: a child's gestational age shapes every later weight, height and dose."""
    c, em, rng = sim.child, sim.em, sim.rng
    weeks = _gestation(sim)
    born = c.birth + rng.uniform(0.05, 0.95)
    stay = _nicu_days(sim, weeks) if weeks < 37.0 else 0.0
    if stay and born + 0.02 + stay >= -1.0:
        # Still in the NICU on the reference date: its record is unfinished and not in this
        # extract, so among the youngest patients only infants born at term remain.
        weeks, stay = _term(sim), 0.0
    c.gestation = weeks
    if stay:
        _nicu(sim, born, weeks, stay)
    elif c.birth >= -LOOKBACK_DAYS and rng.random() < NEWBORN_EXAM:
        t = math.floor(born + rng.uniform(3.0, 10.0)) + rng.uniform(0.33, 0.7)
        if t < -1.0:
            enc = em.encounter(c.ref, "outpatients", t, t + 0.03)
            _birth_record(sim, enc, born, weeks)
            sim.growth_set(enc, t + 0.01)
            sim.vitals(enc, t + 0.015)


def _birth_record(sim: Sim, enc: str, born: float, weeks: float) -> None:
    c, em = sim.child, sim.em
    em.observation(c.ref, enc, "birth_weight", born, float(round(c.weight(born) * 1000)))
    em.observation(c.ref, enc, "gestational_age", born, round(weeks, 1))


def _nicu(sim: Sim, born: float, weeks: float, stay: float) -> None:
    c, em, rng = sim.child, sim.em, sim.rng
    start, end = born + 0.02, born + 0.02 + stay
    reason = "extremely_preterm" if weeks < 28.0 else "preterm"
    adm = em.encounter(c.ref, "nicu", start, end, reason=reason)
    em.condition(c.ref, adm, reason, born)
    _birth_record(sim, adm, born, weeks)
    for week in range(math.ceil((stay - 0.05) / 7.0)):
        sim.growth_set(adm, start + 0.01 + 7.0 * week)
    rounds = [0.3, 1.3, 2.3] + [3.3 + 7.0 * k for k in range(math.ceil(stay / 7.0))]
    for when in (start + r for r in rounds if r < stay - 0.05):
        sim.vitals(adm, when, hr_factor=1.05, rr_factor=1.2, spo2=rng.uniform(92, 97))
    if weeks < 32.0 or rng.random() < 0.3 * (weeks < 34.0):
        sim.prescribe(adm, "caffeine", start + 0.1, active=False)
    if rng.random() < (0.8 if weeks < 30.0 else 0.15):
        days = rng.uniform(1.0, min(stay - 0.5, 21.0))
        em.procedure(c.ref, adm, "ventilation", start + 0.05, start + 0.05 + days)
    # Later care starts after discharge (no outpatient visit while the infant is in the NICU).
    sim.window_start = max(sim.window_start, end + 1.0)
