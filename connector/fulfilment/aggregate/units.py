"""UCUM units: which are valid, which can be converted into which, and how.

``ucumvert`` parses UCUM codes into ``pint`` quantities (imported lazily: loading its registry
takes about half a second, once per process). A conversion is affine (``a * x + b``: only the
temperature scales have ``b != 0``), rounded to 12 significant digits so that 3 kg is exactly
3000 g. A unit made only of annotations (``{score}``) is dimensionless by UCUM but converts
only to itself: scores of different scales are not comparable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

_ANNOTATION_ONLY = re.compile(r"^(\{[^{}]*\})+$")


@dataclass(frozen=True)
class Affine:
    """``to = a * from + b``."""

    a: float
    b: float

    def __call__(self, value: float) -> float:
        return significant(self.a * value + self.b)


IDENTITY = Affine(1.0, 0.0)


def significant(value: float, digits: int = 12) -> float:
    """``value`` rounded to ``digits`` significant digits (floating point noise removed)."""
    return float(f"{value:.{digits}g}")


@cache
def _registry() -> Any:
    from ucumvert import PintUcumRegistry  # heavy: only when a unit is first needed

    return PintUcumRegistry()


@cache
def _parse(code: str) -> Any:
    """The pint unit of a UCUM code, or None if the code is not valid UCUM."""
    if _ANNOTATION_ONLY.match(code):
        return None
    try:
        quantity = _registry().from_ucum(code)
        return quantity.units, float(quantity.magnitude)
    except Exception:  # ucumvert raises lark and pint errors of several kinds
        return None


def is_valid(code: str) -> bool:
    """Whether ``code`` is a UCUM unit (an annotation alone, like ``{score}``, is)."""
    return bool(_ANNOTATION_ONLY.match(code)) or _parse(code) is not None


@cache
def conversion(source: str, target: str) -> Affine | None:
    """How a value in ``source`` is expressed in ``target``, or None when the units cannot be
    converted (different dimensions, an invalid code, or an annotation-only unit)."""
    if source == target:
        return IDENTITY
    from_unit, to_unit = _parse(source), _parse(target)
    if from_unit is None or to_unit is None:
        return None
    (src, src_mag), (dst, dst_mag) = from_unit, to_unit
    scale = float(src_mag) / float(dst_mag)
    if src.dimensionality != dst.dimensionality:
        return None
    quantity = _registry().Quantity

    def convert(x: float) -> float:
        return float(quantity(x, src).to(dst).magnitude) * scale

    b = convert(0.0)
    return Affine(significant(convert(1.0) - b), significant(b))


def compatible(source: str, target: str) -> bool:
    return conversion(source, target) is not None
