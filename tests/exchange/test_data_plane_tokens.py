"""The agreement's policy reaches the data plane through its tokens: a token issued at transfer
start or on refresh expires when the policy's time window ends or the credential it was
checked against lapses, and a refresh evaluates the policy again."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connector.composition import Services, build_services
from connector.dataplane.tokens import TOKEN_LIFETIME, verify_access_token
from connector.db.tables import audit_log, audit_pending, outbox
from connector.dsp.agreement import AgreementRecord
from connector.dsp.messages import DataAddress, TransferRequestMessage
from connector.dsp.states import Role, TransferState
from connector.dsp.transfer import Transfer
from connector.errors import (
    AuthenticationError,
    ForbiddenError,
    PolicyViolationError,
    UpstreamError,
)
from connector.identity.credentials import VerifiedCredential
from connector.identity.tokens import VerifiedCaller
from connector.publishing.records import DatasetRecord
from connector.settings import Settings
from tests.identity.conftest import FakeClock

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
AUTHORITY = "did:key:z6MkAuthority"
CONSUMER = "did:web:127.0.0.1%3A9"
MEMBER = {"leftOperand": "phems:membership", "operator": "eq", "rightOperand": True}


@dataclass
class World:
    services: Services
    clock: FakeClock


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeClock(T0)
    settings = Settings(
        data_dir=tmp_path, trusted_issuers=[AUTHORITY], insecure_did_hosts=["127.0.0.1:9"]
    )
    s = await build_services(settings, clock=clock)
    try:
        async with s.db.transaction() as conn:
            await s.dataset_store.insert(
                conn, DatasetRecord(id="ds", title="D", created_at=T0, modified_at=T0)
            )
        yield World(s, clock)
    finally:
        await s.aclose()


def _caller(membership_until: datetime, jti: str = "j") -> VerifiedCaller:
    membership = VerifiedCredential(
        id="urn:uuid:m",
        types=("VerifiableCredential", "MembershipCredential"),
        issuer=AUTHORITY,
        subject=CONSUMER,
        claims={},
        expires=membership_until,
    )
    return VerifiedCaller(did=CONSUMER, credentials=(membership,), jti=jti, exp=T0)


async def _agreement(s: Services, *constraints: dict[str, Any]) -> str:
    terms = {
        "@id": "urn:uuid:agreement",
        "@type": "Agreement",
        "target": "ds",
        "assigner": s.did,
        "assignee": CONSUMER,
        "timestamp": "2026-11-01T11:00:00Z",
        "permission": [{"action": "use", "constraint": list(constraints)}],
    }
    record = AgreementRecord(
        id="urn:uuid:agreement",
        negotiation_id="urn:uuid:n",
        role=Role.PROVIDER,
        dataset_id="ds",
        provider_did=s.did,
        consumer_did=CONSUMER,
        agreement=terms,
        provider_signature="p",
        consumer_signature="c",
        uses=0,
        epsilon_spent=0.0,
        created_at=T0,
    )
    async with s.db.transaction() as conn:
        await s.stores.agreements.insert(conn, record)
    return record.id


async def _start(s: Services, caller: VerifiedCaller) -> tuple[str, dict[str, str]]:
    """Requests a transfer; returns its id and the DataAddress's endpoint properties."""
    message = TransferRequestMessage.model_validate(
        {
            "consumerPid": "urn:uuid:c1",
            "agreementId": "urn:uuid:agreement",
            "format": "FHIR-Aggregate-PULL",
            "callbackAddress": "http://127.0.0.1:9/dsp",
        }
    )
    t, created = await s.transfers.receive_request(caller, message)
    # The answer is REQUESTED; the start is the outbox loop's step after it.
    assert created and t.state is TransferState.REQUESTED
    assert await s.sender.run_once() == 1
    assert (await s.transfers.get_local(t.id)).state is TransferState.STARTED
    async with s.engine.connect() as conn:
        query = sa.select(outbox.c.body).where(outbox.c.message_type == "TransferStartMessage")
        body = json.loads((await conn.execute(query)).scalar_one())
    return t.id, {p["name"]: p["value"] for p in body["dataAddress"]["endpointProperties"]}


def _exp(s: Services, token: str, now: datetime) -> datetime:
    """The token's expiry; it must be ours and valid at ``now``."""
    return verify_access_token(token, did=s.did, keys=s.keys, now=now).expires


async def _events(s: Services) -> list[str]:
    async with s.engine.connect() as conn:
        events: list[str] = []
        for table in (audit_pending, audit_log):
            query = sa.select(table.c.event).where(table.c.transfer_id.is_not(None))
            events += list((await conn.execute(query)).scalars())
        return events


async def test_without_a_time_bound_a_token_lives_its_full_lifetime(world: World) -> None:
    s = world.services
    await _agreement(s, MEMBER)
    tid, props = await _start(s, _caller(T0 + timedelta(days=30)))
    assert _exp(s, props["authorization"], T0) == T0 + TOKEN_LIFETIME
    assert props["expiresIn"] == str(int(TOKEN_LIFETIME.total_seconds()))
    token, expires = await s.transfers.refresh_token(_caller(T0 + timedelta(days=30), "j2"), tid)
    assert expires == T0 + TOKEN_LIFETIME == _exp(s, token, T0)


async def test_the_agreements_end_caps_the_token_and_refusing_a_refresh_after_it(
    world: World,
) -> None:
    s = world.services
    end = T0 + timedelta(minutes=4)
    await _agreement(
        s, MEMBER, {"leftOperand": "dateTime", "operator": "lt", "rightOperand": end.isoformat()}
    )
    caller = _caller(T0 + timedelta(days=30))
    tid, props = await _start(s, caller)
    assert _exp(s, props["authorization"], T0) == end
    assert props["expiresIn"] == "240"

    world.clock.advance(180)  # still inside the window: a token until its end
    token, expires = await s.transfers.refresh_token(_caller(T0 + timedelta(days=30), "j2"), tid)
    assert expires == end == _exp(s, token, world.clock.now())

    world.clock.advance(60)  # the window has closed
    with pytest.raises(PolicyViolationError, match="dateTime"):
        await s.transfers.refresh_token(_caller(T0 + timedelta(days=30), "j3"), tid)
    events = await _events(s)
    assert events.count("transfer.token-issued") == 1
    assert events.count("transfer.token-refused") == 1


async def test_a_lapsing_membership_caps_the_token_and_a_renewed_one_refreshes(
    world: World,
) -> None:
    s = world.services
    await _agreement(s, MEMBER)
    lapse = T0 + timedelta(minutes=10)
    tid, props = await _start(s, _caller(lapse))
    assert _exp(s, props["authorization"], T0) == lapse

    world.clock.advance(600)
    with pytest.raises(PolicyViolationError, match="membership"):
        await s.transfers.refresh_token(_caller(lapse, "j2"), tid)
    token, expires = await s.transfers.refresh_token(_caller(T0 + timedelta(days=1), "j3"), tid)
    assert expires == world.clock.now() + TOKEN_LIFETIME


async def test_start_and_refresh_spend_no_use_a_used_up_agreement_gets_no_token(
    world: World,
) -> None:
    """The agreement's uses (ODRL count) are spent by data plane calls, one each
    (tests/dataplane): a transfer start and token refreshes spend none, and once the calls
    have used them up, no fresh token is issued."""
    s = world.services
    once = {"leftOperand": "count", "operator": "lteq", "rightOperand": 1}
    await _agreement(s, MEMBER, once)
    caller = _caller(T0 + timedelta(days=30))
    tid, _ = await _start(s, caller)
    for jti in ("j2", "j3"):
        await s.transfers.refresh_token(_caller(T0 + timedelta(days=30), jti), tid)
    async with s.db.transaction() as conn:
        agreement = await s.stores.agreements.get(conn, "urn:uuid:agreement")
        assert agreement is not None and agreement.uses == 0
        await s.stores.agreements.spend(conn, agreement.id)  # the one data plane call
    with pytest.raises(PolicyViolationError, match="count"):
        await s.transfers.refresh_token(_caller(T0 + timedelta(days=30), "j4"), tid)


async def _latest_start(s: Services) -> dict[str, str]:
    async with s.engine.connect() as conn:
        query = (
            sa.select(outbox.c.body)
            .where(outbox.c.message_type == "TransferStartMessage")
            .order_by(outbox.c.id.desc())
            .limit(1)
        )
        body = json.loads((await conn.execute(query)).scalar_one())
    return {p["name"]: p["value"] for p in body["dataAddress"]["endpointProperties"]}


async def test_a_resume_by_the_provider_keeps_to_the_agreements_window(world: World) -> None:
    s = world.services
    end = T0 + timedelta(minutes=30)
    window = {"leftOperand": "dateTime", "operator": "lteq", "rightOperand": end.isoformat()}
    await _agreement(s, MEMBER, window)
    tid, _ = await _start(s, _caller(T0 + timedelta(days=30)))
    await s.transfers.suspend(tid, reason="maintenance", actor="dpo")

    world.clock.advance(20 * 60)  # 10 minutes left: the fresh token ends with the window
    resumed = await s.transfers.resume(tid, actor="dpo")
    assert resumed.state is TransferState.STARTED
    props = await _latest_start(s)
    assert _exp(s, props["authorization"], world.clock.now()) == end  # 12:30:00.000001 floored
    assert props["expiresIn"] == "600"

    await s.transfers.suspend(tid, reason="again", actor="dpo")
    world.clock.advance(11 * 60)  # past the window: no resume, the transfer stays suspended
    with pytest.raises(PolicyViolationError, match="cannot be resumed.*dateTime"):
        await s.transfers.resume(tid, actor="dpo")
    assert (await s.transfers.get_local(tid)).state is TransferState.SUSPENDED


@pytest.mark.parametrize(
    ("endpoint", "words"),
    [
        ("http://169.254.169.254/latest", "must be on the caller's own host"),
        ("https://127.0.0.1:9/dataplane/transfers/x/token", None),
        ("http://127.0.0.1:9/dataplane/transfers/x/token", None),
    ],
    ids=["elsewhere", "own-host-https", "own-host-insecure-listed"],
)
async def test_the_consumer_posts_its_token_only_to_the_providers_own_host(
    world: World, endpoint: str, words: str | None
) -> None:
    s = world.services
    t = Transfer.new(
        id="urn:uuid:c9",
        role=Role.CONSUMER,
        counterparty_did=CONSUMER,  # here: the provider, on 127.0.0.1:9
        now=T0,
        consumer_pid="urn:uuid:c9",
        provider_pid="urn:uuid:p9",
    )
    address = DataAddress.model_validate(
        {
            "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
            "endpoint": "http://127.0.0.1:9/dataplane/transfers/x",
            "endpointProperties": [{"name": "refreshEndpoint", "value": endpoint}],
        }
    )
    t = replace(t, state=TransferState.STARTED, data_address=address)
    async with s.db.transaction() as conn:
        await s.stores.transfers.insert(conn, t)
    if words is None:
        assert (await s.transfers.refresh_endpoint(t.id))[1] == endpoint
    else:
        with pytest.raises(UpstreamError, match=f"refreshEndpoint {words}"):
            await s.transfers.refresh_endpoint(t.id)


# -- one valid token a transfer (issue 18, "also found") ----------------------------------------
# Intended: a transfer has one valid data plane token, the newest. A refresh retires the token
# it replaces; a provider's suspension ends the access its tokens gave, and the resume hands a
# new one (a leaked token stays dead).


async def test_a_refresh_retires_the_token_it_replaces(world: World) -> None:
    s = world.services
    await _agreement(s, MEMBER)
    tid, props = await _start(s, _caller(T0 + timedelta(days=30)))
    old = props["authorization"]
    assert (await s.dataplane.authorize(old, tid))[1].id == tid
    new, _ = await s.transfers.refresh_token(_caller(T0 + timedelta(days=30), "j2"), tid)
    assert (await s.dataplane.authorize(new, tid))[1].id == tid
    with pytest.raises(AuthenticationError, match="replaced"):
        await s.dataplane.authorize(old, tid)


async def test_a_token_from_before_a_suspension_does_not_work_after_the_resume(
    world: World,
) -> None:
    s = world.services
    await _agreement(s, MEMBER)
    tid, props = await _start(s, _caller(T0 + timedelta(days=30)))
    old = props["authorization"]
    await s.transfers.suspend(tid, reason="token leaked", actor="dpo")
    with pytest.raises(ForbiddenError, match="SUSPENDED"):
        await s.dataplane.authorize(old, tid)
    world.clock.advance(1)
    await s.transfers.resume(tid, actor="dpo")
    fresh = (await _latest_start(s))["authorization"]
    assert fresh != old
    assert (await s.dataplane.authorize(fresh, tid))[1].id == tid
    with pytest.raises(AuthenticationError, match="replaced"):
        await s.dataplane.authorize(old, tid)


async def test_a_token_for_another_transfer_is_refused(world: World) -> None:
    s = world.services
    await _agreement(s, MEMBER)
    tid, props = await _start(s, _caller(T0 + timedelta(days=30)))
    with pytest.raises(AuthenticationError, match="another transfer"):
        await s.dataplane.authorize(props["authorization"], "urn:uuid:other")
