"""The async engine and start-up migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from connector.errors import ConfigurationError
from connector.files import DIR_MODE, private_sqlite

MIGRATIONS = Path(__file__).parent / "migrations"


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20) -> AsyncEngine:
    """The store's engine. On PostgreSQL up to ``pool_size + max_overflow`` connections,
    opened as needed and kept open."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            private_sqlite(Path(database))
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy, not the driver, begin transactions (see _sqlite_begin).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives a crash of the connector, not necessarily a power
            # cut of the machine (the database stays consistent either way). Fine for the
            # embedded default; production runs on PostgreSQL, which commits synchronously.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # SQLite has one writer: take the write lock up front, so a read-then-write
            # transaction cannot deadlock with another and SELECT ... FOR UPDATE semantics hold.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # No pool_pre_ping: it cost a round trip on every checkout (about 6% of a busy
    # connector's time). A connection found dead on use invalidates the whole pool, so after
    # a database restart one request fails (the outbox retries) and the next ones reconnect.
    # A fixed-size pool, opened as needed: overflow connections stay open once opened, as
    # HikariCP advises. SQLAlchemy would close one as soon as it came back to a full pool, and
    # under sustained load it reopened them all the time; each costs PostgreSQL a new backend,
    # every statement parsed again and asyncpg's type introspections (bench/README.md,
    # session 9).
    return create_async_engine(url, pool_size=pool_size + max_overflow, max_overflow=0)


@asynccontextmanager
async def single_statement(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for exactly one statement that commits on its own.

    On PostgreSQL it runs in autocommit (the statement is its own transaction: no BEGIN and
    COMMIT round trips); on SQLite in an ordinary ``BEGIN IMMEDIATE`` transaction.
    """
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")
    else:
        async with engine.begin() as conn:
            yield conn


def no_flush_wait(dialect: str) -> sa.ColumnElement[bool]:
    """A WHERE condition that lets a statement run by ``single_statement`` commit without
    waiting for PostgreSQL's WAL flush (always true; on SQLite plainly ``true``).

    For bookkeeping whose loss in a database crash is harmless: a replay-guard jti (its token
    expires within minutes), an outbox lease or sent mark (the message is sent again and the
    receiver treats the repeat as a no-op). ``set_config(..., true)`` sets
    ``synchronous_commit`` for the statement's own implicit transaction only; an uncorrelated
    scalar subquery is evaluated once, before any row.
    """
    if dialect != "postgresql":
        return sa.true()
    off = sa.select(sa.func.set_config("synchronous_commit", "off", True)).scalar_subquery()
    return off.is_not(None)


def _upgrade(connection: sa.Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Apply all Alembic migrations (idempotent; serialised across replicas on PostgreSQL)."""
    try:
        async with engine.begin() as conn:
            await _lock_for_migration(conn)
            await conn.run_sync(_upgrade)
    except (TimeoutError, OSError, sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise ConfigurationError(
            f"PHEMS_DATABASE_URL: cannot reach the database "
            f"{engine.url.render_as_string(hide_password=True)}: {_first_line(exc)}"
        ) from exc


async def _lock_for_migration(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        # Two replicas starting together must not both create the schema.
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(72150001)"))


async def ping(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
