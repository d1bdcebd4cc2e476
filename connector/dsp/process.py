"""What a contract negotiation and a transfer process share, pure (DSP 2025-1).

Both are a process between a consumer and a provider, each party naming it by its own process
id (``consumerPid`` / ``providerPid``); both move through a transition table keyed by (state,
event, sender role); both learn the counterparty's pid from the ACK to their initial message;
both end TERMINATED without a message when the counterparty cannot be told (``abandon``).

``StateMachine`` is the table and its lookups; ``Process`` the fields and pids every process
record has; ``record_ack``, ``abandon`` and ``is_repeat`` work on either record.

**Repeats.** A received message is a repeat only when the same message was received before
(DSP: "an idempotent message"): ``Process.received`` keeps a fingerprint of each message
``apply`` took from the counterparty, so a re-delivery (the sender retried because our answer
was lost) is answered with the process as it is, and anything else the table forbids is an
invalid transition. A record stored before fingerprints were kept has ``received`` None; for
it the message that brought the process into its present state counts as received
(``legacy_repeat`` of each machine).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

import orjson

from connector.dsp.messages import dump
from connector.dsp.states import Role
from connector.dsp.wire import DspMessage
from connector.errors import InvalidMessageError, InvalidTransitionError


class ProcessState(Protocol):
    @property
    def is_terminal(self) -> bool: ...

    @property
    def on_wire(self) -> bool: ...


S = TypeVar("S", bound=StrEnum)
E = TypeVar("E", bound=StrEnum)


class StateMachine(Generic[S, E]):
    """One transition table: (current state, event, sender role) -> next state. Anything
    absent is an invalid transition."""

    def __init__(self, kind: str, table: Mapping[tuple[S, E, Role], S]) -> None:
        self.kind = kind
        self.table = table

    def allowed_events(self, state: S, sender_role: Role) -> frozenset[E]:
        """Events ``sender_role`` may send in ``state``."""
        return frozenset(e for (s, e, r) in self.table if s is state and r is sender_role)

    def next_state(self, state: S, event: E, sender_role: Role) -> S:
        """The table lookup; ``InvalidTransitionError`` for an arrow the protocol lacks."""
        try:
            return self.table[(state, event, sender_role)]
        except KeyError:
            allowed = sorted(self.allowed_events(state, sender_role))
            hint = f"; the {sender_role} may send: {', '.join(allowed)}" if allowed else ""
            raise InvalidTransitionError(
                f"{event} from the {sender_role} is not allowed in state {state}{hint}"
            ) from None

    def leads_to(self, event: E, sender_role: Role, state: S) -> bool:
        """Whether ``event`` from ``sender_role`` can bring a process into ``state``."""
        return any(
            e is event and r is sender_role and target is state
            for (_, e, r), target in self.table.items()
        )


@dataclass(frozen=True, slots=True)
class Process(Generic[S]):
    """The fields every process record has. ``counterparty_address`` is where we send our
    messages; ``received`` the fingerprints of the messages received (see the module)."""

    id: str
    role: Role
    state: S
    provider_pid: str | None
    consumer_pid: str | None
    counterparty_did: str
    counterparty_address: str | None
    created_at: datetime
    updated_at: datetime
    received: tuple[str, ...] | None = ()

    @property
    def own_pid(self) -> str | None:
        return self.provider_pid if self.role is Role.PROVIDER else self.consumer_pid

    @property
    def counterparty_pid(self) -> str | None:
        return self.consumer_pid if self.role is Role.PROVIDER else self.provider_pid

    def wire_pids(self, kind: str) -> tuple[str, str]:
        """(providerPid, consumerPid) for an answer about this process; both must be known
        and the process must have a state on the wire."""
        state: ProcessState = self.state  # type: ignore[assignment]
        if not state.on_wire or self.provider_pid is None or self.consumer_pid is None:
            raise InvalidTransitionError(f"{kind} {self.id} has no wire state yet")
        return self.provider_pid, self.consumer_pid


P = TypeVar("P", bound=Process[Any])


def fingerprint(body: Mapping[str, Any]) -> str:
    """A received message's identity for ``Process.received``: a digest of its content
    (compact JSON as ``dump`` writes it, keys sorted), so a re-delivery of the same message
    matches whatever the sender's formatting. Its ``@id`` is left out: a sender may give each
    delivery of one message its own."""
    content = {k: v for k, v in body.items() if k != "@id"}
    digest = hashlib.blake2b(orjson.dumps(content, option=orjson.OPT_SORT_KEYS), digest_size=12)
    return digest.hexdigest()


def received_now(process: Process[Any], message: DspMessage) -> tuple[str, ...]:
    """``process.received`` with ``message`` added (for ``apply`` of a received message)."""
    return (*(process.received or ()), message_fingerprint(message))


def was_received(process: Process[Any], message: DspMessage) -> bool | None:
    """Whether ``message`` was received before; None for a record stored before fingerprints
    were kept."""
    if process.received is None:
        return None
    return message_fingerprint(message) in process.received


def same_pid(kind: str, name: str, known: str | None, sent: str | None) -> str | None:
    """The pid a message or an ACK names, which must be the one known (if any)."""
    if known is not None and sent is not None and known != sent:
        raise InvalidMessageError(f"{name} {sent!r} does not match this {kind} ({known!r})")
    return known if known is not None else sent


def record_ack(process: P, kind: str, *, provider_pid: str, consumer_pid: str, now: datetime) -> P:
    """Fill in the counterparty's pid from its ACK (the 201 to our initial message)."""
    return replace(
        process,
        provider_pid=same_pid(kind, "providerPid", process.provider_pid, provider_pid),
        consumer_pid=same_pid(kind, "consumerPid", process.consumer_pid, consumer_pid),
        updated_at=now,
    )


def abandoned(process: P, kind: str, *, now: datetime, **termination: Any) -> P:
    """TERMINATED without a message, with ``termination`` (the record's own fields for its
    code, reason and party): the counterparty refused or never acknowledged ours (after the
    outbox gave up), so no message can carry the termination. DSP allows a new process after
    a termination "due to a network issue"."""
    state: ProcessState = process.state
    if state.is_terminal:
        raise InvalidTransitionError(f"{kind} {process.id} is already {process.state}")
    return replace(process, state=type(process.state)("TERMINATED"), updated_at=now, **termination)


def message_fingerprint(message: DspMessage) -> str:
    """``fingerprint`` of a parsed message (as we would send it)."""
    return fingerprint(dump(message))
