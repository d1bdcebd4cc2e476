"""The store contract suite runs every test against SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.db.engine import create_engine, migrate
from connector.db.tables import metadata, negotiations, outbox


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    eng = create_engine(url)
    await migrate(eng)
    try:
        if request.param == "postgresql":
            async with eng.begin() as conn:
                for table in reversed(metadata.sorted_tables):
                    if table.name != "audit_head":
                        await conn.execute(table.delete())
                await conn.execute(sa.text(f"UPDATE audit_head SET seq=0, hash='{'0' * 64}'"))
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
async def pg_engine(pg_database: str) -> AsyncIterator[AsyncEngine]:
    """PostgreSQL alone (for what only PostgreSQL does), no negotiations or messages left."""
    eng = create_engine(pg_database)
    await migrate(eng)
    async with eng.begin() as conn:
        await conn.execute(outbox.delete())
        await conn.execute(negotiations.delete())
    try:
        yield eng
    finally:
        await eng.dispose()
