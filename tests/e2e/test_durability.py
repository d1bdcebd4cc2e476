"""kill -9 the provider while a negotiation waits in AGREED, and again in VERIFIED; started
again, the negotiation reaches FINALIZED and the consumer received each message once.

The consumer sits behind a proxy process that the test uses to hold back the provider's
messages (503), so the provider is killed exactly while a message is owed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.conftest import Api, Authority, dataset, launch, wait_for
from tests.processes import REPO, ConnectorProcess, start_connector, stop


@pytest.fixture
def proxy_port() -> Iterator[int]:
    yield free_port()


def start_proxy(port: int, target: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests/e2e/flaky_proxy.py"), str(port), target]
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/__proxy/log", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.05)
    stop(proc)
    raise TimeoutError("proxy did not start")


@pytest.mark.parametrize(
    "hold", ["agreement", "events"], ids=["killed-in-AGREED", "killed-with-FINALIZED-owed"]
)
def test_provider_killed_mid_negotiation(
    tmp_path: Path, authority: Authority, pg_db_factory: Any, hold: str
) -> None:
    pp, pc, px = free_port(), free_port(), free_port()
    consumer_url = f"http://127.0.0.1:{px}"  # everyone reaches the consumer through the proxy
    consumer_did = f"did:web:127.0.0.1%3A{px}"
    hosts = [pp, pc, px]
    db = pg_db_factory()
    procs: list[subprocess.Popen[bytes]] = []
    apis: list[Api] = []
    try:
        proxy = start_proxy(px, f"http://127.0.0.1:{pc}")
        procs.append(proxy)
        provider = launch(
            tmp_path, "provider", pp, hosts, authority, env={"PHEMS_DATABASE_URL": db}
        )
        procs.append(provider.proc)
        consumer = launch(
            tmp_path,
            "consumer",
            pc,
            hosts,
            authority,
            credentials={"m.jwt": authority.credential(consumer_did)},
            env={"PHEMS_PUBLIC_URL": consumer_url},
        )
        procs.append(consumer.proc)
        papi, capi = Api(provider), Api(consumer)
        apis.extend([papi, capi])
        papi.post("/datasets", dataset(), expect=201)
        httpx.post(f"{consumer_url}/__proxy/block", json={"substring": f"/{hold}"})
        offer = papi.get("/datasets/paediatric-asthma")["offers"][0] | {
            "target": "paediatric-asthma"
        }
        n = capi.post(
            "/negotiations",
            {"counterpartyAddress": provider.url + "/dsp/2025-1", "offer": offer},
            expect=201,
        )
        if hold == "agreement":
            wait_for(
                lambda: papi.get("/negotiations"), lambda v: bool(v) and v[0]["state"] == "AGREED"
            )
        else:
            # The provider records VERIFIED and its FINALIZED event in one step; the consumer
            # stays VERIFIED until that event arrives.
            wait_for(
                lambda: capi.get(f"/negotiations/{n['id']}"), lambda v: v["state"] == "VERIFIED"
            )
        time.sleep(0.5)  # let the provider's sender try (and fail) at least once
        provider.kill()
        httpx.post(f"{consumer_url}/__proxy/unblock")
        restarted: ConnectorProcess = start_connector(
            provider.data_dir, pp, {k: v for k, v in provider.env.items() if k.startswith("PHEMS_")}
        )
        procs.append(restarted.proc)
        final = wait_for(
            lambda: capi.get(f"/negotiations/{n['id']}"),
            lambda v: v["state"] in ("FINALIZED", "TERMINATED"),
            timeout=60,
        )
        assert final["state"] == "FINALIZED", final
        rapi = Api(restarted)
        apis.append(rapi)
        wait_for(lambda: rapi.get("/negotiations"), lambda v: v[0]["state"] == "FINALIZED")
        log = httpx.get(f"{consumer_url}/__proxy/log").json()
        delivered = [
            e["path"].rsplit("/", 1)[-1]
            for e in log
            if e["method"] == "POST" and e["status"] in (200, 201)
        ]
        assert delivered.count("agreement") == 1, log
        assert delivered.count("events") == 1, log
    finally:
        for api in apis:
            api.http.close()
        for proc in procs:
            stop(proc)
