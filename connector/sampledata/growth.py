"""Growth curves and age-dependent vital-sign norms for children 0-18 years.

Medians approximate the WHO Child Growth Standards (0-5 years) joined to the WHO 2007 / CDC
2000 references (5-18 years); spreads approximate their LMS S values (height coefficient of
variation about 4 %, weight roughly log-normal with a spread widening from 12 % in infancy to
18 % in adolescence). Good enough for plausible synthetic records, not for clinical use.

A child keeps its own z-scores over time (tracks its centile), so successive measurements of one
patient grow smoothly; :func:`weight_kg` and :func:`height_cm` clip z to +-3.

Before term-equivalent age (postmenstrual age under 40 weeks: a preterm infant, or a term one in
its first days) size follows the size at birth by gestational age (:func:`fetal_weight_kg` ...),
after Fenton's preterm growth charts, which serve both at birth and ex utero until term; after
it, the curves above apply at the age corrected for prematurity.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import Final

AGES: Final = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0,
               11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0)  # fmt: skip
HEIGHT_MEDIAN: Final[dict[str, tuple[float, ...]]] = {
    "male": (49.9, 67.6, 75.7, 87.1, 96.1, 103.3, 110.0, 116.0, 121.7, 127.3, 132.6, 137.8,
             143.1, 149.1, 156.0, 163.2, 169.0, 172.9, 175.2, 176.1),
    "female": (49.1, 65.7, 74.0, 85.7, 95.1, 102.7, 109.4, 115.1, 120.8, 126.6, 132.5, 138.6,
               144.8, 151.2, 156.4, 159.8, 161.7, 162.5, 162.9, 163.1),
}  # fmt: skip
WEIGHT_MEDIAN: Final[dict[str, tuple[float, ...]]] = {
    "male": (3.3, 7.9, 9.6, 12.2, 14.3, 16.3, 18.3, 20.5, 22.9, 25.4, 28.1, 31.2,
             35.6, 39.9, 45.3, 50.8, 56.0, 60.8, 64.4, 66.9),
    "female": (3.2, 7.3, 8.9, 11.5, 13.9, 16.1, 18.2, 20.2, 22.4, 25.0, 28.2, 31.9,
               36.9, 41.5, 45.8, 49.4, 52.1, 53.5, 54.4, 56.0),
}  # fmt: skip
HEAD_AGES: Final = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
HEAD_MEDIAN: Final[dict[str, tuple[float, ...]]] = {
    "male": (34.5, 40.5, 43.3, 46.1, 47.4, 48.3),
    "female": (33.9, 39.5, 42.2, 45.0, 46.2, 47.2),
}
HEAD_SD_CM: Final = 1.3
Z_LIMIT: Final = 3.0

# Size at birth by gestational age (weeks), as a share of the term (40 weeks) median at age 0.
GA_WEEKS: Final = (22.0, 24.0, 26.0, 28.0, 30.0, 32.0, 34.0, 36.0, 37.0, 38.0, 39.0, 40.0, 41.0,
                   42.0)  # fmt: skip
GA_WEIGHT: Final = (0.15, 0.19, 0.25, 0.32, 0.42, 0.53, 0.67, 0.81, 0.87, 0.92, 0.97, 1.0, 1.04,
                    1.07)  # fmt: skip
GA_LENGTH: Final = (0.57, 0.62, 0.68, 0.74, 0.80, 0.85, 0.90, 0.94, 0.96, 0.975, 0.99, 1.0, 1.01,
                    1.02)  # fmt: skip
GA_HEAD: Final = (0.58, 0.64, 0.70, 0.75, 0.80, 0.855, 0.90, 0.94, 0.96, 0.97, 0.985, 1.0, 1.01,
                  1.02)  # fmt: skip

# Vital-sign means by age (resting, awake); spread about 10 % of the mean.
VITAL_AGES: Final = (0.0, 1.0, 2.0, 5.0, 8.0, 12.0, 18.0)
HEART_RATE: Final = (140.0, 125.0, 115.0, 100.0, 90.0, 80.0, 72.0)
RESP_RATE: Final = (40.0, 32.0, 28.0, 22.0, 20.0, 18.0, 15.0)
SYSTOLIC: Final = (72.0, 88.0, 92.0, 96.0, 100.0, 106.0, 114.0)
DIASTOLIC: Final = (42.0, 50.0, 53.0, 56.0, 60.0, 63.0, 68.0)


def _interp(xs: tuple[float, ...], ys: tuple[float, ...], x: float) -> float:
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect_right(xs, x)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def _clip(z: float) -> float:
    return max(-Z_LIMIT, min(Z_LIMIT, z))


def height_median(age: float, sex: str) -> float:
    return _interp(AGES, HEIGHT_MEDIAN[sex], age)


def height_sd(age: float, sex: str) -> float:
    return height_median(age, sex) * (0.037 if age < 2 else 0.042)


def weight_median(age: float, sex: str) -> float:
    return _interp(AGES, WEIGHT_MEDIAN[sex], age)


def weight_sigma(age: float) -> float:
    """Standard deviation of log(weight)."""
    return 0.12 + 0.06 * min(age, 14.0) / 14.0


def height_cm(age: float, sex: str, z: float) -> float:
    return height_median(age, sex) + _clip(z) * height_sd(age, sex)


def weight_kg(age: float, sex: str, z: float) -> float:
    return weight_median(age, sex) * math.exp(_clip(z) * weight_sigma(age))


def head_circumference_cm(age: float, sex: str, z: float) -> float:
    return _interp(HEAD_AGES, HEAD_MEDIAN[sex], age) + _clip(z) * HEAD_SD_CM


def fetal_weight_kg(weeks: float, sex: str, z: float) -> float:
    """Weight at a postmenstrual age under 40 weeks (at birth, or ex utero before term)."""
    return weight_kg(0.0, sex, z) * _interp(GA_WEEKS, GA_WEIGHT, weeks)


def fetal_length_cm(weeks: float, sex: str, z: float) -> float:
    return height_cm(0.0, sex, z) * _interp(GA_WEEKS, GA_LENGTH, weeks)


def fetal_head_cm(weeks: float, sex: str, z: float) -> float:
    return head_circumference_cm(0.0, sex, z) * _interp(GA_WEEKS, GA_HEAD, weeks)


def bmi(weight: float, height: float) -> float:
    return weight / (height / 100.0) ** 2


def heart_rate(age: float) -> float:
    return _interp(VITAL_AGES, HEART_RATE, age)


def resp_rate(age: float) -> float:
    return _interp(VITAL_AGES, RESP_RATE, age)


def systolic(age: float) -> float:
    return _interp(VITAL_AGES, SYSTOLIC, age)


def diastolic(age: float) -> float:
    return _interp(VITAL_AGES, DIASTOLIC, age)
