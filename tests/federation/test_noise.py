"""OpenDP's discrete Laplace noise at the scale sensitivity / epsilon."""

from __future__ import annotations

import math

import pytest

from connector.federation.noise import add_discrete_laplace


def test_noise_is_integer_centred_with_the_discrete_laplace_variance() -> None:
    draws = add_discrete_laplace([0] * 20_000, sensitivity=2, epsilon=0.5)  # scale 4
    assert all(type(d) is int for d in draws)
    mean = sum(draws) / len(draws)
    variance = sum((d - mean) ** 2 for d in draws) / (len(draws) - 1)
    q = math.exp(-1 / 4)
    expected = 2 * q / (1 - q) ** 2  # 31.85; the sample's sd is about 1.6% of it
    assert abs(mean) < 0.4  # about 10 standard errors
    assert abs(variance / expected - 1) < 0.15
    assert len(set(draws)) > 30


def test_noise_is_added_to_each_cell() -> None:
    noisy = add_discrete_laplace([1000, 0, -50], sensitivity=1, epsilon=1.0)
    assert len(noisy) == 3
    assert abs(noisy[0] - 1000) < 200 and abs(noisy[2] + 50) < 200
    assert add_discrete_laplace([], sensitivity=1, epsilon=1.0) == []


@pytest.mark.parametrize(("sensitivity", "epsilon"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_bad_parameters_are_refused(sensitivity: int, epsilon: float) -> None:
    with pytest.raises(ValueError, match="sensitivity must be"):
        add_discrete_laplace([1], sensitivity=sensitivity, epsilon=epsilon)
