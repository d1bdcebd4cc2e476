"""DSP 2025-1 messages: parse what peers send, dump what we send.

``parse_message(body, ContractRequestMessage)`` accepts bytes, text or an already decoded
object, in plain JSON or JSON-LD compact/prefixed/expanded-IRI form (``connector.dsp.context``),
and returns the typed model or raises ``InvalidMessageError`` naming the problem (malformed
JSON, wrong ``@type``, missing field, bad ``callbackAddress`` ...). ``dump(model)`` returns the
one form we emit: compact JSON, ``"@context": [DSP_CONTEXT_URL]``, string ``@type``.

The models live in ``catalog_messages``, ``negotiation_messages`` and ``transfer_messages``
and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from connector.dsp.catalog_messages import (
    Catalog,
    CatalogError,
    CatalogRequestMessage,
    Dataset,
    DatasetRequestMessage,
)
from connector.dsp.context import DSP_CONTEXT_URL, normalize
from connector.dsp.negotiation_messages import (
    PHEMS_SIGNATURE,
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiation,
    ContractNegotiationError,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
    NegotiationMessage,
)
from connector.dsp.transfer_messages import (
    DataAddress,
    EndpointProperty,
    TransferCompletionMessage,
    TransferError,
    TransferMessage,
    TransferProcess,
    TransferRequestMessage,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferTerminationMessage,
)
from connector.dsp.wire import DspMessage
from connector.errors import InvalidMessageError
from connector.json_depth import deeper_than

__all__ = [
    "MESSAGE_TYPES",
    "PHEMS_SIGNATURE",
    "Catalog",
    "CatalogError",
    "CatalogRequestMessage",
    "ContractAgreementMessage",
    "ContractAgreementVerificationMessage",
    "ContractNegotiation",
    "ContractNegotiationError",
    "ContractNegotiationEventMessage",
    "ContractNegotiationTerminationMessage",
    "ContractOfferMessage",
    "ContractRequestMessage",
    "DataAddress",
    "Dataset",
    "DatasetRequestMessage",
    "DspMessage",
    "EndpointProperty",
    "NegotiationMessage",
    "TransferCompletionMessage",
    "TransferError",
    "TransferMessage",
    "TransferProcess",
    "TransferRequestMessage",
    "TransferStartMessage",
    "TransferSuspensionMessage",
    "TransferTerminationMessage",
    "dump",
    "parse_any",
    "parse_message",
]

M = TypeVar("M", bound=DspMessage)

MESSAGE_TYPES: Mapping[str, type[DspMessage]] = {
    cls.TYPE: cls
    for cls in (
        CatalogRequestMessage,
        DatasetRequestMessage,
        Catalog,
        Dataset,
        CatalogError,
        ContractRequestMessage,
        ContractOfferMessage,
        ContractAgreementMessage,
        ContractAgreementVerificationMessage,
        ContractNegotiationEventMessage,
        ContractNegotiationTerminationMessage,
        ContractNegotiation,
        ContractNegotiationError,
        TransferRequestMessage,
        TransferStartMessage,
        TransferSuspensionMessage,
        TransferCompletionMessage,
        TransferTerminationMessage,
        TransferProcess,
        TransferError,
    )
}
"""Compact ``@type`` -> model, for every message and response body of the three protocols."""

_OTHER_DSP_CONTEXTS = "https://w3id.org/dspace/"


def parse_message(body: bytes | str | Mapping[str, Any], expected: type[M]) -> M:
    """``body`` as an ``expected`` message; ``InvalidMessageError`` says why it is not one."""
    data = _prepare(body)
    found = data.get("@type")
    if found != expected.TYPE:
        raise InvalidMessageError(f"wrong @type: expected {expected.TYPE}, got {found!r}")
    return _validate(data, expected)


def parse_any(body: bytes | str | Mapping[str, Any]) -> DspMessage:
    """``body`` as whichever DSP message its ``@type`` names."""
    data = _prepare(body)
    found = data.get("@type")
    cls = MESSAGE_TYPES.get(found) if isinstance(found, str) else None
    if cls is None:
        raise InvalidMessageError(f"unknown @type {found!r}")
    return _validate(data, cls)


def dump(message: DspMessage) -> dict[str, Any]:
    """The compact JSON we send for ``message`` (``@context``, ``@type``, ``@id`` first)."""
    body = message.model_dump(mode="json", by_alias=True, exclude_none=True)
    body.pop("@context", None)  # kept as an extra by the Catalog/Dataset models
    body.pop("@type", None)
    out: dict[str, Any] = {"@context": [DSP_CONTEXT_URL], "@type": message.TYPE}
    if "@id" in body:
        out["@id"] = body.pop("@id")
    out.update(body)
    return out


# The deepest DSP message is an agreement with logical constraints nested in one another
# (about 12 levels with two of them); this leaves room for 14 more.
MAX_DEPTH = 40


def _prepare(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(body, bytes | str):
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidMessageError(f"malformed JSON: {exc}") from None
    else:
        decoded = body
    if not isinstance(decoded, Mapping):
        raise InvalidMessageError(
            f"a DSP message must be a JSON object, got {type(decoded).__name__}"
        )
    if deeper_than(decoded, MAX_DEPTH):
        raise InvalidMessageError(f"JSON nested more than {MAX_DEPTH} levels deep")
    _check_context(decoded.get("@context"))
    data = normalize(decoded)
    if "@type" not in data:
        raise InvalidMessageError("missing @type")
    if not isinstance(data["@type"], str):
        raise InvalidMessageError(f"@type must be a single type, got {data['@type']!r}")
    return data


def _check_context(context: Any) -> None:
    """Plain JSON (no ``@context``) is accepted; a context naming another DSP version is not."""
    if context is None:
        return
    items = context if isinstance(context, list) else [context]
    urls = [item for item in items if isinstance(item, str)]
    if any(not isinstance(item, str | dict) for item in items):
        raise InvalidMessageError("@context must be a string, an object or a list of them")
    dsp = [url for url in urls if url.startswith(_OTHER_DSP_CONTEXTS)]
    if dsp and DSP_CONTEXT_URL not in dsp:
        raise InvalidMessageError(
            f"unsupported DSP version: @context {dsp[0]!r}, this endpoint speaks "
            f"{DSP_CONTEXT_URL!r}"
        )


def _validate(data: dict[str, Any], cls: type[M]) -> M:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise InvalidMessageError(f"invalid {cls.TYPE}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    parts: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            parts.append(f"missing required field {where!r}")
        elif where:
            parts.append(f"{where}: {message}")
        else:
            parts.append(message)
    return "; ".join(dict.fromkeys(parts))
