"""Two (or three) real connector processes on loopback, a data space authority, credentials,
and a headless browser (Debian's chromium, driven by Playwright) for the UI tests."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from jsonschema import Draft202012Validator
from playwright.sync_api import Browser, sync_playwright

from catalog.examples import example_dataset
from connector.api.problems import matching_templates
from connector.clock import SystemClock
from connector.identity.credentials import issue_credential
from connector.identity.did import did_key_from_public_jwk
from connector.identity.signing import PrivateKey, generate_key
from connector.publishing.healthdcat import metadata_of
from tests.conftest import free_port, fresh_pg_database
from tests.processes import ConnectorProcess, start_connector, stop

T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is required: apt-get install -y chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Authority:
    key: PrivateKey
    did: str

    def credential(self, subject: str, kind: str = "MembershipCredential", **claims: Any) -> str:
        now = datetime.now(UTC)
        return issue_credential(
            self.did,
            self.key,
            subject,
            kind,
            claims,  # type: ignore[arg-type]
            now - timedelta(minutes=1),
            now + timedelta(days=30),
            SystemClock(),
        )


@pytest.fixture(scope="session")
def hospital_fhir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small hospital's FHIR data (Bulk NDJSON) for the providers that answer queries."""
    from connector.sampledata import generate

    out = tmp_path_factory.mktemp("hospital-fhir")
    generate(out, patients=120, seed=11, profile="general")
    return out


# An aggregate query (docs/aggregate-queries.md): children with an asthma diagnosis, by sex.
ASTHMA_QUERY: dict[str, Any] = {
    "version": "2",
    "display": "Children with asthma",
    "inclusionCriteria": [
        [
            {
                "context": {"system": "fdpg.mii.cds", "code": "Diagnose", "display": "Diagnose"},
                "termCodes": [
                    {"system": "http://hl7.org/fhir/sid/icd-10", "code": "J45", "display": "Asthma"}
                ],
            }
        ]
    ],
    "measures": [{"type": "stratify", "by": "sex", "id": "sex"}],
    "options": {"purpose": "research"},
}


@pytest.fixture(scope="session")
def authority() -> Authority:
    key = generate_key("Ed25519")
    return Authority(key, did_key_from_public_jwk(key.public_jwk()))


def wait_for(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 30) -> T:
    """Poll ``fetch`` until ``done`` holds; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {timeout}s; last value: {value}")
        time.sleep(0.05)
        value = fetch()
    return value


class Api:
    """The management API of one connector. Every answer, success or error, is checked
    against the connector's own OpenAPI description: its status must be documented for the
    operation, and its body must match the documented schema."""

    def __init__(self, connector: ConnectorProcess) -> None:
        self.c = connector
        self.http = httpx.Client(
            base_url=connector.url, headers={"X-Api-Key": connector.api_key}, timeout=30
        )
        self._spec: dict[str, Any] | None = None

    def post(self, path: str, json: Any = None, expect: int | None = None) -> Any:
        r = self.http.post("/management" + path, json=json)
        if expect is not None:
            assert r.status_code == expect, r.text
        return self._documented("post", r)

    def get(self, path: str) -> Any:
        r = self.http.get("/management" + path)
        assert r.status_code == 200, r.text
        return self._documented("get", r)

    def _documented(self, method: str, r: httpx.Response) -> Any:
        if self._spec is None:
            self._spec = self.http.get("/openapi.json").json()
        spec = self._spec
        path = r.request.url.path
        operation = _operation(spec, method, path)
        response = operation["responses"].get(str(r.status_code))
        assert response is not None, f"{method} {path}: {r.status_code} is undocumented: {r.text}"
        media = r.headers["content-type"].split(";")[0]
        schema = response["content"][media]["schema"]
        body = r.json()
        validator = Draft202012Validator({**schema, "components": spec["components"]})
        problems = [e.message for e in validator.iter_errors(body)]
        assert not problems, f"{method} {path} {r.status_code}: {problems[:5]}"
        return body


def _operation(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """The documented operation for a request path: the most specific matching template that
    has the method."""
    for template in matching_templates(spec, path):
        if method in spec["paths"][template]:
            return spec["paths"][template][method]  # type: ignore[no-any-return]
    raise AssertionError(f"{method} {path} is not in the OpenAPI description")


@pytest.fixture
def pg_db_factory(pg_url: str) -> Iterator[Callable[[], str]]:
    with ExitStack() as databases:
        yield lambda: databases.enter_context(fresh_pg_database(pg_url, "phems_e2e"))


@dataclass
class Pair:
    provider: ConnectorProcess
    consumer: ConnectorProcess
    papi: Api
    capi: Api


def launch(
    tmp: Path,
    name: str,
    port: int,
    ports: list[int],
    authority: Authority,
    credentials: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> ConnectorProcess:
    data = tmp / name
    (data / "credentials").mkdir(parents=True, exist_ok=True)
    for filename, jwt in (credentials or {}).items():
        (data / "credentials" / filename).write_text(jwt)
    extra = {
        "PHEMS_TRUSTED_ISSUERS": authority.did,
        "PHEMS_INSECURE_DID_HOSTS": ",".join(f"127.0.0.1:{p}" for p in ports),
        "PHEMS_OUTBOX_POLL_SECONDS": "0.1",
        **(env or {}),
    }
    return start_connector(data, port, extra, args=args)


@contextmanager
def launched_pair(
    tmp_path: Path,
    authority: Authority,
    *,
    provider_env: dict[str, str] | None = None,
    consumer_env: dict[str, str] | None = None,
    member: bool = False,
) -> Iterator[Pair]:
    """A provider and a consumer as processes on loopback (``member``: the consumer holds
    the data space's membership credential), stopped on the way out."""
    pp, pc = free_port(), free_port()
    credentials = (
        {"membership.jwt": authority.credential(f"did:web:127.0.0.1%3A{pc}")} if member else None
    )
    provider = launch(tmp_path, "provider", pp, [pp, pc], authority, env=provider_env)
    try:
        consumer = launch(
            tmp_path,
            "consumer",
            pc,
            [pp, pc],
            authority,
            env=consumer_env,
            credentials=credentials,
        )
    except BaseException:
        stop(provider.proc)
        raise
    papi, capi = Api(provider), Api(consumer)
    try:
        yield Pair(provider, consumer, papi, capi)
    finally:
        papi.http.close()
        capi.http.close()
        stop(consumer.proc)
        stop(provider.proc)


@pytest.fixture
def pair(
    tmp_path: Path,
    authority: Authority,
    pg_db_factory: Callable[[], str],
    hospital_fhir: Path,
) -> Iterator[Pair]:
    """A provider on PostgreSQL with a small hospital's FHIR data, and a consumer (member of
    the data space) on SQLite."""
    with launched_pair(
        tmp_path,
        authority,
        provider_env={
            "PHEMS_DATABASE_URL": pg_db_factory(),
            "PHEMS_FHIR_FILES_DIR": str(hospital_fhir),
        },
        member=True,
    ) as p:
        yield p


RESEARCH_OFFER = {
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


def dataset(
    id: str = "paediatric-asthma", offers: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A dataset with full HealthDCAT-AP metadata (the management API refuses less)."""
    return {
        "id": id,
        "title": "Paediatric asthma cohort",
        "description": "Children 0-17 with asthma, 2015-2025",
        "formats": ["FHIR-Aggregate-PULL", "FHIR-Synthetic-PULL"],
        "offers": offers if offers is not None else [RESEARCH_OFFER],
        "metadata": metadata_of(example_dataset()),
    }


@dataclass
class Federation:
    """Two hospitals (one with sample data) and a data user harvesting them plus a dead one."""

    north: ConnectorProcess  # serve --with-sample-data
    south: ConnectorProcess  # datasets posted through the management API
    user: ConnectorProcess  # data user: member of the data space, harvests the others
    dead: str  # DSP base URL of a connector that is down
    napi: Api
    sapi: Api
    uapi: Api


@pytest.fixture(scope="module")
def federation(
    tmp_path_factory: pytest.TempPathFactory, authority: Authority
) -> Iterator[Federation]:
    tmp = tmp_path_factory.mktemp("federation")
    pn, ps, pu, pd = free_port(), free_port(), free_port(), free_port()
    ports = [pn, ps, pu, pd]
    user_did = f"did:web:127.0.0.1%3A{pu}"
    dead = f"http://127.0.0.1:{pd}/dsp/2025-1"
    started: list[ConnectorProcess] = []
    apis: list[Api] = []
    try:
        for name, port, env, args in (
            ("north", pn, {"PHEMS_PARTICIPANT_NAME": "Kinderklinik Nord"}, ("--with-sample-data",)),
            ("south", ps, {"PHEMS_PARTICIPANT_NAME": "Ospedale Pediatrico Sud"}, ()),
        ):
            started.append(launch(tmp, name, port, ports, authority, env=env, args=args))
        targets = ",".join(f"http://127.0.0.1:{p}/dsp/2025-1" for p in (pn, ps)) + "," + dead
        started.append(
            launch(
                tmp,
                "user",
                pu,
                ports,
                authority,
                credentials={"membership.jwt": authority.credential(user_did)},
                env={"PHEMS_HARVEST_TARGETS": targets, "PHEMS_PARTICIPANT_NAME": "Research Lab"},
            )
        )
        apis = [Api(c) for c in started]
        north, south, user = started
        yield Federation(north, south, user, dead, apis[0], apis[1], apis[2])
    finally:
        for api in apis:
            api.http.close()
        for c in reversed(started):
            stop(c.proc)
