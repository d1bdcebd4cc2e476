"""Routine care and common paediatric conditions: otitis media, RSV bronchiolitis, asthma,
type 1 diabetes (HbA1c) and epilepsy."""

from __future__ import annotations

import math

from connector.sampledata.pathways.base import Sim


def routine(sim: Sim) -> None:
    """Outpatient check-ups with growth measurements: every child has at least one."""
    c, em = sim.child, sim.em
    for _ in range(1 + sim.poisson(0.8)):
        t = sim.random_time(sim.window_start, 0.0)
        if t is None:
            return
        enc = em.encounter(c.ref, "outpatients", t, t + 0.02)
        sim.growth_set(enc, t)
        if sim.rng.random() < 0.5:
            sim.vitals(enc, t + 0.005)


def otitis(sim: Sim) -> None:
    c, em, rng = sim.child, sim.em, sim.rng
    for _ in range(1 + sim.poisson(0.5)):
        t = sim.in_window_age(0.4, 9.0, latest=-15.0)
        if t is None:
            return
        unit = "emergency" if rng.random() < 0.3 else "outpatients"
        enc = em.encounter(c.ref, unit, t, t + rng.uniform(0.04, 0.15), reason="otitis")
        em.condition(c.ref, enc, "otitis", t - rng.uniform(0.5, 2.0), t + rng.uniform(7, 14))
        sim.vitals(enc, t + 0.01, hr_factor=1.1, temp=rng.uniform(37.8, 39.6))
        if rng.random() < 0.7:
            sim.prescribe(enc, "amoxicillin", t + 0.03, active=False)
        sim.prescribe(enc, "paracetamol", t + 0.03, active=False)


def bronchiolitis(sim: Sim) -> None:
    c, em, rng = sim.child, sim.em, sim.rng
    t = sim.in_window_age(0.05, 1.5, latest=-22.0)
    if t is None:
        return
    enc = em.encounter(c.ref, "emergency", t, t + rng.uniform(0.1, 0.3), reason="bronchiolitis")
    em.condition(c.ref, enc, "bronchiolitis", t - rng.uniform(1, 4), t + rng.uniform(10, 21))
    spo2 = rng.uniform(88, 96)
    sim.vitals(enc, t + 0.01, hr_factor=1.15, rr_factor=1.5, temp=rng.uniform(37.2, 38.8),
               spo2=spo2)  # fmt: skip
    if spo2 > 92 and rng.random() < 0.7:
        return
    picu = rng.random() < 0.12
    start = t + 0.3
    days = rng.uniform(2, 7) if picu else rng.uniform(1.5, 5)
    adm = em.encounter(c.ref, "picu" if picu else "ward", start, start + days,
                       reason="bronchiolitis")  # fmt: skip
    # Daily rounds from about 7 h after admission, only while the child is still in.
    for day in range(math.ceil(days - 0.3)):
        recovery = min(1.0, day / max(days, 1.0))
        sim.vitals(
            adm,
            start + day + 0.3,
            hr_factor=1.15 - 0.15 * recovery,
            rr_factor=1.5 - 0.5 * recovery,
            spo2=spo2 + (97 - spo2) * recovery,
        )
    if picu:
        em.procedure(c.ref, adm, "ventilation", start + 0.1, start + rng.uniform(1, days))


def asthma(sim: Sim) -> None:
    c, em, rng = sim.child, sim.em, sim.rng
    if c.age(0.0) < 2.5:
        return
    onset = sim.at_age(rng.uniform(2.0, min(c.age(0.0) - 0.2, 12.0)))
    enc = em.encounter(c.ref, "outpatients", onset, onset + 0.03, reason="asthma")
    em.condition(c.ref, enc, "asthma", onset)
    sim.prescribe(enc, "salbutamol", onset + 0.02, active=True)
    sim.prescribe(enc, "budesonide", onset + 0.02, active=True)
    for t in sim.follow_ups(onset, 182):
        fu = em.encounter(c.ref, "outpatients", t, t + 0.02, reason="asthma")
        sim.growth_set(fu, t)
    for _ in range(sim.poisson(0.6)):
        when = sim.random_time(max(onset, sim.window_start), 0.0)
        if when is None:
            break
        ex = em.encounter(c.ref, "emergency", when, when + rng.uniform(0.1, 0.4), reason="asthma")
        sim.vitals(ex, when + 0.01, hr_factor=1.25, rr_factor=1.6, spo2=rng.uniform(89, 96))
        sim.prescribe(ex, "salbutamol", when + 0.02, active=False)
        sim.prescribe(ex, "prednisolone", when + 0.03, active=False)


def type1_diabetes(sim: Sim) -> None:
    c, em, rng = sim.child, sim.em, sim.rng
    if c.age(0.0) < 1.2:
        return
    onset = sim.at_age(rng.uniform(1.0, min(c.age(0.0) - 0.1, 16.0)))
    days = rng.uniform(2, 6)
    enc = em.encounter(c.ref, "ward", onset, onset + days, reason="t1d")
    em.condition(c.ref, enc, "t1d", onset)
    em.observation(c.ref, enc, "hba1c", onset + 0.1, round(rng.uniform(9.5, 13.5), 1))
    sim.growth_set(enc, onset + 0.1)
    sim.prescribe(enc, "insulin_glargine", onset + 1, active=True)
    sim.prescribe(enc, "insulin_aspart", onset + 1, active=True)
    control = rng.gauss(7.6, 0.8)  # the child's usual HbA1c
    for t in sim.follow_ups(onset, 91):
        fu = em.encounter(c.ref, "endocrinology", t, t + 0.03, reason="t1d")
        hba1c = min(14.0, max(5.5, control + rng.gauss(0, 0.4)))
        em.observation(c.ref, fu, "hba1c", t + 0.01, round(hba1c, 1))
        sim.growth_set(fu, t)


def epilepsy(sim: Sim) -> None:
    c, em, rng = sim.child, sim.em, sim.rng
    if c.age(0.0) < 0.8:
        return
    onset = sim.at_age(rng.uniform(0.5, min(c.age(0.0) - 0.2, 15.0)))
    er = em.encounter(c.ref, "emergency", onset, onset + rng.uniform(0.1, 0.4), reason="epilepsy")
    sim.vitals(er, onset + 0.01, hr_factor=1.2)
    dx = onset + rng.uniform(7, 30)
    enc = em.encounter(c.ref, "outpatients", dx, dx + 0.1, reason="epilepsy")
    em.condition(c.ref, enc, "epilepsy", onset)
    em.procedure(c.ref, enc, "eeg", dx + 0.02, dx + 0.06)
    drug = "levetiracetam" if rng.random() < 0.7 else "valproate"
    sim.prescribe(enc, drug, dx + 0.08, active=True)
    for t in sim.follow_ups(dx, 182):
        fu = em.encounter(c.ref, "outpatients", t, t + 0.02, reason="epilepsy")
        sim.growth_set(fu, t)
