"""Transfer Process Protocol messages and responses (DSP 2025-1, Message Types, Response Types),
with the DataAddress a pull transfer's TransferStartMessage carries."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connector.dsp.states import TransferState
from connector.dsp.wire import CallbackAddress, DspMessage, NonEmptyStr, Terminating


class EndpointProperty(BaseModel):
    # Written out (not a shared variable) so the pydantic mypy plugin sees validate_by_name.
    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )
    type_: Literal["EndpointProperty"] = Field(default="EndpointProperty", alias="@type")
    name: NonEmptyStr
    value: str


class DataAddress(BaseModel):
    """Where and how to reach the data: ``endpointType`` (e.g.
    ``https://w3id.org/idsa/v4.1/HTTP``), ``endpoint`` and ``endpointProperties`` such as
    ``authorization`` (a token) and ``authType`` (``bearer``)."""

    # Written out (not a shared variable) so the pydantic mypy plugin sees validate_by_name.
    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )
    type_: Literal["DataAddress"] = Field(default="DataAddress", alias="@type")
    endpoint_type: NonEmptyStr = Field(alias="endpointType")
    endpoint: NonEmptyStr
    endpoint_properties: list[EndpointProperty] | None = Field(
        default=None, alias="endpointProperties"
    )

    def get_property(self, name: str) -> str | None:
        """The value of the endpoint property ``name``, or None."""
        for prop in self.endpoint_properties or ():
            if prop.name == name:
                return prop.value
        return None


class TransferRequestMessage(DspMessage):
    """Consumer -> provider: starts a transfer under an agreement, in a distribution's format.
    ``dataAddress`` only for push formats."""

    TYPE = "TransferRequestMessage"
    consumer_pid: NonEmptyStr = Field(alias="consumerPid")
    agreement_id: NonEmptyStr = Field(alias="agreementId")
    format: NonEmptyStr
    callback_address: CallbackAddress = Field(alias="callbackAddress")
    data_address: DataAddress | None = Field(default=None, alias="dataAddress")


class TransferStartMessage(DspMessage):
    """Provider -> consumer (start), or either party restarting a SUSPENDED transfer. A pull
    transfer's start carries the ``dataAddress``."""

    TYPE = "TransferStartMessage"
    provider_pid: NonEmptyStr = Field(alias="providerPid")
    consumer_pid: NonEmptyStr = Field(alias="consumerPid")
    data_address: DataAddress | None = Field(default=None, alias="dataAddress")


class TransferSuspensionMessage(Terminating):
    TYPE = "TransferSuspensionMessage"
    provider_pid: NonEmptyStr = Field(alias="providerPid")
    consumer_pid: NonEmptyStr = Field(alias="consumerPid")


class TransferCompletionMessage(DspMessage):
    TYPE = "TransferCompletionMessage"
    provider_pid: NonEmptyStr = Field(alias="providerPid")
    consumer_pid: NonEmptyStr = Field(alias="consumerPid")


class TransferTerminationMessage(Terminating):
    TYPE = "TransferTerminationMessage"
    provider_pid: NonEmptyStr = Field(alias="providerPid")
    consumer_pid: NonEmptyStr = Field(alias="consumerPid")


class TransferProcess(DspMessage):
    """The ACK: a transfer's wire state."""

    TYPE = "TransferProcess"
    provider_pid: NonEmptyStr = Field(alias="providerPid")
    consumer_pid: NonEmptyStr = Field(alias="consumerPid")
    state: TransferState

    @field_validator("state")
    @classmethod
    def _wire_state(cls, value: TransferState) -> TransferState:
        if not value.on_wire:
            raise ValueError(f"{value} is not a DSP state")
        return value


class TransferError(Terminating):
    """The ERROR body; a pid we do not know is omitted."""

    TYPE = "TransferError"
    provider_pid: NonEmptyStr | None = Field(default=None, alias="providerPid")
    consumer_pid: NonEmptyStr | None = Field(default=None, alias="consumerPid")


TransferMessage = (
    TransferRequestMessage
    | TransferStartMessage
    | TransferSuspensionMessage
    | TransferCompletionMessage
    | TransferTerminationMessage
)
"""The messages that move a transfer process' state machine."""
