"""Contract Negotiation Protocol messages and responses (DSP 2025-1, Message Types, Response
Types). Required fields follow the 2025-1 JSON schemas; the Offer/Agreement policies are ODRL
dicts checked by ``policy_shape`` and kept exactly as sent."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import AfterValidator, Field, field_validator, model_validator

from connector.dsp.policy_shape import agreement_problem, offer_problem, policy_target
from connector.dsp.states import NegotiationEventType, NegotiationState
from connector.dsp.wire import (
    CallbackAddress,
    DspMessage,
    NonEmptyStr,
    Terminating,
)

PHEMS_SIGNATURE = "https://w3id.org/phems/ns/signature"
"""Property carrying a party's compact JWS over the canonical Agreement (DESIGN.md §3)."""


def _check_offer(value: dict[str, Any]) -> dict[str, Any]:
    problem = offer_problem(value, require_target=True)
    if problem is not None:
        raise ValueError(problem)
    return value


def _check_agreement(value: dict[str, Any]) -> dict[str, Any]:
    problem = agreement_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


MessageOffer = Annotated[dict[str, Any], AfterValidator(_check_offer)]
Agreement = Annotated[dict[str, Any], AfterValidator(_check_agreement)]


class ContractRequestMessage(DspMessage):
    """Consumer -> provider. Without ``providerPid`` it starts a negotiation (and then needs a
    ``callbackAddress``); with it, it is a counter-offer in an existing one."""

    TYPE = "ContractRequestMessage"
    provider_pid: NonEmptyStr | None = Field(default=None, alias="providerPid")
    consumer_pid: NonEmptyStr = Field(alias="consumerPid")
    offer: MessageOffer
    callback_address: CallbackAddress | None = Field(default=None, alias="callbackAddress")

    @model_validator(mode="after")
    def _initial_needs_callback(self) -> Self:
        if self.provider_pid is None and self.callback_address is None:
            raise ValueError("callbackAddress is required in an initial ContractRequestMessage")
        return self

    @property
    def is_initial(self) -> bool:
        return self.provider_pid is None

    @property
    def dataset_id(self) -> str:
        return policy_target(self.offer) or ""


class ContractOfferMessage(DspMessage):
    """Provider -> consumer. Without ``consumerPid`` it starts a negotiation (and then needs a
    ``callbackAddress``)."""

    TYPE = "ContractOfferMessage"
    provider_pid: NonEmptyStr = Field(alias="providerPid")
    consumer_pid: NonEmptyStr | None = Field(default=None, alias="consumerPid")
    offer: MessageOffer
    callback_address: CallbackAddress | None = Field(default=None, alias="callbackAddress")

    @model_validator(mode="after")
    def _initial_needs_callback(self) -> Self:
        if self.consumer_pid is None and self.callback_address is None:
            raise ValueError("callbackAddress is required in an initial ContractOfferMessage")
        return self

    @property
    def is_initial(self) -> bool:
        return self.consumer_pid is None


class ContractAgreementMessage(DspMessage):
    """Provider -> consumer: the complete Agreement (signed by the provider, DESIGN.md §3).
    ``callbackAddress`` was required in 2024-1 and is accepted, not required."""

    TYPE = "ContractAgreementMessage"
    provider_pid: NonEmptyStr = Field(alias="providerPid")
    consumer_pid: NonEmptyStr = Field(alias="consumerPid")
    agreement: Agreement
    callback_address: CallbackAddress | None = Field(default=None, alias="callbackAddress")

    @property
    def provider_signature(self) -> str | None:
        value = self.agreement.get(PHEMS_SIGNATURE)
        return value if isinstance(value, str) else None


class ContractAgreementVerificationMessage(DspMessage):
    """Consumer -> provider. Ours carries the consumer's JWS over the same canonical Agreement
    (absent from peers that do not sign)."""

    TYPE = "ContractAgreementVerificationMessage"
    provider_pid: NonEmptyStr = Field(alias="providerPid")
    consumer_pid: NonEmptyStr = Field(alias="consumerPid")
    signature: NonEmptyStr | None = Field(default=None, alias=PHEMS_SIGNATURE)


class ContractNegotiationEventMessage(DspMessage):
    """``ACCEPTED`` (consumer -> provider) or ``FINALIZED`` (provider -> consumer)."""

    TYPE = "ContractNegotiationEventMessage"
    provider_pid: NonEmptyStr = Field(alias="providerPid")
    consumer_pid: NonEmptyStr = Field(alias="consumerPid")
    event_type: NegotiationEventType = Field(alias="eventType")


class ContractNegotiationTerminationMessage(Terminating):
    TYPE = "ContractNegotiationTerminationMessage"
    provider_pid: NonEmptyStr = Field(alias="providerPid")
    consumer_pid: NonEmptyStr = Field(alias="consumerPid")


class ContractNegotiation(DspMessage):
    """The ACK: a negotiation's wire state."""

    TYPE = "ContractNegotiation"
    provider_pid: NonEmptyStr = Field(alias="providerPid")
    consumer_pid: NonEmptyStr = Field(alias="consumerPid")
    state: NegotiationState

    @field_validator("state")
    @classmethod
    def _wire_state(cls, value: NegotiationState) -> NegotiationState:
        if not value.on_wire:
            raise ValueError(f"{value} is not a DSP state")
        return value


class ContractNegotiationError(Terminating):
    """The ERROR body. The schema requires both pids; we omit one we do not know (a request
    that never created a process)."""

    TYPE = "ContractNegotiationError"
    provider_pid: NonEmptyStr | None = Field(default=None, alias="providerPid")
    consumer_pid: NonEmptyStr | None = Field(default=None, alias="consumerPid")


NegotiationMessage = (
    ContractRequestMessage
    | ContractOfferMessage
    | ContractAgreementMessage
    | ContractAgreementVerificationMessage
    | ContractNegotiationEventMessage
    | ContractNegotiationTerminationMessage
)
"""The messages that move a contract negotiation's state machine."""
