"""The aggregate-query ``Fulfilment`` (``connector.ports.Fulfilment``, output type aggregate).

``facts`` parses and validates the body (``request.py``) without touching data and states
what the policy engine checks: the purpose, the minimum cell size and the epsilon this query
spends, no patient records. ``fulfil`` answers from the answer store when this query was
answered on this data version before; otherwise it evaluates the query in a worker thread
(DuckDB over the flattened tables), releases it (suppression, OpenDP noise, rounding), keeps
the release and builds the ``MeasureReport``. True values exist only inside the worker call
that computes them: they are never logged, audited, stored or raised.

For secure aggregation (``connector.federation``) see ``secure.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date

import orjson

from catalog.formats import OutputType
from connector.errors import PhemsError
from connector.fulfilment.aggregate.engine import DuckDbEngine
from connector.fulfilment.aggregate.release import Release, release
from connector.fulfilment.aggregate.report import measure_report
from connector.fulfilment.aggregate.request import AggregateQuery, parse_request
from connector.fulfilment.aggregate.store import AnswerStore
from connector.ports import Clock, FlatViews, FulfilmentRequest, FulfilmentResult, RequestFacts

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/fhir+json"
_PARSED_KEPT = 64


class AggregateFulfilment:
    def __init__(
        self, store: AnswerStore, clock: Clock, *, engine: DuckDbEngine | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._engine = engine or DuckDbEngine()
        self._parsed: OrderedDict[
            tuple[bytes, str | None, tuple[tuple[str, float], ...]], AggregateQuery
        ] = OrderedDict()

    @property
    def output_type(self) -> OutputType:
        return OutputType.AGGREGATE

    def query(self, request: FulfilmentRequest) -> AggregateQuery:
        """The request's query, parsed and validated (``BadRequestError`` naming the bad part)."""
        key = (request.body, request.media_type, _limits_key(request.policy_limits))
        found = self._parsed.get(key)
        if found is None:
            found = parse_request(
                request.body, media_type=request.media_type, policy_limits=request.policy_limits
            )
            self._parsed[key] = found
            if len(self._parsed) > _PARSED_KEPT:
                self._parsed.popitem(last=False)
        return found

    def facts(self, request: FulfilmentRequest) -> RequestFacts:
        options = self.query(request).options
        return RequestFacts(
            output_type=OutputType.AGGREGATE,
            purpose=options.purpose,
            min_cell_size=options.min_cell_size,
            epsilon=options.epsilon,
            patients=0,
        )

    async def fulfil(
        self, request: FulfilmentRequest, facts: RequestFacts, views: FlatViews
    ) -> FulfilmentResult:
        query = self.query(request)
        if (facts.min_cell_size, facts.epsilon) != (
            query.options.min_cell_size,
            query.options.epsilon,
        ):  # the policy approved other limits than this query applies: answer nothing
            raise PhemsError("the request's facts do not match its query")
        answer = await self.answer(query, views)
        report = await asyncio.to_thread(measure_report, query, answer.release)
        body = orjson.dumps(report)
        return FulfilmentResult(
            media_type=MEDIA_TYPE,
            chunks=_chunks(body),
            audit={
                "queryDigest": query.digest,
                "dataVersion": views.version,
                "answer": "kept" if answer.kept else "computed",
                "cells": len(query.layout),
                "minCellSize": query.options.min_cell_size,
                "epsilon": query.options.epsilon,
            },
            # The same answer released again tells nothing new: it spends no budget.
            epsilon_spent=0.0 if answer.kept else None,
        )

    async def answer(self, query: AggregateQuery, views: FlatViews) -> Answer:
        """The released answer: the kept one, or computed and kept now."""
        kept = await self._store.get(views.dataset_id, views.version, query.digest)
        if kept is not None:
            return Answer(Release.from_json(kept), kept=True)
        now = self._clock.now()
        reference = now.astimezone(UTC).date()
        fresh = await asyncio.to_thread(self._compute, query, views, reference)
        log.info("aggregate query %s computed on %s", query.digest[:16], views.version)
        stored = await self._store.keep(
            views.dataset_id, views.version, query.digest, fresh.to_json()
        )
        return Answer(Release.from_json(stored), kept=False)

    def _compute(self, query: AggregateQuery, views: FlatViews, reference: date) -> Release:
        true_values = self._engine.evaluate(query, views, reference)
        return release(query, true_values, reference=reference, now=self._clock.now())

    def evaluate_true(
        self, query: AggregateQuery, views: FlatViews, reference: date
    ) -> list[float]:
        """True cell values (blocking): for secure aggregation only (``secure.py``)."""
        return self._engine.evaluate(query, views, reference)


@dataclass(frozen=True)
class Answer:
    release: Release
    kept: bool  # answered from the store (computed for an earlier call)


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    yield body


def _limits_key(limits: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((k, float(v)) for k, v in limits.items()))
