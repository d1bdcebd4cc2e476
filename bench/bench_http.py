"""Over HTTP (`python bench/bench_catalog.py --http [N] [--rounds R]`).

A real connector process (SQLite) holding N published datasets (inserted straight into its
store before it starts: publishing 10,000 through the management API would SHACL-validate each)
and a second connector whose identity signs the DSP requests (the provider resolves its
did:web once, then caches it). Measured, alternating in one run:

1. `POST /dsp/2025-1/catalog/request?limit=100` (page 1 of N/100; token verification, replay
   guard, policy evaluation per dataset until the page is full, cached JSON fragments), against
   the same bytes from `prebuilt_server.py`;
2. `GET /catalog/datasets/{id}` as Turtle (render cache keyed by dct:modified), against the same.

Client-side token signing is outside the timed span. Ratio = median ours / median pre-built.
Every DSP request is authenticated (signature check and a replay-guard write to the store); that
cost is measured alone (`GET /dsp/2025-1/negotiations/<unknown>`: authenticate, then 404) and
the DSP page is also compared with "pre-built bytes behind the same authentication".
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from catalog.examples import example_dataset  # noqa: E402
from connector.clock import SystemClock  # noqa: E402
from connector.composition import build_services  # noqa: E402
from connector.identity.keys import load_or_create_keys  # noqa: E402
from connector.identity.tokens import TokenIssuer  # noqa: E402
from connector.publishing.healthdcat import metadata_of  # noqa: E402
from connector.publishing.records import DatasetRecord  # noqa: E402
from connector.settings import Settings  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.processes import start_connector, stop  # noqa: E402

OFFER = {
    "@id": "offer-research",
    "@type": "Offer",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"}
            ],
        }
    ],
}
REQUEST = {
    "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
    "@type": "CatalogRequestMessage",
}


async def populate(data_dir: Path, port: int, n: int) -> None:
    settings = Settings(data_dir=data_dir, port=port, public_url=f"http://127.0.0.1:{port}")
    services = await build_services(settings)
    meta = metadata_of(example_dataset())
    now = datetime.now(UTC)
    try:
        async with services.db.transaction() as conn:
            for i in range(n):
                await services.dataset_store.insert(
                    conn,
                    DatasetRecord(
                        id=f"cohort-{i:05d}",
                        title=f"Paediatric cohort {i}",
                        description="Children 0-17 with respiratory conditions.",
                        formats=("FHIR-Aggregate-PULL", "FHIR-Synthetic-PULL"),
                        offers=(OFFER,),
                        metadata=meta,
                        created_at=now,
                        modified_at=now,
                    ),
                )
    finally:
        await services.aclose()


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def main(argv: list[str]) -> None:
    rounds = 200
    if "--rounds" in argv:
        i = argv.index("--rounds")
        rounds = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    n = int(argv[0]) if argv else 10_000
    tmp = Path(tempfile.mkdtemp(prefix="bench-catalog-"))
    pp, pc, pb = free_port(), free_port(), free_port()
    hosts = f"127.0.0.1:{pp},127.0.0.1:{pc}"
    t0 = time.perf_counter()
    asyncio.run(populate(tmp / "provider", pp, n))
    print(f"inserted {n} datasets in {time.perf_counter() - t0:.1f}s")
    env = {"PHEMS_INSECURE_DID_HOSTS": hosts, "PHEMS_LOG_LEVEL": "WARNING"}
    provider = start_connector(tmp / "provider", pp, env)
    caller = start_connector(tmp / "caller", pc, env)
    prebuilt: subprocess.Popen[bytes] | None = None
    try:
        keys = load_or_create_keys(caller.data_dir / "keys")
        issuer = TokenIssuer(caller.did, keys, 120, [], SystemClock())
        url = provider.url + "/dsp/2025-1/catalog/request?limit=100"
        ttl_url = provider.url + "/catalog/datasets/cohort-00042"
        with httpx.Client(timeout=120) as http:
            t0 = time.perf_counter()
            first = http.post(url, json=REQUEST, headers=_auth(issuer, provider.did))
            print(f"first catalog request (builds the snapshot): {time.perf_counter() - t0:.2f}s")
            first.raise_for_status()
            ttl = http.get(ttl_url, headers={"Accept": "text/turtle"})
            ttl.raise_for_status()
            files = tmp / "prebuilt"
            files.mkdir()
            (files / "page").write_bytes(first.content)
            (files / "page.type").write_text("application/json")
            (files / "ttl").write_bytes(ttl.content)
            (files / "ttl.type").write_text("text/turtle")
            prebuilt = subprocess.Popen(
                [sys.executable, str(REPO / "bench/prebuilt_server.py"), str(pb), str(files)]
            )
            _wait(http, f"http://127.0.0.1:{pb}/ttl")
            times: dict[str, list[float]] = {
                k: [] for k in ("page", "page0", "ttl", "ttl0", "auth", "health")
            }
            auth_url = provider.url + "/dsp/2025-1/negotiations/urn:uuid:none"
            for _ in range(rounds):
                headers = _auth(issuer, provider.did)
                t = time.perf_counter()
                r = http.post(url, json=REQUEST, headers=headers)
                times["page"].append(time.perf_counter() - t)
                assert r.content == first.content
                t = time.perf_counter()
                http.post(f"http://127.0.0.1:{pb}/page", json=REQUEST, headers=headers)
                times["page0"].append(time.perf_counter() - t)
                auth = _auth(issuer, provider.did)
                t = time.perf_counter()
                assert http.get(auth_url, headers=auth).status_code == 404
                times["auth"].append(time.perf_counter() - t)
                t = time.perf_counter()
                http.get(provider.url + "/healthz")
                times["health"].append(time.perf_counter() - t)
                t = time.perf_counter()
                http.get(ttl_url, headers={"Accept": "text/turtle"})
                times["ttl"].append(time.perf_counter() - t)
                t = time.perf_counter()
                http.get(f"http://127.0.0.1:{pb}/ttl", headers={"Accept": "text/turtle"})
                times["ttl0"].append(time.perf_counter() - t)
    finally:
        if prebuilt is not None:
            prebuilt.terminate()
            prebuilt.wait(10)
        stop(caller.proc)
        stop(provider.proc)
    page, page0 = median_ms(times["page"]), median_ms(times["page0"])
    ttl_ms, ttl0 = median_ms(times["ttl"]), median_ms(times["ttl0"])
    print(f"DSP catalog page 100 of {n} ({len(first.content)} bytes), {rounds} rounds:")
    auth = median_ms(times["auth"])
    print(f"  ours {page:.2f} ms, pre-built {page0:.2f} ms, ratio {page / page0:.2f}")
    print(
        f"  DSP authentication alone (verified token, replay guard write, 404): {auth:.2f} ms; "
        f"ours vs pre-built behind the same authentication: {page / (page0 + auth):.2f}"
    )
    print(f"Turtle of one dataset ({len(ttl.content)} bytes):")
    print(f"  ours {ttl_ms:.2f} ms, pre-built {ttl0:.2f} ms, ratio {ttl_ms / ttl0:.2f}")
    print(
        f"  (the connector's GET /healthz, its stack's floor: {median_ms(times['health']):.2f} ms)"
    )


def _auth(issuer: TokenIssuer, audience: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.issue(audience)}"}


def _wait(http: httpx.Client, url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if http.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)
