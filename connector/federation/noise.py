"""Discrete Laplace noise for integer vectors, drawn by OpenDP (a vetted sampler; no float
arithmetic of ours). OpenDP takes over a second to import: it is imported on first use.

A hospital's vector of cells gets noise of scale ``sensitivity / epsilon``, where
``sensitivity`` is the L1 sensitivity of the whole vector (how much one patient can change the
sum of absolute cell values: 1 for a patient count, 1 + the number of stratifiers for a count
with strata, ...), so the vector as a whole is epsilon-differentially private. The
measurement's own privacy map checks that claim before anything is drawn.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any


@functools.lru_cache(maxsize=64)
def _measurement(sensitivity: int, epsilon: float) -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    space = dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int)
    measurement = dp.m.make_laplace(*space, scale=sensitivity / epsilon)
    if measurement.map(sensitivity) > epsilon * (1 + 1e-9):  # type: ignore[no-untyped-call]
        raise ValueError(f"OpenDP cannot guarantee epsilon {epsilon} at this scale")
    return measurement


def add_discrete_laplace(values: Sequence[int], *, sensitivity: int, epsilon: float) -> list[int]:
    """``values`` plus discrete Laplace noise of scale ``sensitivity / epsilon`` on each cell
    (epsilon-DP for the vector when one patient moves it by at most ``sensitivity`` in L1)."""
    if sensitivity < 1 or not 0 < epsilon < float("inf"):
        raise ValueError("sensitivity must be >= 1 and epsilon a positive number")
    if not values:
        return []
    noisy = _measurement(sensitivity, float(epsilon))([int(v) for v in values])
    return [int(v) for v in noisy]
