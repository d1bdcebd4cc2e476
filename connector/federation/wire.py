"""The secure-mode fields on the wire (``phems-secagg-1``; docs/federated-queries.md).

The data user's connector POSTs the aggregate query body (a JSON object) to each hospital's
data plane under its agreement. In secure mode the body carries one more member::

    "secureAggregation": {
      "protocol": "phems-secagg-1",
      "sessionId": "urn:uuid:...",            fresh for every round
      "participants": ["did:web:...", ...],    sorted, unique, the receiver among them
      "layout": ["cell name", ...],            the answer's cells in order
      "modulus": 4503599627370496              2^k, 32 <= k <= 64 (default 2^52)
    }

and the hospital answers (``application/json``, instead of a MeasureReport)::

    {
      "protocol": "phems-secagg-1",
      "sessionId": "...",                      as asked
      "participant": "did:web:...",            the answering hospital
      "layoutDigest": "sha-256:...",           of the layout it used
      "queryDigest": "sha-256:...",            of the body it answered, without secureAggregation
      "maskedVector": [0, ...]                 integers in [0, modulus), one per cell
    }
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connector.federation.secure import (
    PROTOCOL,
    SecureAggregationError,
    Session,
    check_share,
)

MEMBER = "secureAggregation"
SHARE_MEDIA_TYPE = "application/json"


def session_json(session: Session) -> dict[str, Any]:
    return {
        "protocol": PROTOCOL,
        "sessionId": session.session_id,
        "participants": list(session.participants),
        "layout": list(session.layout),
        "modulus": session.modulus,
    }


def with_session(query: Mapping[str, Any], session: Session) -> dict[str, Any]:
    """The query body a hospital receives in secure mode."""
    return {**query, MEMBER: session_json(session)}


def _strings(value: object, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SecureAggregationError(f"{MEMBER}.{field}: an array of strings")
    return tuple(value)


def read_session(query: Mapping[str, Any]) -> Session | None:
    """The session a query body asks for, None in plain mode; ``SecureAggregationError``
    naming the bad field (a hospital answers it 400)."""
    member = query.get(MEMBER)
    if member is None:
        return None
    if not isinstance(member, dict):
        raise SecureAggregationError(f"{MEMBER}: a JSON object")
    unknown = sorted(set(member) - {"protocol", "sessionId", "participants", "layout", "modulus"})
    if unknown:
        raise SecureAggregationError(f"{MEMBER}: unknown member {unknown[0]!r}")
    if member.get("protocol") != PROTOCOL:
        raise SecureAggregationError(f"{MEMBER}.protocol: {PROTOCOL!r} is the one supported")
    session_id = member.get("sessionId")
    if not isinstance(session_id, str):
        raise SecureAggregationError(f"{MEMBER}.sessionId: a string")
    modulus = member.get("modulus")
    if type(modulus) is not int:
        raise SecureAggregationError(f"{MEMBER}.modulus: an integer")
    try:
        return Session(
            session_id,
            _strings(member.get("participants"), "participants"),
            _strings(member.get("layout"), "layout"),
            modulus,
        )
    except SecureAggregationError as exc:
        raise SecureAggregationError(f"{MEMBER}.{exc}") from None


@dataclass(frozen=True)
class Share:
    """One hospital's answer to a session."""

    session_id: str
    participant: str
    layout_digest: str
    query_digest: str
    masked_vector: list[int]

    def as_json(self) -> dict[str, Any]:
        return {
            "protocol": PROTOCOL,
            "sessionId": self.session_id,
            "participant": self.participant,
            "layoutDigest": self.layout_digest,
            "queryDigest": self.query_digest,
            "maskedVector": self.masked_vector,
        }


def read_share(answer: object, session: Session, *, participant: str, query: str) -> Share:
    """A hospital's answer checked against the session it was asked in: protocol, session id,
    the participant it came from, layout and query digests, and the vector (``check_share``).
    ``SecureAggregationError`` says what does not fit."""
    if not isinstance(answer, dict):
        raise SecureAggregationError("the answer is not a JSON object")
    expected = {
        "protocol": PROTOCOL,
        "sessionId": session.session_id,
        "participant": participant,
        "layoutDigest": session.layout_digest,
        "queryDigest": query,
    }
    for field, value in expected.items():
        if answer.get(field) != value:
            raise SecureAggregationError(
                f"{field} is {str(answer.get(field))[:80]!r}, expected {value!r}"
            )
    return Share(
        session.session_id,
        participant,
        session.layout_digest,
        query,
        check_share(answer.get("maskedVector"), session),
    )
