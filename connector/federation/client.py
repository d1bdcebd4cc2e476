"""Federated queries from Python: the data user's side of ``POST /management/queries``.

    from connector.federation.client import query

    result = query(cohort, connector="http://127.0.0.1:8080", api_key=KEY, secure=True)
    result.frame          # pandas DataFrame, one row per count (connector.federation.frame)
    result.report         # the combined FHIR MeasureReport (dict)
    result.hospitals      # each hospital's status

It talks to the data user's own running connector, which holds the agreements, asks the
hospitals and combines their answers. Errors are typed::

    QueryClientError
    ├── ConnectorUnreachable    the connector's management API cannot be reached
    ├── QueryRejected           the connector refused the request (bad query, API key, ...)
    └── NoHospitalAnswered      the query ran, but no hospital contributed (``.answer``)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from connector.federation.frame import answer_frame

if TYPE_CHECKING:
    import pandas as pd

PATH = "/management/queries"


def who(hospital: Mapping[str, Any]) -> str:
    """A hospital as people read it: its label and DID."""
    did, label = str(hospital.get("did")), hospital.get("label")
    return f"{label} ({did})" if label and label != did else did


class QueryClientError(Exception):
    """A federated query that gave no answer; the message is one line a user can act on."""


class ConnectorUnreachable(QueryClientError):
    pass


class QueryRejected(QueryClientError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class NoHospitalAnswered(QueryClientError):
    def __init__(self, answer: Mapping[str, Any]) -> None:
        reasons = "; ".join(
            f"{who(h)}: {h.get('status')}: {h.get('detail')}" for h in answer.get("hospitals", [])
        )
        super().__init__(f"no hospital answered: {reasons}")
        self.answer = answer


@dataclass
class QueryResult:
    answer: dict[str, Any]

    @property
    def report(self) -> dict[str, Any] | None:
        report = self.answer.get("measureReport")
        return report if isinstance(report, dict) else None

    @property
    def frame(self) -> pd.DataFrame:
        return answer_frame(self.answer)

    @property
    def status(self) -> str:
        return str(self.answer.get("status"))

    @property
    def total(self) -> int | None:
        total = self.answer.get("total")
        return total if isinstance(total, int) else None

    @property
    def hospitals(self) -> list[dict[str, Any]]:
        return list(self.answer.get("hospitals", []))


def request_body(
    cohort: Mapping[str, Any],
    *,
    secure: bool = False,
    hospitals: Sequence[str] = (),
    timeout_seconds: float | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"query": dict(cohort), "mode": "secure" if secure else "plain"}
    if hospitals:
        body["hospitals"] = list(hospitals)
    if timeout_seconds is not None:
        body["timeoutSeconds"] = timeout_seconds
    return body


def _result(response: httpx.Response, url: str) -> QueryResult:
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    if response.status_code != 200:
        detail = parsed.get("detail") if isinstance(parsed, dict) else None
        raise QueryRejected(
            f"the connector at {url} refused the query (HTTP {response.status_code}): "
            f"{detail or response.text[:200]}",
            response.status_code,
        )
    if not isinstance(parsed, dict) or "status" not in parsed:
        raise QueryRejected(
            f"the connector at {url} answered something else than a query answer", 502
        )
    if parsed["status"] == "failed":
        raise NoHospitalAnswered(parsed)
    return QueryResult(parsed)


def _timeout() -> httpx.Timeout:
    # The connector waits for the hospitals (with its own per-hospital timeout, and rounds).
    return httpx.Timeout(10.0, read=3600.0)


def query(
    cohort: Mapping[str, Any],
    *,
    connector: str,
    api_key: str,
    secure: bool = False,
    hospitals: Sequence[str] = (),
    timeout_seconds: float | None = None,
    transport: httpx.BaseTransport | None = None,
) -> QueryResult:
    """Run ``cohort`` (the aggregate query: CCDL cohort + measures) at every hospital the
    connector at ``connector`` holds an aggregate agreement with (or those named)."""
    url = connector.rstrip("/") + PATH
    body = request_body(cohort, secure=secure, hospitals=hospitals, timeout_seconds=timeout_seconds)
    try:
        with httpx.Client(transport=transport, timeout=_timeout(), trust_env=False) as http:
            response = http.post(url, json=body, headers={"X-Api-Key": api_key})
    except httpx.TransportError as exc:
        raise ConnectorUnreachable(
            f"cannot reach the connector at {connector}: {exc or type(exc).__name__}"
        ) from None
    return _result(response, connector)


async def aquery(
    cohort: Mapping[str, Any],
    *,
    connector: str,
    api_key: str,
    secure: bool = False,
    hospitals: Sequence[str] = (),
    timeout_seconds: float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> QueryResult:
    """``query`` for asyncio code (a notebook's running loop, a service)."""
    url = connector.rstrip("/") + PATH
    body = request_body(cohort, secure=secure, hospitals=hospitals, timeout_seconds=timeout_seconds)
    try:
        async with httpx.AsyncClient(
            transport=transport, timeout=_timeout(), trust_env=False
        ) as http:
            response = await http.post(url, json=body, headers={"X-Api-Key": api_key})
    except httpx.TransportError as exc:
        raise ConnectorUnreachable(
            f"cannot reach the connector at {connector}: {exc or type(exc).__name__}"
        ) from None
    return _result(response, connector)
