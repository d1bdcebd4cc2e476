"""The Fulfilment: facts without data, answers kept in the store (SQLite and PostgreSQL), work
off the event loop, concurrent first asks agree."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from catalog.formats import OutputType
from connector.clock import FixedClock
from connector.db.aggregate import SqlAnswerStore
from connector.db.engine import create_engine, migrate
from connector.errors import BadRequestError, PhemsError
from connector.fulfilment.aggregate.engine import DuckDbEngine
from connector.fulfilment.aggregate.fulfilment import MEDIA_TYPE, AggregateFulfilment
from connector.fulfilment.aggregate.request import AggregateQuery
from connector.fulfilment.aggregate.store import AnswerStore, MemoryAnswerStore
from connector.ports import FlatViews, Fulfilment, FulfilmentRequest, RequestFacts
from tests.fulfilment.aggregate.queries import ASTHMA, Json, query, sex
from tests.fulfilment.aggregate.small import small_hospital

NOW = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)
DOC = query([[ASTHMA]], measures=[{"type": "stratify", "by": "sex"}], purpose="asthma research")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> FlatViews:
    return small_hospital(tmp_path_factory.mktemp("small"))


def _request(doc: Json | bytes, limits: dict[str, float] | None = None) -> FulfilmentRequest:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return FulfilmentRequest(
        "a1", "t1", "did:web:user", "small", body, "application/json", {}, limits or {}
    )


async def _body(
    fulfilment: Fulfilment, request: FulfilmentRequest, views: FlatViews
) -> tuple[bytes, Any]:
    result = await fulfilment.fulfil(request, fulfilment.facts(request), views)
    assert result.media_type == MEDIA_TYPE == "application/fhir+json"
    return b"".join([c async for c in result.chunks]), result.audit


def test_facts_read_the_request_only() -> None:
    fulfilment: Fulfilment = AggregateFulfilment(MemoryAnswerStore(), FixedClock(NOW))
    assert fulfilment.output_type is OutputType.AGGREGATE
    facts = fulfilment.facts(_request(DOC, {"minCellSize": 20, "epsilon": 1.0}))
    assert facts == RequestFacts(OutputType.AGGREGATE, "asthma research", 20, 0.5, 0)
    with pytest.raises(BadRequestError, match="^/inclusionCriteria: "):
        fulfilment.facts(_request({"version": "2", "inclusionCriteria": []}))


async def test_facts_that_differ_from_the_query_are_refused(small: FlatViews) -> None:
    fulfilment = AggregateFulfilment(MemoryAnswerStore(), FixedClock(NOW))
    request = _request(DOC)
    looser = RequestFacts(OutputType.AGGREGATE, "asthma research", 5, 2.0, 0)
    with pytest.raises(PhemsError, match="do not match"):
        await fulfilment.fulfil(request, looser, small)


class ThreadRecordingEngine(DuckDbEngine):
    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def evaluate(self, query: AggregateQuery, views: FlatViews, reference: date) -> list[float]:
        self.threads.append(threading.get_ident())
        return super().evaluate(query, views, reference)


async def test_the_engine_runs_off_the_event_loop(small: FlatViews) -> None:
    engine = ThreadRecordingEngine()
    fulfilment = AggregateFulfilment(MemoryAnswerStore(), FixedClock(NOW), engine=engine)
    await _body(fulfilment, _request(DOC), small)
    assert engine.threads and threading.get_ident() not in engine.threads


async def test_concurrent_first_asks_get_one_answer(small: FlatViews) -> None:
    fulfilment = AggregateFulfilment(MemoryAnswerStore(), FixedClock(NOW))
    doc = query([[ASTHMA]], [[sex("other")]], measures=[{"type": "stratify", "by": "ageBand"}])
    results = await asyncio.gather(*(_body(fulfilment, _request(doc), small) for _ in range(8)))
    assert len({body for body, _ in results}) == 1


@pytest.fixture(params=["sqlite", "postgresql"])
async def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AnswerStore]:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_database")
    )
    engine = create_engine(url)
    await migrate(engine)
    try:
        yield SqlAnswerStore(engine, FixedClock(NOW))
    finally:
        await engine.dispose()


async def test_two_replicas_on_one_store_give_one_answer(
    small: FlatViews, sql_store: AnswerStore
) -> None:
    doc = query([[ASTHMA]], measures=[{"type": "stratify", "by": "sex"}], epsilon=0.37)
    first, second = (AggregateFulfilment(sql_store, FixedClock(NOW)) for _ in range(2))
    body, audit = await _body(first, _request(doc), small)
    again, audit_again = await _body(second, _request(doc), small)
    assert body == again and audit["answer"] == "computed" and audit_again["answer"] == "kept"
    report = orjson.loads(body)
    assert report["resourceType"] == "MeasureReport"
