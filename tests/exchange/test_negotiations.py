"""The provider's negotiation service with a real store and the outbox loop run by hand
(``sender.run_once``): a request is answered REQUESTED and decided by the loop after the
answer (agreed, held for approval, or refused); only a message received before is a repeat,
anything else the transition table forbids is refused and changes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connector.composition import Services, build_services
from connector.db.tables import audit_log, audit_pending, outbox
from connector.dsp.messages import (
    ContractAgreementVerificationMessage,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractRequestMessage,
)
from connector.dsp.negotiation import Negotiation
from connector.dsp.states import NegotiationState
from connector.errors import InvalidTransitionError
from connector.exchange.ports import STEP
from connector.identity.agreements import SIGNATURE_PROPERTY, sign_agreement
from connector.identity.credentials import VerifiedCredential
from connector.identity.did import did_key_from_public_jwk
from connector.identity.keys import ConnectorKeys
from connector.identity.signing import generate_key
from connector.identity.tokens import VerifiedCaller
from connector.publishing.records import DatasetRecord
from connector.settings import Settings
from tests.identity.conftest import DidServer, FakeClock, new_keys

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
AUTHORITY = did_key_from_public_jwk(generate_key("Ed25519").public_jwk())
RESEARCH = {
    "@id": "offer-research",
    "@type": "Offer",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"},
                {"leftOperand": "phems:membership", "operator": "eq", "rightOperand": True},
            ],
        }
    ],
}
APPROVAL = RESEARCH | {
    "@id": "offer-with-approval",
    "https://w3id.org/phems/ns/approvalRequired": True,
}
S = NegotiationState


@dataclass
class World:
    s: Services
    keys: ConnectorKeys  # the consumer's
    did: str  # the consumer's
    callback: str

    def caller(self, *, member: bool = True) -> VerifiedCaller:
        membership = VerifiedCredential(
            id="urn:uuid:m",
            types=("VerifiableCredential", "MembershipCredential"),
            issuer=AUTHORITY,
            subject=self.did,
            claims={},
            expires=T0 + timedelta(days=30),
        )
        return VerifiedCaller(
            did=self.did, credentials=(membership,) if member else (), jti="j", exp=T0
        )


@pytest.fixture
async def w(tmp_path: Path, did_server: DidServer) -> AsyncIterator[World]:
    keys = new_keys()
    did = did_server.publish(keys)
    settings = Settings(
        data_dir=tmp_path, trusted_issuers=[AUTHORITY], insecure_did_hosts=[did_server.netloc]
    )
    s = await build_services(settings, clock=FakeClock(T0))
    try:
        async with s.db.transaction() as conn:
            await s.dataset_store.insert(
                conn,
                DatasetRecord(
                    id="ds",
                    title="D",
                    offers=(RESEARCH, APPROVAL),
                    created_at=T0,
                    modified_at=T0,
                ),
            )
        yield World(s, keys, did, f"http://{did_server.netloc}/dsp/2025-1")
    finally:
        await s.aclose()


def _request(w: World, offer: dict[str, Any], consumer_pid: str = "urn:uuid:c1") -> Any:
    return ContractRequestMessage.model_validate(
        {
            "consumerPid": consumer_pid,
            "offer": offer | {"target": "ds"},
            "callbackAddress": w.callback,
        }
    )


async def _queued(s: Services) -> list[tuple[str, dict[str, Any]]]:
    """Outbox items neither sent nor failed: (type, body)."""
    async with s.engine.connect() as conn:
        query = (
            sa.select(outbox.c.message_type, outbox.c.body)
            .where(outbox.c.sent_at.is_(None), outbox.c.failed_at.is_(None))
            .order_by(outbox.c.id)
        )
        return [(r.message_type, json.loads(r.body)) for r in await conn.execute(query)]


async def _events(s: Services) -> list[str]:
    async with s.engine.connect() as conn:
        events: list[str] = []
        for table in (audit_log, audit_pending):
            events += list((await conn.execute(sa.select(table.c.event))).scalars())
        return events


async def _requested(w: World, offer: dict[str, Any] = RESEARCH, **caller: bool) -> Negotiation:
    n, created = await w.s.negotiations.receive_request(w.caller(**caller), _request(w, offer))
    assert created
    return n


async def test_a_request_is_answered_requested_and_agreed_by_the_loop_after(w: World) -> None:
    n = await _requested(w)
    assert n.state is S.REQUESTED and n.ack().state is S.REQUESTED
    # Recorded with a step for the loop, nothing decided yet: no agreement, no signature.
    assert [t for t, _ in await _queued(w.s)] == [STEP]
    assert (await w.s.negotiations.get_local(n.id)).state is S.REQUESTED
    assert await w.s.sender.run_once() == 1
    agreed = await w.s.negotiations.get_local(n.id)
    assert agreed.state is S.AGREED and agreed.provider_signature
    [(kind, body)] = await _queued(w.s)
    assert kind == "ContractAgreementMessage"
    assert body["agreement"][SIGNATURE_PROPERTY] == agreed.provider_signature
    assert await _events(w.s) == ["negotiation.requested", "negotiation.agreed"]


async def test_a_refusal_is_the_loops_decision_naming_the_constraint(w: World) -> None:
    n = await _requested(w, member=False)
    assert n.state is S.REQUESTED
    await w.s.sender.run_once()
    refused = await w.s.negotiations.get_local(n.id)
    assert refused.state is S.TERMINATED
    assert "membership" in " ".join(refused.termination_reason)
    assert [t for t, _ in await _queued(w.s)] == ["ContractNegotiationTerminationMessage"]


async def test_the_hold_for_approval_is_the_loops_decision(w: World) -> None:
    n = await _requested(w, APPROVAL)
    assert await w.s.negotiations.list(pending=True) == []
    await w.s.sender.run_once()
    [pending] = await w.s.negotiations.list(pending=True)
    assert pending.id == n.id and pending.state is S.REQUESTED
    assert await _queued(w.s) == []
    approved = await w.s.negotiations.approve(n.id, approver="dpo")
    assert approved.state is S.AGREED
    assert [t for t, _ in await _queued(w.s)] == ["ContractAgreementMessage"]


async def test_a_termination_before_the_decision_leaves_nothing_to_decide(w: World) -> None:
    n = await _requested(w)
    termination = ContractNegotiationTerminationMessage.model_validate(
        {"providerPid": n.id, "consumerPid": "urn:uuid:c1", "code": "x", "reason": ["gone"]}
    )
    assert (await w.s.negotiations.receive(w.caller(), n.id, termination)).state is S.TERMINATED
    await w.s.sender.run_once()  # the step finds nothing to decide
    assert (await w.s.negotiations.get_local(n.id)).state is S.TERMINATED
    assert await _queued(w.s) == []
    assert "negotiation.agreed" not in await _events(w.s)


async def _agreed(w: World) -> Negotiation:
    n = await _requested(w)
    await w.s.sender.run_once()
    return await w.s.negotiations.get_local(n.id)


def _event(n: Negotiation, event_type: str, **pids: str) -> ContractNegotiationEventMessage:
    return ContractNegotiationEventMessage.model_validate(
        {"providerPid": n.id, "consumerPid": "urn:uuid:c1", "eventType": event_type} | pids
    )


def _verification(w: World, n: Negotiation, **pids: str) -> ContractAgreementVerificationMessage:
    signature = sign_agreement(n.agreement or {}, w.did, w.keys.signing)
    return ContractAgreementVerificationMessage.model_validate(
        {"providerPid": n.id, "consumerPid": "urn:uuid:c1", SIGNATURE_PROPERTY: signature} | pids
    )


async def _refused_and_nothing_changed(w: World, n: Negotiation, message: Any) -> None:
    before = (
        await w.s.negotiations.get_local(n.id),
        await _queued(w.s),
        await _events(w.s),
    )
    with pytest.raises(InvalidTransitionError, match="not allowed"):
        await w.s.negotiations.receive(w.caller(), n.id, message)
    after = (
        await w.s.negotiations.get_local(n.id),
        await _queued(w.s),
        await _events(w.s),
    )
    assert after == before


async def test_an_accepted_event_never_sent_is_refused_in_agreed(w: World) -> None:
    n = await _agreed(w)
    await _refused_and_nothing_changed(w, n, _event(n, "ACCEPTED"))


async def test_a_counter_request_is_refused_in_agreed(w: World) -> None:
    n = await _agreed(w)
    counter = ContractRequestMessage.model_validate(
        {
            "providerPid": n.id,
            "consumerPid": "urn:uuid:c1",
            "offer": RESEARCH | {"target": "ds"},
            "callbackAddress": w.callback,
        }
    )
    await _refused_and_nothing_changed(w, n, counter)


async def test_after_finalized_only_the_verification_received_is_a_repeat(w: World) -> None:
    n = await _agreed(w)
    verification = _verification(w, n)
    answered = await w.s.negotiations.receive(w.caller(), n.id, verification)
    assert answered.state is S.VERIFIED  # the answer: the state the message created
    finalized = await w.s.negotiations.get_local(n.id)
    assert finalized.state is S.FINALIZED  # with our FINALIZED event queued
    # The consumer's retry (our answer was lost) is the same message: answered, no change.
    queued = await _queued(w.s)
    again = await w.s.negotiations.receive(w.caller(), n.id, verification)
    assert again == finalized and await _queued(w.s) == queued
    # Anything else is a new message the table does not allow in FINALIZED.
    await _refused_and_nothing_changed(w, n, _event(n, "ACCEPTED"))
    other = _verification(w, n, consumerPid="urn:uuid:someone-else")
    await _refused_and_nothing_changed(w, n, other)


async def test_a_repeat_of_the_initial_request_is_the_recorded_negotiation(w: World) -> None:
    n = await _requested(w)
    await w.s.sender.run_once()
    again, created = await w.s.negotiations.receive_request(w.caller(), _request(w, RESEARCH))
    assert not created and again.id == n.id and again.state is S.AGREED
    assert [t for t, _ in await _queued(w.s)] == ["ContractAgreementMessage"]  # no new step
