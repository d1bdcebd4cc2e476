"""The data plane service: one road from an agreement to data, for every output type.

Each pull walks it in this order (DESIGN.md §4); a refused call stops before the FHIR data:

1. the DataAddress token (signed by us, bound to agreement, transfer and consumer) -> the
   transfer, which must be STARTED -> the fulfilment installed for its format (else 501);
2. the fulfilment reads what the call asks (``facts``; a 400 names the bad part);
3. the agreement's policy at data plane scope with those facts and the credentials the
   token was issued for (nothing may be unknown): a failed constraint is a 403 naming it,
   a used-up ``count`` or epsilon budget a 429; the per-data-user rate limit a 429 with
   Retry-After; each refusal is audited;
4. the dataset's flattened tables for the current data version (its scope applied, opted-out
   patients removed), built first as a job if needed (503 with Retry-After while it runs);
   then whatever else the fulfilment needs for that version (``prepare``: a synthesizer
   fitted on it, fitted first as a job: 503 with Retry-After, nothing spent);
5. in one transaction, with the agreement's row locked: the policy once more against the
   agreement's current uses and spent epsilon, the use and the epsilon spent, the call
   recorded for rate limits, and its audit entry (so 32 concurrent calls against a count of
   10 let exactly 10 through);
6. the fulfilment, which applies its own disclosure control; if it fails before delivering,
   the use and epsilon are given back and the failure audited;
7. delivery: the result streams to the caller; the audit keeps what was delivered, never a
   value computed from the data.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.formats import output_type_of
from connector.audit import AuditLog
from connector.dataplane.calls import DataPlaneCalls
from connector.dataplane.tokens import DataPlaneClaims, is_current, verify_access_token
from connector.dsp.agreement import AgreementRecord
from connector.dsp.states import TransferState
from connector.dsp.transfer import Transfer
from connector.errors import (
    AuthenticationError,
    ForbiddenError,
    LimitExceededError,
    NotFoundError,
    NotInstalledError,
    PhemsError,
    PolicyViolationError,
)
from connector.exchange.ports import DspStores
from connector.fulfilment.cache import ViewCache
from connector.fulfilment.registry import FulfilmentRegistry
from connector.fulfilment.scope import DatasetScope
from connector.identity.keys import ConnectorKeys
from connector.metrics import Metrics
from connector.policy import EvaluationContext, Policy, Scope, evaluate, policy_limits
from connector.policy import validate_policy as parse_policy
from connector.ports import Clock, Fulfilment, FulfilmentRequest, FulfilmentResult, RequestFacts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateLimit:
    """At most ``calls`` data plane calls per data user in any ``window``."""

    calls: int
    window: timedelta


@dataclass(frozen=True)
class _Call:
    claims: DataPlaneClaims
    agreement: AgreementRecord
    policy: Policy
    fulfilment: Fulfilment
    request: FulfilmentRequest
    facts: RequestFacts


class DataPlaneService:
    def __init__(
        self,
        *,
        stores: DspStores,
        datasets: Any,
        registry: FulfilmentRegistry,
        views: ViewCache,
        calls: DataPlaneCalls,
        audit: AuditLog,
        clock: Clock,
        did: str,
        keys: ConnectorKeys,
        trusted_issuers: list[str],
        rate_limit: RateLimit,
        wait_seconds: float,
        metrics: Metrics | None = None,
    ) -> None:
        self.stores = stores
        self.datasets = datasets
        self.registry = registry
        self.views = views
        self.calls = calls
        self.audit = audit
        self.clock = clock
        self.did = did
        self.keys = keys
        self.trusted_issuers = frozenset(trusted_issuers)
        self.rate_limit = rate_limit
        self.wait_seconds = wait_seconds
        metrics = metrics or Metrics()
        self._calls = metrics.counter(
            "phems_dataplane_calls_total",
            "Data plane calls let through (their use and epsilon spent), by output type.",
            ("output_type",),
        )
        self._refusals = metrics.counter(
            "phems_dataplane_refusals_total",
            "Data plane calls refused by the policy (403), a budget or the rate limit (429), "
            "by output type and status.",
            ("output_type", "status"),
        )
        self._failures = metrics.counter(
            "phems_dataplane_failures_total",
            "Data plane calls whose fulfilment failed (use and epsilon given back).",
            ("output_type",),
        )

    async def pull(
        self,
        tid: str,
        token: str,
        *,
        body: Callable[[], Awaitable[bytes]],
        media_type: str | None,
        params: Mapping[str, str],
    ) -> FulfilmentResult:
        """``body`` reads the request's body: only once the token is verified."""
        call = await self._authorise(tid, token, body, media_type, params)
        await self._check(call, rate=False)
        scope = await self._scope(call.agreement.dataset_id)
        views = await self.views.current(call.agreement.dataset_id, scope)
        if views is None:  # a build reads the FHIR source: only for a call that would pass
            await self._check(call, rate=True)
            views = await self.views.ensure(
                call.agreement.dataset_id, scope, wait=self.wait_seconds
            )
        # What the fulfilment needs beyond the views (a fitted model): a 503 that spends nothing.
        await call.fulfilment.prepare(call.request, call.facts, views)
        await self._spend(call, views.version)
        try:
            result = await call.fulfilment.fulfil(call.request, call.facts, views)
        except BaseException as exc:
            await self._refund(call, exc)
            raise
        if result.epsilon_spent is not None and result.epsilon_spent < call.facts.epsilon:
            unused = call.facts.epsilon - result.epsilon_spent
            async with self.stores.db.transaction() as conn:
                await self.stores.agreements.spend(conn, call.agreement.id, uses=0, epsilon=-unused)
        await self.audit.append(
            actor=call.claims.consumer,
            event="dataplane.delivered",
            agreement_id=call.agreement.id,
            transfer_id=tid,
            details={
                "mediaType": result.media_type,
                "epsilonSpent": call.facts.epsilon
                if result.epsilon_spent is None
                else min(result.epsilon_spent, call.facts.epsilon),
                **dict(result.audit),
            },
        )
        return result

    # -- 1, 2: who, what ----------------------------------------------------------------------

    async def authorize(
        self, token: str, tid: str
    ) -> tuple[DataPlaneClaims, Transfer, AgreementRecord]:
        """The STARTED transfer ``tid`` we provide and its agreement, if ``token`` is its
        current data plane token: signed by us, for this transfer, its agreement and its
        consumer, and not replaced since (one valid token a transfer: a refresh retires the
        one it replaces, a provider's suspend and resume hands out a new one)."""
        claims = verify_access_token(token, did=self.did, keys=self.keys, now=self.clock.now())
        if claims.transfer_id != tid:
            raise AuthenticationError("data plane token is for another transfer")
        async with self.stores.db.reading() as conn:
            transfer = await self.stores.transfers.get(conn, tid)
            agreement = await self.stores.agreements.get(conn, claims.agreement_id)
        if transfer is None or agreement is None or transfer.agreement_id != agreement.id:
            raise NotFoundError(f"no transfer {tid}")
        if agreement.consumer_did != claims.consumer:
            raise AuthenticationError("data plane token is not for this agreement's consumer")
        if transfer.state is not TransferState.STARTED:
            raise ForbiddenError(f"transfer {tid} is {transfer.state}, not STARTED")
        if not is_current(token, transfer.data_address):
            raise AuthenticationError(
                "data plane token was replaced (by a refresh, or when the transfer was "
                "suspended and started again); use the newest one"
            )
        return claims, transfer, agreement

    async def _authorise(
        self,
        tid: str,
        token: str,
        read_body: Callable[[], Awaitable[bytes]],
        media_type: str | None,
        params: Mapping[str, str],
    ) -> _Call:
        claims, transfer, agreement = await self.authorize(token, tid)
        kind = output_type_of(transfer.format)
        fulfilment = self.registry.get(kind)
        if fulfilment is None:
            raise NotInstalledError(
                f"transfer {tid} is authorised, but no fulfilment for {transfer.format} is "
                "installed on this connector"
            )
        policy = parse_policy(agreement.agreement)
        body = await read_body()
        request = FulfilmentRequest(
            agreement_id=agreement.id,
            transfer_id=tid,
            consumer=claims.consumer,
            dataset_id=agreement.dataset_id,
            body=body,
            media_type=media_type,
            params=dict(params),
            policy_limits=policy_limits(policy),
        )
        facts = fulfilment.facts(request)
        if facts.output_type is not kind:
            raise ForbiddenError(f"transfer {tid} delivers {kind} output, not {facts.output_type}")
        return _Call(claims, agreement, policy, fulfilment, request, facts)

    # -- 3: policy and limits, before any data is touched ------------------------------------

    def _context(self, call: _Call, agreement: AgreementRecord) -> EvaluationContext:
        facts = call.facts
        return EvaluationContext(
            caller=call.claims.consumer,
            now=self.clock.now(),
            credentials=call.claims.credentials,
            trusted_issuers=self.trusted_issuers,
            dataset_id=agreement.dataset_id,
            purpose=facts.purpose,
            uses_so_far=agreement.uses,
            output_type=facts.output_type.value,
            min_cell_size=facts.min_cell_size,
            epsilon=facts.epsilon,
            epsilon_spent=agreement.epsilon_spent,
            patients=facts.patients,
        )

    def _decide(self, call: _Call, agreement: AgreementRecord) -> PhemsError | None:
        """None if the call may proceed; else the refusal: 429 when only the agreement's
        used-up count or epsilon stands in the way (a fresh agreement would pass), 403 when
        the call itself is not permitted."""
        context = self._context(call, agreement)
        decision = evaluate(call.policy, context, Scope.DATAPLANE)
        if decision:
            return None
        fresh = replace(context, uses_so_far=0, epsilon_spent=0.0)
        if evaluate(call.policy, fresh, Scope.DATAPLANE):
            return LimitExceededError(f"the agreement's budget is used up: {decision.reason}")
        return PolicyViolationError(decision.reason)

    async def _check(self, call: _Call, *, rate: bool) -> None:
        """Refuse early, before the data are touched: the policy (no store read), and the
        rate limit when ``rate`` (the spend checks both again, authoritatively)."""
        refusal = self._decide(call, call.agreement)
        if refusal is None and rate:
            refusal = await self._rate_limited(call.claims.consumer, None)
        if refusal is not None:
            await self._refused(call, refusal)
            raise refusal

    async def _rate_limited(
        self, consumer: str, conn: AsyncConnection | None
    ) -> LimitExceededError | None:
        limit = self.rate_limit
        now = self.clock.now()
        recent = await self.calls.since(consumer, now - limit.window, conn=conn, newest=limit.calls)
        if len(recent) < limit.calls:
            return None
        frees = recent[-limit.calls] + limit.window
        wait = max(int((frees - now).total_seconds()) + 1, 1)
        return LimitExceededError(
            f"rate limit: at most {limit.calls} data plane calls per data user in "
            f"{_duration(limit.window)}",
            retry_after=wait,
        )

    async def _refused(self, call: _Call, refusal: PhemsError) -> None:
        self._refusals.labels(call.facts.output_type.value, str(refusal.status)).inc()
        await self.audit.append(
            actor=call.claims.consumer,
            event="dataplane.refused",
            agreement_id=call.agreement.id,
            transfer_id=call.request.transfer_id,
            purpose=call.facts.purpose,
            details={"status": refusal.status, "reason": refusal.detail, **_facts(call.facts)},
        )

    async def _scope(self, dataset_id: str) -> DatasetScope:
        async with self.stores.db.reading() as conn:
            dataset = await self.datasets.get(conn, dataset_id)
        if dataset is None:
            raise NotFoundError(f"the agreement's dataset {dataset_id} is no longer offered")
        return DatasetScope.parse(dataset.scope)

    # -- 5: spend, atomically with the audit record ------------------------------------------

    async def _spend(self, call: _Call, version: str) -> None:
        refusal: PhemsError | None = None
        async with self.stores.db.transaction() as conn:
            agreement = await self.stores.agreements.get(conn, call.agreement.id, for_change=True)
            if agreement is None:
                raise NotFoundError(f"no transfer {call.request.transfer_id}")
            refusal = self._decide(call, agreement) or await self._rate_limited(
                call.claims.consumer, conn
            )
            if refusal is None:
                await self.stores.agreements.spend(
                    conn, agreement.id, uses=1, epsilon=call.facts.epsilon
                )
                await self.calls.record(
                    conn,
                    consumer=call.claims.consumer,
                    agreement_id=agreement.id,
                    transfer_id=call.request.transfer_id,
                    output_type=call.facts.output_type.value,
                    epsilon=call.facts.epsilon,
                    at=self.clock.now(),
                )
                await self.audit.append(
                    actor=call.claims.consumer,
                    event="dataplane.call",
                    agreement_id=agreement.id,
                    transfer_id=call.request.transfer_id,
                    purpose=call.facts.purpose,
                    details={
                        "dataVersion": version,
                        "use": agreement.uses + 1,
                        **_facts(call.facts),
                    },
                    conn=conn,
                )
        if refusal is not None:
            await self._refused(call, refusal)
            raise refusal
        self._calls.labels(call.facts.output_type.value).inc()

    async def _refund(self, call: _Call, exc: BaseException) -> None:
        """The fulfilment failed before delivering anything: the use and epsilon were not
        used, so they are given back."""
        self._failures.labels(call.facts.output_type.value).inc()
        async with self.stores.db.transaction() as conn:
            await self.stores.agreements.spend(
                conn, call.agreement.id, uses=-1, epsilon=-call.facts.epsilon
            )
            await self.calls.forget_last(conn, call.claims.consumer, call.request.transfer_id)
            await self.audit.append(
                actor=call.claims.consumer,
                event="dataplane.failed",
                agreement_id=call.agreement.id,
                transfer_id=call.request.transfer_id,
                details={
                    "error": type(exc).__name__,
                    "status": exc.status if isinstance(exc, PhemsError) else 500,
                },
                conn=conn,
            )


def _facts(facts: RequestFacts) -> dict[str, Any]:
    return {
        "outputType": facts.output_type.value,
        "minCellSize": facts.min_cell_size,
        "epsilon": facts.epsilon,
        "patients": facts.patients,
    }


def _duration(window: timedelta) -> str:
    days = window.total_seconds() / 86400
    if days >= 1 and days == int(days):
        return "a week" if days == 7 else f"{int(days)} days"
    return f"{int(window.total_seconds())} s"
