"""Pure retry rules: back-off bounds and Retry-After parsing (RFC 9110 10.2.3)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from adapters.fhir.retry import RetryPolicy, parse_retry_after

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def test_backoff_grows_exponentially_with_jitter_and_stays_bounded() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.5, max_delay=8.0)
    rng = random.Random(7)
    for retry in range(1, 10):
        ceiling = min(8.0, 0.5 * 2 ** (retry - 1))
        delays = [policy.delay(retry, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_retry_after_wins_but_is_capped() -> None:
    policy = RetryPolicy(max_retry_after=60.0)
    rng = random.Random(1)
    assert policy.delay(1, rng, retry_after=12.0) == 12.0
    assert policy.delay(1, rng, retry_after=3600.0) == 60.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Sat, 28 Nov 2026 12:00:30 GMT", 30.0),
        ("Sat, 28 Nov 2026 11:00:00 GMT", 0.0),  # in the past: go now
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=5, max_delay=1)
