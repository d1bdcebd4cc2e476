"""Sepsis in paediatric intensive care: emergency presentation, PICU admission, and time series
of vitals (HR, RR, temperature, SpO2, BP) and labs (lactate, CRP, white cells, procalcitonin)
that derange at presentation and recover with treatment; septic shock gets vasoactives and
ventilation more often and recovers more slowly."""

from __future__ import annotations

import math

from connector.sampledata.pathways.base import Sim
from connector.sampledata.profiles import Profile

MORTALITY_SHOCK = 0.12
MORTALITY_SEPSIS = 0.015


def sepsis(sim: Sim, profile: Profile) -> None:
    rng = sim.rng
    for _ in range(1 + (rng.random() < 0.1)):
        if sim.child.death is not None:
            return
        # Infants are over-represented among children with sepsis.
        if rng.random() < 0.4:
            t = sim.in_window_age(0.02, 1.0, latest=-30.0)
        else:
            t = sim.in_window_age(0.02, 18.0, latest=-30.0)
        if t is None:
            return
        _episode(sim, t, shock=rng.random() < profile.shock_share)


def _episode(sim: Sim, t0: float, *, shock: bool) -> None:
    c, em, rng = sim.child, sim.em, sim.rng
    age = c.age(t0)
    weight = c.weight(t0)
    sev = rng.uniform(0.5, 1.0) if shock else rng.uniform(0.0, 0.5)
    source = "pneumonia" if rng.random() < 0.35 else ("uti" if rng.random() < 0.3 else None)
    # PICU mortality of paediatric sepsis: about 1 in 8 with septic shock, rare without.
    died = rng.random() < (MORTALITY_SHOCK if shock else MORTALITY_SEPSIS)
    tau = rng.uniform(1.5, 3.0) if shock else rng.uniform(0.7, 1.8)
    if died:
        tau *= 10.0  # refractory: the derangement persists
    peak_temp = 35.6 if rng.random() < 0.1 else rng.uniform(38.4, 40.3)
    lactate0 = rng.uniform(4.0, 9.5) if shock else rng.uniform(1.8, 4.0)
    crp_peak = rng.uniform(60, 320)
    leukopenic = rng.random() < 0.2
    wbc0 = rng.uniform(1.2, 4.0) if leukopenic else rng.uniform(14, 32)
    pct_peak = rng.uniform(5, 80) if shock else rng.uniform(0.8, 20)

    def illness(t: float) -> float:
        return math.exp(-max(0.0, t - t0) / tau)

    def vitals(enc: str, t: float) -> None:
        x = illness(t)
        sim.vitals(enc, t,
                   hr_factor=1 + (0.25 + 0.2 * sev) * x,
                   rr_factor=1 + (0.35 + 0.35 * sev) * x,
                   temp=37.0 + (peak_temp - 37.0) * x,
                   spo2=97.5 - (2 + 7 * sev) * x,
                   bp_factor=(1 - 0.3 * sev * x) if shock else 1 - 0.05 * x)  # fmt: skip

    def labs(enc: str, t: float, *, lactate_only: bool = False) -> None:
        x, d = illness(t), t - t0 + 0.5
        em.observation(c.ref, enc, "lactate", t, round(0.9 + (lactate0 - 0.9) * x, 1))
        if lactate_only:
            return
        crp = max(1.0, crp_peak * (d / 1.5) * math.exp(1 - d / 1.5))
        em.observation(c.ref, enc, "crp", t, round(crp, 1))
        em.observation(c.ref, enc, "wbc", t, round(9.0 + (wbc0 - 9.0) * x, 1))
        pct = pct_peak * (d if d < 1 else math.exp(-0.6 * (d - 1)))
        em.observation(c.ref, enc, "pct", t, round(max(0.05, pct), 2))

    er_end = t0 + rng.uniform(0.08, 0.25)
    er = em.encounter(c.ref, "emergency", t0, er_end, reason="sepsis")
    vitals(er, t0 + 0.01)
    labs(er, t0 + 0.03)
    em.procedure(c.ref, er, "blood_culture", t0 + 0.02)
    first_line = "cefotaxime" if age < 0.25 else "ceftriaxone"
    sim.prescribe(er, first_line, t0 + 0.05, active=False)
    if age < 0.25 or source == "uti":
        sim.prescribe(er, "gentamicin", t0 + 0.06, active=False)

    stay = rng.uniform(4, 14) if shock else rng.uniform(2, 6)
    if died:
        stay *= rng.uniform(0.2, 1.0)
        c.death = er_end + stay
    end = er_end + stay
    picu = em.encounter(c.ref, "picu", er_end, end, reason="septic_shock" if shock else "sepsis",
                        died=died)  # fmt: skip
    em.observation(c.ref, picu, "weight", er_end + 0.02, round(weight, 2 if age < 2 else 1))
    em.condition(c.ref, er, "sepsis", t0, None if died else end)
    if source is not None:
        em.condition(c.ref, er, source, t0 - rng.uniform(0.5, 3), end + rng.uniform(2, 10))
    if shock:
        em.condition(c.ref, picu, "septic_shock", er_end, er_end + tau * rng.uniform(1, 2))
        sim.prescribe(picu, "noradrenaline", er_end + 0.02, active=False)
    if rng.random() < (0.5 if shock else 0.1):
        sim.prescribe(picu, "meropenem", er_end + 0.1, active=False)
    elif rng.random() < 0.4:
        sim.prescribe(picu, "vancomycin", er_end + 0.1, active=False)
    sim.prescribe(picu, "paracetamol", er_end + 0.1, active=False)
    if rng.random() < (0.7 if shock else 0.15):
        em.procedure(c.ref, picu, "ventilation", er_end + 0.05,
                     er_end + max(0.1, min(stay - 0.3, rng.uniform(1, 2 * tau + 1))))  # fmt: skip

    # Vitals every 4 hours on the first day, then twice daily; lactate 6-hourly on day one.
    times = [er_end + k / 6 for k in range(7)]
    t = times[-1] + 0.5
    while t < end - 0.1:
        times.append(t)
        t += 0.5
    for t in times:
        vitals(picu, t)
    for k in (0.25, 0.5):
        labs(picu, er_end + k, lactate_only=True)
    day = er_end + 1.0
    while day < end:
        labs(picu, day)
        day += 1.0
