"""The data user SDK's federated query against the management endpoint on a real server on
loopback (hospitals faked behind it): a DataFrame and the MeasureReport back, typed errors for
what gave no answer, and the same call from asyncio code."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from connector.sdk import BadRequest, BudgetExhausted, Client, Unauthorized, Unreachable
from tests.conftest import free_port
from tests.federation.conftest import ManagementStub

QUERY: dict[str, Any] = {"cohort": {"inclusionCriteria": []}, "strata": ["female", "male"]}


def three(management: ManagementStub) -> None:
    management.add([140, 70, 70], [3, -1, 2])
    management.add([95, 40, 55], [-4, 0, 1])
    management.add([61, 33, 28], [1, 2, -3])


@pytest.fixture
def client(management: ManagementStub) -> Iterator[Client]:
    with Client(management.url, management.api_key) as sdk:
        yield sdk


def test_plain_query_gives_a_frame_with_a_breakdown(
    management: ManagementStub, client: Client
) -> None:
    three(management)
    result = client.query(QUERY)
    assert result.status == "complete" and result.total == 290
    report = result.measure_report
    assert report is not None and report["resourceType"] == "MeasureReport"
    frame = result.frame
    assert list(frame.columns) == [
        "hospital",
        "group",
        "population",
        "stratifier",
        "stratum",
        "count",
        "score",
    ]
    combined = frame[frame["hospital"] == "all"]
    assert combined["count"].tolist() == [290, 150, 150]
    assert combined["stratum"].tolist() == ["", "female", "male"]
    assert set(frame["hospital"]) == {"all", *(h.did for h in management.hospitals)}
    assert frame.attrs["mode"] == "plain" and len(frame.attrs["hospitals"]) == 3
    audit = management.audit[-1]
    assert audit["event"] == "query.federated" and audit["details"]["status"] == "complete"
    assert "290" not in str(audit)  # the audit names hospitals and statuses, never a count


async def test_secure_query_from_asyncio_has_no_breakdown(
    management: ManagementStub, client: Client
) -> None:
    three(management)
    # asyncio code runs the SDK's (blocking) call in a thread, as docs/federated-queries.md says
    result = await asyncio.to_thread(client.query, QUERY, mode="secure")
    assert result.total == 143 + 91 + 62 and result.mode == "secure"
    assert set(result.frame["hospital"]) == {"all"}


def test_a_withheld_total_leaves_the_counts_missing(
    management: ManagementStub, client: Client
) -> None:
    management.add([12, 6, 6], [0, 0, 0])
    result = client.query(QUERY)
    assert result.total is None and result.answer["withheld"]
    assert result.frame["count"].isna().all()
    assert result.frame["count"].dtype == pd.Int64Dtype()


def test_errors_are_typed_and_say_what_to_do(management: ManagementStub, client: Client) -> None:
    management.add([140, 70, 70], [0, 0, 0], behaviour="budget")
    with pytest.raises(BudgetExhausted, match="no hospital answered: .*budget-exhausted") as e:
        client.query(QUERY)
    assert e.value.answer["status"] == "failed"
    with Client(management.url, "wrong") as wrong, pytest.raises(Unauthorized, match="API key"):
        wrong.query(QUERY)
    with pytest.raises(BadRequest, match="strata: a list of strings") as rejected:
        client.query({"strata": 1})
    assert rejected.value.status == 400
    with Client(f"http://127.0.0.1:{free_port()}", "k") as nowhere, pytest.raises(Unreachable):
        nowhere.query(QUERY)
