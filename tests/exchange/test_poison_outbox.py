"""A message that can never be sent (issue 18, finding 5): any error while sending counts as
an attempt, so it fails after the maximum and its process is terminated, instead of being
claimed again forever. The address is one stored before callback addresses with a user name
were refused (aiohttp raises ValueError for it with our Authorization header)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from connector.exchange.sender import SendPolicy
from tests.exchange.test_early_answers import Peer, _deliver_until_done, engine, peer

__all__ = ["engine", "peer"]


async def test_an_unsendable_address_fails_after_the_maximum_attempts(
    engine: AsyncEngine, peer: Peer
) -> None:
    peer.url = peer.url.replace("http://", "http://user@")
    row = await _deliver_until_done(engine, peer)
    assert row.failed_at is not None and row.sent_at is None
    assert row.attempts == SendPolicy().max_attempts
    assert "ValueError" in row.last_error and peer.seen == 0
