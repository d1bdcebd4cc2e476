"""A connector process for bench/bench_pull.py: the connector's app, served as ``phems-connector
serve`` serves it, with a trivial fulfilment installed and two bench-only routes.

    PHEMS_... python bench/pull_server.py

Settings come from the environment (``PHEMS_*``), as for ``serve``. The app is
``create_app(settings, fulfilments=[FakeFulfilment])``: every aggregate transfer's pull walks
the whole data plane road (token, transfer, policy, rate limit, the dataset's flattened tables,
the spend transaction with its audit entry, the fulfilment, the delivered audit, the streamed
answer), and the fake answers ``BODY``. The bench routes:

- ``POST /bench/seed``: a dataset, an agreement (no constraints) and a STARTED aggregate
  transfer, returned with a data plane token for it;
- ``POST /bench/prebuilt/{tid}``: the same token check as a pull (``verify_access_token`` and
  the transfer named in the token), then ``BODY``;
- ``POST /bench/durable/{tid}``: the same, plus one write transaction holding an audit entry
  (the least a pull must write: its use is spent atomically with the audit record).
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from catalog.formats import Format, OutputType
from connector.api.app import create_app
from connector.cli import _tune_gc
from connector.composition import Services
from connector.dataplane.tokens import issue_access_token, verify_access_token
from connector.dsp.agreement import AgreementRecord
from connector.dsp.states import Role, TransferState
from connector.dsp.transfer import Transfer
from connector.dsp.transfer_messages import DataAddress, EndpointProperty
from connector.errors import AuthenticationError
from connector.fulfilment.fake import FakeFulfilment
from connector.identity.tokens import bearer_token
from connector.logs import configure_logging
from connector.publishing.records import DatasetRecord
from connector.settings import Settings

BODY = b'{"resourceType":"MeasureReport","status":"complete","type":"summary"}'
CONSUMER = "did:web:consumer.example"


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def seed_transfer(s: Services, scope: dict[str, Any] | None = None) -> tuple[str, str]:
    """A dataset (``scope``), an agreement without constraints and its STARTED aggregate
    transfer, stored as negotiation and transfer start would leave them: (transfer id,
    agreement id)."""
    now = s.clock.now()
    suffix = uuid.uuid4().hex[:8]
    dataset, aid, tid = f"bench-{suffix}", f"urn:uuid:a-{suffix}", f"urn:uuid:t-{suffix}"
    async with s.db.transaction() as conn:
        await s.dataset_store.insert(
            conn,
            DatasetRecord(id=dataset, title=dataset, scope=scope, created_at=now, modified_at=now),
        )
        terms = {
            "@id": aid,
            "@type": "Agreement",
            "target": dataset,
            "assigner": s.did,
            "assignee": CONSUMER,
            "timestamp": now.isoformat(),
            "permission": [{"action": "use"}],
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
        transfer = Transfer.new(
            id=tid,
            role=Role.PROVIDER,
            counterparty_did=CONSUMER,
            now=now,
            provider_pid=tid,
            consumer_pid=f"{tid}:c",
            agreement_id=aid,
            format=Format.AGGREGATE.value,
        )
        # The transfer's one valid token (valid 15 minutes), in its DataAddress as transfer
        # start leaves it: the data plane accepts only the newest token of a transfer.
        token = issue_access_token(
            did=s.did, keys=s.keys, consumer=CONSUMER, agreement_id=aid, transfer_id=tid, now=now
        )
        address = DataAddress(
            endpoint_type="https://w3id.org/idsa/v4.1/HTTP",
            endpoint=f"http://127.0.0.1/dataplane/transfers/{tid}",
            endpoint_properties=[
                EndpointProperty(name="authorization", value=token),
                EndpointProperty(name="authType", value="bearer"),
            ],
        )
        started = replace(transfer, state=TransferState.STARTED, data_address=address)
        await s.stores.transfers.insert(conn, started)
    _TOKENS[tid] = token
    return tid, aid


_TOKENS: dict[str, str] = {}


def token_for(s: Services, tid: str, aid: str) -> str:
    """The transfer's data plane token, as its DataAddress carries it."""
    return _TOKENS[tid]


async def seed(request: Request) -> dict[str, Any]:
    s = _services(request)
    tid, aid = await seed_transfer(s)
    return {"transfer": tid, "token": token_for(s, tid, aid)}


async def prebuilt(tid: str, request: Request) -> Response:
    s = _services(request)
    token = bearer_token(request.headers.get("authorization"))
    claims = verify_access_token(token, did=s.did, keys=s.keys, now=s.clock.now())
    if claims.transfer_id != tid:
        raise AuthenticationError("data plane token is for another transfer")
    await request.body()
    return Response(BODY, media_type="application/json")


async def durable(tid: str, request: Request) -> Response:
    """The least a pull must add to the token check: one write transaction (an audit entry),
    as the seam spends a use atomically with the audit record of the call."""
    s = _services(request)
    token = bearer_token(request.headers.get("authorization"))
    claims = verify_access_token(token, did=s.did, keys=s.keys, now=s.clock.now())
    if claims.transfer_id != tid:
        raise AuthenticationError("data plane token is for another transfer")
    await request.body()
    async with s.db.transaction() as conn:
        await s.audit.append(
            actor=claims.consumer,
            event="bench.durable",
            agreement_id=claims.agreement_id,
            transfer_id=tid,
            details={"bytes": len(BODY)},
            conn=conn,
        )
    return Response(BODY, media_type="application/json")


def build(settings: Settings) -> FastAPI:
    fake = FakeFulfilment(OutputType.AGGREGATE, lambda request, facts, views: BODY)
    app = create_app(settings, fulfilments=[fake])
    app.add_api_route("/bench/seed", seed, methods=["POST"])
    app.add_api_route("/bench/prebuilt/{tid}", prebuilt, methods=["POST"])
    app.add_api_route("/bench/durable/{tid}", durable, methods=["POST"])
    return app


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    config = uvicorn.Config(  # as `phems-connector serve` runs it
        build(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    _tune_gc()
    server.run()


if __name__ == "__main__":
    main()
