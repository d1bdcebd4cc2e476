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
