"""Laplace noise from OpenDP (the one module that imports it).

``make_laplace`` over a vector of integers adds discrete Laplace noise (counts stay integers),
over floats the continuous one; both sample without the floating-point weaknesses of a
hand-written sampler (OpenDP samples exactly, from the discrete Laplace, then post-processes).
A group of cells is released by one measurement whose privacy loss for a change of
``sensitivity`` (in the L1 norm: one patient added or removed) is ``epsilon``: the scale is
``sensitivity / epsilon``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any


@cache
def _dp() -> Any:
    import opendp.prelude as dp  # heavy: loaded on the first noisy answer

    dp.enable_features("contrib")
    return dp


@cache
def _measurement(scale: float, integer: bool) -> Any:
    dp = _dp()
    if integer:
        domain, metric = dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int)
    else:
        domain = dp.vector_domain(dp.atom_domain(T=float, nan=False))
        metric = dp.l1_distance(T=float)
    return dp.m.make_laplace(domain, metric, scale)


def laplace(
    values: Sequence[float], *, sensitivity: float, epsilon: float, integer: bool
) -> list[float]:
    """``values`` plus Laplace noise of scale ``sensitivity / epsilon``."""
    if epsilon <= 0 or sensitivity <= 0:
        raise ValueError("epsilon and sensitivity must be positive")
    measurement = _measurement(sensitivity / epsilon, integer)
    data = [int(round(v)) for v in values] if integer else [float(v) for v in values]
    return [float(v) for v in measurement(data)]


def privacy_loss(*, sensitivity: float, epsilon: float, integer: bool) -> float:
    """The epsilon OpenDP certifies for one ``laplace`` call (for tests and audits)."""
    measurement = _measurement(sensitivity / epsilon, integer)
    d_in = int(sensitivity) if integer else float(sensitivity)
    return float(measurement.map(d_in))
