"""The demo's data space: a data space authority, three children's hospitals with different
case mixes (one on a FHIR REST server when one is installed, the others on NDJSON) and one data
user, each a connector process on loopback with its own SQLite database under ``root``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from connector.clock import SystemClock
from connector.demo.processes import (
    DemoError,
    Process,
    free_port,
    load_fhir,
    start_connector,
    start_fhir_server,
)
from connector.identity.credentials import DATA_PERMIT, MEMBERSHIP, issue_credential
from connector.identity.did import did_from_url, did_key_from_public_jwk
from connector.identity.signing import PrivateKey, generate_key, save_private_jwk
from connector.publishing.sample import SAMPLE_DATASET_ID
from connector.sampledata import generate
from connector.sampledata.profiles import PROFILES

PERMIT_ID = "HDAB-DEMO-2026-0001"


@dataclass(frozen=True)
class Site:
    profile: str  # the sample data's case mix (connector/sampledata/profiles.py)
    seed: int

    @property
    def name(self) -> str:
        p = PROFILES[self.profile]
        return f"{p.organization}, {p.city}"

    @property
    def case_mix(self) -> str:
        return PROFILES[self.profile].description.split(":")[0]


SITES = (Site("general", 101), Site("cardiac", 202), Site("picu", 303))


@dataclass
class Hospital:
    site: Site
    process: Process
    did: str
    source: str  # "FHIR REST server" or "NDJSON files"
    patients: int
    api_key: str  # its management API key (the demo reads its statistics jobs)

    @property
    def dsp(self) -> str:
        return self.process.url + "/dsp/2025-1"


@dataclass
class DataSpace:
    root: Path
    authority_did: str
    hospitals: list[Hospital]
    user: Process
    user_did: str
    user_key: str  # the data user connector's management API key
    processes: list[Process] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.proc.pid for p in self.processes]


def _credential(key: PrivateKey, issuer: str, subject: str, kind: Any, claims: Any) -> str:
    now = datetime.now(UTC)
    return issue_credential(
        issuer, key, subject, kind, claims, now - timedelta(minutes=1), now + timedelta(days=30),
        SystemClock(),
    )  # fmt: skip


def generate_data(root: Path, patients: int, done: Callable[[Site], None]) -> dict[str, Path]:
    """Each hospital's Bulk NDJSON, generated with its profile (its case mix)."""
    out = {}
    for site in SITES:
        target = root / f"fhir-{site.profile}"
        if not any(target.glob("Patient.*.ndjson")):
            generate(target, patients=patients, seed=site.seed, profile=site.profile)
        out[site.profile] = target
        done(site)
    return out


@contextmanager
def data_space(
    root: Path,
    data: dict[str, Path],
    patients: int,
    sekmet: Path | None,
    started: Callable[[str], None],
) -> Iterator[DataSpace]:
    """Start the authority's credentials, the FHIR server (when there is one), the three
    hospitals and the data user; stop every process on the way out."""
    with ExitStack() as stack:
        processes: list[Process] = []

        def track(process: Process) -> Process:
            processes.append(process)
            stack.callback(process.stop)
            started(process.name)
            return process

        ports = [free_port() for _ in range(len(SITES) + 1)]
        authority = generate_key("Ed25519")
        authority_did = did_key_from_public_jwk(authority.public_jwk())
        (root / "authority").mkdir(parents=True, exist_ok=True, mode=0o700)
        save_private_jwk(authority, root / "authority" / "authority.jwk")
        common = {
            "PHEMS_TRUSTED_ISSUERS": authority_did,
            "PHEMS_INSECURE_DID_HOSTS": ",".join(f"127.0.0.1:{p}" for p in ports),
        }
        did_of = {p: did_from_url(f"http://127.0.0.1:{p}") for p in ports}
        for i, port in enumerate(ports):
            name = "data-user" if i == len(SITES) else f"hospital-{SITES[i].profile}"
            credentials = root / name / "credentials"
            credentials.mkdir(parents=True, exist_ok=True)
            token = _credential(authority, authority_did, did_of[port], MEMBERSHIP, {})
            (credentials / "membership.jwt").write_text(token)
        permit = {"datasets": [SAMPLE_DATASET_ID], "purpose": "research", "permitId": PERMIT_ID}
        token = _credential(authority, authority_did, did_of[ports[-1]], DATA_PERMIT, permit)
        (root / "data-user" / "credentials" / "data-permit.jwt").write_text(token)

        rest: dict[str, str] = {}
        if sekmet is not None:  # the first hospital reads its data from a FHIR REST server
            server = track(start_fhir_server(sekmet, root / "fhir-server", free_port()))
            load_fhir(server.url, data[SITES[0].profile])
            rest[SITES[0].profile] = server.url

        def hospital(i: int) -> Hospital:
            site, port = SITES[i], ports[i]
            env = {**common, "PHEMS_PARTICIPANT_NAME": site.name,
                   "PHEMS_FHIR_FILES_DIR": str(data[site.profile])}  # fmt: skip
            if site.profile in rest:
                env |= {"PHEMS_FHIR_SOURCE": "rest", "PHEMS_FHIR_BASE_URL": rest[site.profile]}
            data_dir = root / f"hospital-{site.profile}"
            process = start_connector(f"hospital-{site.profile}", data_dir, port, env)
            source = "FHIR REST server" if site.profile in rest else "NDJSON files"
            key = (data_dir / "management-api-key").read_text().strip()
            return Hospital(site, process, did_of[port], source, patients, key)

        def user() -> Process:
            env = {**common, "PHEMS_PARTICIPANT_NAME": "Paediatric Research Lab",
                   "PHEMS_HARVEST_TARGETS": ",".join(
                       f"http://127.0.0.1:{p}/dsp/2025-1" for p in ports[:-1])}  # fmt: skip
            return start_connector("data-user", root / "data-user", ports[-1], env)

        with ThreadPoolExecutor(len(ports)) as pool:
            futures = [pool.submit(hospital, i) for i in range(len(SITES))]
            user_future = pool.submit(user)
        for future in futures:  # every one started is stopped, even when another failed
            if future.exception() is None:
                track(future.result().process)
        if user_future.exception() is None:
            track(user_future.result())
        hospitals = [future.result() for future in futures]
        user_process = user_future.result()
        user_key = (root / "data-user" / "management-api-key").read_text().strip()
        yield DataSpace(
            root, authority_did, hospitals, user_process, did_of[ports[-1]], user_key, processes
        )


def wait_for_statistics(
    hospital: Hospital, progress: Callable[[float], None], deadline_s: float = 180
) -> None:
    """Until the hospital's statistics job (started by ``--with-sample-data``) is done: its
    published dataset then shows its size and age range."""
    headers = {"X-Api-Key": hospital.api_key}
    deadline = time.monotonic() + deadline_s
    with httpx.Client(base_url=hospital.process.url, headers=headers, timeout=10) as http:
        while time.monotonic() < deadline:
            jobs = [
                j for j in http.get("/management/jobs").json() if j["kind"] == "dataset-statistics"
            ]
            if jobs and all(j["state"] in ("done", "failed") for j in jobs):
                progress(100.0)
                return
            progress(max((j["percent"] for j in jobs), default=0.0))
            time.sleep(0.2)
    raise DemoError(f"{hospital.site.name}: statistics not computed in {deadline_s:g} s")
