"""Two hospitals (sample data) and a data user as real processes on loopback, for the SDK and
its CLI. Hospital 0 also offers a dataset whose agreement allows one query, and one with a
synthetic offer the data user holds no data permit for (it holds one for the sample dataset)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from catalog.examples import PHEMS_NS, example_policies
from connector.identity.did import did_key_from_public_jwk
from connector.identity.signing import generate_key
from connector.sdk import Client
from tests.conftest import free_port
from tests.e2e.conftest import Api, Authority, dataset, launch
from tests.processes import ConnectorProcess, stop

SAMPLE_DATASET = "paediatric-respiratory-2019-2024"  # the data user holds a permit for it
UNPERMITTED_DATASET = "paediatric-asthma-synthetic"  # a synthetic offer, but no permit for it
SYNTHETIC = "FHIR-Synthetic-PULL"
ONE_QUERY_DATASET = "outpatients-one-query"
ONE_QUERY_OFFER = {
    "@id": "offer-one-query",
    "@type": "Offer",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"},
                {"leftOperand": PHEMS_NS + "membership", "operator": "eq", "rightOperand": True},
                {"leftOperand": PHEMS_NS + "outputType", "operator": "eq",
                 "rightOperand": "aggregate"},
                {"leftOperand": PHEMS_NS + "epsilon", "operator": "lteq", "rightOperand": 0.5},
            ],
        }
    ],
}  # fmt: skip
# Girls and boys seen as outpatients, by sex (tests/e2e/test_federated_queries.py).
QUERY: dict[str, Any] = {
    "version": "2",
    "display": "Outpatients by sex",
    "inclusionCriteria": [
        [
            {
                "context": {"system": "fdpg.mii.cds", "code": "Fall", "display": "Fall"},
                "termCodes": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "AMB",
                        "display": "ambulatory",
                    }
                ],
            }
        ]
    ],
    "measures": [{"type": "stratify", "by": "sex", "id": "sex"}],
    "options": {"purpose": "research"},
}


def fresh(query: dict[str, Any], name: str) -> dict[str, Any]:
    """``query`` with a measure id of its own: a query asked before is answered from the
    hospital's kept answers and spends no budget, so a test of the budget asks one no other
    test asks."""
    return {**query, "measures": [{"type": "stratify", "by": "sex", "id": name}]}


@pytest.fixture(scope="session")
def authority() -> Authority:
    key = generate_key("Ed25519")
    return Authority(key, did_key_from_public_jwk(key.public_jwk()))


@dataclass
class Space:
    hospitals: list[ConnectorProcess]
    user: ConnectorProcess
    dead: str  # DSP base URL where nothing listens
    tmp: Path
    ports: list[int]  # every connector's port; the last for a hospital a test starts

    def addresses(self) -> list[str]:
        return [h.url + "/dsp/2025-1" for h in self.hospitals]

    def client(self) -> Client:
        return Client(self.user.url, self.user.api_key)


@pytest.fixture(scope="session")
def space(tmp_path_factory: pytest.TempPathFactory, authority: Authority) -> Iterator[Space]:
    """Started once for the SDK and the CLI tests."""
    tmp = tmp_path_factory.mktemp("sdk")
    # two hospitals, the data user, a dead one, one a test starts (every one trusts them all)
    ports = [free_port() for _ in range(5)]
    user_did = f"did:web:127.0.0.1%3A{ports[2]}"
    with ExitStack() as stack:

        def hospital(i: int) -> ConnectorProcess:
            env = {"PHEMS_PARTICIPANT_NAME": f"Hospital {i}"}
            return launch(
                tmp, f"hospital-{i}", ports[i], ports, authority, env=env,
                args=("--with-sample-data",),
            )  # fmt: skip

        permit = authority.credential(
            user_did, "DataPermitCredential", datasets=[SAMPLE_DATASET], purpose="research",
            permitId="HDAB-TEST-1",
        )  # fmt: skip

        def user() -> ConnectorProcess:
            return launch(
                tmp, "user", ports[2], ports, authority,
                credentials={"membership.jwt": authority.credential(user_did),
                             "data-permit.jwt": permit},
                env={"PHEMS_PARTICIPANT_NAME": "Research Lab"},
            )  # fmt: skip

        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(hospital, 0), pool.submit(hospital, 1), pool.submit(user)]
        for future in futures:  # every started one is stopped, even when another failed
            if future.exception() is None:
                stack.callback(stop, future.result().proc)
        started = [future.result() for future in futures]
        papi = Api(started[0])
        synthetic = example_policies(UNPERMITTED_DATASET, base_url=started[0].url)[1]
        try:
            papi.post("/datasets", dataset(ONE_QUERY_DATASET, [ONE_QUERY_OFFER]), expect=201)
            only_synthetic = dataset(UNPERMITTED_DATASET, [synthetic]) | {"formats": [SYNTHETIC]}
            papi.post("/datasets", only_synthetic, expect=201)
        finally:
            papi.http.close()
        dead = f"http://127.0.0.1:{ports[3]}/dsp/2025-1"
        yield Space(started[:2], started[2], dead, tmp, ports)
