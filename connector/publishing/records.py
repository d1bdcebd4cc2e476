"""A dataset this connector offers, as the management API stores it: metadata, distributions
(transfer formats) and ODRL offers, and the checks a record passes before it is stored.

Offers are validated by the policy engine when a dataset is created or updated, so a policy
with an unknown operand never reaches the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from catalog.formats import FORMATS, Format
from connector.errors import BadRequestError
from connector.fulfilment.scope import DatasetScope
from connector.policy import Policy, PolicyType, validate_policy

Status = Literal["published", "retired"]


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    title: str
    description: str = ""
    formats: tuple[str, ...] = (Format.AGGREGATE.value,)
    offers: tuple[dict[str, Any], ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    scope: dict[str, Any] | None = None  # connector.fulfilment.scope.DatasetScope, as JSON
    status: Status = "published"
    # No default: the times come from the injected clock (`Clock`), never from datetime.now.
    created_at: datetime = field(kw_only=True)
    modified_at: datetime = field(kw_only=True)

    def offer(self, offer_id: str) -> dict[str, Any] | None:
        return next((o for o in self.offers if o.get("@id") == offer_id), None)

    def parsed_offers(self) -> list[tuple[dict[str, Any], Policy]]:
        return [(o, validate_policy(o)) for o in self.offers]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "formats": list(self.formats),
            "offers": list(self.offers),
            "metadata": self.metadata,
            "scope": self.scope,
            "status": self.status,
            "createdAt": self.created_at.isoformat(),
            "modifiedAt": self.modified_at.isoformat(),
        }


def check_dataset(record: DatasetRecord) -> None:
    """Refuse unknown formats, offers without ``@id`` or with invalid policies."""
    unknown = [f for f in record.formats if f not in FORMATS]
    if unknown or not record.formats:
        raise BadRequestError(
            f"formats {unknown or '[]'} not supported; use one or more of {', '.join(FORMATS)}"
        )
    DatasetScope.parse(record.scope)
    ids = [o.get("@id") for o in record.offers]
    if any(not isinstance(i, str) or not i for i in ids):
        raise BadRequestError("every offer needs an '@id'")
    if len(set(ids)) != len(ids):
        raise BadRequestError("offer '@id's must be unique within a dataset")
    for offer in record.offers:
        if offer.get("target") not in (None, record.id):
            raise BadRequestError(f"offer {offer['@id']}: target must be the dataset or absent")
        policy = validate_policy(with_offer_type(offer))
        if policy.type is not PolicyType.OFFER:
            raise BadRequestError(f"offer {offer['@id']}: @type must be Offer, not {policy.type}")


def with_offer_type(offer: dict[str, Any]) -> dict[str, Any]:
    """A dataset's offer is an ``Offer`` (DSP: every ``hasPolicy`` item): one written without
    ``@type`` is stored and published with it."""
    return offer if "@type" in offer else {"@type": "Offer", **offer}
