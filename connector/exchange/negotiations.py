"""Contract negotiation, both roles: handlers record, the outbox loop decides and sends.

A received message is applied with the pure state machine (``negotiation.apply``) and answered
with the state it created; a message received before (its sender retried) is answered with the
negotiation as it is, anything else the table forbids is a 400 that changes nothing
(``negotiation.is_repeat``). The provider's decision on a request (initial or counter-offer) or
an ACCEPTED event is a step the outbox loop takes after the answer
(``connector.exchange.process``): evaluate the stored offer's policy with the caller's
credentials, then agree (signing the agreement), hold for a person's approval, or terminate
naming the failed constraint. The replies that decide nothing are recorded with the message
that calls for them, and sent by the loop after the answer: the consumer's verification of an
agreement (whose provider signature and terms the handler checked) and the provider's
FINALIZED event after a verification (with the agreement kept, both signatures checked). Our
own messages are applied when they are recorded, in the transaction of their outbox row and
audit entry.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from connector.audit import AuditLog
from connector.dsp.agreement import AgreementRecord
from connector.dsp.messages import (
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
)
from connector.dsp.negotiation import Negotiation, apply, event_of, is_repeat, next_state
from connector.dsp.policy_shape import offer_problem
from connector.dsp.states import NegotiationEventType, NegotiationState, Role
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
from connector.exchange.policy_context import CallerFacts, context_for
from connector.exchange.ports import DspStores, OutboxItem
from connector.exchange.process import Participant, Processes, ProcessKind
from connector.exchange.repeats import created_or_recorded
from connector.identity.agreements import (
    SIGNATURE_PROPERTY,
    sign_agreement,
    verify_agreement_signature,
    with_signature,
)
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
from connector.publishing.store import DatasetStore

NegotiationMessage = (
    ContractRequestMessage
    | ContractOfferMessage
    | ContractAgreementMessage
    | ContractAgreementVerificationMessage
    | ContractNegotiationEventMessage
    | ContractNegotiationTerminationMessage
)

_S = NegotiationState
# The states a received message leaves a provider's negotiation in that call for its
# decision: a step of the outbox loop after the answer.
_DECIDE = frozenset({_S.REQUESTED, _S.ACCEPTED})


def _audit_fields(n: Negotiation) -> dict[str, Any]:
    agreement_id = (n.agreement or {}).get("@id")
    return {
        "negotiation_id": n.id,
        "agreement_id": str(agreement_id) if agreement_id else None,
        "details": {"state": str(n.state), "role": str(n.role)},
    }


NEGOTIATION = ProcessKind[Negotiation](
    name="negotiation",
    apply=apply,
    paths={
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
    },
    audit_fields=_audit_fields,
)


class NegotiationService:
    def __init__(
        self,
        *,
        stores: DspStores,
        datasets: DatasetStore,
        audit: AuditLog,
        clock: Clock,
        me: Participant,
    ) -> None:
        self.db = stores.db
        self.store = stores.negotiations
        self.agreements = stores.agreements
        self.datasets = datasets
        self.clock = clock
        self.me = me
        self.processes = Processes(
            NEGOTIATION, stores.negotiations, stores=stores, audit=audit, clock=clock
        )

    # -- received messages ----------------------------------------------------------------

    async def receive_request(
        self, caller: VerifiedCaller, message: ContractRequestMessage
    ) -> tuple[Negotiation, bool]:
        """An initial ContractRequestMessage (provider role): recorded REQUESTED, the
        decision a step after the answer; returns (negotiation, created). A repeat of a
        request already recorded (same consumerPid from the same caller) returns the recorded
        negotiation unchanged, also when the copies arrive together.

        Repeats are rare (a consumer's retry), so the request is not looked up first: the
        unique constraint on (role, caller, consumerPid) refuses the repeat's insert at the
        commit, and the recorded negotiation is read then. A repeat that would now be refused
        (its dataset retired since, say) is still answered with the recorded negotiation."""

        async def recorded() -> Negotiation | None:
            async with self.db.reading() as conn:
                return await self.store.find(
                    conn, Role.PROVIDER, caller.did, consumer_pid=message.consumer_pid
                )

        return await created_or_recorded(
            lambda: self._receive_request(caller, message), recorded, also=(PhemsError,)
        )

    async def _receive_request(
        self, caller: VerifiedCaller, message: ContractRequestMessage
    ) -> tuple[Negotiation, bool]:
        if message.callback_address is not None:
            await check_callback(
                caller.did, message.callback_address, self.me.insecure_hosts, self.me.resolver
            )
        dataset_id = message.dataset_id
        async with self.db.transaction() as conn:
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
            )
            n = replace(n, provider_pid=n.id)
            n = apply(n, message, sender_role=Role.CONSUMER, now=now)
            n = replace(n, offer=stored_offer | {"target": dataset_id})
            await self.store.insert(conn, n)
            self.processes.audit(conn, n, "negotiation.requested", dataset_id=dataset_id)
            await self.processes.call_for_step(conn, n, CallerFacts.of(caller).as_json())
            return n, True

    async def receive_offer(
        self, caller: VerifiedCaller, message: ContractOfferMessage
    ) -> tuple[Negotiation, bool]:
        """An initial ContractOfferMessage (consumer role): a provider-initiated negotiation.
        A repeat (same providerPid from the same caller) returns the recorded negotiation
        unchanged, also when the copies arrive together (unique index uq_negotiation_ppid)."""

        async def recorded() -> Negotiation | None:
            async with self.db.reading() as conn:
                return await self.store.find(
                    conn, Role.CONSUMER, caller.did, provider_pid=message.provider_pid
                )

        return await created_or_recorded(lambda: self._receive_offer(caller, message), recorded)

    async def _receive_offer(
        self, caller: VerifiedCaller, message: ContractOfferMessage
    ) -> tuple[Negotiation, bool]:
        if message.callback_address is None:
            raise InvalidMessageError("an initial offer needs a callbackAddress")
        async with self.db.transaction() as conn:
            existing = await self.store.find(
                conn, Role.CONSUMER, caller.did, provider_pid=message.provider_pid
            )
            if existing is not None:
                return existing, False
            await check_callback(
                caller.did, message.callback_address, self.me.insecure_hosts, self.me.resolver
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
            await self.store.insert(conn, n)
            self.processes.audit(conn, n, "negotiation.offered")
            return n, True

    async def receive(
        self, caller: VerifiedCaller, pid: str, message: NegotiationMessage
    ) -> Negotiation:
        """Any message for an existing negotiation of ours, in either role: the negotiation
        as the message left it (the answer), before any reply of ours recorded with it."""
        signed = isinstance(
            message, ContractAgreementMessage | ContractAgreementVerificationMessage
        )
        if signed:
            # A party's signature is checked with its DID key, resolved (or taken from the
            # cache, where verifying the caller's token just put it) before the row is read.
            await self.me.resolver.resolve(caller.did)
        # The negotiation may change between our read and our write (a message crossing this
        # one, an ACK recorded, a step taken): then nothing was written; it is applied again.
        return await self.db.attempt(
            lambda conn: self._receive(conn, caller, pid, message, signed=signed),
            conflict=(
                f"negotiation {pid} kept changing while this message was applied; send it again"
            ),
        )

    async def _receive(
        self,
        conn: AsyncConnection,
        caller: VerifiedCaller,
        pid: str,
        message: NegotiationMessage,
        *,
        signed: bool,
    ) -> Negotiation:
        n = await self.processes.owned(conn, caller.did, pid, for_change=True)
        sender = n.role.other
        if is_repeat(n, message, sender_role=sender):
            return n
        next_state(n.state, event_of(message), sender)  # a 400 before any signature check
        if signed:
            await self._check_signatures(n, message)
        n = apply(n, message, sender_role=sender, now=self.clock.now())
        if n.role is Role.PROVIDER and isinstance(message, ContractRequestMessage):
            # A counter-offer: only one of the dataset's stored offers, as stored.
            stored = await self._stored_offer(conn, message.dataset_id, message.offer, caller)
            n = replace(n, offer=stored | {"target": message.dataset_id})
        self.processes.audit(conn, n, f"negotiation.{n.state.lower()}")
        received = n  # what the answer says: the state this message created
        if n.role is Role.PROVIDER:
            if n.state in _DECIDE:
                await self.processes.call_for_step(conn, n, CallerFacts.of(caller).as_json())
            elif n.state is _S.VERIFIED:
                n = await self._finalize(conn, n)
        elif n.state is _S.AGREED:
            n = await self._verify(conn, n)
        elif n.state is _S.FINALIZED:
            await self._record_agreement(conn, n)
        await self.store.update(conn, n)
        return received

    async def get(self, caller: VerifiedCaller, pid: str) -> Negotiation:
        async with self.db.reading() as conn:
            return await self.processes.owned(conn, caller.did, pid)

    # -- the outbox loop's steps -------------------------------------------------------------

    async def take_step(self, item: OutboxItem) -> None:
        await self.processes.take_step(item, self._act)

    async def _act(
        self, conn: AsyncConnection, n: Negotiation, facts: dict[str, Any]
    ) -> Negotiation | None:
        """The provider's decision, if ``n`` still waits for it (a message crossing the
        step, a termination say, may have moved it on): returns the negotiation to write, or
        None."""
        if n.role is not Role.PROVIDER or n.state not in _DECIDE:
            return None
        return await self._decide(conn, n, CallerFacts.from_json(facts))

    async def _decide(
        self, conn: AsyncConnection, n: Negotiation, caller: CallerFacts
    ) -> Negotiation | None:
        """After REQUESTED or ACCEPTED: evaluate the offer's policy for the caller, then
        agree, hold for a person's approval (``approve`` agrees later), or terminate."""
        policy = validate_policy(n.offer or {})
        decision = evaluate(
            policy,
            context_for(
                caller,
                now=self.clock.now(),
                trusted_issuers=self.me.trusted_issuers,
                dataset_id=str((n.offer or {}).get("target", "")),
            ),
            Scope.NEGOTIATION,
        )
        if not decision:
            n = await self._terminate(conn, n, code="policy", reason=decision.reason)
            self.processes.audit(conn, n, "negotiation.refused", reason=decision.reason)
            return n
        if policy.approval_required:
            # Written only if the negotiation is unchanged since it was read (else the step
            # runs again on the new state), as ``update`` would be.
            await self.store.set_approval(conn, n.id, "pending")
            self.processes.audit(conn, n, "negotiation.awaiting-approval")
            return None
        return await self._agree(conn, n)

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
            {"consumerPid": n.id, "offer": offer, "callbackAddress": self.me.dsp_base}
        )
        async with self.db.transaction() as conn:
            n = await self.processes.send(conn, n, message, initial=True)
            await self.store.insert(conn, n)
            self.processes.audit(conn, n, "negotiation.requested", dataset_id=str(offer["target"]))
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
        async with self.db.transaction() as conn:
            dataset = await self.datasets.get(conn, dataset_id)
            stored = dataset.offer(offer_id) if dataset else None
            if stored is None:
                raise NotFoundError(f"dataset {dataset_id} has no offer {offer_id}")
            message = ContractOfferMessage.model_validate(
                {
                    "providerPid": n.id,
                    # As in our catalog: the offer's normalised compact form.
                    "offer": to_jsonld(validate_policy(stored))
                    | {"target": dataset_id, "assigner": self.me.did},
                    "callbackAddress": self.me.dsp_base,
                }
            )
            n = await self.processes.send(conn, n, message, initial=True)
            await self.store.insert(conn, n)
            self.processes.audit(conn, n, "negotiation.offered", dataset_id=dataset_id)
        return n

    async def accept(self, id: str) -> Negotiation:
        """Consumer: accept the provider's current offer."""
        async with self.db.transaction() as conn:
            n = await self.processes.local(conn, id, Role.CONSUMER)
            message = ContractNegotiationEventMessage.model_validate(
                {
                    "providerPid": n.provider_pid,
                    "consumerPid": n.consumer_pid,
                    "eventType": NegotiationEventType.ACCEPTED,
                }
            )
            n = await self.processes.send(conn, n, message)
            await self.store.update(conn, n)
            self.processes.audit(conn, n, "negotiation.accepted")
            return n

    async def approve(self, id: str, *, approver: str) -> Negotiation:
        """Provider: a person approved a request that its policy holds for approval."""
        async with self.db.transaction() as conn:
            n = await self.processes.local(conn, id, Role.PROVIDER)
            if await self.store.approval(conn, n.id) != "pending":
                raise ConflictError(f"negotiation {id} is not waiting for approval")
            await self.store.set_approval(conn, n.id, "approved")
            self.processes.audit(conn, n, "negotiation.approved", approver=approver)
            n = await self._agree(conn, n)
            await self.store.update(conn, n)
            return n

    async def terminate(self, id: str, *, reason: str, actor: str) -> Negotiation:
        async with self.db.transaction() as conn:
            n = await self.processes.local(conn, id)
            if await self.store.approval(conn, n.id) == "pending":
                await self.store.set_approval(conn, n.id, "rejected")
            n = await self._terminate(conn, n, code="terminated", reason=reason)
            await self.store.update(conn, n)
            self.processes.audit(conn, n, "negotiation.terminated", by=actor, reason=reason)
            return n

    async def list_agreements(self) -> list[AgreementRecord]:
        """The agreements of our finalized negotiations, in either role."""
        async with self.db.reading() as conn:
            return await self.agreements.list(conn)

    async def get_agreement(self, id: str) -> AgreementRecord:
        async with self.db.reading() as conn:
            record = await self.agreements.get(conn, id)
        if record is None:
            raise NotFoundError(f"no agreement {id}")
        return record

    async def list(self, *, role: Role | None = None, pending: bool = False) -> list[Negotiation]:
        async with self.db.reading() as conn:
            return await self.store.list(conn, role=role, approval="pending" if pending else None)

    async def get_local(self, id: str) -> Negotiation:
        async with self.db.reading() as conn:
            n = await self.store.get(conn, id)
        if n is None:
            raise NotFoundError(f"no negotiation {id}")
        return n

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
        requested_norm = {**requested, "assigner": requested.get("assigner", self.me.did)}
        stored_full = stored | {"target": dataset_id, "assigner": self.me.did}
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
            caller, now=now, trusted_issuers=list(self.me.trusted_issuers), dataset_id=dataset_id
        )
        return evaluate(policy, context, Scope.CATALOG).permitted

    async def _agree(self, conn: AsyncConnection, n: Negotiation) -> Negotiation:
        offer = n.offer or {}
        agreement = make_agreement(
            {k: v for k, v in offer.items() if k != "assigner"} | {"assigner": self.me.did},
            agreement_id=f"urn:uuid:{uuid.uuid4()}",
            target=str(offer["target"]),
            assigner=self.me.did,
            assignee=n.counterparty_did,
            timestamp=self.clock.now(),
        )
        signature = sign_agreement(agreement, self.me.did, self.me.keys.signing)
        message = ContractAgreementMessage.model_validate(
            {
                "providerPid": n.provider_pid,
                "consumerPid": n.consumer_pid,
                "agreement": with_signature(agreement, signature),
                "callbackAddress": self.me.dsp_base,
            }
        )
        n = await self.processes.send(conn, n, message)
        self.processes.audit(conn, n, "negotiation.agreed", agreement_id=str(agreement["@id"]))
        return n

    async def _verify(self, conn: AsyncConnection, n: Negotiation) -> Negotiation:
        """Consumer, AGREED: counter-sign the agreement (its provider signature and terms were
        checked before it was applied) in the verification message."""
        signature = sign_agreement(n.agreement or {}, self.me.did, self.me.keys.signing)
        verification = ContractAgreementVerificationMessage.model_validate(
            {
                "providerPid": n.provider_pid,
                "consumerPid": n.consumer_pid,
                SIGNATURE_PROPERTY: signature,
            }
        )
        n = await self.processes.send(conn, n, verification)
        self.processes.audit(conn, n, "negotiation.verified")
        return n

    async def _finalize(self, conn: AsyncConnection, n: Negotiation) -> Negotiation:
        """Provider, VERIFIED (the consumer's signature checked): keep the agreement with both
        signatures and send the FINALIZED event."""
        await self._record_agreement(conn, n)
        finalized = ContractNegotiationEventMessage.model_validate(
            {
                "providerPid": n.provider_pid,
                "consumerPid": n.consumer_pid,
                "eventType": NegotiationEventType.FINALIZED,
            }
        )
        n = await self.processes.send(conn, n, finalized)
        self.processes.audit(conn, n, "negotiation.finalized")
        return n

    async def _record_agreement(self, conn: AsyncConnection, n: Negotiation) -> None:
        agreement = {k: v for k, v in (n.agreement or {}).items() if k != SIGNATURE_PROPERTY}
        if not n.provider_signature or not n.consumer_signature:
            raise InvalidTransitionError(f"negotiation {n.id} lacks a signature")
        provider, consumer = (
            (self.me.did, n.counterparty_did)
            if n.role is Role.PROVIDER
            else (n.counterparty_did, self.me.did)
        )
        await self.agreements.insert(
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
                    agreement.get("assignee") != self.me.did
                    or agreement.get("assigner") != n.counterparty_did
                ):
                    raise InvalidMessageError("agreement assigner/assignee are not the parties")
                self._check_terms(agreement, n.offer or {})
                await verify_agreement_signature(agreement, n.counterparty_did, self.me.resolver)
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
                    n.agreement, n.counterparty_did, self.me.resolver, signature=message.signature
                )
        except AuthenticationError as exc:
            # A bad signature is a bad message, not a bad caller.
            raise InvalidMessageError(exc.detail) from None

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
        return await self.processes.send(conn, n, message)
