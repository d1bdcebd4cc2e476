"""Secure aggregation of integer vectors with pairwise masks (protocol ``phems-secagg-1``).

Pure: X25519 and HKDF from ``cryptography`` (the key agreement goes through
``connector.identity.signing.derive_shared_secret``), no HTTP, no database. The wire form of
the request and the share is in ``connector.federation.wire``; ``docs/federated-queries.md``
describes both for other implementers.

**The round.** The data user's connector (the coordinator) opens a session: a fresh
``session_id``, the participants' DIDs (sorted, unique), the vector ``layout`` (cell names, in
order) and a ``modulus`` m = 2^k (32 <= k <= 64). Each hospital i

1. computes its noisy vector x_i (its true cells plus its own full noise; see below),
2. for every other participant j derives a pairwise mask r_ij from X25519(own key agreement
   key, j's key agreement key from j's did:web document) through HKDF-SHA256 (salt: SHA-256 of
   the session id; info: the protocol, session id, both DIDs in sorted order, vector length,
   modulus, layout digest and query digest, as RFC 8785 JSON), expanded to ``length`` values
   in [0, m) with a ChaCha20 key stream,
3. answers y_i = x_i + sum_{j > i} r_ij - sum_{j < i} r_ij (mod m), "j > i" in DID order.

r_ij = r_ji (both ends derive the same secret), so the masks cancel in the sum:
sum_i y_i = sum_i x_i (mod m), read back in (-m/2, m/2). Each y_i alone is uniform on
[0, m)^length whatever x_i is (it carries at least one mask no one else can compute), so the
coordinator learns the sum and nothing about any one hospital.

**Dropouts and bad shares.** The masks cancel only over the full set. A participant that does
not answer, or whose share is malformed (``check_share``), is excluded and the round runs again
with a new session id (new masks) among the rest; nothing is unmasked. A participant refuses
a session whose vector could overflow the sum (``|x_c| >= m / (2 n)``).

**Noise: each hospital adds its full noise.** x_i is the hospital's own noisy vector, drawn
with OpenDP's discrete Laplace sampler at the scale its agreement's epsilon and the measure's
sensitivity set (``connector.federation.noise``), the same cached draw as its plain answer
(before suppression and rounding). So the total carries n independent noise draws (standard
deviation sqrt(n) times one hospital's: about 2.2x for 5 hospitals) instead of one split in n
shares. That is the price of the guarantee not depending on the coordinator's honesty:

- Each x_i is epsilon-differentially private on its own, so anything computed from it is too
  (post-processing). A patient is in one hospital's data, so the sum is epsilon-DP per patient
  (parallel composition; a patient treated at k hospitals is protected at k times epsilon).
- A coordinator that cheats (invents a participant whose key it holds, claims a hospital
  dropped out and differences two rounds, or colludes with all other hospitals) can isolate
  one x_i; it then holds that hospital's noisy vector, which is epsilon-DP, never a true
  value. With noise split in n shares the same attacks would leave 1/n of the noise.
- Re-run rounds do not add noise: a hospital's noise is cached by query and data version, so
  the same query asked again (a re-run, or a new session) gives the same x_i; differencing
  rounds gains nothing and averaging repeats cannot cancel the noise.
- The masks are bound to the query digest: the same session id reused for another query gives
  other masks, so two shares never differ by just the difference of two answers.

An honest-but-curious coordinator learns only the noisy sum.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from connector.canonical import canonical_json
from connector.identity.signing import (
    InvalidKeyError,
    PrivateKey,
    b64url_encode,
    derive_shared_secret,
)

PROTOCOL = "phems-secagg-1"
MIN_MODULUS_BITS = 32
MAX_MODULUS_BITS = 64
DEFAULT_MODULUS = 2**52  # below 2^53: every JSON parser reads the values exactly
MAX_LENGTH = 100_000
MIN_PARTICIPANTS = 2
MAX_PARTICIPANTS = 256
_NONCE = bytes(16)  # ChaCha20 counter and nonce: the key is new for every pair and session
# X25519 secrets of our static key with each peer's static key (the same for every session;
# HKDF makes each session's masks from them). Kept per key object while it lives.
_SECRETS: weakref.WeakKeyDictionary[PrivateKey, dict[str, bytes]] = weakref.WeakKeyDictionary()
_MAX_PEERS = 4096


class SecureAggregationError(ValueError):
    """A session or share that does not fit the protocol; the message names the bad part."""


def layout_digest(layout: Sequence[str]) -> str:
    """``sha-256:`` + base64url of SHA-256 over the RFC 8785 JSON of the layout (a list of
    strings)."""
    return "sha-256:" + b64url_encode(hashlib.sha256(canonical_json(list(layout))).digest())


def query_digest(query: Mapping[str, Any]) -> str:
    """``sha-256:`` + base64url of SHA-256 over the RFC 8785 JSON of the query body without its
    ``secureAggregation`` member (what every participant was asked)."""
    body = {k: v for k, v in query.items() if k != "secureAggregation"}
    return "sha-256:" + b64url_encode(hashlib.sha256(canonical_json(body)).digest())


@dataclass(frozen=True)
class Session:
    """One round of secure aggregation, as the coordinator opens it and every participant
    reads it. ``participants`` are sorted and unique."""

    session_id: str
    participants: tuple[str, ...]
    layout: tuple[str, ...]
    modulus: int = DEFAULT_MODULUS

    def __post_init__(self) -> None:
        check_session(self)

    @property
    def length(self) -> int:
        return len(self.layout)

    @functools.cached_property
    def layout_digest(self) -> str:
        return layout_digest(self.layout)

    @property
    def bound(self) -> int:
        """Every participant's cells must lie strictly inside (-bound, bound)."""
        return self.modulus // (2 * len(self.participants))

    @classmethod
    def open(
        cls,
        session_id: str,
        participants: Sequence[str],
        layout: Sequence[str],
        modulus: int = DEFAULT_MODULUS,
    ) -> Session:
        return cls(session_id, tuple(sorted(set(participants))), tuple(layout), modulus)


def check_session(session: Session) -> None:
    """``SecureAggregationError`` naming the first field that is out of the protocol."""
    if not session.session_id or len(session.session_id) > 200:
        raise SecureAggregationError("sessionId: 1 to 200 characters")
    people = session.participants
    if list(people) != sorted(set(people)):
        raise SecureAggregationError("participants: must be sorted and unique")
    if not MIN_PARTICIPANTS <= len(people) <= MAX_PARTICIPANTS:
        raise SecureAggregationError(
            f"participants: {len(people)} given, {MIN_PARTICIPANTS} to {MAX_PARTICIPANTS} needed"
        )
    if any(not p.startswith("did:") for p in people):
        raise SecureAggregationError("participants: every participant is a DID")
    if not 1 <= len(session.layout) <= MAX_LENGTH:
        raise SecureAggregationError(f"layout: 1 to {MAX_LENGTH} cells")
    if len(set(session.layout)) != len(session.layout):
        raise SecureAggregationError("layout: cell names must be unique")
    m = session.modulus
    if (
        type(m) is not int
        or m & (m - 1)
        or not MIN_MODULUS_BITS <= m.bit_length() - 1 <= MAX_MODULUS_BITS
    ):
        raise SecureAggregationError(
            f"modulus: must be 2^k with {MIN_MODULUS_BITS} <= k <= {MAX_MODULUS_BITS}"
        )


def _pair_info(session: Session, a: str, b: str, query: str) -> bytes:
    low, high = sorted((a, b))
    return canonical_json(
        {
            "protocol": PROTOCOL,
            "session": session.session_id,
            "pair": [low, high],
            "length": session.length,
            "modulus": str(session.modulus),
            "layout": session.layout_digest,
            "query": query,
        }
    )


def pair_mask(secret: bytes, session: Session, a: str, b: str, query: str) -> list[int]:
    """The mask two participants share for this session and query: ``length`` values uniform
    in [0, modulus). The same for (a, b) and (b, a)."""
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=hashlib.sha256(session.session_id.encode()).digest(),
        info=_pair_info(session, a, b, query),
    ).derive(secret)
    stream = Cipher(algorithms.ChaCha20(key, _NONCE), mode=None).encryptor()
    words = struct.unpack(f">{session.length}Q", stream.update(bytes(8 * session.length)))
    low_bits = session.modulus - 1
    return [w & low_bits for w in words]


def mask_vector(
    values: Sequence[int],
    session: Session,
    *,
    own_did: str,
    key: PrivateKey,
    peer_keys: Mapping[str, Mapping[str, Any]],
    query: str,
) -> list[int]:
    """This participant's share: ``values`` plus its pairwise masks, mod the modulus.

    ``peer_keys`` maps every other participant's DID to its X25519 public JWK (the
    ``keyAgreement`` key of its DID document); ``query`` is the query digest."""
    if own_did not in session.participants:
        raise SecureAggregationError(f"participants: {own_did} is not one of them")
    if len(values) != session.length:
        raise SecureAggregationError(f"vector has {len(values)} cells, the layout {session.length}")
    bound = session.bound
    for value in values:
        if type(value) is not int or not -bound < value < bound:
            raise SecureAggregationError(
                f"a cell is outside (-{bound}, {bound}): the modulus is too small for "
                f"{len(session.participants)} participants"
            )
    share = list(values)  # Python integers: no overflow; reduced once at the end
    for peer in session.participants:
        if peer == own_did:
            continue
        jwk = peer_keys.get(peer)
        if jwk is None:
            raise SecureAggregationError(f"participants: no key agreement key for {peer}")
        mask = pair_mask(_shared_secret(key, jwk, peer), session, own_did, peer, query)
        if own_did < peer:
            share = [s + r for s, r in zip(share, mask, strict=True)]
        else:
            share = [s - r for s, r in zip(share, mask, strict=True)]
    m = session.modulus
    return [s % m for s in share]


def _shared_secret(key: PrivateKey, jwk: Mapping[str, Any], peer: str) -> bytes:
    known = _SECRETS.setdefault(key, {})
    x = jwk.get("x")
    secret = known.get(x) if isinstance(x, str) and jwk.get("crv") == "X25519" else None
    if secret is None:
        try:
            secret = derive_shared_secret(key, dict(jwk))
        except InvalidKeyError as exc:
            raise SecureAggregationError(f"participants: key of {peer}: {exc}") from None
        if len(known) >= _MAX_PEERS:
            known.clear()
        known[str(x)] = secret
    return secret


def check_share(vector: object, session: Session) -> list[int]:
    """A received masked vector as a list of ints, or ``SecureAggregationError`` saying what
    is wrong with it (not a list, wrong length, not integers, out of [0, modulus))."""
    if not isinstance(vector, list):
        raise SecureAggregationError(f"maskedVector is {type(vector).__name__}, not an array")
    if len(vector) != session.length:
        raise SecureAggregationError(
            f"maskedVector has {len(vector)} values, the layout {session.length}"
        )
    m = session.modulus
    for index, value in enumerate(vector):
        if type(value) is not int:
            raise SecureAggregationError(
                f"maskedVector[{index}] is {type(value).__name__}, not an integer"
            )
        if not 0 <= value < m:
            raise SecureAggregationError(f"maskedVector[{index}] is outside [0, modulus)")
    return vector


def unmask_sum(shares: Sequence[Sequence[int]], session: Session) -> list[int]:
    """The sum of every participant's share, read as signed integers in (-m/2, m/2]: the sum
    of their vectors once all masks cancelled."""
    if len(shares) != len(session.participants):
        raise SecureAggregationError(
            f"{len(shares)} shares for {len(session.participants)} participants: masks cancel "
            "only over all of them"
        )
    m, half = session.modulus, session.modulus // 2
    totals = [sum(column) % m for column in zip(*shares, strict=True)]
    return [t - m if t > half else t for t in totals]
