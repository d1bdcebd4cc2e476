"""Retry rules for the FHIR REST client: which failures are transient, and how long to wait.

Pure functions, no I/O: the HTTP layer asks ``RetryPolicy.delay`` how long to sleep before the
next attempt and ``parse_retry_after`` what the server asked for (RFC 9110 section 10.2.3:
delay-seconds or an HTTP-date).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# 408/429 and the 5xx a proxy or an overloaded server answers; other statuses are the
# caller's (or the configuration's) mistake and retrying cannot fix them.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in total; exponential back-off with jitter, bounded by ``max_delay``.

    A server's ``Retry-After`` is honoured, but never beyond ``max_retry_after`` so a
    misbehaving server cannot stall a fulfilment forever.
    """

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("RetryPolicy needs 0 <= base_delay <= max_delay")

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        # "Equal jitter": at least half the exponential step, so retries still spread out
        # when many workers fail at once, without ever collapsing to zero.
        return rng.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds the server asked us to wait, or None when absent or unparseable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
