"""A hospital's side of a secure round: check the session, fetch the other participants' key
agreement keys from their did:web documents, and mask the hospital's noisy vector.

The aggregate fulfilment calls ``answer_session`` when a query body carries
``secureAggregation`` (``session_of`` reads it), with the vector it computed for the query: the
true cells plus its full noise (the same cached draw as its plain answer, before suppression
and rounding; see ``connector.federation.secure``). Only the masked vector leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from connector.errors import AuthenticationError, BadRequestError, UpstreamError
from connector.federation.secure import (
    SecureAggregationError,
    Session,
    mask_vector,
    query_digest,
)
from connector.federation.wire import MEMBER, Share, read_session
from connector.identity.did import Relationship
from connector.identity.signing import PrivateKey, PublicJwk


def session_of(query: Mapping[str, Any]) -> Session | None:
    """The secure session a query body asks for (None: plain mode); ``BadRequestError`` (400)
    naming the bad member."""
    try:
        return read_session(query)
    except SecureAggregationError as exc:
        raise BadRequestError(str(exc)) from None


class KeyResolver(Protocol):
    """What ``connector.identity.resolver.DidResolver`` offers."""

    async def resolve_key(
        self, did_url_or_kid: str, relationship: Relationship = "assertionMethod"
    ) -> PublicJwk: ...


async def peer_keys(session: Session, own_did: str, resolver: KeyResolver) -> dict[str, PublicJwk]:
    """Every other participant's X25519 ``keyAgreement`` key, fetched concurrently."""
    peers = [p for p in session.participants if p != own_did]

    async def one(did: str) -> PublicJwk:
        try:
            return await resolver.resolve_key(did, "keyAgreement")
        except AuthenticationError as exc:
            raise BadRequestError(
                f"{MEMBER}.participants: no usable key agreement key for {did}: {exc.detail}"
            ) from None
        except UpstreamError as exc:
            raise UpstreamError(
                f"{MEMBER}.participants: cannot fetch the key agreement key of {did}: {exc.detail}"
            ) from None

    return dict(zip(peers, await asyncio.gather(*(one(p) for p in peers)), strict=True))


async def answer_session(
    query: Mapping[str, Any],
    session: Session,
    values: Sequence[int],
    *,
    layout: Sequence[str],
    own_did: str,
    key: PrivateKey,
    resolver: KeyResolver,
) -> Share:
    """This hospital's share for ``session``: ``values`` (its noisy vector in the order of
    ``layout``, which it computed from the query itself) masked for the participants.

    ``BadRequestError`` (400) naming the bad part when the session does not fit: we are not a
    participant, the layout is not the query's, the modulus is too small for the values."""
    if own_did not in session.participants:
        raise BadRequestError(f"{MEMBER}.participants: {own_did} (this hospital) is not listed")
    if tuple(layout) != session.layout:
        raise BadRequestError(
            f"{MEMBER}.layout: the query's answer has the cells {list(layout)[:20]}, "
            f"not {list(session.layout)[:20]}"
        )
    keys = await peer_keys(session, own_did, resolver)
    digest = query_digest(query)
    try:
        masked = mask_vector(
            values, session, own_did=own_did, key=key, peer_keys=keys, query=digest
        )
    except SecureAggregationError as exc:
        raise BadRequestError(f"{MEMBER}: {exc}") from None
    return Share(session.session_id, own_did, session.layout_digest, digest, masked)
