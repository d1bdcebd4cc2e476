"""The stores the exchange services need (STYLE.md §4): one ``Protocol`` per process type
(negotiations, transfers, agreements) plus the outbox and the transactions they share.

The SQL implementations are in ``connector/db/`` (``Database`` and the ``Sql*`` stores), run
against SQLite and PostgreSQL by one contract suite (``tests/store``); only the composition
root builds them.

Every store call that reads or writes in a transaction takes the connection
``Transactions.transaction()`` (or ``attempt``, or ``reading()`` for plain reads) gives, so a
state change, its outbox message and its audit entries commit together or not at all. How a
transaction is made fast is the implementation's business and invisible here: on PostgreSQL
its writes are held and sent as one statement before the commit, a row read ``for_change``
inside ``attempt`` is not locked but written only if unchanged (``attempt`` then runs the work
again), sent marks of concurrent deliveries share a statement, and a message queued by this
replica is leased to it at the insert and handed to ``Outbox.on_leased`` after the commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from connector.dsp.agreement import AgreementRecord
from connector.dsp.negotiation import Negotiation
from connector.dsp.outbox import STEP, OutboxItem
from connector.dsp.process import Process
from connector.dsp.states import Role
from connector.dsp.transfer import Transfer
from connector.dsp.urls import PID_PLACEHOLDER

__all__ = [
    "PID_PLACEHOLDER",
    "STEP",
    "AgreementStore",
    "DspStores",
    "NegotiationStore",
    "Outbox",
    "OutboxItem",
    "ProcessStore",
    "TransferStore",
    "Transactions",
]

T = TypeVar("T")
P = TypeVar("P", bound=Process[Any])


class Transactions(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A transaction for store calls: committed at the end of the block, rolled back if
        it raises."""
        ...

    def reading(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for plain reads: takes no write lock and waits for no writer; each
        read sees what is committed."""
        ...

    async def attempt(self, work: Callable[[AsyncConnection], Awaitable[T]], *, conflict: str) -> T:
        """``work`` in a transaction whose rows read ``for_change`` may be written by another
        writer before this one commits: then nothing of ``work`` is written and it runs
        again on the new state, a few times, before a ``ConflictError(conflict)``. ``work``
        must not have effects outside the transaction."""
        ...

    def before_commit(self, conn: AsyncConnection, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` at the end of ``conn``'s transaction, just before its commit."""
        ...

    def notes(self, conn: AsyncConnection) -> dict[Any, Any]:
        """A dict that lives as long as ``conn``'s transaction (what a service gathers in
        it, such as audit entries written together at its end)."""
        ...


class ProcessStore(Protocol[P]):
    """What every process store has (``NegotiationStore``, ``TransferStore``)."""

    async def get(self, conn: AsyncConnection, id: str, *, for_change: bool = False) -> P | None:
        """``for_change``: the caller writes it back in this transaction (``update``); no
        other writer changes it in between unnoticed."""
        ...

    async def update(self, conn: AsyncConnection, p: P) -> None: ...


class NegotiationStore(Protocol):
    async def get(
        self, conn: AsyncConnection, id: str, *, for_change: bool = False
    ) -> Negotiation | None:
        """``for_change``: the caller writes it back in this transaction (``update``); no
        other writer changes it in between unnoticed."""
        ...

    async def find(
        self,
        conn: AsyncConnection,
        role: Role,
        counterparty_did: str,
        *,
        consumer_pid: str | None = None,
        provider_pid: str | None = None,
    ) -> Negotiation | None:
        """Ours in ``role`` with ``counterparty_did`` by the pid given (exactly one)."""
        ...

    async def insert(self, conn: AsyncConnection, n: Negotiation) -> None:
        """Refused (``IntegrityError`` at the latest at the commit) when the counterparty
        already has a negotiation with us under the same consumerPid / providerPid."""
        ...

    async def update(self, conn: AsyncConnection, n: Negotiation) -> None: ...

    async def record_ack(
        self, id: str, *, provider_pid: str, consumer_pid: str, now: datetime
    ) -> bool:
        """Both pids from the counterparty's ACK to our initial message, committed on its
        own; False if there is no such negotiation, a pid it knows differs, or another
        negotiation with the same counterparty already has that providerPid."""
        ...

    async def set_approval(self, conn: AsyncConnection, id: str, approval: str | None) -> None:
        """``pending`` (held for a person), ``approved``, ``rejected`` or None: a write of
        the negotiation as ``update`` is (a row read ``for_change`` in ``attempt`` is written
        only if unchanged since)."""
        ...

    async def approval(self, conn: AsyncConnection, id: str) -> str | None: ...

    async def list(
        self, conn: AsyncConnection, *, role: Role | None = None, approval: str | None = None
    ) -> list[Negotiation]:
        """Oldest first."""
        ...


class TransferStore(Protocol):
    async def get(
        self, conn: AsyncConnection, id: str, *, for_change: bool = False
    ) -> Transfer | None: ...

    async def find(
        self, conn: AsyncConnection, role: Role, counterparty_did: str, consumer_pid: str
    ) -> Transfer | None: ...

    async def insert(self, conn: AsyncConnection, t: Transfer) -> None:
        """Refused (``IntegrityError``) for a second transfer of the counterparty with the
        same consumerPid."""
        ...

    async def update(self, conn: AsyncConnection, t: Transfer) -> None: ...

    async def list(self, conn: AsyncConnection, *, role: Role | None = None) -> list[Transfer]:
        """Oldest first."""
        ...


class AgreementStore(Protocol):
    async def insert(self, conn: AsyncConnection, a: AgreementRecord) -> None:
        """Store an agreement; one already stored under its id is kept as it is (a repeat)."""
        ...

    async def get(
        self, conn: AsyncConnection, id: str, *, for_change: bool = False
    ) -> AgreementRecord | None: ...

    async def list(self, conn: AsyncConnection) -> list[AgreementRecord]:
        """Oldest first."""
        ...

    async def spend(
        self, conn: AsyncConnection, id: str, *, uses: int = 1, epsilon: float = 0.0
    ) -> None:
        """Count ``uses`` and ``epsilon`` against the agreement."""
        ...


class Outbox(Protocol):
    """Messages to send and steps to take, per process in the order queued, one at a time.

    ``on_enqueued`` is called after a commit with the ids of processes it queued items for
    (to be claimed); ``on_leased`` (while a sender is attached) with items it queued already
    leased to this replica for ``lease``, to be sent at once with no claim.
    """

    on_enqueued: Callable[[list[str]], None] | None
    on_leased: Callable[[list[OutboxItem]], None] | None
    lease: timedelta

    async def enqueue(
        self,
        conn: AsyncConnection,
        *,
        process_kind: str,
        process_id: str,
        message_type: str,
        url: str,
        audience: str,
        body: dict[str, Any],
        now: datetime,
    ) -> None:
        """A message for the counterparty; ``url`` may hold ``PID_PLACEHOLDER``, filled in
        with the counterparty's pid when it is sent."""
        ...

    async def enqueue_step(
        self,
        conn: AsyncConnection,
        *,
        process_kind: str,
        process_id: str,
        facts: dict[str, Any],
        now: datetime,
    ) -> None:
        """A step (``STEP``) for the process, with the facts it needs."""
        ...

    async def complete_step(self, conn: AsyncConnection, item_id: int, now: datetime) -> None:
        """The step ``item_id`` is taken, in ``conn``'s transaction (with what it records);
        call it before queueing the messages the step sends."""
        ...

    async def claim(self, *, now: datetime, lease_seconds: float, limit: int) -> list[OutboxItem]:
        """Lease up to ``limit`` due items, at most one per process (its oldest unsent), for
        ``lease_seconds``: a crashed sender's claim expires and the item is claimed again
        (its attempts counted)."""
        ...

    async def mark_sent(self, conn: AsyncConnection | None, item_id: int, now: datetime) -> None:
        """Delivered: in ``conn``'s transaction, or (None) committed on its own (its loss in
        a crash is harmless: the message is sent again and the receiver sees a repeat)."""
        ...

    async def mark_sent_with_ack(
        self,
        item_id: int,
        now: datetime,
        *,
        negotiation_id: str,
        provider_pid: str,
        consumer_pid: str,
    ) -> bool:
        """Our initial negotiation message was answered with this ACK: the sent mark and
        ``NegotiationStore.record_ack``, whose result this returns."""
        ...

    async def mark_retry(self, item_id: int, *, error: str, retry_at: datetime) -> None: ...

    async def mark_failed(
        self, conn: AsyncConnection, item_id: int, *, error: str, now: datetime
    ) -> None: ...

    async def purge(self, *, before: datetime) -> int:
        """Forget items sent or failed before ``before``; how many went."""
        ...

    async def pending(self, conn: AsyncConnection, process_id: str) -> int:
        """Items of the process neither sent nor failed."""
        ...


@dataclass(frozen=True)
class DspStores:
    """The stores of the exchange, as the composition root builds them."""

    db: Transactions
    negotiations: NegotiationStore
    transfers: TransferStore
    agreements: AgreementStore
    outbox: Outbox
