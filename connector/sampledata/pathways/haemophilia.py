"""Haemophilia A and B: diagnosis by factor VIII / IX activity (severity from the level),
prophylaxis with factor concentrate (or emicizumab for some with haemophilia A), twice-yearly
haematology reviews with factor levels and growth, and bleeds treated on demand."""

from __future__ import annotations

from connector.sampledata.pathways.base import Sim

# severity -> (share, factor activity range in %, age at diagnosis range in years)
SEVERITY = {
    "severe": (0.5, (0.2, 0.9), (0.3, 1.5)),
    "moderate": (0.15, (1.0, 5.0), (0.8, 4.0)),
    "mild": (0.35, (5.5, 39.0), (1.5, 10.0)),
}


def haemophilia(sim: Sim, kind: str) -> None:
    """``kind`` is ``haemophilia_a`` or ``haemophilia_b``."""
    c, em, rng = sim.child, sim.em, sim.rng
    r, severity = rng.random(), "mild"
    for name, (share, _, _) in SEVERITY.items():
        if r < share:
            severity = name
            break
        r -= share
    _, (lo, hi), (age_lo, age_hi) = SEVERITY[severity]
    level = rng.uniform(lo, hi)
    lab = "fviii" if kind == "haemophilia_a" else "fix"
    age_now = c.age(0.0)
    # A third are diagnosed at birth because of a known family history.
    dx_age = 0.01 if rng.random() < 0.33 else rng.uniform(age_lo, age_hi)
    if dx_age >= age_now - 0.05:
        dx_age = age_now * 0.5
    dx = sim.at_age(dx_age)
    enc = em.encounter(c.ref, "haematology", dx, dx + 0.1, reason=kind)
    em.condition(c.ref, enc, kind, dx)
    em.observation(c.ref, enc, lab, dx + 0.02, round(level, 1))

    prophylaxis = severity == "severe" or (severity == "moderate" and rng.random() < 0.3)
    drug = "factor_viii" if kind == "haemophilia_a" else "factor_ix"
    if prophylaxis:
        if kind == "haemophilia_a" and rng.random() < 0.25:
            drug = "emicizumab"
        sim.prescribe(enc, drug, dx + 0.05, active=True)
    on_demand = "factor_viii" if kind == "haemophilia_a" else "factor_ix"

    for t in sim.follow_ups(dx, 182):
        fu = em.encounter(c.ref, "haematology", t, t + 0.08, reason=kind)
        # Trough on factor prophylaxis (emicizumab does not raise the measured activity).
        trough = level + (rng.uniform(1.0, 4.0) if prophylaxis and drug != "emicizumab" else 0)
        em.observation(c.ref, fu, lab, t + 0.02, round(trough * rng.uniform(0.9, 1.1), 1))
        sim.growth_set(fu, t)

    bleeds_per_year = 0.8 if prophylaxis else (3.0 if severity != "mild" else 0.3)
    for _ in range(sim.poisson(bleeds_per_year * 3)):
        bleed = sim.random_time(max(dx, sim.window_start), 0.0)
        if bleed is None:
            break
        er = em.encounter(c.ref, "emergency", bleed, bleed + rng.uniform(0.08, 0.3), reason=kind)
        sim.vitals(er, bleed + 0.01, hr_factor=1.1)
        # A bleed is treated with about 1.5 times the prophylactic dose per kg.
        sim.prescribe(er, on_demand, bleed + 0.03, active=False, dose_factor=1.5)
        if rng.random() < 0.3:
            sim.prescribe(er, "tranexamic_acid", bleed + 0.04, active=False)
