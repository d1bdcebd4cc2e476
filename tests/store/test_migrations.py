"""The migrations build exactly the schema ``connector/db/tables.py`` describes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.db.engine import MIGRATIONS, create_engine
from connector.db.tables import metadata, negotiations
from tests.conftest import fresh_pg_database


def _diff(connection: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(connection)
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_the_tables(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []


@pytest.fixture(params=["sqlite", "postgresql"])
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'blank.db'}"
        return
    with fresh_pg_database(request.getfixturevalue("pg_url"), "phems_mig") as url:
        yield url


def _upgrade_to(revision: str) -> Callable[[sa.Connection], None]:
    def run(connection: sa.Connection) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    return run


async def test_0006_keeps_one_of_each_providers_offer_copies_and_terminates_the_rest(
    blank_url: str,
) -> None:
    """Copies of one initial offer made before the unique index existed: the most recently
    updated is kept, the others are terminated with a reason and lose the providerPid, and
    nothing is deleted; then a new copy is refused by the index."""
    engine = create_engine(blank_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to("0005"))
        t0 = datetime(2026, 11, 1, tzinfo=UTC)

        def row(id: str, ppid: str | None, minutes: int, role: str = "consumer") -> dict[str, Any]:
            return {
                "id": id,
                "role": role,
                "state": "OFFERED",
                "provider_pid": ppid,
                "consumer_pid": id,
                "counterparty_did": "did:web:provider.example",
                "document": json.dumps({"offer": None, "termination_reason": []}),
                "created_at": t0,
                "updated_at": t0 + timedelta(minutes=minutes),
            }

        rows = [
            row("c1", "p-1", 1),
            row("c2", "p-1", 5),  # updated last: kept
            row("c3", "p-1", 2),
            row("c4", "p-2", 1),
            row("c5", None, 1),
            row("c6", None, 1),
            row("p1", "p-1", 1, role="provider"),
        ]
        async with engine.begin() as conn:
            await conn.execute(negotiations.insert(), rows)
            await conn.run_sync(_upgrade_to("head"))
        async with engine.connect() as conn:
            found = {r.id: r for r in (await conn.execute(sa.select(negotiations))).all()}
        assert set(found) == {r["id"] for r in rows}
        assert [i for i, r in sorted(found.items()) if r.state == "TERMINATED"] == ["c1", "c3"]
        for copy in ("c1", "c3"):
            assert found[copy].provider_pid is None
            doc = json.loads(found[copy].document)
            assert doc["termination_reason"] == [
                "a copy of negotiation c2: the provider's initial offer arrived twice"
            ]
        assert found["c2"].provider_pid == "p-1" and found["c2"].state == "OFFERED"
        assert found["p1"].provider_pid == "p-1" and found["c4"].provider_pid == "p-2"
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(negotiations.insert(), [row("c7", "p-1", 9)])
    finally:
        await engine.dispose()
