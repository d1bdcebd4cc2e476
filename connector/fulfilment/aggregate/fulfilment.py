"""The aggregate-query ``Fulfilment`` (``connector.ports.Fulfilment``, output type aggregate).

``facts`` parses and validates the body (``request.py``) without touching data and states
what the policy engine checks: the purpose, the minimum cell size and the epsilon this query
spends, no patient records. ``fulfil`` answers from the answer store when this query was
answered on this data version before; otherwise it evaluates the query in a worker thread
(DuckDB over the flattened tables), draws the noise (OpenDP), releases it (suppression,
rounding), keeps the release with its draw and builds the ``MeasureReport``. True values
exist only inside the worker call that computes them: they are never logged, audited, stored
or raised.

**Secure aggregation** (``connector.federation``, docs/federated-queries.md). A body with a
``secureAggregation`` member asks for this hospital's share of a secure round: ``facts``
checks the session (this hospital among the participants, the layout the query's own) and
``fulfil`` answers the kept draw of the query on this data version (the noisy cells its plain
answer is released from, before suppression and rounding; drawn now when there is none),
masked for the session's participants with this connector's key agreement key and theirs
(from their DID documents). So the same query gives the same noisy vector in every round and
in plain mode: re-masking it in a new session reveals nothing new and cannot average the
noise away. Epsilon is spent as for a plain query: by the call that draws, not by a repeat.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date
from typing import Any

import orjson

from catalog.formats import OutputType
from connector.errors import BadRequestError, NotInstalledError, PhemsError
from connector.federation.hospital import KeyResolver, answer_session, session_of
from connector.federation.secure import Session
from connector.federation.wire import MEMBER
from connector.fulfilment.aggregate.engine import DuckDbEngine
from connector.fulfilment.aggregate.release import Release, noisy, release_drawn
from connector.fulfilment.aggregate.report import measure_report
from connector.fulfilment.aggregate.request import MAX_BODY, AggregateQuery, parse_request
from connector.fulfilment.aggregate.secure import cell_names, share_vector
from connector.fulfilment.aggregate.store import AnswerStore
from connector.identity.signing import PrivateKey
from connector.ports import Clock, FlatViews, FulfilmentRequest, FulfilmentResult, RequestFacts

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/fhir+json"
SHARE_MEDIA_TYPE = "application/json"
_PARSED_KEPT = 64
_DRAW = "draw"  # the kept answer's member holding the noisy cells before suppression
_MAX_SECURE_BODY = 4 * MAX_BODY  # the query plus its session (participants, layout)


@dataclass(frozen=True)
class SecureParty:
    """What a hospital needs to answer secure aggregation rounds: its DID (as participants
    name it), its X25519 key agreement key, and a resolver for the other participants'
    ``keyAgreement`` keys."""

    did: str
    key: PrivateKey
    resolver: KeyResolver


@dataclass(frozen=True)
class Read:
    """A request read: its query, and for a secure round the session and the whole body."""

    query: AggregateQuery
    session: Session | None = None
    body: Mapping[str, Any] | None = None


class AggregateFulfilment:
    def __init__(
        self,
        store: AnswerStore,
        clock: Clock,
        *,
        engine: DuckDbEngine | None = None,
        party: SecureParty | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._engine = engine or DuckDbEngine()
        self._party = party
        self._parsed: OrderedDict[_Key, Read] = OrderedDict()
        self._queries: OrderedDict[_Key, AggregateQuery] = OrderedDict()

    @property
    def output_type(self) -> OutputType:
        return OutputType.AGGREGATE

    def query(self, request: FulfilmentRequest) -> AggregateQuery:
        """The request's query, parsed and validated (``BadRequestError`` naming the bad part)."""
        return self.read(request).query

    def read(self, request: FulfilmentRequest) -> Read:
        """The request's query and, in a secure round, its session, checked against this
        hospital and the query (``BadRequestError`` naming the bad part)."""
        key = (request.body, request.media_type, _limits_key(request.policy_limits))
        found = self._parsed.get(key)
        if found is None:
            found = self._read(request)
            self._parsed[key] = found
            if len(self._parsed) > _PARSED_KEPT:
                self._parsed.popitem(last=False)
        return found

    def _parse(self, body: bytes, request: FulfilmentRequest) -> AggregateQuery:
        """``body`` parsed, once for every session of the secure rounds asking it."""
        key = (body, request.media_type, _limits_key(request.policy_limits))
        found = self._queries.get(key)
        if found is None:
            found = parse_request(
                body, media_type=request.media_type, policy_limits=request.policy_limits
            )
            self._queries[key] = found
            if len(self._queries) > _PARSED_KEPT:
                self._queries.popitem(last=False)
        return found

    def _read(self, request: FulfilmentRequest) -> Read:
        if f'"{MEMBER}"'.encode() not in request.body:
            return Read(self._parse(request.body, request))
        if len(request.body) > _MAX_SECURE_BODY:
            raise BadRequestError(f"the query is larger than {_MAX_SECURE_BODY // 1024} KiB")
        try:
            doc = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            raise BadRequestError(f"the body is not JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise BadRequestError("the body is not a JSON object")
        session = session_of(doc)
        query = self._parse(orjson.dumps({k: v for k, v in doc.items() if k != MEMBER}), request)
        if session is None:
            return Read(query)
        if self._party is None:
            raise NotInstalledError("this connector does not take part in secure aggregation")
        if self._party.did not in session.participants:
            raise BadRequestError(
                f"{MEMBER}.participants: {self._party.did} (this hospital) is not listed"
            )
        layout = cell_names(query)
        if tuple(layout) != session.layout:
            raise BadRequestError(
                f"{MEMBER}.layout: the query's answer has the cells {layout[:20]}, "
                f"not {list(session.layout)[:20]}"
            )
        return Read(query, session, doc)

    def facts(self, request: FulfilmentRequest) -> RequestFacts:
        options = self.query(request).options
        return RequestFacts(
            output_type=OutputType.AGGREGATE,
            purpose=options.purpose,
            min_cell_size=options.min_cell_size,
            epsilon=options.epsilon,
            patients=0,
        )

    async def prepare(
        self, request: FulfilmentRequest, facts: RequestFacts, views: FlatViews
    ) -> None:
        return None  # an answer needs the views alone

    async def fulfil(
        self, request: FulfilmentRequest, facts: RequestFacts, views: FlatViews
    ) -> FulfilmentResult:
        read = self.read(request)
        query = read.query
        if (facts.min_cell_size, facts.epsilon) != (
            query.options.min_cell_size,
            query.options.epsilon,
        ):  # the policy approved other limits than this query applies: answer nothing
            raise PhemsError("the request's facts do not match its query")
        if read.session is not None:
            return await self._share(read, read.session, views)
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

    async def _share(self, read: Read, session: Session, views: FlatViews) -> FulfilmentResult:
        """This hospital's masked share of a secure round (``read.session``)."""
        assert self._party is not None and read.body is not None  # checked by ``read``
        query = read.query
        drawn, kept = await self.drawn(query, views)
        share = await answer_session(
            read.body,
            session,
            share_vector(query, drawn),
            layout=cell_names(query),
            own_did=self._party.did,
            key=self._party.key,
            resolver=self._party.resolver,
        )
        return FulfilmentResult(
            media_type=SHARE_MEDIA_TYPE,
            chunks=_chunks(orjson.dumps(share.as_json())),
            audit={
                "queryDigest": query.digest,
                "dataVersion": views.version,
                "answer": "kept" if kept else "computed",
                "cells": len(query.layout),
                "minCellSize": query.options.min_cell_size,
                "epsilon": query.options.epsilon,
                "secureAggregation": {
                    "sessionId": session.session_id,
                    "participants": len(session.participants),
                },
            },
            epsilon_spent=0.0 if kept else None,
        )

    async def answer(self, query: AggregateQuery, views: FlatViews) -> Answer:
        """The released answer: the kept one, or computed and kept now (with its draw)."""
        kept = await self._store.get(views.dataset_id, views.version, query.digest)
        if kept is not None:
            return Answer(Release.from_json(kept), kept=True, drawn=_drawn(kept))
        now = self._clock.now()
        reference = now.astimezone(UTC).date()
        fresh = await asyncio.to_thread(self._compute, query, views, reference)
        log.info("aggregate query %s computed on %s", query.digest[:16], views.version)
        stored = await self._store.keep(views.dataset_id, views.version, query.digest, fresh)
        return Answer(Release.from_json(stored), kept=False, drawn=_drawn(stored))

    async def drawn(self, query: AggregateQuery, views: FlatViews) -> tuple[list[float], bool]:
        """The query's noisy cells on this data version (before suppression and rounding),
        and whether they were kept from an earlier call (which spent their epsilon)."""
        answer = await self.answer(query, views)
        if answer.drawn is not None:
            return answer.drawn, answer.kept
        # An answer kept without its draw (by a version before secure aggregation): a draw
        # of its own, kept beside it.
        key = hashlib.sha256(f"{query.digest}/{_DRAW}".encode()).hexdigest()  # 64 characters
        kept = await self._store.get(views.dataset_id, views.version, key)
        if kept is not None:
            return list(kept[_DRAW]), True
        reference = self._clock.now().astimezone(UTC).date()
        fresh = {_DRAW: await asyncio.to_thread(self._draw, query, views, reference)}
        stored = await self._store.keep(views.dataset_id, views.version, key, fresh)
        return list(stored[_DRAW]), False

    def _compute(self, query: AggregateQuery, views: FlatViews, reference: date) -> dict[str, Any]:
        true_values = self._engine.evaluate(query, views, reference)
        drawn = noisy(query.layout, true_values, query.options.epsilon)
        released = release_drawn(
            query, true_values, drawn, reference=reference, now=self._clock.now()
        )
        return {**released.to_json(), _DRAW: drawn}

    def _draw(self, query: AggregateQuery, views: FlatViews, reference: date) -> list[float]:
        true_values = self._engine.evaluate(query, views, reference)
        return noisy(query.layout, true_values, query.options.epsilon)

    def evaluate_true(
        self, query: AggregateQuery, views: FlatViews, reference: date
    ) -> list[float]:
        """True cell values (blocking): for secure aggregation only (``secure.py``)."""
        return self._engine.evaluate(query, views, reference)


@dataclass(frozen=True)
class Answer:
    release: Release
    kept: bool  # answered from the store (computed for an earlier call)
    drawn: list[float] | None = None  # the noisy cells it was released from


def _drawn(kept: Mapping[str, Any]) -> list[float] | None:
    drawn: Sequence[float] | None = kept.get(_DRAW)
    return None if drawn is None else [float(v) for v in drawn]


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    yield body


_Key = tuple[bytes, str | None, tuple[tuple[str, float], ...]]


def _limits_key(limits: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((k, float(v)) for k, v in limits.items()))
