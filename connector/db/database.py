"""Transactions for every SQL store (``connector.exchange.ports.Transactions``).

A transaction (``transaction()``) commits its state change, outbox items and audit entries
together. On PostgreSQL the writes the stores make in it are held and sent as one statement
before the commit (``connector/db/deferred.py``); every other statement a store runs sends
them first (``run``), so a transaction reads its own writes. On SQLite a transaction takes
the write lock when it begins (``BEGIN IMMEDIATE``: one writer, no read-then-write deadlock).

``reading()`` is for plain reads and takes no lock: on PostgreSQL each statement runs on its
own (autocommit); on SQLite it begins a deferred transaction, a snapshot of what is committed
that waits for no writer (WAL).

``attempt(work)`` runs ``work`` in a transaction in which, on PostgreSQL, a row a store reads
``for_change`` is not locked but remembered with its version, and written only if unchanged
(``ChangedSinceRead`` otherwise, migration 0007): two statements instead of BEGIN, SELECT ...
FOR UPDATE, the write and COMMIT. A row changed in between fails the write and everything
held with it; ``attempt`` then runs ``work`` again. Elsewhere the row is locked as usual.

Stores keep per-transaction notes with ``state(conn)`` (a row's version, the step a
transaction completes) and register hooks: ``before_commit`` (the audit entries of the
transaction) and ``after_commit`` (waking the outbox sender).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from connector.db import deferred
from connector.db.deferred import ChangedSinceRead
from connector.db.engine import READ_ONLY
from connector.errors import ConflictError

T = TypeVar("T")

_TX = "phems_transaction"  # conn.info key (conn.info belongs to the pooled connection)
# How often ``attempt`` runs its work when the rows it read keep changing: each retry means
# another writer got in first.
ATTEMPTS = 5


@dataclass
class TransactionState:
    """What the stores note about one transaction."""

    optimistic: bool
    values: dict[Any, Any] = field(default_factory=dict)
    before_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    after_commit: dict[str, Callable[[], None]] = field(default_factory=dict)


def state(conn: AsyncConnection) -> TransactionState:
    """The notes of ``conn``'s transaction (one begun by ``Database``; a connection from
    elsewhere gets fresh, unkept notes)."""
    found: TransactionState | None = conn.info.get(_TX)
    return found if found is not None else TransactionState(optimistic=False)


async def run(conn: AsyncConnection, statement: Any, params: Any = None) -> Any:
    """A statement in ``conn``'s transaction, after the writes it holds."""
    await deferred.flush(conn)
    return await conn.execute(statement, params)


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.postgresql = self.dialect == "postgresql"

    @asynccontextmanager
    async def transaction(self, *, optimistic: bool = False) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            tx = conn.info[_TX] = TransactionState(optimistic=optimistic and self.postgresql)
            if self.postgresql:
                deferred.begin(conn)
            try:
                yield conn
                while tx.before_commit:
                    await tx.before_commit.pop(0)()
                await deferred.flush(conn, last=True)
            finally:
                # A connection found broken was invalidated: its info is gone with it, and
                # touching it would raise (PendingRollbackError) over the real error.
                if not conn.invalidated:
                    deferred.end(conn)
                    conn.info.pop(_TX, None)
        for hook in tx.after_commit.values():
            hook()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            if self.postgresql:
                yield await conn.execution_options(isolation_level="AUTOCOMMIT")
            else:
                # connector/db/engine.py begins it DEFERRED: no write lock, no wait.
                yield await conn.execution_options(**{READ_ONLY: True})

    async def attempt(self, work: Callable[[AsyncConnection], Awaitable[T]], *, conflict: str) -> T:
        for _ in range(ATTEMPTS):
            try:
                async with self.transaction(optimistic=True) as conn:
                    return await work(conn)
            except ChangedSinceRead:
                continue
        raise ConflictError(conflict)

    def before_commit(self, conn: AsyncConnection, hook: Callable[[], Awaitable[None]]) -> None:
        state(conn).before_commit.append(hook)

    @staticmethod
    def notes(conn: AsyncConnection) -> dict[Any, Any]:
        return state(conn).values

    @staticmethod
    def after_commit(conn: AsyncConnection, key: str, hook: Callable[[], None]) -> None:
        """Run ``hook`` once the transaction has committed (once per ``key``)."""
        state(conn).after_commit.setdefault(key, hook)
