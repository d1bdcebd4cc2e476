"""Two provider replicas sharing one PostgreSQL database (and keys, as behind one load
balancer): many negotiations complete, and each outbound message is delivered exactly once
although both replicas' senders claim work (FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port
from tests.e2e.conftest import Api, Authority, dataset, launch, wait_for
from tests.e2e.test_durability import start_proxy
from tests.processes import start_connector, stop

N = 16


def test_two_replicas_share_the_work(
    tmp_path: Path, authority: Authority, pg_db_factory: Any
) -> None:
    pa, pb, pc, px = free_port(), free_port(), free_port(), free_port()
    hosts = [pa, pb, pc, px]
    db = pg_db_factory()
    consumer_url = f"http://127.0.0.1:{px}"
    procs: list[subprocess.Popen[bytes]] = []
    apis: list[Api] = []
    try:
        procs.append(start_proxy(px, f"http://127.0.0.1:{pc}"))
        a = launch(tmp_path, "replica-a", pa, hosts, authority, env={"PHEMS_DATABASE_URL": db})
        procs.append(a.proc)
        # Replica B: same keys, same database, same public URL (the load balancer's).
        shutil.copytree(a.data_dir / "keys", tmp_path / "replica-b" / "keys")
        b = start_connector(
            tmp_path / "replica-b",
            pb,
            {
                **{k: v for k, v in a.env.items() if k.startswith("PHEMS_")},
                "PHEMS_DATA_DIR": str(tmp_path / "replica-b"),
                "PHEMS_PORT": str(pb),
                "PHEMS_MANAGEMENT_API_KEY": a.api_key,
            },
        )
        procs.append(b.proc)
        assert b.did == a.did
        consumer = launch(
            tmp_path,
            "consumer",
            pc,
            hosts,
            authority,
            credentials={"m.jwt": authority.credential(f"did:web:127.0.0.1%3A{px}")},
            env={"PHEMS_PUBLIC_URL": consumer_url},
        )
        procs.append(consumer.proc)
        papi, capi = Api(a), Api(consumer)
        apis += [papi, capi]
        papi.post("/datasets", dataset(), expect=201)
        offer = papi.get("/datasets/paediatric-asthma")["offers"][0] | {
            "target": "paediatric-asthma"
        }
        ids = []
        for i in range(N):
            replica = a if i % 2 == 0 else b
            n = capi.post(
                "/negotiations",
                {
                    "counterpartyAddress": replica.url + "/dsp/2025-1",
                    "counterpartyId": a.did,
                    "offer": offer,
                },
                expect=201,
            )
            ids.append(n["id"])
        wait_for(
            lambda: [capi.get(f"/negotiations/{i}")["state"] for i in ids],
            lambda states: all(s in ("FINALIZED", "TERMINATED") for s in states),
            timeout=90,
        )
        assert {capi.get(f"/negotiations/{i}")["state"] for i in ids} == {"FINALIZED"}
        log = httpx.get(f"{consumer_url}/__proxy/log").json()
        delivered = Counter(e["path"] for e in log if e["method"] == "POST" and e["status"] == 200)
        agreements = [p for p in delivered if p.endswith("/agreement")]
        finals = [p for p in delivered if p.endswith("/events")]
        assert len(agreements) == N and all(delivered[p] == 1 for p in agreements), delivered
        assert len(finals) == N and all(delivered[p] == 1 for p in finals), delivered
        assert len(papi.get("/agreements")) == N
        sent_by = {name: r.log().count('"msg": "sent ') for name, r in (("a", a), ("b", b))}
        assert sum(sent_by.values()) >= 2 * N and min(sent_by.values()) > 0, sent_by
    finally:
        for api in apis:
            api.http.close()
        for proc in procs:
            stop(proc)
