"""What the negotiation and transfer services share (STYLE.md §3: handlers record, one loop
acts): finding a process of ours for a caller, recording our own message with its outbox row,
audit entries written with the change they record, and steps.

**Steps.** When a received message calls for a decision of ours (the provider's agreement,
hold for approval or termination after a request; its start or termination after a transfer
request), the handler records the message and queues a step for the process
(``call_for_step``) with the facts the decision needs, in the same transaction, and answers
with the state the message created. The outbox loop then takes the step (``take_step``): in a
transaction of its own it reads the process, decides if its state still calls for it (the
service's ``act``), records the new state with its outbound message and marks the step taken,
all or nothing; a step whose process changed meanwhile runs again on the new state. Steps and
messages of one process go in the order queued, one at a time. (A reply that decides nothing,
such as a verification, is recorded by the handler with the message that calls for it.)

The pure half of what the two kinds of process share is ``connector.dsp.process``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Generic

from sqlalchemy.ext.asyncio import AsyncConnection

from connector.audit import AuditLog
from connector.dsp.messages import dump
from connector.dsp.states import Role
from connector.dsp.urls import fill_pid, join_url
from connector.dsp.wire import DspMessage
from connector.errors import ConflictError, NotFoundError
from connector.exchange.ports import DspStores, OutboxItem, P, ProcessStore
from connector.identity.keys import ConnectorKeys
from connector.identity.resolver import DidResolver
from connector.ports import Clock

_AUDIT = "process audit entries"  # Transactions.notes key


@dataclass(frozen=True)
class Participant:
    """This connector as a party of processes: who it is and where it is reached."""

    did: str
    keys: ConnectorKeys
    resolver: DidResolver
    trusted_issuers: tuple[str, ...]
    dsp_base: str  # our callbackAddress
    public_url: str
    insecure_hosts: Collection[str] = ()  # plain http allowed (PHEMS_INSECURE_DID_HOSTS)


@dataclass(frozen=True)
class ProcessKind(Generic[P]):
    """What differs between negotiations and transfers for ``Processes``."""

    name: str  # "negotiation" | "transfer": the outbox's process kind, audit events, errors
    # The pure state machine's ``apply(process, message, *, sender_role, now)``.
    apply: Callable[..., P]
    # Where each of our messages goes: path segments after the counterparty's address, by
    # (our role, message type, or type + ":initial"); "{pid}" is the counterparty's pid.
    paths: Mapping[tuple[Role, str], tuple[str, ...]]
    # An audit entry's ids and base details for a process.
    audit_fields: Callable[[P], dict[str, Any]]


class Processes(Generic[P]):
    """The shared service part of one kind of process, over its store."""

    def __init__(
        self,
        kind: ProcessKind[P],
        store: ProcessStore[P],
        *,
        stores: DspStores,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self.kind = kind
        self.store = store
        self.db = stores.db
        self.outbox = stores.outbox
        self.audit_log = audit
        self.clock = clock

    async def owned(
        self, conn: AsyncConnection, caller_did: str, pid: str, *, for_change: bool = False
    ) -> P:
        """Our process ``pid`` if ``caller_did`` is its counterparty; unknown and not the
        caller's get the same 404, so nothing leaks."""
        p = await self.store.get(conn, pid, for_change=for_change)
        if p is None or p.counterparty_did != caller_did:
            raise NotFoundError(f"no {self.kind.name} {pid}")
        return p

    async def local(self, conn: AsyncConnection, id: str, role: Role | None = None) -> P:
        """Our process ``id`` (in ``role``, if given), to change on our own initiative."""
        p = await self.store.get(conn, id, for_change=True)
        if p is None or (role is not None and p.role is not role):
            raise NotFoundError(f"no {role or ''} {self.kind.name} {id}".replace("  ", " "))
        return p

    async def send(
        self, conn: AsyncConnection, p: P, message: DspMessage, *, initial: bool = False
    ) -> P:
        """Apply our own ``message`` and queue it for the counterparty; the caller writes the
        process (DSP state machines apply our message when it is recorded for sending, not
        when its ACK arrives: the counterparty may answer before our sender saw the ACK)."""
        now = self.clock.now()
        p = self.kind.apply(p, message, sender_role=p.role, now=now)
        if p.counterparty_address is None:
            raise ConflictError(f"{self.kind.name} {p.id} has no counterparty address")
        message_type = message.TYPE + (":initial" if initial else "")
        url = join_url(p.counterparty_address, *self.kind.paths[(p.role, message_type)])
        if p.counterparty_pid is not None:
            # Known now: the sender need not read the process back to fill it in.
            url = fill_pid(url, p.counterparty_pid)
        await self.outbox.enqueue(
            conn,
            process_kind=self.kind.name,
            process_id=p.id,
            message_type=message_type,
            url=url,
            audience=p.counterparty_did,
            body=dump(message),
            now=now,
        )
        return p

    async def call_for_step(
        self, conn: AsyncConnection, p: P, facts: dict[str, Any] | None = None
    ) -> None:
        """Queue a step for ``p`` (taken by the outbox loop after this transaction commits
        and the process's earlier items are done), with the facts it needs."""
        await self.outbox.enqueue_step(
            conn,
            process_kind=self.kind.name,
            process_id=p.id,
            facts=facts or {},
            now=self.clock.now(),
        )

    async def take_step(
        self,
        item: OutboxItem,
        act: Callable[[AsyncConnection, P, dict[str, Any]], Awaitable[P | None]],
    ) -> None:
        """The outbox loop's part: ``act(conn, process, facts)`` does what the process's
        state calls for and returns the process to write (None: nothing changed)."""

        async def work(conn: AsyncConnection) -> None:
            p = await self.store.get(conn, item.process_id, for_change=True)
            await self.outbox.complete_step(conn, item.id, self.clock.now())
            if p is None:
                return
            changed = await act(conn, p, item.body)
            if changed is not None:
                await self.store.update(conn, changed)

        await self.db.attempt(
            work, conflict=f"{self.kind.name} {item.process_id} kept changing during a step"
        )

    def audit(self, conn: AsyncConnection, p: P, event: str, **details: Any) -> None:
        """An audit entry for ``p``, written with the transaction's other entries (one
        INSERT) just before its commit: it commits with the change it records."""
        notes = self.db.notes(conn)
        entries: list[dict[str, Any]] | None = notes.get(_AUDIT)
        if entries is None:
            gathered: list[dict[str, Any]] = []
            notes[_AUDIT] = entries = gathered

            async def write() -> None:
                await self.audit_log.append_many(conn, gathered)

            self.db.before_commit(conn, write)
        fields = self.kind.audit_fields(p)
        fields["details"] = {**fields.get("details", {}), **details}
        entries.append({"actor": p.counterparty_did, "event": event, **fields})
