"""What the policy engine is told about a request, and what it answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from connector.errors import AuthenticationError, PolicyViolationError


class Scope(StrEnum):
    """Where a policy is evaluated; each scope checks a different set of constraints
    (see ``connector.policy.evaluate.CHECKS``)."""

    CATALOG = "catalog"
    NEGOTIATION = "negotiation"
    TRANSFER = "transfer"
    DATAPLANE = "dataplane"


MEMBERSHIP_CREDENTIAL = "MembershipCredential"
DATA_PERMIT_CREDENTIAL = "DataPermitCredential"


def _instant(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthenticationError(f"credential time claims must be numbers, got {value!r}")
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True)
class VerifiedCredential:
    """A credential whose signature the identity layer has checked.

    ``subject`` is the ``credentialSubject``: ``id`` (the holder DID) and the claims; a data
    permit has ``datasets`` (list of dataset ids), ``purpose`` and ``permitId``; a membership
    may carry ``country`` (used for ``spatial`` when the request does not state one). The
    policy engine itself checks the issuer against the trust list, the holder against the
    caller and the validity window against ``now``.
    """

    types: frozenset[str]
    issuer: str
    subject: Mapping[str, Any]
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    @classmethod
    def from_jwt_claims(cls, claims: Mapping[str, Any]) -> VerifiedCredential:
        """From the payload of a VC-JWT (VC Data Model 1.1) whose signature was verified:
        ``iss``, ``sub``, ``nbf`` / ``iat``, ``exp`` and ``vc.type`` / ``vc.credentialSubject``.
        """
        vc = claims.get("vc")
        if not isinstance(vc, Mapping):
            raise AuthenticationError("credential has no vc claim")
        types = vc.get("type", [])
        types = [types] if isinstance(types, str) else types
        subject = vc.get("credentialSubject")
        issuer = claims.get("iss")
        if not isinstance(subject, Mapping) or not isinstance(issuer, str):
            raise AuthenticationError("credential needs iss and one credentialSubject object")
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise AuthenticationError("credential vc.type must be a list of strings")
        holder = subject.get("id", claims.get("sub"))
        if claims.get("sub") not in (None, holder):
            raise AuthenticationError("credential sub and credentialSubject.id differ")
        return cls(
            types=frozenset(types),
            issuer=issuer,
            subject={**subject, "id": holder},
            valid_from=_instant(claims.get("nbf", claims.get("iat"))),
            valid_until=_instant(claims.get("exp")),
        )


@dataclass(frozen=True)
class EvaluationContext:
    """The facts about one request. ``None`` means "not known in this scope".

    ``patients`` is the number of patient records the call delivers (0 for an aggregate).
    ``uses_so_far`` counts the agreement's earlier uses (the current one is the next);
    ``epsilon`` is what this query would spend and ``epsilon_spent`` what the agreement has
    spent already; ``min_cell_size`` / ``output_type`` are the query's effective values (pass
    the defaulted value, not ``None``, on the data plane). ``purpose`` may be a plain string
    or an IRI (compact IRIs with a known prefix are expanded before comparison).
    """

    caller: str
    now: datetime
    credentials: tuple[VerifiedCredential, ...] = ()
    trusted_issuers: frozenset[str] = frozenset()
    dataset_id: str | None = None
    purpose: str | None = None
    uses_so_far: int = 0
    output_type: str | None = None
    min_cell_size: int | None = None
    epsilon: float | None = None
    epsilon_spent: float = 0.0
    spatial: str | None = None
    patients: int | None = None


@dataclass(frozen=True)
class Decision:
    """``failed`` names each failed constraint in plain words with its operand IRI; it is
    what goes into a DSP termination reason."""

    permitted: bool
    failed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.permitted

    @property
    def reason(self) -> str:
        return "; ".join(self.failed)

    def raise_if_denied(self) -> None:
        if not self.permitted:
            raise PolicyViolationError(self.reason)
