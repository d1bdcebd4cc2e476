"""Catalog Protocol messages (DSP 2025-1, Catalog Protocol, Message Types).

The Catalog and Dataset bodies are produced by ``catalog/`` (DCAT); here they are thin models
that check what DSP requires of them (``@id``, and each ``hasPolicy`` item an Offer with an
``@id``) and keep every other property as sent.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field

from connector.dsp.policy_shape import offer_problem
from connector.dsp.wire import DspMessage, NonEmptyStr, Terminating


class CatalogRequestMessage(DspMessage):
    TYPE = "CatalogRequestMessage"
    filter: list[Any] | None = None

    def window(self) -> tuple[int | None, int | None]:
        """The ``(offset, limit)`` a ``filter`` asks for, each None when not given.

        DSP leaves ``filter`` to implementations. Eclipse EDC sends a ``QuerySpec`` with every
        catalog request (``offset``, ``limit``, ``sortOrder`` and an empty ``filterExpression``),
        so a QuerySpec that only pages is honoured; anything that would narrow or reorder the
        catalog (a filter expression, a sort field, another property) is refused with a
        ``ValueError`` naming it, never ignored.
        """
        if not self.filter:
            return None, None
        if len(self.filter) > 1:
            raise ValueError("filter: at most one QuerySpec is supported")
        spec = self.filter[0]
        if not isinstance(spec, dict):
            raise ValueError("filter: a QuerySpec object is expected")
        found: dict[str, Any] = {}
        for key, value in spec.items():
            name = _local_name(key)
            if key in ("@type", "@id"):
                continue
            if name in ("filterExpression", "sortField"):
                if value not in (None, "", [], {}):
                    raise ValueError(f"filter: {name} is not supported; request the whole catalog")
            elif name in ("offset", "limit"):
                found[name] = _whole_number(name, value)
            elif name != "sortOrder":
                raise ValueError(f"filter: {key!r} is not supported")
        return found.get("offset"), found.get("limit")


def _local_name(key: str) -> str:
    """``offset``, ``edc:offset`` and ``https://w3id.org/edc/v0.0.1/ns/offset`` -> ``offset``."""
    for sep in ("#", "/", ":"):
        key = key.rsplit(sep, 1)[-1]
    return key


def _whole_number(name: str, value: Any) -> int:
    if isinstance(value, dict) and "@value" in value:  # a JSON-LD typed literal
        value = value["@value"]
    if isinstance(value, list) and len(value) == 1:  # expanded JSON-LD keeps values in arrays
        return _whole_number(name, value[0])
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"filter: {name} must be a whole number, not {value!r}")
    return value


class DatasetRequestMessage(DspMessage):
    TYPE = "DatasetRequestMessage"
    dataset: NonEmptyStr


class CatalogError(Terminating):
    TYPE = "CatalogError"


def _check_offers(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for offer in value:
        # Offers in a catalog have no target: the dataset is their target (hasPolicy).
        problem = offer_problem(offer, require_target=False)
        if problem is not None:
            raise ValueError(f"hasPolicy: {problem}")
    return value


CatalogOffers = Annotated[list[dict[str, Any]], Field(min_length=1), AfterValidator(_check_offers)]


class Dataset(DspMessage):
    """A DCAT Dataset as DSP serves it; DCAT properties beyond these are kept as extras."""

    model_config = ConfigDict(extra="allow")
    TYPE = "Dataset"
    message_id: NonEmptyStr = Field(alias="@id")
    has_policy: CatalogOffers = Field(alias="hasPolicy")
    distribution: list[dict[str, Any]] | None = None


class Catalog(DspMessage):
    """A DCAT Catalog; ``dataset`` items are kept as dicts (parse each with ``Dataset``)."""

    model_config = ConfigDict(extra="allow")
    TYPE = "Catalog"
    message_id: NonEmptyStr = Field(alias="@id")
    participant_id: NonEmptyStr | None = Field(default=None, alias="participantId")
    dataset: list[dict[str, Any]] | None = None
    catalog: list[dict[str, Any]] | None = None
    service: list[dict[str, Any]] | None = None
    distribution: list[dict[str, Any]] | None = None
