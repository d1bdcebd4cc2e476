"""The async engine and start-up migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from connector.errors import ConfigurationError
from connector.files import DIR_MODE, private_sqlite

MIGRATIONS = Path(__file__).parent / "migrations"
# The execution option of a SQLite connection that only reads (see _sqlite_begin).
READ_ONLY = "phems_read_only"


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
            # SQLite has one writer: a transaction that may write takes the write lock up
            # front, so a read-then-write transaction cannot deadlock with another and SELECT
            # ... FOR UPDATE semantics hold. A read-only one (Database.reading) begins
            # deferred: a snapshot of what is committed, no lock, no waiting for writers.
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN")
            else:
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


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _upgrade(connection: sa.Connection) -> None:
    cfg = _config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def check_store(engine: AsyncEngine) -> None:
    """For commands that only read the store: it exists and is at this version's schema.
    Nothing is created or migrated (``migrate`` does that when the connector starts)."""
    url = engine.url.render_as_string(hide_password=True)
    try:
        async with connect(engine) as conn:
            current = await conn.run_sync(_current_revision)
    except (TimeoutError, OSError, sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise ConfigurationError(
            f"PHEMS_DATABASE_URL: cannot reach the database {url}: {_first_line(exc)}"
        ) from exc
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if current is None:
        raise ConfigurationError(
            f"PHEMS_DATABASE_URL: {url} holds no connector store; start the connector once "
            "(it creates its tables), or point the setting at its database"
        )
    if current != head:
        raise ConfigurationError(
            f"PHEMS_DATABASE_URL: the store in {url} is at schema revision {current}, this "
            f"version of the connector reads {head}; start this version once (it migrates the "
            "store at start-up), or use the version that runs there"
        )


async def migrate(engine: AsyncEngine) -> None:
    """Apply all Alembic migrations (idempotent; serialised across replicas on PostgreSQL)."""
    try:
        async with connect(engine) as conn, conn.begin():
            await _lock_for_migration(conn)
            await conn.run_sync(_upgrade)
    except (TimeoutError, OSError, sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise ConfigurationError(
            f"PHEMS_DATABASE_URL: cannot reach the database "
            f"{engine.url.render_as_string(hide_password=True)}: {_first_line(exc)}"
        ) from exc


# What a PostgreSQL refusal to connect means for the person who set the URL (SQLSTATE).
_CONNECT_HINTS = {
    "28000": "check the user name in the URL (the role must exist on the server)",
    "28P01": "check the password in the URL",
    "3D000": "create the database (createdb NAME, owned by the connector's user) or fix the URL",
    "42501": "give the connector's user the right to connect to and create tables in it",
}


@asynccontextmanager
async def connect(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection; a database that refuses it, or a SQLite file that is not a database,
    is a ConfigurationError that says what to do."""
    conn = engine.connect()
    try:
        await conn.start()
    except sa.exc.DBAPIError as exc:
        raise ConfigurationError(_refusal(engine, exc)) from exc
    try:
        yield conn
    finally:
        await conn.close()


def _refusal(engine: AsyncEngine, exc: sa.exc.DBAPIError) -> str:
    url = engine.url.render_as_string(hide_password=True)
    if engine.dialect.name == "sqlite":
        if not isinstance(exc, sa.exc.DatabaseError) or isinstance(exc, sa.exc.OperationalError):
            return f"PHEMS_DATABASE_URL: cannot open the database {url}: {_first_line(exc)}"
        return (
            f"PHEMS_DATABASE_URL: {engine.url.database} is not a usable SQLite database "
            f"({_first_line(exc)}); restore it from a backup, or move it away to start with "
            "an empty store"
        )
    hint = _CONNECT_HINTS.get(str(getattr(exc.orig, "sqlstate", "") or ""))
    return f"PHEMS_DATABASE_URL: {url} refused the connection: {_first_line(exc)}" + (
        f"; {hint}" if hint else ""
    )


async def _lock_for_migration(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        # Two replicas starting together must not both create the schema.
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(72150001)"))


async def ping(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            # A read: on SQLite it must not wait for the write lock behind busy writers.
            conn = await conn.execution_options(**{READ_ONLY: True})
            await conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
