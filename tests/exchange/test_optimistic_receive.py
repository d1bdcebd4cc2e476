"""On PostgreSQL a DSP message for an existing negotiation is applied to the row as read,
without a lock, and written only if the row is unchanged since (``phems_expect_version``,
migration 0007). A change in between writes nothing of the message (state, outbox, audit) and
the message is applied again to the new state; a row that keeps changing gets a 409."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connector.composition import Services, build_services
from connector.db.tables import audit_log, audit_pending, negotiations, outbox
from connector.dsp.messages import ContractNegotiationTerminationMessage
from connector.dsp.negotiation import Negotiation
from connector.dsp.states import NegotiationState, Role
from connector.errors import ConflictError
from connector.identity.tokens import VerifiedCaller
from connector.settings import Settings
from tests.conftest import fresh_pg_database

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CONSUMER = "did:web:consumer.example"
CALLER = VerifiedCaller(did=CONSUMER, credentials=(), jti="j", exp=T0)


@pytest.fixture
async def services(tmp_path: Path, pg_url: str) -> AsyncIterator[Services]:
    with fresh_pg_database(pg_url, "phems_optimistic") as url:
        s = await build_services(Settings(data_dir=tmp_path, database_url=url))
        try:
            yield s
        finally:
            await s.aclose()


async def _requested(s: Services) -> Negotiation:
    n = Negotiation.new(
        id="urn:uuid:p1",
        role=Role.PROVIDER,
        counterparty_did=CONSUMER,
        now=T0,
        counterparty_address="http://127.0.0.1:9/dsp",
        provider_pid="urn:uuid:p1",
        consumer_pid="urn:uuid:c1",
    )
    n = replace(n, state=NegotiationState.REQUESTED, offer={"@id": "o1", "target": "ds"})
    async with s.db.transaction() as conn:
        await s.stores.negotiations.insert(conn, n)
    return n


def _termination() -> ContractNegotiationTerminationMessage:
    return ContractNegotiationTerminationMessage.model_validate(
        {
            "providerPid": "urn:uuid:p1",
            "consumerPid": "urn:uuid:c1",
            "code": "changed-mind",
            "reason": ["no longer needed"],
        }
    )


def _changing_after_each_read(s: Services, times: int) -> list[int]:
    """Make another writer change the row (a new row version, same content) right after each
    of the first ``times`` versioned reads; returns the versions read."""
    store = s.stores.negotiations
    read: Callable[..., Awaitable[Any]] = store._read_versioned  # type: ignore[attr-defined]
    versions: list[int] = []

    async def racing(conn: Any, id: str) -> Any:
        found = await read(conn, id)
        versions.append(found[1])
        if len(versions) <= times:
            async with s.engine.begin() as other:
                statement = negotiations.update().where(negotiations.c.id == id)
                await other.execute(statement.values(updated_at=negotiations.c.updated_at))
        return found

    store._read_versioned = racing  # type: ignore[attr-defined]
    return versions


async def _audit_events(s: Services) -> list[str]:
    async with s.engine.connect() as conn:
        events = []
        for table in (audit_pending, audit_log):
            query = sa.select(table.c.event).where(table.c.negotiation_id == "urn:uuid:p1")
            events += list((await conn.execute(query)).scalars())
        return events


async def _state(s: Services) -> str:
    async with s.engine.connect() as conn:
        query = sa.select(negotiations.c.state).where(negotiations.c.id == "urn:uuid:p1")
        return str((await conn.execute(query)).scalar_one())


async def test_a_message_is_applied_again_when_its_negotiation_changed_since_the_read(
    services: Services,
) -> None:
    await _requested(services)
    versions = _changing_after_each_read(services, times=1)
    n = await services.negotiations.receive(CALLER, "urn:uuid:p1", _termination())
    assert n.state is NegotiationState.TERMINATED
    assert n.termination_reason == ("no longer needed",)
    assert len(versions) == 2 and versions[0] != versions[1]  # read again after the change
    assert await _state(services) == "TERMINATED"
    # The first attempt wrote nothing: one audit entry, not two.
    assert await _audit_events(services) == ["negotiation.terminated"]


async def test_a_negotiation_that_keeps_changing_gets_a_conflict_and_nothing_is_written(
    services: Services,
) -> None:
    await _requested(services)
    versions = _changing_after_each_read(services, times=100)
    with pytest.raises(ConflictError, match="kept changing"):
        await services.negotiations.receive(CALLER, "urn:uuid:p1", _termination())
    assert len(versions) == 5
    assert await _state(services) == "REQUESTED"
    assert await _audit_events(services) == []
    async with services.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(outbox))).scalar() == 0
