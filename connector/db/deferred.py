"""Writes held to the end of a transaction and sent to PostgreSQL as one statement.

A DSP handler's transaction reads and locks a row, then writes the new state, queues the
outbound message, stores an agreement and records audit entries: four or five INSERT/UPDATE
statements, each a round trip costing more CPU (driver, SQLAlchemy, server) than the work it
does. Between ``begin`` and ``end`` such writes are held (``write``) and sent together by
``flush`` as one statement of data-modifying CTEs (``WITH w0 AS (INSERT ...), w1 AS (...)
UPDATE ...``), just before the commit.

The rules that keep this invisible to callers:

- Anything else run on the connection by the store (a read, or a write that is not held)
  calls ``flush`` first, so a transaction always reads its own writes.
- The sub-statements of one statement do not see each other's rows and run in no set order,
  so a second write with the same ``key`` (the same row, or rows whose order matters, such
  as a process's outbox messages) flushes the first before it is held.
- A held write that fails (a constraint) fails the flush, inside the same transaction, which
  then rolls back as a whole: no partial state, as before; only the error surfaces later.

A transaction that does nothing but held writes (a management request that creates a
negotiation, say) has not begun on the server when its writes are flushed at its end
(``flush(conn, last=True)``): the combined statement then runs on its own, with no BEGIN and
COMMIT round trips around it. One statement is atomic and durable by itself.

A held write may want its rows back (``on_rows``: the outbox insert, for the ids of messages
its replica sends at once after the commit). It is sent as PostgreSQL text, last in the
combined statement, whose rows are then its ``RETURNING`` rows; at most one such write is
held at a time (a second flushes the first).

Only PostgreSQL defers (``begin`` is called for it alone); elsewhere ``write`` executes at
once. ``write`` on a connection without ``begin`` also executes at once.

Held writes, and the store's other hot statements (``run``: a negotiation or dataset read,
the jti and sent-mark batches), go to the asyncpg connection under SQLAlchemy's, inside
SQLAlchemy's transaction: SQLAlchemy's execution of a statement costs about 0.2 ms of CPU
more than the driver's (bench/bench_db_layer.py), and a negotiation runs some twenty.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

_HELD = "deferred_writes"  # conn.info key (conn.info belongs to the pooled connection)


class ChangedSinceRead(Exception):
    """An optimistic write found its row changed since it was read (PostgreSQL raised
    SQLSTATE 40001 from ``phems_expect_version``, migration 0007): the statement wrote
    nothing, and a transaction it ran in is to be rolled back. Read again and retry."""


@dataclass(frozen=True)
class Write:
    """One held write: how to run it alone (SQLAlchemy) and as part of a combined statement
    (PostgreSQL text whose parameters are numbered from the offset it is given)."""

    statement: sa.Executable
    params: Any  # for ``statement``: a dict, or a list of dicts (executemany)
    shape: Hashable  # equal shapes render equal SQL: the combined text is cached by shapes
    sql: Callable[[int], str]  # the PostgreSQL text, ``$n`` numbered from the argument + 1
    args: tuple[Any, ...]  # the positional values for ``sql``
    key: Hashable | None = None  # the row written, if a second write of it must wait
    # Given the rows of ``sql``'s RETURNING (positional records) once it has run.
    on_rows: Callable[[Sequence[Any]], None] | None = None


def begin(conn: AsyncConnection) -> None:
    conn.info[_HELD] = []


def holding(conn: AsyncConnection) -> bool:
    """Whether writes on ``conn`` are held (``begin`` was called, ``end`` not yet)."""
    return conn.info.get(_HELD) is not None


def end(conn: AsyncConnection) -> None:
    conn.info.pop(_HELD, None)


async def write(conn: AsyncConnection, w: Write) -> None:
    held: list[Write] | None = conn.info.get(_HELD)
    if held is None:
        try:
            await conn.execute(w.statement, w.params)
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == "40001":
                raise ChangedSinceRead(str(exc.orig)) from exc
            raise
        return
    if any((w.key is not None and h.key == w.key) or (w.on_rows and h.on_rows) for h in held):
        await flush(conn)
        held = conn.info[_HELD]
    held.append(w)


async def flush(conn: AsyncConnection, *, last: bool = False) -> None:
    """Send the held writes (one statement); a no-op when none are held. ``last``: nothing
    else runs in this transaction before its commit."""
    held: list[Write] | None = conn.info.get(_HELD)
    if not held:
        return
    conn.info[_HELD] = []
    # The write that wants its rows goes last: the combined statement's rows are then its.
    returning = [w for w in held if w.on_rows is not None]
    if returning:
        held = [w for w in held if w.on_rows is None] + returning
    sql = held[0].sql(0) if len(held) == 1 else _combined(held)
    fetch = bool(returning)
    driver = await _not_begun(conn) if last else None
    if driver is not None:  # one statement outside any transaction block
        rows = await _call(conn, None, driver, sql, _args(held), fetch=fetch)
    else:
        rows = await run(conn, sql, _args(held), fetch=fetch)
    if returning:
        _deliver(returning[0], rows)


def _deliver(w: Write, rows: Sequence[Any]) -> None:
    assert w.on_rows is not None
    w.on_rows(rows)


async def _not_begun(conn: AsyncConnection) -> asyncpg.Connection | None:
    """The asyncpg connection under ``conn`` if its transaction has not begun on the server
    (SQLAlchemy's asyncpg adapter sends BEGIN with the first statement), else None."""
    pair = await _pair(conn)
    if pair is None or pair[0]._transaction is not None:
        return None  # begun (or not asyncpg: the ordinary path)
    return pair[1]


async def read_unbegun(conn: AsyncConnection, sql: str, args: Sequence[Any]) -> Sequence[Any]:
    """A read on ``conn`` that does not begin its transaction: before it has begun, the read
    is a statement of its own (it sees what is committed when it runs, and locks nothing), so
    a transaction whose writes then go as one statement (``flush(last=True)``) never sends
    BEGIN and COMMIT. Once begun, the read runs inside it, as ``run``."""
    driver = await _not_begun(conn)
    if driver is None:
        return await run(conn, sql, args)
    return await _call(conn, None, driver, sql, args, fetch=True)


async def run(
    conn: AsyncConnection, sql: str, args: Sequence[Any], *, fetch: bool = True
) -> Sequence[Any]:
    """PostgreSQL text (``$n`` parameters) run in ``conn``'s transaction, straight on the
    asyncpg connection under it: its rows (positional records) if ``fetch``.

    The transaction is begun first if it has not been, exactly as SQLAlchemy's asyncpg
    adapter begins it (so SQLAlchemy commits or rolls it back as usual); on an autocommit
    connection the statement commits on its own. Going around SQLAlchemy's execution saves
    about 0.2 ms of CPU a statement (bench/bench_db_layer.py). Errors are reported as on
    SQLAlchemy's path. On another driver, SQLAlchemy runs it."""
    pair = await _pair(conn)
    if pair is None:
        result = await conn.exec_driver_sql(sql, tuple(args))
        return result.all() if fetch else ()
    return await _call(conn, pair[0], pair[1], sql, args, fetch=fetch)


_DRIVER = "deferred_driver"  # conn.info key: (SQLAlchemy's adapter, the asyncpg connection)


async def _pair(conn: AsyncConnection) -> tuple[Any, asyncpg.Connection] | None:
    """SQLAlchemy's asyncpg adapter under ``conn`` and its asyncpg connection, or None on
    another driver. Kept in the pooled connection's info, which is cleared when it
    reconnects."""
    pair: tuple[Any, asyncpg.Connection] | None = conn.info.get(_DRIVER)
    if pair is None:
        raw = await conn.get_raw_connection()
        adapter, driver = raw.dbapi_connection, raw.driver_connection
        if not isinstance(driver, asyncpg.Connection) or not hasattr(adapter, "_start_transaction"):
            return None
        conn.info[_DRIVER] = pair = (adapter, driver)
    return pair


async def _call(
    conn: AsyncConnection,
    adapter: Any,
    driver: asyncpg.Connection,
    sql: str,
    args: Sequence[Any],
    *,
    fetch: bool,
) -> Sequence[Any]:
    """Run ``sql`` on ``driver``, after beginning the transaction (lazily, as SQLAlchemy's
    ``adapter`` begins it; a no-op on an autocommit connection) unless ``adapter`` is None.
    Errors as SQLAlchemy reports them on the ordinary path: a constraint is an
    ``IntegrityError``, and a broken connection is invalidated (the pool replaces it) and
    reported as such."""
    try:
        if adapter is not None and adapter._transaction is None:
            await adapter._start_transaction()
        if fetch:
            rows: Sequence[Any] = await driver.fetch(sql, *args)
            return rows
        await driver.execute(sql, *args)
        return ()
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise sa.exc.IntegrityError(sql, args, exc) from exc
    except asyncpg.SerializationError as exc:
        raise ChangedSinceRead(exc.args[0] if exc.args else str(exc)) from exc
    except BaseException as exc:
        if not isinstance(exc, Exception):
            # Cancelled mid-statement: the connection's state is unknown (the statement may
            # still run; asyncpg sends a cancel request). As SQLAlchemy's own path does, it
            # is invalidated: closed, and replaced in the pool.
            await conn.invalidate(exc)
            raise
        # A server error on a healthy connection stays a DatabaseError; a connection that is
        # gone (closed, terminated by the server, a protocol error) is dropped from the pool.
        # (An error of the BEGIN comes wrapped by the adapter: its cause is asyncpg's.)
        cause = exc.__cause__ if isinstance(exc.__cause__, asyncpg.PostgresError) else exc
        if isinstance(cause, asyncpg.PostgresError) and not driver.is_closed():
            raise sa.exc.DatabaseError(sql, args, cause) from exc
        await conn.invalidate(exc)
        raise sa.exc.OperationalError(sql, args, exc, connection_invalidated=True) from exc


def _args(held: list[Write]) -> tuple[Any, ...]:
    args: list[Any] = []
    for w in held:
        args.extend(w.args)
    return tuple(args)


_TEXTS: dict[tuple[Hashable, ...], str] = {}


def _combined(held: list[Write]) -> str:
    shapes = tuple(w.shape for w in held)
    text = _TEXTS.get(shapes)
    if text is None:
        parts, offset = [], 0
        for w in held:
            parts.append(w.sql(offset))
            offset += len(w.args)
        ctes = ", ".join(f"w{i} AS ({part})" for i, part in enumerate(parts[:-1]))
        text = f"WITH {ctes} {parts[-1]}"
        if len(_TEXTS) < 512:  # shapes are few (one per kind of handler); never unbounded
            _TEXTS[shapes] = text
    return text


def insert_text(
    table: str, columns: tuple[str, ...], *, rows: int = 1, suffix: str = ""
) -> Callable[[int], str]:
    """``Write.sql`` for ``INSERT INTO table (columns) VALUES (...), ...`` of ``rows`` rows,
    the parameters numbered row by row from the offset it is given."""
    names, width = ", ".join(columns), len(columns)

    def sql(offset: int) -> str:
        values = ", ".join(
            "(" + ", ".join(f"${offset + r * width + i}" for i in range(1, width + 1)) + ")"
            for r in range(rows)
        )
        return f"INSERT INTO {table} ({names}) VALUES {values}{suffix}"

    return sql


def select_text(table: sa.Table, where: str) -> tuple[Any, str]:
    """For a read run by ``run``: a named-tuple type of ``table``'s columns (rows read like
    SQLAlchemy's, by attribute) and the PostgreSQL text selecting them ``WHERE where``."""
    row = namedtuple(f"{table.name}_row", [c.name for c in table.c])  # type: ignore[misc]
    return row, f"SELECT {', '.join(row._fields)} FROM {table.name} WHERE {where}"
