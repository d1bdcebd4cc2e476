"""DID documents served over real HTTP on loopback and a resolver for them (from
tests/identity): the hospitals of these tests fetch each other's key agreement keys there.
And the management endpoint of federated queries on a real server, for the client and CLI."""

import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
import uvicorn
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse

from connector.errors import BadRequestError
from connector.federation.coordinator import FederatedQueries
from connector.federation.service import QueryIn, QueryService
from tests.conftest import free_port
from tests.federation.fakes import FakeHospital, FakeNetwork, MemoryKeys
from tests.identity.conftest import clock, did_server, http, resolver

__all__ = ["clock", "did_server", "http", "resolver"]


class ManagementStub:
    """``POST /management/queries`` as the connector's route serves it (the service of
    ``connector.federation.service`` over fake hospitals), on a real uvicorn server on
    loopback, so the client and the CLI talk real HTTP to it. ``hospitals`` may be replaced
    between requests."""

    api_key = "test-management-key"

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.hospitals: list[FakeHospital] = []
        self.audit: list[dict[str, Any]] = []
        self.keys = MemoryKeys()

    def add(self, cells: list[int], noise: list[int], behaviour: str = "ok") -> FakeHospital:
        did = f"did:web:hospital-{len(self.hospitals)}.example"
        hospital = FakeHospital(did, cells, noise, behaviour=behaviour)
        self.keys.keys[did] = hospital.key.public_jwk()
        self.hospitals.append(hospital)
        return hospital

    async def append(
        self, *, actor: str, event: str, details: dict[str, Any] | None = None
    ) -> None:
        self.audit.append({"actor": actor, "event": event, "details": details})

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/management/queries")
        async def run_query(body: QueryIn, x_api_key: Annotated[str, Header()] = "") -> Any:
            if x_api_key != self.api_key:
                return JSONResponse({"detail": "management API: wrong API key"}, 401)
            network = FakeNetwork(self.hospitals, self.keys)
            service = QueryService(
                FederatedQueries(directory=network, channel=network, codec=network.codec),
                self,
            )
            try:
                return await service.run(body, actor="management-api")
            except BadRequestError as exc:
                return JSONResponse({"detail": exc.detail}, 400)

        return app


@pytest.fixture
def management() -> Iterator[ManagementStub]:
    stub = ManagementStub(free_port())
    port = int(stub.url.rsplit(":", 1)[1])
    server = uvicorn.Server(
        uvicorn.Config(stub.app(), host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "stub server did not start"
        time.sleep(0.02)
    try:
        yield stub
    finally:
        server.should_exit = True
        thread.join(15)
