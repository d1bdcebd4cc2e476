"""A hospital's side of a secure round: the session it is asked in is read and checked, its
peers' key agreement keys come from their DID documents on loopback, and every refusal names
the bad part."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connector.errors import BadRequestError, UpstreamError
from connector.federation.hospital import answer_session, session_of
from connector.federation.secure import (
    SecureAggregationError,
    Session,
    query_digest,
    unmask_sum,
)
from connector.federation.wire import read_session, read_share, with_session
from connector.identity.did import build_did_document
from connector.identity.resolver import DidResolver
from tests.identity.conftest import DidServer, FakeClock, new_keys

LAYOUT = ["patients", "sex=female"]
QUERY: dict[str, Any] = {"cohort": {"inclusionCriteria": []}, "strata": ["female"]}


async def test_shares_from_two_hospitals_sum_to_their_vectors(
    did_server: DidServer, resolver: DidResolver
) -> None:
    keys = [new_keys(), new_keys()]
    dids = [did_server.publish(k) for k in keys]
    session = Session.open("urn:uuid:a", dids, LAYOUT)
    body = with_session(QUERY, session)
    assert read_session(body) == session
    shares = []
    for did, k, vector in zip(dids, keys, ([40, 25], [-3, 11]), strict=True):
        share = await answer_session(
            body,
            session,
            vector,
            layout=LAYOUT,
            own_did=did,
            key=k.key_agreement,
            resolver=resolver,
        )
        checked = read_share(share.as_json(), session, participant=did, query=query_digest(QUERY))
        shares.append(checked.masked_vector)
    assert unmask_sum(shares, session) == [37, 36]


async def test_the_hospital_refuses_a_session_that_does_not_fit(
    did_server: DidServer, resolver: DidResolver, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    own, peer = new_keys(), new_keys()
    me, other = did_server.publish(own), did_server.publish(peer)

    async def answer(session: Session, values: list[int], layout: list[str] = LAYOUT) -> None:
        await answer_session(
            with_session(QUERY, session),
            session,
            values,
            layout=layout,
            own_did=me,
            key=own.key_agreement,
            resolver=resolver,
        )

    with pytest.raises(BadRequestError, match=r"participants: .* \(this hospital\) is not listed"):
        await answer(Session.open("s", [other, did_server.publish(new_keys())], LAYOUT), [1, 1])
    with pytest.raises(BadRequestError, match="layout: the query's answer has the cells"):
        await answer(Session.open("s", [me, other], ["patients"]), [1])
    with pytest.raises(BadRequestError, match="modulus is too small"):
        await answer(Session.open("s", [me, other], LAYOUT, 2**32), [2**31, 0])
    missing = f"{did_server.host_did}:nobody-here"
    with pytest.raises(UpstreamError, match="cannot fetch the key agreement key of"):
        await answer(Session.open("s", [me, missing], LAYOUT), [1, 1])
    signing_only = did_server.publish(new_keys())
    document = build_did_document(signing_only, new_keys(), "http://x/dsp")
    del document["keyAgreement"]
    did_server.write(did_server.root / signing_only.rsplit(":", 1)[1] / "did.json", document)
    resolver_fresh = DidResolver(http, clock, insecure_hosts=[did_server.netloc])
    with pytest.raises(BadRequestError, match="no usable key agreement key for"):
        await answer_session(
            QUERY,
            Session.open("s", [me, signing_only], LAYOUT),
            [1, 1],
            layout=LAYOUT,
            own_did=me,
            key=own.key_agreement,
            resolver=resolver_fresh,
        )


@pytest.mark.parametrize(
    ("member", "words"),
    [
        ([], "secureAggregation: a JSON object"),
        ({"protocol": "x"}, "protocol: 'phems-secagg-1' is the one supported"),
        ({"sessionId": 5}, "sessionId: a string"),
        ({"modulus": "4503599627370496"}, "modulus: an integer"),
        ({"participants": "did:web:a"}, "participants: an array of strings"),
        ({"layout": [1]}, "layout: an array of strings"),
        ({"participants": ["did:web:b", "did:web:a"]}, "participants: must be sorted"),
        ({"extra": 1}, "unknown member 'extra'"),
    ],
)
def test_a_bad_session_member_is_named(member: Any, words: str) -> None:
    good = {
        "protocol": "phems-secagg-1",
        "sessionId": "s",
        "participants": ["did:web:a", "did:web:b"],
        "layout": LAYOUT,
        "modulus": 2**52,
    }
    value = {**good, **member} if isinstance(member, dict) else member
    with pytest.raises(SecureAggregationError, match=words):
        read_session({**QUERY, "secureAggregation": value})
    with pytest.raises(BadRequestError, match=words):  # what the hospital answers: a 400
        session_of({**QUERY, "secureAggregation": value})
    assert read_session(QUERY) is None and session_of(QUERY) is None
