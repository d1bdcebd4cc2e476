"""Congenital heart disease: diagnosis by echocardiography, pre-operative medication, the
catheter or surgical intervention typical for the lesion with a PICU stay after open-heart
surgery, and yearly cardiology follow-up (echo, ECG, SpO2, growth)."""

from __future__ import annotations

from typing import Final

from connector.sampledata.pathways.base import Sim

# Relative frequency among CHD patients of a children's hospital.
KIND_WEIGHTS: Final = {"vsd": 0.32, "asd": 0.2, "pda": 0.12, "tof": 0.12, "coa": 0.14,
                       "hlhs": 0.1}  # fmt: skip
CYANOTIC: Final = frozenset({"tof", "hlhs"})

# Interventions per lesion: (share of patients, [(age in years min, max, procedures, open heart)])
PLANS: Final[dict[str, list[tuple[float, list[tuple[float, float, tuple[str, ...], bool]]]]]] = {
    "vsd": [(0.40, [(0.25, 1.0, ("bypass", "vsd_repair"), True)]),
            (0.05, [(1.0, 6.0, ("cardiac_cath", "vsd_device"), False)])],
    "asd": [(0.45, [(3.0, 7.0, ("cardiac_cath", "asd_device"), False)]),
            (0.15, [(2.0, 6.0, ("bypass", "asd_repair"), True)])],
    "pda": [(0.60, [(0.3, 2.0, ("cardiac_cath", "pda_device"), False)])],
    "tof": [(0.85, [(0.25, 0.75, ("bypass", "vsd_repair"), True)]),
            (0.15, [(0.0, 0.08, ("bt_shunt",), True),
                    (0.5, 1.0, ("bypass", "vsd_repair"), True)])],
    "coa": [(0.60, [(0.0, 0.1, ("coa_repair",), True)]),
            (0.40, [(0.3, 4.0, ("cardiac_cath", "coa_balloon"), False)])],
    "hlhs": [(1.0, [(0.0, 0.03, ("bypass", "norwood"), True),
                    (0.33, 0.5, ("bypass", "glenn"), True),
                    (2.0, 4.0, ("bypass", "fontan"), True)])],
}  # fmt: skip
CLOSES_DEFECT: Final = frozenset({"vsd_repair", "vsd_device", "asd_device", "asd_repair",
                                  "pda_device"})  # fmt: skip


def _pick(sim: Sim, options: dict[str, float]) -> str:
    r = sim.rng.random() * sum(options.values())
    for key, w in options.items():
        r -= w
        if r < 0:
            return key
    return key


def congenital_heart_disease(sim: Sim) -> None:
    c, em, rng = sim.child, sim.em, sim.rng
    kind = _pick(sim, KIND_WEIGHTS)
    if kind in CYANOTIC:
        c.height_z -= 0.5
        c.weight_z -= 0.7
    age_now = c.age(0.0)
    dx_age = rng.uniform(0.0, 0.15) if kind != "asd" else rng.uniform(0.0, 3.0)
    if dx_age >= age_now - 0.01:
        dx_age = age_now * 0.5
    dx = sim.at_age(dx_age)
    enc = em.encounter(c.ref, "cardiology", dx, dx + 0.1, reason=kind)
    em.procedure(c.ref, enc, "echo", dx + 0.02)
    em.procedure(c.ref, enc, "ecg", dx + 0.04)
    base_spo2 = rng.uniform(75, 88) if kind in CYANOTIC else rng.uniform(96, 99.5)
    em.observation(c.ref, enc, "spo2", dx + 0.03, round(base_spo2))
    em.observation(c.ref, enc, "ntprobnp", dx + 0.05,
                   float(round(rng.uniform(400, 6000) if kind in {"vsd", "hlhs", "tof"}
                               else rng.uniform(60, 600))))  # fmt: skip
    if kind in {"vsd", "tof", "hlhs"}:
        sim.prescribe(enc, "furosemide", dx + 0.08, active=False)
        if kind != "tof":
            sim.prescribe(enc, "enalapril", dx + 0.08, active=False)
        elif rng.random() < 0.3:
            sim.prescribe(enc, "propranolol", dx + 0.08, active=False)

    r = rng.random()
    steps: list[tuple[float, float, tuple[str, ...], bool]] = []
    for share, plan in PLANS[kind]:
        if r < share:
            steps = plan
            break
        r -= share
    resolved: float | None = None
    last = dx
    for lo, hi, procs, open_heart in steps:
        when = max(last + 2.0, sim.at_age(rng.uniform(lo, hi)))
        stay = rng.uniform(3, 10) if open_heart else rng.uniform(0.8, 2)
        if kind == "hlhs" and procs[-1] == "norwood":
            stay = rng.uniform(14, 35)
        if when + stay >= -1.0:  # not yet done on the reference date
            break
        unit = "picu" if open_heart else "ward"
        adm = em.encounter(c.ref, unit, when, when + stay, reason=kind)
        for i, proc in enumerate(procs):
            if proc == "bypass":
                em.procedure(c.ref, adm, proc, when + 0.3, when + 0.3 + rng.uniform(0.05, 0.15))
            else:
                em.procedure(c.ref, adm, proc, when + 0.3 + 0.01 * i)
            # A closed septal defect or duct is cured; a repaired TOF/CoA/HLHS stays a condition.
            if proc in CLOSES_DEFECT and kind in {"vsd", "asd", "pda"}:
                resolved = when + 0.3
        if open_heart:
            extubated = when + 0.3 + min(stay - 0.5, rng.uniform(0.3, 3))
            em.procedure(c.ref, adm, "ventilation", when + 0.3, extubated)
            for k in range(min(int(stay * 2), 12)):
                t = when + 0.5 + k * 0.5
                sim.vitals(adm, t, hr_factor=1.15 - 0.01 * k, spo2=min(99.0, base_spo2 + 8))
            em.observation(c.ref, adm, "lactate", when + 0.5, round(rng.uniform(1.2, 4.5), 1))
        em.procedure(c.ref, adm, "echo", when + stay - 0.2)
        if procs[-1] in {"bt_shunt", "asd_device", "pda_device", "vsd_device"} or kind == "hlhs":
            sim.prescribe(adm, "aspirin", when + stay - 0.1, active=False)
        last = when + stay
        if kind in CYANOTIC and procs[-1] in {"vsd_repair", "fontan"}:
            base_spo2 = rng.uniform(94, 99)

    em.condition(c.ref, enc, kind, dx, resolved)
    for t in sim.follow_ups(max(last, dx), 365 if resolved is None else 540):
        fu = em.encounter(c.ref, "cardiology", t, t + 0.1, reason=kind)
        em.procedure(c.ref, fu, "echo", t + 0.02)
        em.procedure(c.ref, fu, "ecg", t + 0.04)
        em.observation(c.ref, fu, "spo2", t + 0.03, min(100, round(base_spo2 + rng.gauss(0, 1))))
        sim.growth_set(fu, t)
