"""Base class and field types shared by every DSP 2025-1 message model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from connector.dsp.urls import callback_address_problem

NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
"""Process ids (``providerPid``, ``consumerPid``), agreement ids, formats."""

ReasonItem = str | dict[str, Any]
"""A termination / error ``reason`` item: DSP leaves its shape open; peers send strings or
objects (EDC sends strings, others ``{"@value": ...}`` or richer objects)."""


def _check_callback(value: str) -> str:
    problem = callback_address_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


CallbackAddress = Annotated[str, AfterValidator(_check_callback)]


class DspMessage(BaseModel):
    """A DSP message or response body. ``TYPE`` is its compact ``@type``.

    Models are immutable; unknown properties are ignored (forward compatibility), ``@id`` is
    kept when the sender gave one (messages are idempotent by it).
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    TYPE: ClassVar[str]
    message_id: NonEmptyStr | None = Field(default=None, alias="@id")


class Terminating(DspMessage):
    """Common shape of termination/suspension messages and error bodies: ``code`` + ``reason``."""

    code: str | None = None
    reason: list[ReasonItem] | None = None

    def reason_texts(self) -> tuple[str, ...]:
        """Reason items as text: strings as sent, objects as compact sorted JSON."""
        return reason_texts(self.reason or ())


def reason_texts(items: Sequence[ReasonItem]) -> tuple[str, ...]:
    return tuple(
        item if isinstance(item, str) else orjson.dumps(item, option=orjson.OPT_SORT_KEYS).decode()
        for item in items
    )
