"""Contract negotiation, both roles: handlers record, the outbox loop sends.

Received messages are applied with the pure state machine (``negotiation.apply``); our own
replies are applied when they are recorded, in the same transaction as their outbox row and
audit entry. The provider evaluates the stored offer's policy for the caller when a request
arrives, agrees (or waits for a person's approval, or terminates naming the failed
constraint) and signs the agreement; the consumer checks the provider's signature before it
counter-signs in the verification message.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from connector.audit import AuditLog
from connector.datasets import DatasetStore
from connector.dsp.messages import (
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
    dump,
)
from connector.dsp.negotiation import Negotiation, apply, is_repeat
from connector.dsp.policy_shape import offer_problem
from connector.dsp.states import NegotiationEventType, NegotiationState, Role
from connector.dsp.store import AgreementRecord, ChangedSinceRead, DspStore
from connector.dsp.urls import join_url
from connector.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InvalidMessageError,
    InvalidTransitionError,
    NotFoundError,
    PhemsError,
    PolicyDefinitionError,
)
from connector.exchange.callbacks import check_callback
from connector.exchange.policy_context import context_for
from connector.exchange.repeats import created_or_recorded
from connector.exchange.sender import fill_pid
from connector.identity.agreements import (
    SIGNATURE_PROPERTY,
    sign_agreement,
    verify_agreement_signature,
    with_signature,
)
from connector.identity.keys import ConnectorKeys
from connector.identity.resolver import DidResolver
from connector.identity.tokens import VerifiedCaller
from connector.policy import (
    Scope,
    describe_policy,
    evaluate,
    make_agreement,
    names_recipients,
    offers_match,
    to_jsonld,
    validate_policy,
)
from connector.ports import Clock

NegotiationMessage = (
    ContractRequestMessage
    | ContractOfferMessage
    | ContractAgreementMessage
    | ContractAgreementVerificationMessage
    | ContractNegotiationEventMessage
    | ContractNegotiationTerminationMessage
)

_AUDIT_KEY = "negotiation_audit"
# How often a received message is applied again when its negotiation changed between the read
# and the write (PostgreSQL, optimistic): each retry means another writer got in first.
_RECEIVE_ATTEMPTS = 5
_AFTER_AGREED = frozenset({NegotiationState.VERIFIED, NegotiationState.FINALIZED})

# Where each of our messages goes: path segments after the counterparty's base address;
# "{pid}" is the counterparty's process id, filled in when the message is sent.
_PATHS: dict[tuple[Role, str], tuple[str, ...]] = {
    (Role.CONSUMER, "ContractRequestMessage"): ("negotiations", "{pid}", "request"),
    (Role.CONSUMER, "ContractRequestMessage:initial"): ("negotiations", "request"),
    (Role.CONSUMER, "ContractNegotiationEventMessage"): ("negotiations", "{pid}", "events"),
    (Role.CONSUMER, "ContractAgreementVerificationMessage"): (
        "negotiations",
        "{pid}",
        "agreement",
        "verification",
    ),
    (Role.CONSUMER, "ContractNegotiationTerminationMessage"): (
        "negotiations",
        "{pid}",
        "termination",
    ),
    (Role.PROVIDER, "ContractOfferMessage"): ("negotiations", "{pid}", "offers"),
    (Role.PROVIDER, "ContractOfferMessage:initial"): ("negotiations", "offers"),
    (Role.PROVIDER, "ContractAgreementMessage"): ("negotiations", "{pid}", "agreement"),
    (Role.PROVIDER, "ContractNegotiationEventMessage"): ("negotiations", "{pid}", "events"),
    (Role.PROVIDER, "ContractNegotiationTerminationMessage"): (
        "negotiations",
        "{pid}",
        "termination",
    ),
}


def message_url(base: str, role: Role, message_type: str, initial: bool) -> str:
    key = (role, f"{message_type}:initial" if initial else message_type)
    return join_url(base, *_PATHS[key])


class NegotiationService:
    def __init__(
        self,
        *,
        store: DspStore,
        datasets: DatasetStore,
        audit: AuditLog,
        clock: Clock,
        did: str,
        keys: ConnectorKeys,
        resolver: DidResolver,
        trusted_issuers: list[str],
        dsp_base: str,
        insecure_hosts: Collection[str] = (),
    ) -> None:
        self.store = store
        self.datasets = datasets
        self.audit = audit
        self.clock = clock
        self.did = did
        self.keys = keys
        self.resolver = resolver
        self.trusted_issuers = trusted_issuers
        self.dsp_base = dsp_base
        self.insecure_hosts = insecure_hosts

    # -- received messages ----------------------------------------------------------------

    async def receive_request(
        self, caller: VerifiedCaller, message: ContractRequestMessage
    ) -> tuple[Negotiation, bool]:
        """An initial ContractRequestMessage (provider role); returns (negotiation, created).
        A repeat of a request already recorded (same consumerPid from the same caller)
        returns the recorded negotiation unchanged, also when the copies arrive together.

        Repeats are rare (a consumer's retry), so the request is not looked up first: the
        unique constraint on (role, caller, consumerPid) refuses the repeat's insert at the
        commit, and the recorded negotiation is read then. A repeat that would now be refused
        (its dataset retired since, say) is still answered with the recorded negotiation."""

        async def recorded() -> Negotiation | None:
            async with self.store.reading() as conn:
                return await self.store.find_negotiation(
                    conn, Role.PROVIDER, caller.did, message.consumer_pid
                )

        return await created_or_recorded(
            lambda: self._receive_request(caller, message), recorded, also=(PhemsError,)
        )

    async def _receive_request(
        self, caller: VerifiedCaller, message: ContractRequestMessage
    ) -> tuple[Negotiation, bool]:
        if message.callback_address is not None:
            await check_callback(
                caller.did, message.callback_address, self.insecure_hosts, self.resolver
            )
        dataset_id = message.dataset_id
        async with self._transaction() as conn:
            # Read before the transaction begins (it then only writes: one statement on
            # PostgreSQL). Inside it, the read would not lock the dataset either: a retirement
            # committed between this read and our commit is missed in both cases (READ
            # COMMITTED).
            stored_offer = await self._stored_offer(conn, dataset_id, message.offer, caller)
            now = self.clock.now()
            n = Negotiation.new(
                id=f"urn:uuid:{uuid.uuid4()}",
                role=Role.PROVIDER,
                counterparty_did=caller.did,
                now=now,
                provider_pid=None,
            )
            n = replace(n, provider_pid=n.id)
            n = apply(n, message, sender_role=Role.CONSUMER, now=now)
            n = replace(n, offer=stored_offer | {"target": dataset_id})
            self._audit(conn, n, "negotiation.requested", dataset_id=dataset_id)
            n, hold = await self._provider_decide(conn, n, caller)
            await self.store.insert_negotiation(conn, n)
            if hold:
                await self.store.set_approval(conn, n.id, "pending")
            return n, True

    async def receive_offer(
        self, caller: VerifiedCaller, message: ContractOfferMessage
    ) -> tuple[Negotiation, bool]:
        """An initial ContractOfferMessage (consumer role): a provider-initiated negotiation.
        A repeat (same providerPid from the same caller) returns the recorded negotiation
        unchanged, also when the copies arrive together (unique index uq_negotiation_ppid)."""

        async def recorded() -> Negotiation | None:
            async with self.store.reading() as conn:
                return await self.store.find_by_provider_pid(
                    conn, Role.CONSUMER, caller.did, message.provider_pid
                )

        return await created_or_recorded(lambda: self._receive_offer(caller, message), recorded)

    async def _receive_offer(
        self, caller: VerifiedCaller, message: ContractOfferMessage
    ) -> tuple[Negotiation, bool]:
        async with self._transaction() as conn:
            if message.callback_address is None:
                raise InvalidMessageError("an initial offer needs a callbackAddress")
            existing = await self.store.find_by_provider_pid(
                conn, Role.CONSUMER, caller.did, message.provider_pid
            )
            if existing is not None:
                return existing, False
            await check_callback(
                caller.did, message.callback_address, self.insecure_hosts, self.resolver
            )
            now = self.clock.now()
            n = Negotiation.new(
                id=f"urn:uuid:{uuid.uuid4()}",
                role=Role.CONSUMER,
                counterparty_did=caller.did,
                now=now,
            )
            n = replace(n, consumer_pid=n.id)
            n = apply(n, message, sender_role=Role.PROVIDER, now=now)
            await self.store.insert_negotiation(conn, n)
            self._audit(conn, n, "negotiation.offered")
            return n, True

    async def receive(
        self, caller: VerifiedCaller, pid: str, message: NegotiationMessage
    ) -> Negotiation:
        """Any message for an existing negotiation of ours, in either role."""
        signed = isinstance(
            message, ContractAgreementMessage | ContractAgreementVerificationMessage
        )
        if signed:
            # A party's signature is checked with its DID key, resolved (or taken from the
            # cache, where verifying the caller's token just put it) before the row is read.
            await self.resolver.resolve(caller.did)
        # The negotiation may change between our read and our write (a message crossing this
        # one, an ACK recorded): then nothing was written; apply it to the new state.
        for _ in range(_RECEIVE_ATTEMPTS - 1):
            with suppress(ChangedSinceRead):
                return await self._receive(caller, pid, message, signed=signed)
        try:
            return await self._receive(caller, pid, message, signed=signed)
        except ChangedSinceRead:
            raise ConflictError(
                f"negotiation {pid} kept changing while this message was applied; send it again"
            ) from None

    async def _receive(
        self, caller: VerifiedCaller, pid: str, message: NegotiationMessage, *, signed: bool
    ) -> Negotiation:
        """``receive`` once. On PostgreSQL the row is read without a lock and written only if
        unchanged since (else ``ChangedSinceRead``): a read and one write statement, with no
        BEGIN and COMMIT. Elsewhere it is locked in the transaction."""
        async with self._transaction() as conn:
            version: int | None = None
            if self.store.optimistic:
                n, version = await self._owned_versioned(conn, caller, pid)
            else:
                n = await self._owned(conn, caller, pid, lock=True)
            sender = n.role.other
            if self._already_applied(n, message, sender):
                return n
            if signed:
                await self._check_signatures(n, message)
            n = apply(n, message, sender_role=sender, now=self.clock.now())
            self._audit(conn, n, f"negotiation.{n.state.lower()}")
            n, hold = await self._react(conn, n, caller, message)
            await self.store.update_negotiation(conn, n, expect=version)
            if hold:
                await self.store.set_approval(conn, n.id, "pending")
            return n

    async def get(self, caller: VerifiedCaller, pid: str) -> Negotiation:
        async with self.store.reading() as conn:
            return await self._owned(conn, caller, pid)

    # -- management (our own initiative) -----------------------------------------------------

    async def request(
        self, *, counterparty_address: str, counterparty_did: str, offer: dict[str, Any]
    ) -> Negotiation:
        """Consumer: start a negotiation for ``offer`` (as found in the provider's catalog,
        with ``target`` = the dataset id)."""
        validate_policy(offer)
        if not offer.get("target"):
            raise BadRequestError("offer needs a 'target' (the dataset id)")
        problem = offer_problem(offer, require_target=True)  # what the message will demand
        if problem is not None:
            raise BadRequestError(f"offer: {problem}")
        now = self.clock.now()
        n = Negotiation.new(
            id=f"urn:uuid:{uuid.uuid4()}",
            role=Role.CONSUMER,
            counterparty_did=counterparty_did,
            counterparty_address=counterparty_address,
            now=now,
        )
        n = replace(n, consumer_pid=n.id)
        # The offer goes out as the provider wrote it (some compare it with theirs verbatim).
        message = ContractRequestMessage.model_validate(
            {"consumerPid": n.id, "offer": offer, "callbackAddress": self.dsp_base}
        )
        async with self._transaction() as conn:
            n = await self._send(conn, n, message, initial=True)
            await self.store.insert_negotiation(conn, n)
            self._audit(conn, n, "negotiation.requested", dataset_id=str(offer["target"]))
        return n

    async def offer(
        self, *, counterparty_address: str, counterparty_did: str, dataset_id: str, offer_id: str
    ) -> Negotiation:
        """Provider: offer one of a dataset's stored offers to a consumer (provider-initiated)."""
        now = self.clock.now()
        n = Negotiation.new(
            id=f"urn:uuid:{uuid.uuid4()}",
            role=Role.PROVIDER,
            counterparty_did=counterparty_did,
            counterparty_address=counterparty_address,
            now=now,
        )
        n = replace(n, provider_pid=n.id)
        async with self._transaction() as conn:
            dataset = await self.datasets.get(conn, dataset_id)
            stored = dataset.offer(offer_id) if dataset else None
            if stored is None:
                raise NotFoundError(f"dataset {dataset_id} has no offer {offer_id}")
            message = ContractOfferMessage.model_validate(
                {
                    "providerPid": n.id,
                    # As in our catalog: the offer's normalised compact form.
                    "offer": to_jsonld(validate_policy(stored))
                    | {"target": dataset_id, "assigner": self.did},
                    "callbackAddress": self.dsp_base,
                }
            )
            n = await self._send(conn, n, message, initial=True)
            await self.store.insert_negotiation(conn, n)
            self._audit(conn, n, "negotiation.offered", dataset_id=dataset_id)
        return n

    async def accept(self, id: str) -> Negotiation:
        """Consumer: accept the provider's current offer."""
        async with self._transaction() as conn:
            n = await self._local(conn, id, Role.CONSUMER)
            message = ContractNegotiationEventMessage.model_validate(
                {
                    "providerPid": n.provider_pid,
                    "consumerPid": n.consumer_pid,
                    "eventType": NegotiationEventType.ACCEPTED,
                }
            )
            n = await self._send(conn, n, message)
            await self.store.update_negotiation(conn, n)
            self._audit(conn, n, "negotiation.accepted")
            return n

    async def approve(self, id: str, *, approver: str) -> Negotiation:
        """Provider: a person approved a request that its policy holds for approval."""
        async with self._transaction() as conn:
            n = await self._local(conn, id, Role.PROVIDER)
            if await self.store.approval(conn, n.id) != "pending":
                raise ConflictError(f"negotiation {id} is not waiting for approval")
            await self.store.set_approval(conn, n.id, "approved")
            self._audit(conn, n, "negotiation.approved", approver=approver)
            n = await self._agree(conn, n)
            await self.store.update_negotiation(conn, n)
            return n

    async def terminate(self, id: str, *, reason: str, actor: str) -> Negotiation:
        async with self._transaction() as conn:
            n = await self._local(conn, id, None)
            if await self.store.approval(conn, n.id) == "pending":
                await self.store.set_approval(conn, n.id, "rejected")
            n = await self._terminate(conn, n, code="terminated", reason=reason)
            await self.store.update_negotiation(conn, n)
            self._audit(conn, n, "negotiation.terminated", by=actor, reason=reason)
            return n

    async def list(self, *, role: Role | None = None, pending: bool = False) -> list[Negotiation]:
        async with self._transaction() as conn:
            return await self.store.list_negotiations(
                conn, role=role, approval="pending" if pending else None
            )

    async def get_local(self, id: str) -> Negotiation:
        async with self._transaction() as conn:
            return await self._local(conn, id, None)

    # -- internals ---------------------------------------------------------------------------

    async def _stored_offer(
        self,
        conn: AsyncConnection,
        dataset_id: str,
        requested: dict[str, Any],
        caller: VerifiedCaller,
    ) -> dict[str, Any]:
        """The stored offer ``requested`` names. An offer made only to recipients other
        than the caller is answered as one that does not exist, and a dataset with no other
        offer as an unknown dataset: the answer tells nothing the catalogs (public and the
        caller's) do not. Other offers are public: a caller who does not qualify learns why
        from the termination reason."""
        dataset = await self.datasets.get(conn, dataset_id) if dataset_id else None
        unknown = InvalidMessageError(f"unknown dataset {dataset_id!r} (offer target)")
        if dataset is None or dataset.status != "published":
            raise unknown
        offer_id = requested.get("@id")
        stored = dataset.offer(offer_id) if isinstance(offer_id, str) else None
        if stored is None or not self._visible(stored, caller, dataset_id):
            if not any(self._visible(o, caller, dataset_id) for o in dataset.offers):
                raise unknown
            raise InvalidMessageError(f"dataset {dataset_id} has no offer {offer_id!r}")
        requested_norm = {**requested, "assigner": requested.get("assigner", self.did)}
        stored_full = stored | {"target": dataset_id, "assigner": self.did}
        try:
            match = offers_match(requested_norm, stored_full, dataset_id=dataset_id)
        except BadRequestError as exc:
            raise InvalidMessageError(f"offer {offer_id}: {exc.detail}") from None
        if not match:
            raise InvalidMessageError(
                f"offer {offer_id} differs from the stored offer: {match.reason}"
            )
        return stored_full

    def _visible(self, offer: dict[str, Any], caller: VerifiedCaller, dataset_id: str) -> bool:
        """Whether ``caller`` may know of ``offer``: a public one, or one naming it."""
        policy = validate_policy(offer)
        if not names_recipients(policy):
            return True
        now = self.clock.now()
        context = context_for(
            caller, now=now, trusted_issuers=self.trusted_issuers, dataset_id=dataset_id
        )
        return evaluate(policy, context, Scope.CATALOG).permitted

    async def _provider_decide(
        self, conn: AsyncConnection, n: Negotiation, caller: VerifiedCaller
    ) -> tuple[Negotiation, bool]:
        """After REQUESTED or ACCEPTED: evaluate the policy, then agree, hold for a person's
        approval (returns ``hold`` True: the caller marks it pending once the row is written),
        or terminate. The caller writes the negotiation."""
        offer = n.offer or {}
        policy = validate_policy(offer)
        dataset_id = str(offer.get("target", ""))
        decision = evaluate(
            policy,
            context_for(
                caller,
                now=self.clock.now(),
                trusted_issuers=self.trusted_issuers,
                dataset_id=dataset_id,
            ),
            Scope.NEGOTIATION,
        )
        if not decision:
            n = await self._terminate(conn, n, code="policy", reason=decision.reason)
            self._audit(conn, n, "negotiation.refused", reason=decision.reason)
            return n, False
        if policy.approval_required:
            self._audit(conn, n, "negotiation.awaiting-approval")
            return n, True
        return await self._agree(conn, n), False

    async def _agree(self, conn: AsyncConnection, n: Negotiation) -> Negotiation:
        offer = n.offer or {}
        agreement = make_agreement(
            {k: v for k, v in offer.items() if k != "assigner"} | {"assigner": self.did},
            agreement_id=f"urn:uuid:{uuid.uuid4()}",
            target=str(offer["target"]),
            assigner=self.did,
            assignee=n.counterparty_did,
            timestamp=self.clock.now(),
        )
        signature = sign_agreement(agreement, self.did, self.keys.signing)
        message = ContractAgreementMessage.model_validate(
            {
                "providerPid": n.provider_pid,
                "consumerPid": n.consumer_pid,
                "agreement": with_signature(agreement, signature),
                "callbackAddress": self.dsp_base,
            }
        )
        n = await self._send(conn, n, message)
        self._audit(conn, n, "negotiation.agreed", agreement_id=str(agreement["@id"]))
        return n

    async def _react(
        self,
        conn: AsyncConnection,
        n: Negotiation,
        caller: VerifiedCaller,
        message: NegotiationMessage,
    ) -> tuple[Negotiation, bool]:
        """Our answer to a message just applied: returns the negotiation (the caller writes
        it) and whether it now waits for a person's approval."""
        if n.role is Role.PROVIDER:
            if n.state in (NegotiationState.REQUESTED, NegotiationState.ACCEPTED):
                if isinstance(message, ContractRequestMessage):  # counter-offer
                    stored = await self._stored_offer(
                        conn, message.dataset_id, message.offer, caller
                    )
                    n = replace(n, offer=stored | {"target": message.dataset_id})
                return await self._provider_decide(conn, n, caller)
            if n.state is NegotiationState.VERIFIED:
                await self._record_agreement(conn, n)
                message_out = ContractNegotiationEventMessage.model_validate(
                    {
                        "providerPid": n.provider_pid,
                        "consumerPid": n.consumer_pid,
                        "eventType": NegotiationEventType.FINALIZED,
                    }
                )
                n = await self._send(conn, n, message_out)
                self._audit(conn, n, "negotiation.finalized")
            return n, False
        if n.state is NegotiationState.AGREED:
            agreement = n.agreement or {}
            signature = sign_agreement(agreement, self.did, self.keys.signing)
            verification = ContractAgreementVerificationMessage.model_validate(
                {
                    "providerPid": n.provider_pid,
                    "consumerPid": n.consumer_pid,
                    SIGNATURE_PROPERTY: signature,
                }
            )
            n = await self._send(conn, n, verification)
            self._audit(conn, n, "negotiation.verified")
        elif n.state is NegotiationState.FINALIZED:
            await self._record_agreement(conn, n)
        return n, False

    async def _record_agreement(self, conn: AsyncConnection, n: Negotiation) -> None:
        agreement = {k: v for k, v in (n.agreement or {}).items() if k != SIGNATURE_PROPERTY}
        if not n.provider_signature or not n.consumer_signature:
            raise InvalidTransitionError(f"negotiation {n.id} lacks a signature")
        provider, consumer = (
            (self.did, n.counterparty_did)
            if n.role is Role.PROVIDER
            else (n.counterparty_did, self.did)
        )
        await self.store.insert_agreement(
            conn,
            AgreementRecord(
                id=str(agreement["@id"]),
                negotiation_id=n.id,
                role=n.role,
                dataset_id=str(agreement.get("target", "")),
                provider_did=provider,
                consumer_did=consumer,
                agreement=agreement,
                provider_signature=n.provider_signature,
                consumer_signature=n.consumer_signature,
                uses=0,
                epsilon_spent=0.0,
                created_at=self.clock.now(),
            ),
        )

    @staticmethod
    def _check_terms(agreement: dict[str, Any], offer: dict[str, Any]) -> None:
        """We counter-sign only what we negotiated: same target, same rules as the offer."""
        try:
            terms, offered = validate_policy(agreement), validate_policy(offer)
        except PolicyDefinitionError as exc:
            raise InvalidMessageError(f"agreement: {exc.detail}") from None
        if terms.target != offered.target or terms.rules != offered.rules:
            raise InvalidMessageError(
                f"agreement terms differ from the negotiated offer: agreed "
                f"'{describe_policy(terms)}', offered '{describe_policy(offered)}'"
            )

    async def _check_signatures(self, n: Negotiation, message: NegotiationMessage) -> None:
        try:
            if isinstance(message, ContractAgreementMessage) and n.role is Role.CONSUMER:
                agreement = message.agreement
                if (
                    agreement.get("assignee") != self.did
                    or agreement.get("assigner") != n.counterparty_did
                ):
                    raise InvalidMessageError("agreement assigner/assignee are not the parties")
                self._check_terms(agreement, n.offer or {})
                await verify_agreement_signature(agreement, n.counterparty_did, self.resolver)
            elif (
                isinstance(message, ContractAgreementVerificationMessage)
                and n.role is Role.PROVIDER
            ):
                if n.agreement is None:
                    raise InvalidTransitionError("no agreement to verify")
                if not message.signature:
                    # Never fall back to the agreement's own (our) signature.
                    raise InvalidMessageError(
                        "the agreement verification carries no consumer signature "
                        f"({SIGNATURE_PROPERTY}): this connector requires agreements signed by "
                        "both parties"
                    )
                await verify_agreement_signature(
                    n.agreement, n.counterparty_did, self.resolver, signature=message.signature
                )
        except AuthenticationError as exc:
            # A bad signature is a bad message, not a bad caller.
            raise InvalidMessageError(exc.detail) from None

    def _already_applied(self, n: Negotiation, message: NegotiationMessage, sender: Role) -> bool:
        """Idempotency: a message re-sent after we applied it changes nothing (200). Our own
        immediate reply may already have moved the negotiation one step further."""
        if is_repeat(n, message, sender_role=sender):
            return True
        if isinstance(message, ContractAgreementMessage):
            return n.state in _AFTER_AGREED and message.agreement == n.agreement
        if isinstance(message, ContractAgreementVerificationMessage):
            return (
                n.state is NegotiationState.FINALIZED and message.signature == n.consumer_signature
            )
        if n.role is Role.PROVIDER and (
            isinstance(message, ContractRequestMessage)
            or (
                isinstance(message, ContractNegotiationEventMessage)
                and message.event_type is NegotiationEventType.ACCEPTED
            )
        ):
            # Answered at once by our agreement in the same transaction.
            return n.state in _AFTER_AGREED | {NegotiationState.AGREED}
        return False

    async def _send(
        self,
        conn: AsyncConnection,
        n: Negotiation,
        message: NegotiationMessage,
        *,
        initial: bool = False,
    ) -> Negotiation:
        """Apply our own ``message`` and queue it; the caller writes the negotiation."""
        n = apply(n, message, sender_role=n.role, now=self.clock.now())
        if n.counterparty_address is None:
            raise ConflictError(f"negotiation {n.id} has no counterparty address")
        url = message_url(n.counterparty_address, n.role, message.TYPE, initial)
        if n.counterparty_pid is not None:
            # Known now: the sender need not read the negotiation back to fill it in.
            url = fill_pid(url, n.counterparty_pid)
        await self.store.enqueue(
            conn,
            process_kind="negotiation",
            process_id=n.id,
            message_type=message.TYPE + (":initial" if initial else ""),
            url=url,
            audience=n.counterparty_did,
            body=dump(message),
            now=self.clock.now(),
        )
        return n

    async def _terminate(
        self, conn: AsyncConnection, n: Negotiation, *, code: str, reason: str
    ) -> Negotiation:
        if n.state.is_terminal:
            raise ConflictError(f"negotiation {n.id} is already {n.state}")
        if n.provider_pid is None or n.consumer_pid is None:
            raise ConflictError(f"negotiation {n.id} has not been acknowledged yet; try again")
        message = ContractNegotiationTerminationMessage.model_validate(
            {
                "providerPid": n.provider_pid,
                "consumerPid": n.consumer_pid,
                "code": code,
                "reason": [reason],
            }
        )
        return await self._send(conn, n, message)

    async def _owned(
        self, conn: AsyncConnection, caller: VerifiedCaller, pid: str, *, lock: bool = False
    ) -> Negotiation:
        n = await self.store.get_negotiation(conn, pid, lock=lock)
        if n is None or n.counterparty_did != caller.did:
            # Unknown, or not the caller's: the same answer, so nothing leaks.
            raise NotFoundError(f"no negotiation {pid}")
        return n

    async def _owned_versioned(
        self, conn: AsyncConnection, caller: VerifiedCaller, pid: str
    ) -> tuple[Negotiation, int]:
        found = await self.store.get_negotiation_versioned(conn, pid)
        if found is None or found[0].counterparty_did != caller.did:
            raise NotFoundError(f"no negotiation {pid}")
        return found

    async def _local(self, conn: AsyncConnection, id: str, role: Role | None) -> Negotiation:
        n = await self.store.get_negotiation(conn, id, lock=True)
        if n is None or (role is not None and n.role is not role):
            raise NotFoundError(f"no {role or ''} negotiation {id}".replace("  ", " "))
        return n

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        """The store's transaction; the audit entries recorded in it are written at its end
        in one INSERT (they commit with the state change they record; the audit chainer links
        them afterwards)."""
        async with self.store.transaction() as conn:
            conn.info[_AUDIT_KEY] = []
            try:
                yield conn
                await self.audit.append_many(conn, conn.info[_AUDIT_KEY])
            finally:
                # conn.info outlives the checkout (it belongs to the pooled connection); an
                # invalidated connection's went with it (and touching it would raise).
                if not conn.invalidated:
                    conn.info.pop(_AUDIT_KEY, None)

    @staticmethod
    def _audit(conn: AsyncConnection, n: Negotiation, event: str, **details: Any) -> None:
        agreement_id = (n.agreement or {}).get("@id")
        conn.info[_AUDIT_KEY].append(
            {
                "actor": n.counterparty_did,
                "event": event,
                "negotiation_id": n.id,
                "agreement_id": str(agreement_id) if agreement_id else None,
                "details": {"state": str(n.state), "role": str(n.role), **details},
            }
        )
