"""Does a consumer's requested offer match the offer we stored? (DSP contract negotiation)

A ``ContractRequestMessage`` names an offer by ``@id`` and repeats its content. Echoing a
known id is not enough: the normalised content (rules, actions, constraints, values) must be
the stored offer's too, so a consumer cannot loosen a constraint under a valid id. Order and
spelling (prefixed or full IRIs, ``{"@value": ...}`` or a bare literal) do not matter.
Whether the stored offer needs manual approval is the provider's business: the stored flag
governs, so it is not compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connector.errors import PolicyDefinitionError
from connector.policy.describe import describe_policy
from connector.policy.model import Policy
from connector.policy.parse import validate_policy
from connector.policy.vocab import PolicyType


@dataclass(frozen=True)
class OfferMatch:
    """Truthy when the offers match; ``reason`` says why not (for the DSP error body)."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


def _mismatch(reason: str) -> OfferMatch:
    return OfferMatch(False, reason)


def offers_match(
    requested: Mapping[str, Any] | Policy,
    stored: Mapping[str, Any] | Policy,
    *,
    dataset_id: str | None = None,
) -> OfferMatch:
    """Compare a requested Offer with the stored one (and, if given, the dataset it targets).

    The stored offer is ours and must be valid (``PolicyDefinitionError`` otherwise); a
    requested offer that does not validate is a mismatch whose reason names the problem.
    """
    mine = stored if isinstance(stored, Policy) else validate_policy(stored)
    try:
        theirs = requested if isinstance(requested, Policy) else validate_policy(requested)
    except PolicyDefinitionError as exc:
        return _mismatch(f"the requested offer is not a valid policy: {exc.detail}")
    if theirs.type is not PolicyType.OFFER:
        return _mismatch(f"the requested policy is a {theirs.type}, not an Offer")
    if theirs.uid is None or theirs.uid != mine.uid:
        return _mismatch(f"offer id {theirs.uid!r} is not the offered {mine.uid!r}")
    if dataset_id is not None and theirs.target != dataset_id:
        return _mismatch(f"the offer targets {theirs.target!r}, not dataset {dataset_id!r}")
    if mine.target is not None and theirs.target != mine.target:
        return _mismatch(f"the offer targets {theirs.target!r}, not {mine.target!r}")
    if mine.assigner and theirs.assigner and mine.assigner != theirs.assigner:
        return _mismatch(f"the offer's assigner {theirs.assigner!r} is not {mine.assigner!r}")
    if theirs.rules != mine.rules:
        return _mismatch(
            f"offer {mine.uid!r} was changed: requested '{describe_policy(theirs)}', "
            f"offered '{describe_policy(mine)}'"
        )
    return OfferMatch(True)
