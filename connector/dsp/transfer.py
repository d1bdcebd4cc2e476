"""The transfer process state machine, pure (DSP 2025-1, Transfer Process Protocol).

One table, ``TRANSITIONS``, following the protocol's state machine figure (``C`` = consumer,
``P`` = provider)::

    [*]       --TransferRequestMessage (C)-------------> REQUESTED
    REQUESTED --TransferStartMessage (P)---------------> STARTED
    SUSPENDED --TransferStartMessage (P or C, resume)--> STARTED
    STARTED   --TransferCompletionMessage (P or C)-----> COMPLETED
    STARTED   --TransferSuspensionMessage (P or C)-----> SUSPENDED
    REQUESTED, STARTED, SUSPENDED --TransferTerminationMessage (P or C)--> TERMINATED

The figure draws ``SUSPENDED --> STARTED: P/C``; the binding gives the provider a
``/transfers/:providerPid/start`` endpoint for exactly that (a consumer resuming). ``[*]`` is
our internal ``INITIAL`` state. As for negotiations, ``apply`` serves both directions, and our
own message is best applied when it is recorded for sending, and only a message received
before is a repeat (``is_repeat``; ``connector.dsp.process``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from connector.dsp import process
from connector.dsp.process import Process, StateMachine, received_now, was_received
from connector.dsp.states import Role, TransferState
from connector.dsp.transfer_messages import (
    DataAddress,
    TransferMessage,
    TransferProcess,
    TransferRequestMessage,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferTerminationMessage,
)
from connector.dsp.wire import reason_texts

__all__ = [
    "MACHINE",
    "TRANSITIONS",
    "Role",
    "Transfer",
    "TransferEvent",
    "TransferState",
    "abandon",
    "allowed_events",
    "apply",
    "event_of",
    "is_repeat",
    "next_state",
    "record_ack",
]


class TransferEvent(StrEnum):
    REQUEST = "TransferRequestMessage"
    START = "TransferStartMessage"
    SUSPENSION = "TransferSuspensionMessage"
    COMPLETION = "TransferCompletionMessage"
    TERMINATION = "TransferTerminationMessage"


_S = TransferState
_E = TransferEvent
_C, _P = Role.CONSUMER, Role.PROVIDER
_KIND = "transfer"

TRANSITIONS: Mapping[tuple[TransferState, TransferEvent, Role], TransferState] = MappingProxyType(
    {
        (_S.INITIAL, _E.REQUEST, _C): _S.REQUESTED,
        (_S.REQUESTED, _E.START, _P): _S.STARTED,
        (_S.SUSPENDED, _E.START, _P): _S.STARTED,
        (_S.SUSPENDED, _E.START, _C): _S.STARTED,
    }
    | {(_S.STARTED, _E.COMPLETION, r): _S.COMPLETED for r in Role}
    | {(_S.STARTED, _E.SUSPENSION, r): _S.SUSPENDED for r in Role}
    | {
        (s, _E.TERMINATION, r): _S.TERMINATED
        for s in (_S.REQUESTED, _S.STARTED, _S.SUSPENDED)
        for r in Role
    }
)
"""(current state, event, sender role) -> next state. Anything absent is an invalid transition."""

MACHINE = StateMachine(_KIND, TRANSITIONS)
allowed_events = MACHINE.allowed_events
next_state = MACHINE.next_state


@dataclass(frozen=True, slots=True)
class Transfer(Process[TransferState]):
    """One transfer process as one party sees it. Immutable: ``apply`` returns a new one.

    ``counterparty_address``: on the provider side the consumer's ``callbackAddress``; on the
    consumer side the provider's DSP base URL. ``data_address`` is the latest one a
    TransferStartMessage carried (pull) or the request carried (push). ``code`` / ``reason``
    are those of the latest suspension or termination.
    """

    agreement_id: str | None = None
    format: str | None = None
    data_address: DataAddress | None = None
    code: str | None = None
    reason: tuple[str, ...] = ()
    terminated_by: Role | None = None
    suspended_by: Role | None = None

    @classmethod
    def new(
        cls,
        *,
        id: str,
        role: Role,
        counterparty_did: str,
        now: datetime,
        counterparty_address: str | None = None,
        provider_pid: str | None = None,
        consumer_pid: str | None = None,
        agreement_id: str | None = None,
        format: str | None = None,
    ) -> Transfer:
        """A transfer in ``INITIAL``: the provider's on a TransferRequestMessage (with its
        ``provider_pid``), the consumer's before it sends one (with its ``consumer_pid``)."""
        return cls(
            id=id,
            role=role,
            state=TransferState.INITIAL,
            provider_pid=provider_pid,
            consumer_pid=consumer_pid,
            agreement_id=agreement_id,
            format=format,
            counterparty_did=counterparty_did,
            counterparty_address=counterparty_address,
            created_at=now,
            updated_at=now,
        )

    def ack(self) -> TransferProcess:
        """The TransferProcess body for this transfer (GET, 201 responses)."""
        provider_pid, consumer_pid = self.wire_pids(_KIND)
        return TransferProcess(
            provider_pid=provider_pid, consumer_pid=consumer_pid, state=self.state
        )


def event_of(message: TransferMessage) -> TransferEvent:
    return TransferEvent(message.TYPE)


def apply(
    transfer: Transfer, message: TransferMessage, *, sender_role: Role, now: datetime
) -> Transfer:
    """The transfer after ``message`` sent by ``sender_role``; never mutates its input.

    Raises ``InvalidTransitionError`` for a message the state machine does not allow, and
    ``InvalidMessageError`` when the message's ids contradict the transfer's.
    """
    target = next_state(transfer.state, event_of(message), sender_role)
    sent_provider_pid = (
        None if isinstance(message, TransferRequestMessage) else message.provider_pid
    )
    changes: dict[str, Any] = {
        "state": target,
        "provider_pid": _same("providerPid", transfer.provider_pid, sent_provider_pid),
        "consumer_pid": _same("consumerPid", transfer.consumer_pid, message.consumer_pid),
        "updated_at": now,
    }
    from_counterparty = sender_role is not transfer.role
    if from_counterparty:
        changes["received"] = received_now(transfer, message)
    if isinstance(message, TransferRequestMessage):
        changes["agreement_id"] = _same("agreementId", transfer.agreement_id, message.agreement_id)
        changes["format"] = _same("format", transfer.format, message.format)
        changes["data_address"] = message.data_address
        if from_counterparty:
            changes["counterparty_address"] = message.callback_address
    elif isinstance(message, TransferStartMessage):
        changes["suspended_by"] = None
        if message.data_address is not None:
            changes["data_address"] = message.data_address
    elif isinstance(message, TransferSuspensionMessage | TransferTerminationMessage):
        changes["code"] = message.code
        changes["reason"] = reason_texts(message.reason or ())
        if isinstance(message, TransferTerminationMessage):
            changes["terminated_by"] = sender_role
        else:
            changes["suspended_by"] = sender_role
    return replace(transfer, **changes)


def is_repeat(transfer: Transfer, message: TransferMessage, *, sender_role: Role) -> bool:
    """True when ``message`` from the counterparty is one received before (its sender retried
    because our answer was lost): answer with the transfer as it is and change nothing.
    Anything else goes to ``apply``, which refuses what the table does not allow."""
    if sender_role is transfer.role:
        return False
    seen = was_received(transfer, message)
    return seen if seen is not None else _legacy_repeat(transfer, message, sender_role)


def _legacy_repeat(transfer: Transfer, message: TransferMessage, sender: Role) -> bool:
    """For a record stored before fingerprints were kept: ``message`` is the one that brought
    the transfer into its present state (judged by state and recorded content)."""
    if not MACHINE.leads_to(event_of(message), sender, transfer.state):
        return False
    sent_provider_pid = (
        None if isinstance(message, TransferRequestMessage) else message.provider_pid
    )
    if (sent_provider_pid or transfer.provider_pid) != transfer.provider_pid:
        return False
    if message.consumer_pid != transfer.consumer_pid:
        return False
    if isinstance(message, TransferRequestMessage):
        return (message.agreement_id, message.format) == (transfer.agreement_id, transfer.format)
    if isinstance(message, TransferStartMessage):
        return message.data_address is None or message.data_address == transfer.data_address
    if isinstance(message, TransferTerminationMessage):
        return transfer.terminated_by is sender  # crossing terminations are not repeats
    return True


def record_ack(transfer: Transfer, ack: TransferProcess, *, now: datetime) -> Transfer:
    """Fill in the counterparty's pid from its ACK (the 201 to our TransferRequestMessage)."""
    return process.record_ack(
        transfer, _KIND, provider_pid=ack.provider_pid, consumer_pid=ack.consumer_pid, now=now
    )


def abandon(transfer: Transfer, *, reason: str, now: datetime, code: str | None = None) -> Transfer:
    """TERMINATED without a message (``process.abandoned``)."""
    return process.abandoned(
        transfer, _KIND, now=now, code=code, reason=(reason,), terminated_by=transfer.role
    )


def _same(name: str, known: str | None, sent: str | None) -> str | None:
    return process.same_pid(_KIND, name, known, sent)
