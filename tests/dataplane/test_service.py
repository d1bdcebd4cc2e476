"""The road from an agreement to data, with a fake fulfilment registered: refusals name the
failed constraint and touch no FHIR data; count and epsilon are spent exactly under concurrent
pulls; opted-out patients never reach the fulfilment; a dataset's scope is honoured; every
call is audited without its values."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from catalog.formats import Format, OutputType
from connector.api.app import create_app
from connector.composition import Services, build_services
from connector.dataplane.tokens import issue_access_token
from connector.db.tables import audit_log, audit_pending
from connector.dsp.agreement import AgreementRecord
from connector.dsp.states import Role, TransferState
from connector.dsp.transfer import Transfer
from connector.dsp.transfer_messages import DataAddress
from connector.errors import (
    BadRequestError,
    LimitExceededError,
    NotReadyError,
    PolicyViolationError,
)
from connector.fulfilment.fake import FakeFulfilment
from connector.identity.keys import ConnectorKeys
from connector.policy import MEMBERSHIP_CREDENTIAL, VerifiedCredential
from connector.ports import FhirResource, FlatViews, FulfilmentRequest, RequestFacts
from connector.publishing.records import DatasetRecord
from connector.settings import Settings
from tests.fulfilment.conftest import column, patient_ids

CONSUMER = "did:web:consumer.example"
AUTHORITY = "did:key:z6MkAuthority"
SECRET = "value-computed-from-patient-data"


def _facts(request: FulfilmentRequest) -> RequestFacts:
    """The fake reads ``{"purpose": ..., "epsilon": ..., "minCellSize": ...}``."""
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise BadRequestError("body: not JSON") from None
    return RequestFacts(
        output_type=OutputType.AGGREGATE,
        purpose=body.get("purpose"),
        epsilon=float(body.get("epsilon", 0.0)),
        min_cell_size=int(body.get("minCellSize", 10)),
    )


def _patients(request: FulfilmentRequest, facts: RequestFacts, views: FlatViews) -> bytes:
    ids = column(views.tables["patient"], "patient_id")
    return json.dumps({"patients": sorted(ids), "secret": SECRET}).encode()


class CountingSource:
    """The configured FHIR source, counting every request made to it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if callable(attr):
            self.calls += 1
        return attr


@dataclass
class World:
    services: Services
    fake: FakeFulfilment
    source: CountingSource
    data: Path


async def _world(
    tmp_path: Path, sample_files: Path, database_url: str | None = None, **settings: Any
) -> World:
    data = tmp_path / "fhir"
    shutil.copytree(sample_files, data)
    fake = FakeFulfilment(OutputType.AGGREGATE, _patients, facts=_facts)
    options: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "fhir_files_dir": data,
        "trusted_issuers": [AUTHORITY],
        "fhir_version_cache_seconds": 0.0,
        "job_poll_seconds": 0.1,
        **settings,
    }
    if database_url:
        options["database_url"] = database_url
    services = await build_services(Settings(**options), fulfilments=[fake])
    source = CountingSource(services.views.source)
    services.views.source = source  # type: ignore[assignment]
    return World(services, fake, source, data)


@pytest.fixture
async def world(tmp_path: Path, sample_files: Path) -> AsyncIterator[World]:
    w = await _world(tmp_path, sample_files)
    loop = asyncio.create_task(w.services.jobs.run())
    try:
        yield w
    finally:
        loop.cancel()
        await w.services.aclose()


def _constraint(left: str, op: str, right: Any) -> dict[str, Any]:
    return {"leftOperand": left, "operator": op, "rightOperand": right}


async def _agreement(
    s: Services,
    *constraints: dict[str, Any],
    dataset: str = "ds",
    scope: dict[str, Any] | None = None,
    aid: str = "urn:uuid:agreement",
) -> str:
    now = s.clock.now()
    async with s.db.transaction() as conn:
        if await s.dataset_store.get(conn, dataset) is None:
            await s.dataset_store.insert(
                conn,
                DatasetRecord(
                    id=dataset, title=dataset, scope=scope, created_at=now, modified_at=now
                ),
            )
        terms = {
            "@id": aid,
            "@type": "Agreement",
            "target": dataset,
            "assigner": s.did,
            "assignee": CONSUMER,
            "timestamp": "2026-11-01T11:00:00Z",
            "permission": [{"action": "use", "constraint": list(constraints)}],
        }
        await s.stores.agreements.insert(
            conn,
            AgreementRecord(
                id=aid,
                negotiation_id=f"{aid}:n",
                role=Role.PROVIDER,
                dataset_id=dataset,
                provider_did=s.did,
                consumer_did=CONSUMER,
                agreement=terms,
                provider_signature="p",
                consumer_signature="c",
                uses=0,
                epsilon_spent=0.0,
                created_at=now,
            ),
        )
    return aid


MEMBERSHIP = VerifiedCredential(
    types=frozenset({"VerifiableCredential", MEMBERSHIP_CREDENTIAL}),
    issuer=AUTHORITY,
    subject={"id": CONSUMER},
    valid_until=datetime.now(UTC) + timedelta(days=30),
)


async def _transfer(
    s: Services,
    agreement: str,
    *,
    tid: str = "urn:uuid:t1",
    membership: bool = True,
    fmt: Format = Format.AGGREGATE,
    state: TransferState = TransferState.STARTED,
    issued: datetime | None = None,
    keys: ConnectorKeys | None = None,
) -> str:
    """A transfer we provide under ``agreement`` (STARTED unless ``state``); returns its data
    plane token (the current one: the transfer's DataAddress carries it, as after a
    TransferStartMessage), issued at ``issued`` (default: now) and signed with ``keys``
    (default: ours)."""
    now = s.clock.now()
    token = issue_access_token(
        did=s.did,
        keys=keys or s.keys,
        consumer=CONSUMER,
        agreement_id=agreement,
        transfer_id=tid,
        now=issued or now,
        credentials=(MEMBERSHIP,) if membership else (),
    )
    address = DataAddress.model_validate(
        {
            "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
            "endpoint": f"http://127.0.0.1:9/dataplane/transfers/{tid}",
            "endpointProperties": [{"name": "authorization", "value": token}],
        }
    )
    t = replace(
        Transfer.new(
            id=tid,
            role=Role.PROVIDER,
            counterparty_did=CONSUMER,
            now=now,
            provider_pid=tid,
            consumer_pid=f"{tid}:c",
            agreement_id=agreement,
            format=fmt.value,
        ),
        state=state,
        data_address=address,
    )
    async with s.db.transaction() as conn:
        await s.stores.transfers.insert(conn, t)
    return token


async def _pull(
    s: Services, token: str, body: Mapping[str, Any], tid: str = "urn:uuid:t1"
) -> dict[str, Any]:
    async def read() -> bytes:
        return json.dumps(body).encode()

    result = await s.dataplane.pull(tid, token, body=read, media_type="application/json", params={})
    return dict(json.loads(b"".join([c async for c in result.chunks])))


async def _audit(s: Services) -> list[tuple[str, dict[str, Any]]]:
    await s.audit.flush()
    async with s.engine.connect() as conn:
        rows = (await conn.execute(sa.select(audit_log.c.event, audit_log.c.details))).all()
        assert not (await conn.execute(sa.select(audit_pending))).all()
    return [(event, json.loads(details)) for event, details in rows]


async def _uses(s: Services, aid: str) -> tuple[int, float]:
    async with s.db.reading() as conn:
        a = await s.stores.agreements.get(conn, aid)
    assert a is not None
    return a.uses, a.epsilon_spent


async def test_a_refusal_names_the_constraint_and_touches_no_data(world: World) -> None:
    s = world.services
    aid = await _agreement(s, _constraint("purpose", "eq", "research"))
    token = await _transfer(s, aid)
    with pytest.raises(PolicyViolationError) as refused:
        await _pull(s, token, {"purpose": "marketing"})
    assert "purpose" in refused.value.detail and "odrl/2/purpose" in refused.value.detail
    assert world.source.calls == 0 and world.fake.calls == []
    assert await s.jobs.store.recent() == []  # no view cache build was even queued
    assert await _uses(s, aid) == (0, 0.0)
    events = await _audit(s)
    assert [e for e, _ in events] == ["dataplane.refused"]
    assert events[0][1]["status"] == 403


async def test_membership_comes_from_the_token_and_is_required(world: World) -> None:
    s = world.services
    aid = await _agreement(s, _constraint("phems:membership", "eq", True))
    without = await _transfer(s, aid, tid="urn:uuid:t2", membership=False)
    with pytest.raises(PolicyViolationError, match="membership"):
        await _pull(s, without, {}, tid="urn:uuid:t2")
    assert (await _pull(s, await _transfer(s, aid), {}))["patients"]


async def test_exactly_count_calls_succeed_under_concurrency(world: World) -> None:
    await _count_race(world)


async def test_exactly_count_calls_succeed_on_postgresql(
    tmp_path: Path, sample_files: Path, pg_database: str
) -> None:
    w = await _world(tmp_path, sample_files, database_url=pg_database)
    loop = asyncio.create_task(w.services.jobs.run())
    try:
        await _count_race(w)
    finally:
        loop.cancel()
        await w.services.aclose()


async def _count_race(world: World) -> None:
    s = world.services
    aid = await _agreement(s, _constraint("count", "lteq", 10))
    token = await _transfer(s, aid)
    await _pull(s, token, {})  # builds the flattened tables once
    outcomes = await asyncio.gather(
        *(_pull(s, token, {}) for _ in range(32)), return_exceptions=True
    )
    succeeded = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, LimitExceededError)]
    assert len(succeeded) == 9 and len(refused) == 23, outcomes
    assert all("count" in r.detail for r in refused)
    assert await _uses(s, aid) == (10, 0.0)
    events = [e for e, _ in await _audit(s)]
    assert events.count("dataplane.call") == 10 and events.count("dataplane.refused") == 23


async def test_the_epsilon_budget_is_spent_and_enforced(world: World) -> None:
    s = world.services
    aid = await _agreement(s, _constraint("phems:epsilon", "lteq", 1.0))
    token = await _transfer(s, aid)
    await _pull(s, token, {"epsilon": 0.4})
    await _pull(s, token, {"epsilon": 0.4})
    with pytest.raises(LimitExceededError, match="epsilon"):
        await _pull(s, token, {"epsilon": 0.4})
    # More than the whole budget at once can never succeed: a policy refusal, not a 429.
    with pytest.raises(PolicyViolationError, match="epsilon"):
        await _pull(s, token, {"epsilon": 1.5})
    uses, spent = await _uses(s, aid)
    assert uses == 2 and spent == pytest.approx(0.8)


async def test_opted_out_patients_never_reach_the_fulfilment(world: World) -> None:
    s = world.services
    aid = await _agreement(s)
    token = await _transfer(s, aid)
    first = await _pull(s, token, {})
    patient = patient_ids(world.data)[5]
    assert patient in first["patients"]
    await s.optouts.add([patient], actor="dpo")  # while the cache exists
    second = await _pull(s, token, {})
    assert patient not in second["patients"] and len(second["patients"]) == 149
    # The fulfilment was handed other tables, of a new version.
    versions = {views.version for _, _, views in world.fake.calls}
    assert len(versions) == 2


async def test_each_dataset_gets_its_scope(world: World) -> None:
    s = world.services
    wide = await _agreement(s, dataset="all", aid="urn:uuid:a1")
    narrow = await _agreement(
        s,
        dataset="recent",
        aid="urn:uuid:a2",
        scope={"period": {"start": "2023-01-01"}, "resourceTypes": ["Condition"]},
    )
    everyone = await _pull(s, await _transfer(s, wide, tid="urn:uuid:t1"), {})
    recent = await _pull(s, await _transfer(s, narrow, tid="urn:uuid:t2"), {}, "urn:uuid:t2")
    assert 0 < len(recent["patients"]) < len(everyone["patients"]) == 150
    assert set(recent["patients"]) < set(everyone["patients"])


async def test_every_call_is_audited_without_its_values(world: World) -> None:
    s = world.services
    aid = await _agreement(s, _constraint("purpose", "eq", "research"))
    token = await _transfer(s, aid)
    answer = await _pull(s, token, {"purpose": "research", "epsilon": 0.1})
    assert answer["secret"] == SECRET
    events = await _audit(s)
    assert [e for e, _ in events] == ["dataplane.call", "dataplane.delivered"]
    call = events[0][1]
    assert call["epsilon"] == 0.1 and call["use"] == 1 and call["outputType"] == "aggregate"
    text = json.dumps(events)
    assert SECRET not in text and not any(p in text for p in answer["patients"])


async def test_a_failing_fulfilment_gives_the_use_back(world: World) -> None:
    s = world.services
    aid = await _agreement(s, _constraint("count", "lteq", 1))
    token = await _transfer(s, aid)

    def broken(request: FulfilmentRequest, facts: RequestFacts, views: FlatViews) -> bytes:
        raise RuntimeError("disk full")

    world.fake._handler = broken
    with pytest.raises(RuntimeError):
        await _pull(s, token, {"epsilon": 0.2})
    assert await _uses(s, aid) == (0, 0.0)
    world.fake._handler = _patients
    assert (await _pull(s, token, {}))["patients"]
    events = [e for e, _ in await _audit(s)]
    assert events == ["dataplane.call", "dataplane.failed", "dataplane.call", "dataplane.delivered"]


async def test_not_ready_then_served(tmp_path: Path, sample_files: Path) -> None:
    w = await _world(tmp_path, sample_files, dataplane_wait_seconds=0.0)
    s = w.services
    try:
        aid = await _agreement(s, _constraint("count", "lteq", 5))
        token = await _transfer(s, aid)
        with pytest.raises(NotReadyError) as not_ready:
            await _pull(s, token, {})  # no job loop runs: the build waits
        assert not_ready.value.headers()["Retry-After"] == "10"
        assert await _uses(s, aid) == (0, 0.0)  # nothing spent
        await s.jobs.drain()
        assert (await _pull(s, token, {}))["patients"]
    finally:
        await s.aclose()


async def test_the_rate_limit_per_data_user(tmp_path: Path, sample_files: Path) -> None:
    w = await _world(tmp_path, sample_files, dataplane_rate_limit=3)
    s = w.services
    loop = asyncio.create_task(s.jobs.run())
    try:
        aid = await _agreement(s)
        token = await _transfer(s, aid)
        for _ in range(3):
            await _pull(s, token, {})
        with pytest.raises(LimitExceededError, match="rate limit") as limited:
            await _pull(s, token, {})
        retry = int(limited.value.headers()["Retry-After"])
        assert 7 * 24 * 3600 - 60 < retry <= 7 * 24 * 3600 + 1
    finally:
        loop.cancel()
        await s.aclose()


async def test_over_http_statuses_and_headers(tmp_path: Path, sample_files: Path) -> None:
    data = tmp_path / "fhir"
    shutil.copytree(sample_files, data)
    fake = FakeFulfilment(OutputType.AGGREGATE, _patients, facts=_facts)
    settings = Settings(
        data_dir=tmp_path / "data",
        fhir_files_dir=data,
        trusted_issuers=[AUTHORITY],
        public_url="http://127.0.0.1:9999",
    )
    app: FastAPI = create_app(settings, fulfilments=[fake])
    async with app.router.lifespan_context(app):
        s: Services = app.state.services
        aid = await _agreement(s, _constraint("count", "lteq", 1))
        token = await _transfer(s, aid)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            url = "/dataplane/transfers/urn:uuid:t1"
            auth = {"Authorization": f"Bearer {token}"}
            bad = await client.post(url, content=b"{", headers=auth)
            assert bad.status_code == 400 and "not JSON" in bad.json()["detail"]
            ok = await client.post(url, json={}, headers=auth)
            assert ok.status_code == 200 and ok.json()["secret"] == SECRET
            spent = await client.post(url, json={}, headers=auth)
            assert spent.status_code == 429 and "count" in spent.json()["detail"]
            assert (await client.post(url, json={})).status_code == 401
            metrics = (await client.get("/metrics")).text
            assert 'phems_dataplane_calls_total{output_type="aggregate"} 1.0' in metrics
            refused = 'phems_dataplane_refusals_total{output_type="aggregate",status="429"} 1.0'
            assert refused in metrics
            assert 'phems_jobs{kind="view-cache",state="done"} 1.0' in metrics
            assert "phems_jobs_oldest_queued_seconds 0.0" in metrics
    assert len(fake.calls) == 1


def _unused(_: FhirResource) -> None:  # keeps the port type imported for readers
    return None
