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
own message is best applied when it is recorded for sending.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

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
from connector.errors import InvalidMessageError, InvalidTransitionError

__all__ = [
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


@dataclass(frozen=True, slots=True)
class Transfer:
    """One transfer process as one party sees it. Immutable: ``apply`` returns a new one.

    ``counterparty_address``: on the provider side the consumer's ``callbackAddress``; on the
    consumer side the provider's DSP base URL. ``data_address`` is the latest one a
    TransferStartMessage carried (pull) or the request carried (push). ``code`` / ``reason``
    are those of the latest suspension or termination.
    """

    id: str
    role: Role
    state: TransferState
    provider_pid: str | None
    consumer_pid: str | None
    agreement_id: str | None
    format: str | None
    counterparty_did: str
    counterparty_address: str | None
    created_at: datetime
    updated_at: datetime
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

    @property
    def own_pid(self) -> str | None:
        return self.provider_pid if self.role is Role.PROVIDER else self.consumer_pid

    @property
    def counterparty_pid(self) -> str | None:
        return self.consumer_pid if self.role is Role.PROVIDER else self.provider_pid

    def ack(self) -> TransferProcess:
        """The TransferProcess body for this transfer (GET, 201 responses)."""
        if not self.state.on_wire or self.provider_pid is None or self.consumer_pid is None:
            raise InvalidTransitionError(f"transfer {self.id} has no wire state yet")
        return TransferProcess(
            provider_pid=self.provider_pid, consumer_pid=self.consumer_pid, state=self.state
        )


def event_of(message: TransferMessage) -> TransferEvent:
    return TransferEvent(message.TYPE)


def allowed_events(state: TransferState, sender_role: Role) -> frozenset[TransferEvent]:
    """Events ``sender_role`` may send in ``state``."""
    return frozenset(e for (s, e, r) in TRANSITIONS if s is state and r is sender_role)


def next_state(state: TransferState, event: TransferEvent, sender_role: Role) -> TransferState:
    """The table lookup; ``InvalidTransitionError`` for an arrow the protocol does not have."""
    try:
        return TRANSITIONS[(state, event, sender_role)]
    except KeyError:
        allowed = sorted(allowed_events(state, sender_role))
        hint = f"; the {sender_role} may send: {', '.join(allowed)}" if allowed else ""
        raise InvalidTransitionError(
            f"{event} from the {sender_role} is not allowed in state {state}{hint}"
        ) from None


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
    """True when ``message`` is a re-delivery of the message that brought ``transfer`` into its
    current state (its sender retried because our ACK was lost): answer with the ACK and change
    nothing. For a repeated TransferRequestMessage DSP asks the provider to answer again with
    the start; that is the caller's to send."""
    event = event_of(message)
    if not any(
        e is event and r is sender_role and target is transfer.state
        for (_, e, r), target in TRANSITIONS.items()
    ):
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
        return transfer.terminated_by is sender_role  # crossing terminations are not repeats
    return True


def record_ack(transfer: Transfer, ack: TransferProcess, *, now: datetime) -> Transfer:
    """Fill in the counterparty's pid from its ACK (the 201 to our TransferRequestMessage)."""
    return replace(
        transfer,
        provider_pid=_same("providerPid", transfer.provider_pid, ack.provider_pid),
        consumer_pid=_same("consumerPid", transfer.consumer_pid, ack.consumer_pid),
        updated_at=now,
    )


def abandon(transfer: Transfer, *, reason: str, now: datetime, code: str | None = None) -> Transfer:
    """TERMINATED without a message (the counterparty refused or never acknowledged ours)."""
    if transfer.state.is_terminal:
        raise InvalidTransitionError(f"transfer {transfer.id} is already {transfer.state}")
    return replace(
        transfer,
        state=TransferState.TERMINATED,
        code=code,
        reason=(reason,),
        terminated_by=transfer.role,
        updated_at=now,
    )


def _same(name: str, known: str | None, sent: str | None) -> str | None:
    if known is not None and sent is not None and known != sent:
        raise InvalidMessageError(f"{name} {sent!r} does not match this transfer ({known!r})")
    return known if known is not None else sent
