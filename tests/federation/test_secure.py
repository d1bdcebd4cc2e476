"""Secure aggregation: masks cancel exactly, shares are uniform whatever the vector, the sum is
the sum of the noisy vectors, and malformed sessions and shares are refused with the reason."""

from __future__ import annotations

import random
import re

import pytest

from connector.federation.noise import add_discrete_laplace
from connector.federation.secure import (
    DEFAULT_MODULUS,
    SecureAggregationError,
    Session,
    check_share,
    layout_digest,
    mask_vector,
    pair_mask,
    query_digest,
    unmask_sum,
)
from connector.identity.signing import PrivateKey, derive_shared_secret, generate_key

LAYOUT = ("patients", "sex=female", "sex=male", "sex=other")
QUERY = query_digest({"cohort": {"inclusionCriteria": []}})


def parties(n: int) -> tuple[list[str], dict[str, PrivateKey]]:
    dids = [f"did:web:hospital-{i}.example" for i in range(n)]
    return dids, {d: generate_key("X25519") for d in dids}


def shares_for(
    vectors: dict[str, list[int]], keys: dict[str, PrivateKey], session: Session, query: str = QUERY
) -> dict[str, list[int]]:
    public = {d: k.public_jwk() for d, k in keys.items()}
    return {
        did: mask_vector(
            vectors[did],
            session,
            own_did=did,
            key=keys[did],
            peer_keys={p: j for p, j in public.items() if p != did},
            query=query,
        )
        for did in session.participants
    }


def test_masks_cancel_exactly() -> None:
    dids, keys = parties(5)
    rng = random.Random(7)
    vectors = {d: [rng.randint(-500, 5000) for _ in LAYOUT] for d in dids}
    session = Session.open("urn:uuid:1", dids, LAYOUT)
    zero = shares_for({d: [0] * len(LAYOUT) for d in dids}, keys, session)
    # The masks alone sum to zero, cell by cell, mod the modulus.
    assert [sum(col) % DEFAULT_MODULUS for col in zip(*zero.values(), strict=True)] == [0] * 4
    assert all(any(v != 0 for v in share) for share in zero.values())
    shares = shares_for(vectors, keys, session)
    expected = [sum(col) for col in zip(*vectors.values(), strict=True)]
    assert unmask_sum(list(shares.values()), session) == expected


def test_both_ends_derive_the_same_pair_mask_and_each_pair_its_own() -> None:
    (a, b, c), keys = parties(3)
    session = Session.open("s", [a, b, c], LAYOUT)
    ab = pair_mask(derive_shared_secret(keys[a], keys[b].public_jwk()), session, a, b, QUERY)
    ba = pair_mask(derive_shared_secret(keys[b], keys[a].public_jwk()), session, b, a, QUERY)
    ac = pair_mask(derive_shared_secret(keys[a], keys[c].public_jwk()), session, a, c, QUERY)
    assert ab == ba
    assert ab != ac
    secret = derive_shared_secret(keys[a], keys[b].public_jwk())
    # Bound to the session, the query, the layout and the modulus: any change, other masks.
    others = [
        pair_mask(secret, Session.open("s2", [a, b, c], LAYOUT), a, b, QUERY),
        pair_mask(secret, session, a, b, query_digest({"cohort": "another"})),
        pair_mask(secret, Session.open("s", [a, b, c], ("patients", "x", "y", "z")), a, b, QUERY),
        pair_mask(secret, Session.open("s", [a, b, c], LAYOUT, 2**40), a, b, QUERY),
    ]
    assert all(other[:4] != ab for other in others)


def test_sum_is_the_plain_sum_plus_each_hospitals_noise() -> None:
    dids, keys = parties(4)
    true = {d: [120 + 10 * i, 60 + i, 55, 7] for i, d in enumerate(dids)}
    noisy = {d: add_discrete_laplace(v, sensitivity=2, epsilon=0.5) for d, v in true.items()}
    session = Session.open("urn:uuid:noise", dids, LAYOUT)
    total = unmask_sum(list(shares_for(noisy, keys, session).values()), session)
    plain = [sum(col) for col in zip(*true.values(), strict=True)]
    noise = [
        sum(col)
        for col in zip(
            *([n - t for n, t in zip(noisy[d], true[d], strict=True)] for d in dids), strict=True
        )
    ]
    assert total == [p + n for p, n in zip(plain, noise, strict=True)]
    assert total != plain or all(n == 0 for n in noise)


def _chi_square(values: list[int], modulus: int, bins: int) -> float:
    counts = [0] * bins
    for v in values:
        counts[v * bins // modulus] += 1
    expected = len(values) / bins
    return sum((c - expected) ** 2 / expected for c in counts)


# 15 degrees of freedom: P(chi2 > 37.70) = 0.001. Keys and session ids are fixed, so the test
# is deterministic (it cannot flake), and a bias in the masks would show in it.
CHI2_15_P001 = 37.70


@pytest.mark.parametrize("cell", [7, 0, 2**40])
def test_a_hospitals_share_is_uniform_whatever_its_value(cell: int) -> None:
    dids = [f"did:web:h{i}.example" for i in range(3)]
    keys = {d: PrivateKey(_fixed_x25519(i)) for i, d in enumerate(dids)}
    public = {d: k.public_jwk() for d, k in keys.items()}
    first: list[int] = []
    for n in range(1500):
        session = Session.open(f"session-{n}", dids, ("patients",))
        share = mask_vector(
            [cell],
            session,
            own_did=dids[0],
            key=keys[dids[0]],
            peer_keys={d: public[d] for d in dids[1:]},
            query=QUERY,
        )
        first.append(share[0])
    assert _chi_square(first, DEFAULT_MODULUS, 16) < CHI2_15_P001
    # the low bits too (a modulus reduction gone wrong shows there first)
    assert _chi_square([v % 16 for v in first], 16, 16) < CHI2_15_P001
    assert cell not in first


def test_the_chi_square_check_sees_a_biased_share() -> None:
    # The same statistic on values that are not uniform (what an unmasked or badly masked
    # share looks like) is far over the bound.
    rng = random.Random(1)
    biased = [rng.randrange(DEFAULT_MODULUS // 2) for _ in range(1500)]
    assert _chi_square(biased, DEFAULT_MODULUS, 16) > 10 * CHI2_15_P001


def _fixed_x25519(i: int) -> dict[str, str]:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from connector.identity.signing import b64url_encode

    raw = bytes([i + 1]) * 32
    private = X25519PrivateKey.from_private_bytes(raw)
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "X25519", "d": b64url_encode(raw), "x": b64url_encode(public)}


def test_check_share_names_what_is_wrong() -> None:
    session = Session.open("s", ["did:web:a", "did:web:b"], LAYOUT)
    assert check_share([0, 1, 2, DEFAULT_MODULUS - 1], session) == [0, 1, 2, DEFAULT_MODULUS - 1]
    cases = {
        "not an array": {"v": 1},
        "3 values, the layout 4": [0, 1, 2],
        "maskedVector[1] is float": [0, 1.0, 2, 3],
        "maskedVector[0] is bool": [True, 1, 2, 3],
        "maskedVector[2] is str": [0, 1, "2", 3],
        "maskedVector[3] is outside": [0, 1, 2, DEFAULT_MODULUS],
        "maskedVector[0] is outside": [-1, 1, 2, 3],
    }
    for words, vector in cases.items():
        with pytest.raises(SecureAggregationError, match=re.escape(words)):
            check_share(vector, session)


def test_a_session_out_of_the_protocol_is_refused() -> None:
    good = {"session_id": "s", "participants": ("did:web:a", "did:web:b"), "layout": LAYOUT}
    bad = {
        "sorted and unique": {"participants": ("did:web:b", "did:web:a")},
        "2 to 256 needed": {"participants": ("did:web:a",)},
        "every participant is a DID": {"participants": ("a", "b")},
        "cell names must be unique": {"layout": ("x", "x")},
        "1 to 100000 cells": {"layout": ()},
        "2\\^k": {"modulus": 3 * 2**40},
        "sessionId": {"session_id": ""},
    }
    for words, change in bad.items():
        with pytest.raises(SecureAggregationError, match=words):
            Session(**{**good, **change})  # type: ignore[arg-type]
    with pytest.raises(SecureAggregationError, match="32 <= k <= 64"):
        Session("s", ("did:web:a", "did:web:b"), LAYOUT, 2**20)


def test_masking_refuses_a_vector_the_sum_could_overflow_or_a_stranger() -> None:
    (a, b), keys = parties(2)
    session = Session.open("s", [a, b], ("patients",), 2**32)
    peers = {b: keys[b].public_jwk()}
    mask_vector([2**30 - 1], session, own_did=a, key=keys[a], peer_keys=peers, query=QUERY)
    with pytest.raises(SecureAggregationError, match="modulus is too small") as caught:
        mask_vector([2**30 + 123], session, own_did=a, key=keys[a], peer_keys=peers, query=QUERY)
    assert str(2**30 + 123) not in str(caught.value)  # the value itself is never in an error
    with pytest.raises(SecureAggregationError, match="not one of them"):
        mask_vector([1], session, own_did="did:web:c", key=keys[a], peer_keys=peers, query=QUERY)
    with pytest.raises(SecureAggregationError, match="no key agreement key"):
        mask_vector([1], session, own_did=a, key=keys[a], peer_keys={}, query=QUERY)
    with pytest.raises(SecureAggregationError, match="key of"):
        ed = {b: generate_key("Ed25519").public_jwk()}
        mask_vector([1], session, own_did=a, key=keys[a], peer_keys=ed, query=QUERY)


def test_unmask_needs_every_share_and_reads_negative_sums() -> None:
    dids, keys = parties(3)
    session = Session.open("s", dids, ("patients",))
    shares = shares_for({d: [-5] for d in dids}, keys, session)
    assert unmask_sum(list(shares.values()), session) == [-15]
    with pytest.raises(SecureAggregationError, match="masks cancel only over all"):
        unmask_sum(list(shares.values())[:2], session)


def test_digests_are_canonical() -> None:
    assert layout_digest(["a", "b"]) != layout_digest(["b", "a"])
    assert query_digest({"a": 1, "b": [1, 2]}) == query_digest({"b": [1, 2], "a": 1})
    assert query_digest({"a": 1}) == query_digest({"a": 1, "secureAggregation": {"x": 1}})
    assert layout_digest(["a"]).startswith("sha-256:")


def test_the_wire_profile_as_documented_gives_the_same_share() -> None:
    """docs/federated-queries.md, step by step, with cryptography and rfc8785 directly: an
    implementer following it gets our shares."""
    import base64
    import hashlib
    import struct

    import rfc8785
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def digest(value: object) -> str:
        return "sha-256:" + b64(hashlib.sha256(rfc8785.dumps(value)).digest())

    raw = {
        d: X25519PrivateKey.from_private_bytes(bytes([i + 7]) * 32)
        for i, d in enumerate(["did:web:b.example", "did:web:a.example", "did:web:c.example"])
    }
    me = "did:web:b.example"
    layout = ["patients", "sex=female", "sex=male"]
    query = {"cohort": {"inclusionCriteria": [[{"termCodes": [{"code": "J45"}]}]]}}
    m, session_id, x = 2**52, "urn:uuid:doc", [130, 61, -2]
    expected = list(x)
    for peer in sorted(raw):
        if peer == me:
            continue
        peer_public = raw[peer].public_key()
        secret = raw[me].exchange(peer_public)
        info = rfc8785.dumps(
            {
                "protocol": "phems-secagg-1",
                "session": session_id,
                "pair": sorted([me, peer]),
                "length": 3,
                "modulus": str(m),
                "layout": digest(layout),
                "query": digest(query),
            }
        )
        key = HKDF(hashes.SHA256(), 32, hashlib.sha256(session_id.encode()).digest(), info)
        stream = Cipher(algorithms.ChaCha20(key.derive(secret), bytes(16)), None).encryptor()
        words = struct.unpack(">3Q", stream.update(bytes(24)))
        sign = 1 if peer.encode() > me.encode() else -1
        expected = [e + sign * (w % m) for e, w in zip(expected, words, strict=True)]
    expected = [e % m for e in expected]

    def jwk(private: X25519PrivateKey, with_private: bool) -> dict[str, str]:
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        out = {"kty": "OKP", "crv": "X25519", "x": b64(public)}
        if with_private:
            out["d"] = b64(private.private_bytes_raw())
        return out

    session = Session.open(session_id, list(raw), layout, m)
    ours = mask_vector(
        x,
        session,
        own_did=me,
        key=PrivateKey(jwk(raw[me], True)),
        peer_keys={d: jwk(k, False) for d, k in raw.items() if d != me},
        query=query_digest(query),
    )
    assert ours == expected
    assert session.layout_digest == digest(layout)
