"""The contract negotiation state machine, pure (DSP 2025-1, Contract Negotiation Protocol).

One table, ``TRANSITIONS``, maps (state, message, sender role) to the next state, following the
protocol's state machine figure (``C`` = consumer, ``P`` = provider)::

    [*]       --ContractRequestMessage (C)-------------------> REQUESTED
    [*]       --ContractOfferMessage (P)---------------------> OFFERED
    REQUESTED --ContractOfferMessage (P)---------------------> OFFERED
    REQUESTED --ContractAgreementMessage (P)-----------------> AGREED
    OFFERED   --ContractRequestMessage (C, counter-offer)----> REQUESTED
    OFFERED   --ContractNegotiationEventMessage ACCEPTED (C)-> ACCEPTED
    ACCEPTED  --ContractAgreementMessage (P)-----------------> AGREED
    AGREED    --ContractAgreementVerificationMessage (C)-----> VERIFIED
    VERIFIED  --ContractNegotiationEventMessage FINALIZED (P)> FINALIZED
    any non-terminal --ContractNegotiationTerminationMessage (C or P)--> TERMINATED

``[*]`` is our internal ``INITIAL`` state. Termination: the protocol text says the message
"can be sent at any state of a CN" by either party, so every non-terminal wire state accepts it
from both (the figure draws only some of those arrows, e.g. ``AGREED -> TERMINATED: C``; EDC
and the TCK follow the text).

``apply`` is used for both directions: for a message received from the counterparty
(``sender_role = negotiation.role.other``) and for our own message (``sender_role =
negotiation.role``). Apply our own message when it is *recorded* for sending (in the same
store transaction as the outbox row), not when its ACK arrives: the counterparty may answer
(e.g. verify an agreement) before our sender loop has processed the ACK. A received message
is remembered by its fingerprint: ``is_repeat`` is true for a message received before, which
is answered and changes nothing; anything else goes to ``apply`` (``connector.dsp.process``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from connector.dsp import process
from connector.dsp.negotiation_messages import (
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiation,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
    NegotiationMessage,
)
from connector.dsp.policy_shape import policy_target
from connector.dsp.process import Process, StateMachine, received_now, was_received
from connector.dsp.states import NegotiationEventType, NegotiationState, Role
from connector.dsp.wire import reason_texts
from connector.errors import InvalidMessageError

__all__ = [
    "MACHINE",
    "TRANSITIONS",
    "Negotiation",
    "NegotiationEvent",
    "NegotiationState",
    "Role",
    "abandon",
    "allowed_events",
    "apply",
    "event_of",
    "is_repeat",
    "next_state",
    "record_ack",
]


class NegotiationEvent(StrEnum):
    """A negotiation message as the state machine sees it (the event message split by type)."""

    REQUEST = "ContractRequestMessage"
    OFFER = "ContractOfferMessage"
    AGREEMENT = "ContractAgreementMessage"
    VERIFICATION = "ContractAgreementVerificationMessage"
    ACCEPTED = "ContractNegotiationEventMessage:ACCEPTED"
    FINALIZED = "ContractNegotiationEventMessage:FINALIZED"
    TERMINATION = "ContractNegotiationTerminationMessage"


_S = NegotiationState
_E = NegotiationEvent
_C, _P = Role.CONSUMER, Role.PROVIDER
_NON_TERMINAL_WIRE = (_S.REQUESTED, _S.OFFERED, _S.ACCEPTED, _S.AGREED, _S.VERIFIED)
_KIND = "negotiation"

TRANSITIONS: Mapping[tuple[NegotiationState, NegotiationEvent, Role], NegotiationState] = (
    MappingProxyType(
        {
            (_S.INITIAL, _E.REQUEST, _C): _S.REQUESTED,
            (_S.INITIAL, _E.OFFER, _P): _S.OFFERED,
            (_S.REQUESTED, _E.OFFER, _P): _S.OFFERED,
            (_S.REQUESTED, _E.AGREEMENT, _P): _S.AGREED,
            (_S.OFFERED, _E.REQUEST, _C): _S.REQUESTED,
            (_S.OFFERED, _E.ACCEPTED, _C): _S.ACCEPTED,
            (_S.ACCEPTED, _E.AGREEMENT, _P): _S.AGREED,
            (_S.AGREED, _E.VERIFICATION, _C): _S.VERIFIED,
            (_S.VERIFIED, _E.FINALIZED, _P): _S.FINALIZED,
        }
        | {(s, _E.TERMINATION, r): _S.TERMINATED for s in _NON_TERMINAL_WIRE for r in Role}
    )
)
"""(current state, event, sender role) -> next state. Anything absent is an invalid transition."""

MACHINE = StateMachine(_KIND, TRANSITIONS)
allowed_events = MACHINE.allowed_events
next_state = MACHINE.next_state


@dataclass(frozen=True, slots=True)
class Negotiation(Process[NegotiationState]):
    """One contract negotiation as one party sees it. Immutable: ``apply`` returns a new one.

    ``counterparty_address`` is where we send messages: on the provider side the consumer's
    ``callbackAddress``; on the consumer side the provider's DSP base URL (or the
    ``callbackAddress`` of a provider-initiated offer). ``offer`` / ``agreement`` are the ODRL
    dicts exactly as sent (the agreement with the provider's signature property);
    ``provider_signature`` / ``consumer_signature`` are the two JWS (DESIGN.md §3), checked by
    the caller before it applies the message that carries them.
    """

    offer: dict[str, Any] | None = None
    agreement: dict[str, Any] | None = None
    provider_signature: str | None = None
    consumer_signature: str | None = None
    termination_code: str | None = None
    termination_reason: tuple[str, ...] = ()
    terminated_by: Role | None = None

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
    ) -> Negotiation:
        """A negotiation in ``INITIAL``, before its first message is applied. The provider
        creates one (with its ``provider_pid``) on an initial ContractRequestMessage; the
        consumer (with its ``consumer_pid``) before sending one, or on an initial offer."""
        return cls(
            id=id,
            role=role,
            state=NegotiationState.INITIAL,
            provider_pid=provider_pid,
            consumer_pid=consumer_pid,
            counterparty_did=counterparty_did,
            counterparty_address=counterparty_address,
            created_at=now,
            updated_at=now,
        )

    def ack(self) -> ContractNegotiation:
        """The ContractNegotiation body for this negotiation (GET, 201 responses)."""
        provider_pid, consumer_pid = self.wire_pids(_KIND)
        return ContractNegotiation(
            provider_pid=provider_pid, consumer_pid=consumer_pid, state=self.state
        )


def event_of(message: NegotiationMessage) -> NegotiationEvent:
    """The state machine event a negotiation message is."""
    if isinstance(message, ContractNegotiationEventMessage):
        if message.event_type is NegotiationEventType.ACCEPTED:
            return NegotiationEvent.ACCEPTED
        return NegotiationEvent.FINALIZED
    return NegotiationEvent(message.TYPE)


def apply(
    negotiation: Negotiation, message: NegotiationMessage, *, sender_role: Role, now: datetime
) -> Negotiation:
    """The negotiation after ``message`` sent by ``sender_role``; never mutates its input.

    Raises ``InvalidTransitionError`` for a message the state machine does not allow, and
    ``InvalidMessageError`` when the message's pids contradict the negotiation's or an
    agreement's target is not the negotiated offer's.
    """
    target = next_state(negotiation.state, event_of(message), sender_role)
    changes: dict[str, Any] = {
        "state": target,
        "provider_pid": _same_pid("providerPid", negotiation.provider_pid, message.provider_pid),
        "consumer_pid": _same_pid("consumerPid", negotiation.consumer_pid, message.consumer_pid),
        "updated_at": now,
    }
    from_counterparty = sender_role is not negotiation.role
    if from_counterparty:
        changes["received"] = received_now(negotiation, message)
    if isinstance(message, ContractRequestMessage | ContractOfferMessage):
        changes["offer"] = copy.deepcopy(message.offer)
        if from_counterparty and message.callback_address is not None:
            changes["counterparty_address"] = message.callback_address
    elif isinstance(message, ContractAgreementMessage):
        offered = policy_target(negotiation.offer) if negotiation.offer is not None else None
        agreed = policy_target(message.agreement)
        if offered is not None and agreed != offered:
            raise InvalidMessageError(
                f"agreement target {agreed!r} is not the negotiated offer's target {offered!r}"
            )
        changes["agreement"] = copy.deepcopy(message.agreement)
        changes["provider_signature"] = message.provider_signature
    elif isinstance(message, ContractAgreementVerificationMessage):
        changes["consumer_signature"] = message.signature
    elif isinstance(message, ContractNegotiationTerminationMessage):
        changes["termination_code"] = message.code
        changes["termination_reason"] = reason_texts(message.reason or ())
        changes["terminated_by"] = sender_role
    return replace(negotiation, **changes)


def is_repeat(negotiation: Negotiation, message: NegotiationMessage, *, sender_role: Role) -> bool:
    """True when ``message`` from the counterparty is one received before (its sender retried
    because our answer was lost): answer with the negotiation as it is and change nothing.
    Anything else goes to ``apply``, which refuses what the table does not allow."""
    if sender_role is negotiation.role:
        return False
    seen = was_received(negotiation, message)
    return seen if seen is not None else _legacy_repeat(negotiation, message, sender_role)


def _legacy_repeat(negotiation: Negotiation, message: NegotiationMessage, sender: Role) -> bool:
    """For a record stored before fingerprints were kept: ``message`` is the one that brought
    the negotiation into its present state (judged by state and recorded content)."""
    if not MACHINE.leads_to(event_of(message), sender, negotiation.state):
        return False
    if (message.provider_pid or negotiation.provider_pid) != negotiation.provider_pid:
        return False
    if (message.consumer_pid or negotiation.consumer_pid) != negotiation.consumer_pid:
        return False
    if isinstance(message, ContractRequestMessage | ContractOfferMessage):
        return message.offer == negotiation.offer
    if isinstance(message, ContractAgreementMessage):
        return message.agreement == negotiation.agreement
    if isinstance(message, ContractAgreementVerificationMessage):
        return message.signature == negotiation.consumer_signature
    if isinstance(message, ContractNegotiationTerminationMessage):
        return negotiation.terminated_by is sender  # crossing terminations are not repeats
    return True


def record_ack(negotiation: Negotiation, ack: ContractNegotiation, *, now: datetime) -> Negotiation:
    """Fill in the counterparty's pid from its ACK (the 201 to our initial message)."""
    return process.record_ack(
        negotiation,
        _KIND,
        provider_pid=ack.provider_pid,
        consumer_pid=ack.consumer_pid,
        now=now,
    )


def abandon(
    negotiation: Negotiation, *, reason: str, now: datetime, code: str | None = None
) -> Negotiation:
    """TERMINATED without a message (``process.abandoned``)."""
    return process.abandoned(
        negotiation,
        _KIND,
        now=now,
        termination_code=code,
        termination_reason=(reason,),
        terminated_by=negotiation.role,
    )


def _same_pid(name: str, known: str | None, sent: str | None) -> str | None:
    return process.same_pid(_KIND, name, known, sent)
