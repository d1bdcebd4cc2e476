"""Transfer process, both roles: handlers record, the outbox loop acts and sends.

The provider records a TransferRequestMessage (REQUESTED, the answer) only under an agreement
whose consumer is the caller, for a format the dataset offers. The decision is a step the
outbox loop takes after the answer (``connector.exchange.process``): if the agreement's policy
holds at transfer scope for the caller's credentials, one use of the agreement is counted and
the transfer started with a DataAddress carrying a short-lived bearer token bound to agreement
and transfer (pull); else it is terminated naming the failed constraint.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.formats import output_type_of
from connector.audit import AuditLog
from connector.dataplane.tokens import (
    REFRESH_ENDPOINT,
    TOKEN_LIFETIME,
    issue_access_token,
    seconds_left,
    with_token,
)
from connector.dsp.agreement import AgreementRecord
from connector.dsp.messages import (
    TransferCompletionMessage,
    TransferRequestMessage,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferTerminationMessage,
)
from connector.dsp.states import Role, TransferState
from connector.dsp.transfer import Transfer, apply, is_repeat
from connector.dsp.urls import join_url
from connector.errors import (
    ConflictError,
    ForbiddenError,
    InvalidMessageError,
    InvalidTransitionError,
    NotFoundError,
    PolicyViolationError,
    UpstreamError,
)
from connector.exchange.callbacks import check_callback
from connector.exchange.policy_context import CallerFacts, context_for
from connector.exchange.ports import DspStores, OutboxItem
from connector.exchange.process import Participant, Processes, ProcessKind
from connector.exchange.repeats import created_or_recorded
from connector.identity.tokens import VerifiedCaller
from connector.policy import (
    EvaluationContext,
    Policy,
    Scope,
    VerifiedCredential,
    evaluate,
    permitted_until,
    time_bounds,
    validate_policy,
)
from connector.ports import Clock
from connector.publishing.store import DatasetStore

TransferMessage = (
    TransferRequestMessage
    | TransferStartMessage
    | TransferSuspensionMessage
    | TransferCompletionMessage
    | TransferTerminationMessage
)
HTTP_ENDPOINT_TYPE = "https://w3id.org/idsa/v4.1/HTTP"
_SEGMENT = {
    "TransferStartMessage": "start",
    "TransferCompletionMessage": "completion",
    "TransferSuspensionMessage": "suspension",
    "TransferTerminationMessage": "termination",
}


def _audit_fields(t: Transfer) -> dict[str, Any]:
    return {
        "transfer_id": t.id,
        "agreement_id": t.agreement_id,
        "details": {"state": str(t.state), "role": str(t.role), "format": t.format},
    }


TRANSFER = ProcessKind[Transfer](
    name="transfer",
    apply=apply,
    paths={
        (role, message_type): path
        for role in Role
        for message_type, path in {
            "TransferRequestMessage:initial": ("transfers", "request"),
            **{m: ("transfers", "{pid}", segment) for m, segment in _SEGMENT.items()},
        }.items()
    },
    audit_fields=_audit_fields,
)


class TransferService:
    def __init__(
        self,
        *,
        stores: DspStores,
        datasets: DatasetStore,
        audit: AuditLog,
        clock: Clock,
        me: Participant,
        formats: Collection[str] | None = None,
    ) -> None:
        """``formats``: the transfer formats this connector can fulfil as provider (None:
        no fulfilment is installed yet, any format the dataset offers is accepted)."""
        self.db = stores.db
        self.formats = None if formats is None else frozenset(formats)
        self.store = stores.transfers
        self.agreements = stores.agreements
        self.negotiations = stores.negotiations
        self.datasets = datasets
        self.clock = clock
        self.me = me
        self.processes = Processes(
            TRANSFER, stores.transfers, stores=stores, audit=audit, clock=clock
        )

    async def receive_request(
        self, caller: VerifiedCaller, message: TransferRequestMessage
    ) -> tuple[Transfer, bool]:
        """An initial TransferRequestMessage: recorded REQUESTED, the decision a step after
        the answer; returns (transfer, created). A repeat (same caller, same consumerPid)
        returns the recorded transfer, also when copies arrive together."""

        async def recorded() -> Transfer | None:
            async with self.db.reading() as conn:
                return await self.store.find(conn, Role.PROVIDER, caller.did, message.consumer_pid)

        return await created_or_recorded(lambda: self._receive_request(caller, message), recorded)

    async def _receive_request(
        self, caller: VerifiedCaller, message: TransferRequestMessage
    ) -> tuple[Transfer, bool]:
        async with self.db.transaction() as conn:
            existing = await self.store.find(conn, Role.PROVIDER, caller.did, message.consumer_pid)
            if existing is not None:
                return existing, False
            await check_callback(
                caller.did, message.callback_address, self.me.insecure_hosts, self.me.resolver
            )
            agreement = await self.agreements.get(conn, message.agreement_id)
            if (
                agreement is None
                or agreement.role is not Role.PROVIDER
                or agreement.consumer_did != caller.did
            ):
                raise InvalidMessageError(f"unknown agreement {message.agreement_id}")
            dataset = await self.datasets.get(conn, agreement.dataset_id)
            if dataset is None or message.format not in dataset.formats:
                offered = ", ".join(dataset.formats) if dataset else "none"
                raise InvalidMessageError(
                    f"format {message.format!r} is not offered for this dataset ({offered})"
                )
            if self.formats is not None and message.format not in self.formats:
                raise InvalidMessageError(
                    f"format {message.format!r} cannot be delivered by this connector (it "
                    f"delivers {', '.join(sorted(self.formats)) or 'nothing yet'})"
                )
            now = self.clock.now()
            t = Transfer.new(
                id=f"urn:uuid:{uuid.uuid4()}",
                role=Role.PROVIDER,
                counterparty_did=caller.did,
                now=now,
            )
            t = replace(t, provider_pid=t.id)
            t = apply(t, message, sender_role=Role.CONSUMER, now=now)
            await self.store.insert(conn, t)
            self.processes.audit(conn, t, "transfer.requested")
            await self.processes.call_for_step(conn, t, CallerFacts.of(caller).as_json())
            return t, True

    async def receive(self, caller: VerifiedCaller, pid: str, message: TransferMessage) -> Transfer:
        async with self.db.transaction() as conn:
            t = await self.processes.owned(conn, caller.did, pid, for_change=True)
            sender = t.role.other
            if is_repeat(t, message, sender_role=sender):
                return t
            if (
                isinstance(message, TransferStartMessage)
                and t.role is Role.PROVIDER
                and t.suspended_by is Role.PROVIDER
            ):
                raise InvalidTransitionError(
                    "the provider suspended this transfer; only the provider resumes it"
                )
            if (
                isinstance(message, TransferStartMessage)
                and t.role is Role.CONSUMER
                and message.data_address is None
            ):
                raise InvalidMessageError("a pull transfer's start needs a dataAddress")
            t = apply(t, message, sender_role=sender, now=self.clock.now())
            await self.store.update(conn, t)
            self.processes.audit(conn, t, f"transfer.{t.state.lower()}")
            return t

    # -- the outbox loop's steps -------------------------------------------------------------

    async def take_step(self, item: OutboxItem) -> None:
        await self.processes.take_step(item, self._act)

    async def _act(
        self, conn: AsyncConnection, t: Transfer, facts: dict[str, Any]
    ) -> Transfer | None:
        """The provider's decision on a REQUESTED transfer (nothing if it moved on, e.g. the
        consumer terminated it meanwhile): start it, or terminate it naming the failed
        constraint."""
        if t.role is not Role.PROVIDER or t.state is not TransferState.REQUESTED:
            return None
        assert t.agreement_id is not None
        agreement = await self.agreements.get(conn, t.agreement_id, for_change=True)
        if agreement is None:
            t = await self.processes.send(
                conn, t, self._termination(t, "gone", "the agreement no longer exists")
            )
            self.processes.audit(conn, t, "transfer.refused", reason="agreement gone")
            return t
        caller = CallerFacts.from_json(facts)
        policy = validate_policy(agreement.agreement)
        context = self._context(caller, agreement, t, uses_so_far=agreement.uses)
        decision = evaluate(policy, context, Scope.TRANSFER)
        if not decision:
            t = await self.processes.send(conn, t, self._termination(t, "policy", decision.reason))
            self.processes.audit(conn, t, "transfer.refused", reason=decision.reason)
            return t
        # The agreement's uses (its ODRL ``count``) are spent by data plane calls, one each
        # (connector.dataplane.service); a transfer starts only while one is left.
        return await self._start(
            conn, t, expires=self._token_end(policy, context), credentials=context.credentials
        )

    async def get(self, caller: VerifiedCaller, pid: str) -> Transfer:
        async with self.db.reading() as conn:
            return await self.processes.owned(conn, caller.did, pid)

    # -- management ---------------------------------------------------------------------

    async def request(self, *, agreement_id: str, format: str) -> Transfer:
        async with self.db.transaction() as conn:
            agreement = await self.agreements.get(conn, agreement_id)
            if agreement is None or agreement.role is not Role.CONSUMER:
                raise NotFoundError(f"no agreement {agreement_id} as consumer")
            negotiation = await self.negotiations.get(conn, agreement.negotiation_id)
            if negotiation is None or negotiation.counterparty_address is None:
                raise ConflictError(f"agreement {agreement_id}: provider address unknown")
            now = self.clock.now()
            t = Transfer.new(
                id=f"urn:uuid:{uuid.uuid4()}",
                role=Role.CONSUMER,
                counterparty_did=agreement.provider_did,
                counterparty_address=negotiation.counterparty_address,
                now=now,
            )
            t = replace(t, consumer_pid=t.id)
            message = TransferRequestMessage.model_validate(
                {
                    "consumerPid": t.id,
                    "agreementId": agreement_id,
                    "format": format,
                    "callbackAddress": self.me.dsp_base,
                }
            )
            t = await self.processes.send(conn, t, message, initial=True)
            await self.store.insert(conn, t)
            self.processes.audit(conn, t, "transfer.requested")
            return t

    async def complete(self, id: str, *, actor: str) -> Transfer:
        return await self._local_message(
            id,
            actor,
            "completed",
            lambda t: TransferCompletionMessage.model_validate(
                {"providerPid": t.provider_pid, "consumerPid": t.consumer_pid}
            ),
        )

    async def suspend(self, id: str, *, reason: str, actor: str) -> Transfer:
        return await self._local_message(
            id,
            actor,
            "suspended",
            lambda t: TransferSuspensionMessage.model_validate(
                {
                    "providerPid": t.provider_pid,
                    "consumerPid": t.consumer_pid,
                    "code": "suspended",
                    "reason": [reason],
                }
            ),
        )

    async def resume(self, id: str, *, actor: str) -> Transfer:
        """Resume a transfer we suspended (whoever suspended it resumes it). The provider's
        TransferStartMessage carries a fresh DataAddress (a new data plane token, the old one
        may have expired during the pause); the consumer's carries none."""
        async with self.db.transaction() as conn:
            t = await self.processes.local(conn, id)
            if t.state is not TransferState.SUSPENDED:
                raise ConflictError(f"transfer {id} is {t.state}, not SUSPENDED")
            if t.suspended_by is not t.role:
                raise ConflictError(
                    f"transfer {id} was suspended by the {t.suspended_by or 'counterparty'}; "
                    "only the party that suspended it resumes it"
                )
            if t.role is Role.PROVIDER:
                expires = await self._window_end(conn, t)
                t = await self._start(
                    conn, t, expires=expires, event="transfer.resumed", actor=actor
                )
            else:
                t = await self.processes.send(
                    conn,
                    t,
                    TransferStartMessage.model_validate(
                        {"providerPid": t.provider_pid, "consumerPid": t.consumer_pid}
                    ),
                )
                self.processes.audit(conn, t, "transfer.resumed", by=actor)
            await self.store.update(conn, t)
            return t

    async def refresh_token(self, caller: VerifiedCaller, id: str) -> tuple[str, datetime]:
        """A fresh data plane token, and when it expires, for the consumer of a STARTED
        transfer we provide. The agreement's policy is evaluated again against the caller's
        credentials of now and the uses data plane calls have spent: an agreement past its
        time window or a consumer whose membership lapsed gets no new token (403, the failed
        constraints named, the refusal audited) and the token it holds runs out."""
        async with self.db.transaction() as conn:
            t = await self.processes.owned(conn, caller.did, id)
            if t.role is not Role.PROVIDER or t.agreement_id is None:
                raise NotFoundError(f"no transfer {id}")  # as for a stranger
            if t.state is not TransferState.STARTED:
                raise ForbiddenError(f"transfer {id} is {t.state}, not STARTED")
            agreement = await self.agreements.get(conn, t.agreement_id)
            if agreement is None:
                raise NotFoundError(f"no transfer {id}")
            policy = validate_policy(agreement.agreement)
            # uses_so_far: what data plane calls have spent; a used-up agreement gets no token.
            context = self._context(
                CallerFacts.of(caller), agreement, t, uses_so_far=agreement.uses
            )
            decision = evaluate(policy, context, Scope.TRANSFER)
            if not decision:
                self.processes.audit(conn, t, "transfer.token-refused", reason=decision.reason)
            else:
                expires = self._token_end(policy, context)
                token = self._access_token(t, expires, context.credentials)
                if t.data_address is not None:  # the new token replaces the one it had
                    left = seconds_left(expires, self.clock.now())
                    t = replace(t, data_address=with_token(t.data_address, token, left))
                    await self.store.update(conn, t)
                self.processes.audit(conn, t, "transfer.token-issued")
                return token, expires
        raise PolicyViolationError(decision.reason)  # after the commit: the refusal is audited

    async def refresh_endpoint(self, id: str) -> tuple[Transfer, str]:
        """A STARTED transfer we consume and the ``refreshEndpoint`` its DataAddress names,
        which must be on a host the provider controls (the rule for callback addresses: we
        will POST our token and credentials there)."""
        t = await self.get_local(id)
        if t.role is not Role.CONSUMER:
            raise ConflictError(f"transfer {id} is one we provide; its consumer asks for tokens")
        if t.state is not TransferState.STARTED:
            raise ConflictError(f"transfer {id} is {t.state}, not STARTED")
        endpoint = t.data_address.get_property(REFRESH_ENDPOINT) if t.data_address else None
        if not endpoint:
            raise ConflictError(f"the provider's DataAddress for {id} names no refreshEndpoint")
        try:
            await check_callback(
                t.counterparty_did,
                endpoint,
                self.me.insecure_hosts,
                self.me.resolver,
                what="the provider's refreshEndpoint",
            )
        except InvalidMessageError as exc:
            raise UpstreamError(exc.detail, url=endpoint) from None
        return t, endpoint

    async def record_token(self, id: str, token: str, expires_in: int | None) -> Transfer:
        """Keep a fresh data plane token in the transfer's DataAddress (as if the provider
        had sent it in a TransferStartMessage)."""
        async with self.db.transaction() as conn:
            t = await self.store.get(conn, id, for_change=True)
            if t is None or t.data_address is None or t.state is not TransferState.STARTED:
                raise ConflictError(f"transfer {id} is no longer STARTED")
            address = with_token(t.data_address, token, expires_in)
            t = replace(t, data_address=address, updated_at=self.clock.now())
            await self.store.update(conn, t)
            self.processes.audit(conn, t, "transfer.token-refreshed")
            return t

    async def terminate(self, id: str, *, reason: str, actor: str) -> Transfer:
        return await self._local_message(
            id, actor, "terminated", lambda t: self._termination(t, "terminated", reason)
        )

    async def list(self, *, role: Role | None = None) -> list[Transfer]:
        async with self.db.reading() as conn:
            return await self.store.list(conn, role=role)

    async def get_local(self, id: str) -> Transfer:
        async with self.db.reading() as conn:
            t = await self.store.get(conn, id)
        if t is None:
            raise NotFoundError(f"no transfer {id}")
        return t

    # -- internals --------------------------------------------------------------------------

    async def _local_message(
        self, id: str, actor: str, event: str, build: Callable[[Transfer], TransferMessage]
    ) -> Transfer:
        async with self.db.transaction() as conn:
            t = await self.processes.local(conn, id)
            if t.provider_pid is None or t.consumer_pid is None:
                raise ConflictError(f"transfer {id} has not been acknowledged yet; try again")
            t = await self.processes.send(conn, t, build(t))
            await self.store.update(conn, t)
            self.processes.audit(conn, t, f"transfer.{event}", by=actor)
            return t

    async def _start(
        self,
        conn: AsyncConnection,
        t: Transfer,
        *,
        expires: datetime,
        event: str = "transfer.started",
        actor: str | None = None,
        credentials: tuple[VerifiedCredential, ...] = (),
    ) -> Transfer:
        """Sends the TransferStartMessage with a DataAddress whose token lives until
        ``expires`` (``_token_end`` / ``_window_end``: at most ``TOKEN_LIFETIME``); the caller
        writes the transfer."""
        assert t.provider_pid is not None
        now = self.clock.now()
        token = self._access_token(t, expires, credentials)
        public_url = self.me.public_url
        message = TransferStartMessage.model_validate(
            {
                "providerPid": t.provider_pid,
                "consumerPid": t.consumer_pid,
                "dataAddress": {
                    "endpointType": HTTP_ENDPOINT_TYPE,
                    "endpoint": join_url(public_url, "dataplane", "transfers", t.id),
                    "endpointProperties": [
                        {"name": "authorization", "value": token},
                        {"name": "authType", "value": "bearer"},
                        {"name": "expiresIn", "value": str(seconds_left(expires, now))},
                        # POST with the consumer's self-issued token: a fresh authorization.
                        {
                            "name": REFRESH_ENDPOINT,
                            "value": join_url(public_url, "dataplane", "transfers", t.id, "token"),
                        },
                    ],
                },
            }
        )
        t = await self.processes.send(conn, t, message)
        self.processes.audit(conn, t, event, **({"by": actor} if actor else {}))
        return t

    def _access_token(
        self, t: Transfer, expires: datetime, credentials: tuple[VerifiedCredential, ...] = ()
    ) -> str:
        """A data plane token for the consumer of ``t``, bound to its agreement and to ``t``."""
        assert t.agreement_id is not None
        return issue_access_token(
            did=self.me.did,
            keys=self.me.keys,
            consumer=t.counterparty_did,
            agreement_id=t.agreement_id,
            transfer_id=t.id,
            now=self.clock.now(),
            expires=expires,
            credentials=credentials,
        )

    def _context(
        self, caller: CallerFacts, agreement: AgreementRecord, t: Transfer, *, uses_so_far: int
    ) -> EvaluationContext:
        return context_for(
            caller,
            now=self.clock.now(),
            trusted_issuers=self.me.trusted_issuers,
            dataset_id=agreement.dataset_id,
            uses_so_far=uses_so_far,
            output_type=output_type_of(t.format),
        )

    async def _window_end(self, conn: AsyncConnection, t: Transfer) -> datetime:
        """For a resume by our own operator, with no consumer credentials at hand: the
        agreement's time window must still be open (else 403), and the new token ends with it
        (the consumer's credentials are checked again when it refreshes the token)."""
        assert t.agreement_id is not None
        agreement = await self.agreements.get(conn, t.agreement_id)
        if agreement is None:
            raise ConflictError(f"transfer {t.id}: its agreement {t.agreement_id} is gone")
        window = time_bounds(validate_policy(agreement.agreement))
        context = EvaluationContext(caller=t.counterparty_did, now=self.clock.now())
        decision = evaluate(window, context, Scope.TRANSFER)
        if not decision:
            raise PolicyViolationError(
                f"transfer {t.id} cannot be resumed: the agreement no longer permits it: "
                f"{decision.reason}"
            )
        return permitted_until(window, context, Scope.TRANSFER, until=context.now + TOKEN_LIFETIME)

    def _token_end(self, policy: Policy, context: EvaluationContext) -> datetime:
        """When a data plane token issued now must expire: after ``TOKEN_LIFETIME``, or sooner
        when the agreement's time window ends or a credential it was checked against lapses."""
        until = context.now + TOKEN_LIFETIME
        return permitted_until(policy, context, Scope.TRANSFER, until=until)

    @staticmethod
    def _termination(t: Transfer, code: str, reason: str) -> TransferTerminationMessage:
        return TransferTerminationMessage.model_validate(
            {
                "providerPid": t.provider_pid,
                "consumerPid": t.consumer_pid,
                "code": code,
                "reason": [reason],
            }
        )
