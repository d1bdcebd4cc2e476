"""State and role vocabularies shared by the DSP messages and the two state machines."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """Which side of a process a connector (or a message's sender) is on."""

    PROVIDER = "provider"
    CONSUMER = "consumer"

    @property
    def other(self) -> Role:
        return Role.CONSUMER if self is Role.PROVIDER else Role.PROVIDER


class NegotiationState(StrEnum):
    """Contract negotiation states (DSP 2025-1, Contract Negotiation Protocol, States).

    ``INITIAL`` is internal and never goes on the wire: the ``[*]`` of the diagram, a process
    we created but for which no message has been applied yet.
    """

    INITIAL = "INITIAL"
    REQUESTED = "REQUESTED"
    OFFERED = "OFFERED"
    ACCEPTED = "ACCEPTED"
    AGREED = "AGREED"
    VERIFIED = "VERIFIED"
    FINALIZED = "FINALIZED"
    TERMINATED = "TERMINATED"

    @property
    def is_terminal(self) -> bool:
        return self in (NegotiationState.FINALIZED, NegotiationState.TERMINATED)

    @property
    def on_wire(self) -> bool:
        return self is not NegotiationState.INITIAL


class TransferState(StrEnum):
    """Transfer process states (DSP 2025-1, Transfer Process Protocol, States).

    ``INITIAL`` is internal, as for negotiations.
    """

    INITIAL = "INITIAL"
    REQUESTED = "REQUESTED"
    STARTED = "STARTED"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    TERMINATED = "TERMINATED"

    @property
    def is_terminal(self) -> bool:
        return self in (TransferState.COMPLETED, TransferState.TERMINATED)

    @property
    def on_wire(self) -> bool:
        return self is not TransferState.INITIAL


class NegotiationEventType(StrEnum):
    """``eventType`` of a ContractNegotiationEventMessage."""

    ACCEPTED = "ACCEPTED"
    FINALIZED = "FINALIZED"
