"""Hospital profiles: case mix and size of the simulated children's hospital.

``prevalence`` is the probability that a patient of this hospital has the condition at some
point of its record (bronchiolitis only for children seen under two years; the rest of the
population still gets routine outpatient care with growth measurements). Values are shares of a
hospital's patients, not of the general population, so referral centres are strongly enriched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    organization: str
    city: str
    country: str  # ISO 3166-1 alpha-2
    default_patients: int
    prevalence: MappingProxyType[str, float] = field(repr=False)
    # Share of sepsis episodes that progress to septic shock (vasoactives, ventilation).
    shock_share: float = 0.25

    def rate(self, condition: str) -> float:
        return self.prevalence.get(condition, 0.0)


def _mix(**rates: float) -> MappingProxyType[str, float]:
    return MappingProxyType(dict(sorted(rates.items())))


CONDITIONS: Final = ("chd", "sepsis", "haemophilia_a", "haemophilia_b", "asthma",
                     "bronchiolitis", "otitis", "t1d", "epilepsy")  # fmt: skip

PROFILES: Final[MappingProxyType[str, Profile]] = MappingProxyType(
    {
        "general": Profile(
            name="general",
            description="General children's hospital: mostly common conditions, some of each "
            "specialty.",
            organization="Kinderklinik Musterstadt",
            city="Musterstadt",
            country="DE",
            default_patients=5000,
            prevalence=_mix(
                chd=0.03,
                sepsis=0.02,
                haemophilia_a=0.002,
                haemophilia_b=0.0005,
                asthma=0.12,
                bronchiolitis=0.25,
                otitis=0.25,
                t1d=0.02,
                epilepsy=0.03,
            ),  # fmt: skip
            shock_share=0.15,
        ),
        "cardiac": Profile(
            name="cardiac",
            description="Congenital heart disease centre: a third of patients with CHD, "
            "cardiac surgery and post-operative PICU stays.",
            organization="Centro Cardiologico Pediatrico",
            city="Milano",
            country="IT",
            default_patients=2000,
            prevalence=_mix(
                chd=0.35,
                sepsis=0.03,
                haemophilia_a=0.001,
                haemophilia_b=0.0002,
                asthma=0.07,
                bronchiolitis=0.15,
                otitis=0.12,
                t1d=0.01,
                epilepsy=0.02,
            ),  # fmt: skip
            shock_share=0.25,
        ),
        "picu": Profile(
            name="picu",
            description="Tertiary hospital with a large paediatric intensive care unit: "
            "sepsis-heavy, many PICU admissions.",
            organization="Hospital Infantil Universitario",
            city="Barcelona",
            country="ES",
            default_patients=3000,
            prevalence=_mix(
                chd=0.08,
                sepsis=0.25,
                haemophilia_a=0.003,
                haemophilia_b=0.0008,
                asthma=0.10,
                bronchiolitis=0.30,
                otitis=0.15,
                t1d=0.03,
                epilepsy=0.05,
            ),  # fmt: skip
            shock_share=0.35,
        ),
        "haemophilia": Profile(
            name="haemophilia",
            description="Haemophilia comprehensive care centre: many haemophilia A/B patients "
            "on factor prophylaxis with regular factor activity monitoring.",
            organization="Kinderhemofiliecentrum",
            city="Utrecht",
            country="NL",
            default_patients=500,
            prevalence=_mix(
                chd=0.02,
                sepsis=0.01,
                haemophilia_a=0.25,
                haemophilia_b=0.06,
                asthma=0.10,
                bronchiolitis=0.10,
                otitis=0.15,
                t1d=0.015,
                epilepsy=0.02,
            ),  # fmt: skip
            shock_share=0.15,
        ),
    }
)
