"""The generator's entry point: one hospital's patients, written as Bulk NDJSON."""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path
from random import Random
from typing import Any, Final

from connector.errors import BadRequestError
from connector.files import private_dir
from connector.sampledata.pathways.base import DAYS_PER_YEAR, Child, Sim
from connector.sampledata.pathways.cardiac import congenital_heart_disease
from connector.sampledata.pathways.common import (
    asthma,
    bronchiolitis,
    epilepsy,
    otitis,
    routine,
    type1_diabetes,
)
from connector.sampledata.pathways.haemophilia import haemophilia
from connector.sampledata.pathways.neonatal import birth as birth_pathway
from connector.sampledata.pathways.sepsis import sepsis
from connector.sampledata.profiles import PROFILES, Profile
from connector.sampledata.resources import Emitter
from connector.sampledata.writer import NdjsonWriter

RESOURCE_TYPES: Final = ("Organization", "Location", "Patient", "Encounter", "Condition",
                         "Observation", "Procedure", "MedicationRequest")  # fmt: skip
MAX_AGE_DAYS: Final = 18 * DAYS_PER_YEAR - 2.0  # everyone is 0-17 years on the reference date

GIVEN: Final = {
    "male": ("Lukas", "Luca", "Noah", "Leon", "Mateo", "Daan", "Finn", "Elias", "Hugo", "Jan",
             "Marco", "Pablo", "Sem", "Theo", "Jonas", "Lorenzo", "Milan", "Adam", "Oskar",
             "Ben"),
    "female": ("Emma", "Mia", "Sofia", "Lina", "Julia", "Lucia", "Anna", "Sara", "Emilia",
               "Noor", "Giulia", "Hanna", "Lea", "Martina", "Zoe", "Ella", "Clara", "Aurora",
               "Nora", "Ida"),
}  # fmt: skip
FAMILY: Final = ("Müller", "Schmidt", "Rossi", "Bianchi", "García", "Fernández", "de Jong",
                 "Jansen", "Novak", "Kowalski", "Dubois", "Martin", "Nielsen", "Virtanen",
                 "Silva", "Papadopoulos", "Horvat", "Weber", "Costa", "Bakker")  # fmt: skip


def reference_date(seed: int) -> date:
    """The run's "today": 2024-01-01 plus ``seed mod 366`` days, so output never depends on
    the wall clock. Ages (0-17 years) and all event times are relative to it."""
    return date(2024, 1, 1) + timedelta(days=seed % 366)


def generate(
    out_dir: Path,
    *,
    patients: int,
    seed: int,
    profile: str,
    lines_per_file: int = 100_000,
) -> dict[str, int]:
    """Write ``patients`` children of a ``profile`` hospital to ``out_dir`` as Bulk NDJSON.

    Returns the number of resources written per type. Existing ``<Type>.NNN.ndjson`` files of
    the written types in ``out_dir`` are replaced. Same arguments, same bytes.
    """
    prof = PROFILES.get(profile)
    if prof is None:
        raise BadRequestError(
            f"unknown profile {profile!r}; valid profiles: {', '.join(sorted(PROFILES))}"
        )
    if patients < 1:
        raise BadRequestError(f"patients must be at least 1, got {patients}")
    private_dir(out_dir)
    for rtype in RESOURCE_TYPES:
        for old in out_dir.glob(f"{rtype}.[0-9][0-9][0-9].ndjson"):
            old.unlink()

    rng = Random(f"phems-sampledata:{seed}:{prof.name}")
    with NdjsonWriter(out_dir, lines_per_file=lines_per_file) as writer:
        em = Emitter(writer, seed=seed, profile=prof.name, reference=reference_date(seed))
        base = f"https://{prof.name}.hospital.example.org/fhir"
        em.hospital(prof.organization, prof.city, prof.country, base)
        for n in range(patients):
            _one_child(rng, em, prof, mrn=(f"{base}/sid/mrn", f"{n + 1:08d}"))
        counts = writer.counts
    return {rtype: counts[rtype] for rtype in sorted(counts)}


def _one_child(rng: Random, em: Emitter, prof: Profile, *, mrn: tuple[str, str]) -> None:
    sex = "male" if rng.random() < 0.52 else "female"
    # A children's hospital sees many infants: 15 % under one year, the rest spread to 17.
    age_days = (rng.uniform(3.0, DAYS_PER_YEAR) if rng.random() < 0.15
                else rng.uniform(DAYS_PER_YEAR, MAX_AGE_DAYS))  # fmt: skip
    birth = -math.ceil(age_days)
    height_z = rng.gauss(0.0, 1.0)
    # Weight tracks height (r = 0.6); the independent part is bounded so BMI stays plausible.
    weight_z = 0.6 * height_z + 0.8 * max(-2.5, min(2.5, rng.gauss(0.0, 1.0)))
    patient: dict[str, Any] = {
        "identifier": [{"system": mrn[0], "value": mrn[1]}],
        "name": [{"family": FAMILY[rng.randrange(len(FAMILY))],
                  "given": [GIVEN[sex][rng.randrange(20)]]}],
        "gender": sex,
        "birthDate": em.day(birth),
        "address": [{"city": prof.city, "postalCode": f"{rng.randrange(10000, 99999)}",
                     "country": prof.country}],
    }  # fmt: skip
    ref = em.begin_child()
    child = Child(ref, sex, float(birth), height_z, weight_z)
    sim = Sim(rng, em, child)

    birth_pathway(sim)
    # Haemophilia is X-linked: almost only boys (symptomatic carriers are rare).
    x_linked = 1.9 if sex == "male" else 0.04
    if rng.random() < prof.rate("chd"):
        congenital_heart_disease(sim)
    r, rate_a = rng.random(), prof.rate("haemophilia_a") * x_linked
    if r < rate_a:
        haemophilia(sim, "haemophilia_a")
    elif r < rate_a + prof.rate("haemophilia_b") * x_linked:
        haemophilia(sim, "haemophilia_b")
    if rng.random() < prof.rate("t1d"):
        type1_diabetes(sim)
    if rng.random() < prof.rate("asthma"):
        asthma(sim)
    if rng.random() < prof.rate("epilepsy"):
        epilepsy(sim)
    if rng.random() < prof.rate("bronchiolitis"):
        bronchiolitis(sim)
    if rng.random() < prof.rate("otitis"):
        otitis(sim)
    if rng.random() < prof.rate("sepsis"):
        sepsis(sim, prof)
    routine(sim)
    em.end_child(ref, patient, child.death)
