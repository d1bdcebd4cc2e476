"""The Python client against the management endpoint on a real server on loopback: a
DataFrame and the MeasureReport back, typed errors for what gave no answer."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from connector.federation.client import (
    ConnectorUnreachable,
    NoHospitalAnswered,
    QueryRejected,
    aquery,
    query,
)
from tests.conftest import free_port
from tests.federation.conftest import ManagementStub

QUERY: dict[str, Any] = {"cohort": {"inclusionCriteria": []}, "strata": ["female", "male"]}


def three(management: ManagementStub) -> None:
    management.add([140, 70, 70], [3, -1, 2])
    management.add([95, 40, 55], [-4, 0, 1])
    management.add([61, 33, 28], [1, 2, -3])


def test_plain_query_gives_a_frame_with_a_breakdown(management: ManagementStub) -> None:
    three(management)
    result = query(QUERY, connector=management.url, api_key=management.api_key)
    assert result.status == "complete" and result.total == 290
    assert result.report is not None and result.report["resourceType"] == "MeasureReport"
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


async def test_secure_query_from_asyncio_has_no_breakdown(management: ManagementStub) -> None:
    three(management)
    result = await aquery(QUERY, connector=management.url, api_key=management.api_key, secure=True)
    assert result.total == 143 + 91 + 62 and result.answer["mode"] == "secure"
    assert set(result.frame["hospital"]) == {"all"}


def test_a_withheld_total_leaves_the_counts_missing(management: ManagementStub) -> None:
    management.add([12, 6, 6], [0, 0, 0])
    result = query(QUERY, connector=management.url, api_key=management.api_key)
    assert result.total is None and result.answer["withheld"]
    assert result.frame["count"].isna().all()
    assert result.frame["count"].dtype == pd.Int64Dtype()


def test_errors_are_typed_and_say_what_to_do(management: ManagementStub) -> None:
    management.add([140, 70, 70], [0, 0, 0], behaviour="budget")
    with pytest.raises(NoHospitalAnswered, match="no hospital answered: .*budget-exhausted") as e:
        query(QUERY, connector=management.url, api_key=management.api_key)
    assert e.value.answer["status"] == "failed"
    with pytest.raises(QueryRejected, match=r"HTTP 401\): management API: wrong API key"):
        query(QUERY, connector=management.url, api_key="wrong")
    with pytest.raises(QueryRejected, match="strata: a list of strings") as rejected:
        query({"strata": 1}, connector=management.url, api_key=management.api_key)
    assert rejected.value.status == 400
    with pytest.raises(ConnectorUnreachable, match="cannot reach the connector at"):
        query(QUERY, connector=f"http://127.0.0.1:{free_port()}", api_key="k")
