"""The contract negotiation state machine: every arrow of the DSP 2025-1 diagram is accepted,
every other (state, message, sender) is refused and leaves the negotiation unchanged (in the
style of h11's test_state), plus the data each message records."""

from __future__ import annotations

import copy
import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from connector.dsp import messages as m
from connector.dsp import negotiation as n
from connector.dsp.negotiation import Negotiation, NegotiationEvent, NegotiationState, Role
from connector.dsp.states import NegotiationEventType
from connector.errors import InvalidMessageError, InvalidTransitionError

S, E = NegotiationState, NegotiationEvent
C, P = Role.CONSUMER, Role.PROVIDER
PPID, CPID = "urn:uuid:provider-pid", "urn:uuid:consumer-pid"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=1)
OFFER = {
    "@id": "urn:offer:1",
    "@type": "Offer",
    "target": "urn:dataset:1",
    "permission": [{"action": "use"}],
}
AGREEMENT = {
    "@id": "urn:agreement:1",
    "@type": "Agreement",
    "target": "urn:dataset:1",
    "assigner": "did:web:provider",
    "assignee": "did:web:consumer",
    "timestamp": "2026-01-01T00:00:00Z",
    "permission": [{"action": "use"}],
    m.PHEMS_SIGNATURE: "provider.jws",
}

# The DSP 2025-1 contract negotiation diagram, written out independently of the table under
# test ([*] is INITIAL; termination by either party from every non-terminal wire state, as
# the protocol text says).
DIAGRAM = {
    (S.INITIAL, E.REQUEST, C): S.REQUESTED,
    (S.INITIAL, E.OFFER, P): S.OFFERED,
    (S.REQUESTED, E.OFFER, P): S.OFFERED,
    (S.REQUESTED, E.AGREEMENT, P): S.AGREED,
    (S.REQUESTED, E.TERMINATION, C): S.TERMINATED,
    (S.REQUESTED, E.TERMINATION, P): S.TERMINATED,
    (S.OFFERED, E.REQUEST, C): S.REQUESTED,
    (S.OFFERED, E.ACCEPTED, C): S.ACCEPTED,
    (S.OFFERED, E.TERMINATION, C): S.TERMINATED,
    (S.OFFERED, E.TERMINATION, P): S.TERMINATED,
    (S.ACCEPTED, E.AGREEMENT, P): S.AGREED,
    (S.ACCEPTED, E.TERMINATION, C): S.TERMINATED,
    (S.ACCEPTED, E.TERMINATION, P): S.TERMINATED,
    (S.AGREED, E.VERIFICATION, C): S.VERIFIED,
    (S.AGREED, E.TERMINATION, C): S.TERMINATED,
    (S.AGREED, E.TERMINATION, P): S.TERMINATED,
    (S.VERIFIED, E.FINALIZED, P): S.FINALIZED,
    (S.VERIFIED, E.TERMINATION, C): S.TERMINATED,
    (S.VERIFIED, E.TERMINATION, P): S.TERMINATED,
}


def message(event: NegotiationEvent) -> m.NegotiationMessage:
    """A valid message for ``event`` carrying both pids."""
    match event:
        case E.REQUEST:
            return m.ContractRequestMessage(
                provider_pid=PPID,
                consumer_pid=CPID,
                offer=OFFER,
                callback_address="https://consumer.example/cb",
            )
        case E.OFFER:
            return m.ContractOfferMessage(
                provider_pid=PPID,
                consumer_pid=CPID,
                offer=OFFER,
                callback_address="https://provider.example/dsp",
            )
        case E.AGREEMENT:
            return m.ContractAgreementMessage(
                provider_pid=PPID, consumer_pid=CPID, agreement=AGREEMENT
            )
        case E.VERIFICATION:
            return m.ContractAgreementVerificationMessage(
                provider_pid=PPID, consumer_pid=CPID, signature="consumer.jws"
            )
        case E.ACCEPTED | E.FINALIZED:
            return m.ContractNegotiationEventMessage(
                provider_pid=PPID,
                consumer_pid=CPID,
                event_type=NegotiationEventType(event.split(":")[1]),
            )
        case E.TERMINATION:
            return m.ContractNegotiationTerminationMessage(
                provider_pid=PPID, consumer_pid=CPID, code="x", reason=["because"]
            )
    raise AssertionError(event)


def negotiation(state: NegotiationState, role: Role) -> Negotiation:
    return Negotiation(
        id="neg-1",
        role=role,
        state=state,
        provider_pid=PPID,
        consumer_pid=CPID,
        counterparty_did="did:web:other",
        counterparty_address="https://other.example/dsp",
        created_at=T0,
        updated_at=T0,
    )


ALL = list(itertools.product(S, E, Role, Role))


def test_table_is_the_diagram() -> None:
    assert dict(n.TRANSITIONS) == DIAGRAM


def test_event_of_every_message() -> None:
    assert {n.event_of(message(e)) for e in E} == set(E)


@pytest.mark.parametrize(("state", "event", "sender", "holder"), ALL)
def test_every_combination(
    state: NegotiationState, event: NegotiationEvent, sender: Role, holder: Role
) -> None:
    before = negotiation(state, holder)
    snapshot = copy.deepcopy(before)
    msg = message(event)
    expected = DIAGRAM.get((state, event, sender))
    if expected is None:
        with pytest.raises(InvalidTransitionError) as info:
            n.apply(before, msg, sender_role=sender, now=T1)
        assert info.value.status == 400
        assert str(state) in info.value.detail and str(event) in info.value.detail
    else:
        after = n.apply(before, msg, sender_role=sender, now=T1)
        assert after.state is expected
        assert after.updated_at == T1 and after.created_at == T0
        assert (after.provider_pid, after.consumer_pid) == (PPID, CPID)
    assert before == snapshot


@pytest.mark.parametrize("state", [S.FINALIZED, S.TERMINATED])
def test_terminal_states_accept_nothing(state: NegotiationState) -> None:
    assert state.is_terminal
    for sender in Role:
        assert n.allowed_events(state, sender) == frozenset()


def test_allowed_events_name_the_protocol_moves() -> None:
    assert n.allowed_events(S.OFFERED, C) == {E.REQUEST, E.ACCEPTED, E.TERMINATION}
    assert n.allowed_events(S.OFFERED, P) == {E.TERMINATION}
    assert n.allowed_events(S.REQUESTED, P) == {E.OFFER, E.AGREEMENT, E.TERMINATION}
    expected = "may send: ContractAgreementMessage, ContractNegotiationTerminationMessage, Contr"
    with pytest.raises(InvalidTransitionError, match=expected):
        n.next_state(S.REQUESTED, E.FINALIZED, P)


def test_accepted_event_from_provider_and_finalized_from_consumer_are_errors() -> None:
    # Protocol text: "It is an error for a Consumer to send ... FINALIZED" and vice versa.
    for state in S:
        with pytest.raises(InvalidTransitionError):
            n.next_state(state, E.FINALIZED, C)
        with pytest.raises(InvalidTransitionError):
            n.next_state(state, E.ACCEPTED, P)


# --- whole negotiations, as each side records them -----------------------------------------


def test_consumer_initiated_negotiation_on_both_sides() -> None:
    request = m.ContractRequestMessage(
        consumer_pid=CPID, offer=OFFER, callback_address="https://consumer.example/cb"
    )
    # Consumer: creates, records its own request (sent by the outbox), learns providerPid.
    consumer = Negotiation.new(
        id="c-1",
        role=C,
        counterparty_did="did:web:provider",
        counterparty_address="https://provider.example/dsp/2025-1",
        consumer_pid=CPID,
        now=T0,
    )
    consumer = n.apply(consumer, request, sender_role=C, now=T0)
    assert consumer.state is S.REQUESTED and consumer.provider_pid is None
    assert consumer.counterparty_address == "https://provider.example/dsp/2025-1"
    # Provider: creates on receipt with its own pid.
    provider = Negotiation.new(
        id="p-1", role=P, counterparty_did="did:web:consumer", provider_pid=PPID, now=T0
    )
    provider = n.apply(provider, request, sender_role=C, now=T0)
    assert provider.state is S.REQUESTED
    assert (provider.provider_pid, provider.consumer_pid) == (PPID, CPID)
    assert provider.counterparty_address == "https://consumer.example/cb"
    assert provider.offer == OFFER and provider.offer is not request.offer
    ack = provider.ack()
    assert m.dump(ack)["state"] == "REQUESTED"
    consumer = n.record_ack(consumer, ack, now=T1)
    assert consumer.provider_pid == PPID

    agreement = m.ContractAgreementMessage(
        provider_pid=PPID, consumer_pid=CPID, agreement=AGREEMENT
    )
    verification = m.ContractAgreementVerificationMessage(
        provider_pid=PPID, consumer_pid=CPID, signature="consumer.jws"
    )
    finalized = m.ContractNegotiationEventMessage(
        provider_pid=PPID, consumer_pid=CPID, event_type=NegotiationEventType.FINALIZED
    )
    steps: list[tuple[m.NegotiationMessage, Role, NegotiationState]] = [
        (agreement, P, S.AGREED),
        (verification, C, S.VERIFIED),
        (finalized, P, S.FINALIZED),
    ]
    for msg, sender, state in steps:
        provider = n.apply(provider, msg, sender_role=sender, now=T1)
        consumer = n.apply(consumer, msg, sender_role=sender, now=T1)
        assert provider.state is consumer.state is state
    for side in (provider, consumer):
        assert side.agreement == AGREEMENT
        assert side.provider_signature == "provider.jws"
        assert side.consumer_signature == "consumer.jws"
        assert side.ack().state is S.FINALIZED


def test_provider_initiated_offer_counter_offer_and_accept() -> None:
    initial = m.ContractOfferMessage(
        provider_pid=PPID, offer=OFFER, callback_address="https://provider.example/dsp/2025-1"
    )
    consumer = Negotiation.new(
        id="c-2", role=C, counterparty_did="did:web:provider", consumer_pid=CPID, now=T0
    )
    consumer = n.apply(consumer, initial, sender_role=P, now=T0)
    assert consumer.state is S.OFFERED and consumer.provider_pid == PPID
    assert consumer.counterparty_address == "https://provider.example/dsp/2025-1"
    counter_offer = {**OFFER, "@id": "urn:offer:counter"}
    counter = m.ContractRequestMessage(provider_pid=PPID, consumer_pid=CPID, offer=counter_offer)
    consumer = n.apply(consumer, counter, sender_role=C, now=T1)
    assert consumer.state is S.REQUESTED and consumer.offer == counter_offer
    # Our own message never changes where we send to.
    assert consumer.counterparty_address == "https://provider.example/dsp/2025-1"
    consumer = n.apply(consumer, message(E.OFFER), sender_role=P, now=T1)
    consumer = n.apply(consumer, message(E.ACCEPTED), sender_role=C, now=T1)
    assert consumer.state is S.ACCEPTED
    consumer = n.apply(consumer, message(E.AGREEMENT), sender_role=P, now=T1)
    assert consumer.state is S.AGREED


def test_termination_records_code_reason_and_sender() -> None:
    term = m.ContractNegotiationTerminationMessage(
        provider_pid=PPID,
        consumer_pid=CPID,
        code="policy",
        reason=["purpose constraint failed", {"constraint": "purpose"}],
    )
    after = n.apply(negotiation(S.AGREED, P), term, sender_role=C, now=T1)
    assert after.state is S.TERMINATED and after.terminated_by is C
    assert after.termination_code == "policy"
    assert after.termination_reason == ("purpose constraint failed", '{"constraint":"purpose"}')


def test_pids_that_contradict_the_negotiation_are_refused() -> None:
    before = negotiation(S.REQUESTED, P)
    wrong = m.ContractAgreementMessage(
        provider_pid="urn:other", consumer_pid=CPID, agreement=AGREEMENT
    )
    with pytest.raises(InvalidMessageError, match="providerPid"):
        n.apply(before, wrong, sender_role=P, now=T1)
    wrong_ack = m.ContractNegotiation(
        provider_pid=PPID, consumer_pid="urn:other", state=S.REQUESTED
    )
    with pytest.raises(InvalidMessageError, match="consumerPid"):
        n.record_ack(before, wrong_ack, now=T1)


def test_initial_negotiation_has_no_wire_state() -> None:
    fresh = Negotiation.new(id="x", role=C, counterparty_did="did:web:p", consumer_pid=CPID, now=T0)
    assert fresh.own_pid == CPID and fresh.counterparty_pid is None
    with pytest.raises(InvalidTransitionError):
        fresh.ack()


def test_abandon_terminates_locally_once() -> None:
    fresh = Negotiation.new(id="x", role=C, counterparty_did="did:web:p", consumer_pid=CPID, now=T0)
    gone = n.abandon(fresh, reason="provider unreachable after 8 attempts", now=T1)
    assert gone.state is S.TERMINATED and gone.terminated_by is C
    assert gone.termination_reason == ("provider unreachable after 8 attempts",)
    assert fresh.state is S.INITIAL
    with pytest.raises(InvalidTransitionError):
        n.abandon(gone, reason="again", now=T1)


@pytest.mark.parametrize(("arrow", "target"), list(DIAGRAM.items()))
def test_redelivered_message_is_a_repeat(
    arrow: tuple[NegotiationState, NegotiationEvent, Role], target: NegotiationState
) -> None:
    state, event, sender = arrow
    before = negotiation(state, sender.other)  # held by the receiver
    after = n.apply(before, message(event), sender_role=sender, now=T1)
    assert after.state is target
    assert n.is_repeat(after, message(event), sender_role=sender)
    assert not n.is_repeat(before, message(event), sender_role=sender)
    # Our own message, applied when recorded for sending, is never "received".
    ours = n.apply(negotiation(state, sender), message(event), sender_role=sender, now=T1)
    assert not n.is_repeat(ours, message(event), sender_role=sender)


def test_a_message_received_before_stays_a_repeat_after_the_negotiation_moved_on() -> None:
    """The provider applied the consumer's ACCEPTED, then recorded its own agreement: the
    consumer's retry of ACCEPTED (our answer was lost) is a repeat, an ACCEPTED never
    received is not (it goes to ``apply``, which refuses it in AGREED)."""
    offered = negotiation(S.OFFERED, P)
    accepted = n.apply(offered, message(E.ACCEPTED), sender_role=C, now=T1)
    agreed = n.apply(accepted, message(E.AGREEMENT), sender_role=P, now=T1)
    assert n.is_repeat(agreed, message(E.ACCEPTED), sender_role=C)
    never_received = n.apply(
        negotiation(S.REQUESTED, P), message(E.AGREEMENT), sender_role=P, now=T1
    )
    assert not n.is_repeat(never_received, message(E.ACCEPTED), sender_role=C)
    with pytest.raises(InvalidTransitionError):
        n.apply(never_received, message(E.ACCEPTED), sender_role=C, now=T1)


def test_a_record_stored_before_fingerprints_judges_by_its_present_state() -> None:
    """``received`` None (a row written before): the message that brought the negotiation
    into its present state, with the same content, is a repeat; nothing else is."""
    agreed = n.apply(negotiation(S.REQUESTED, C), message(E.AGREEMENT), sender_role=P, now=T1)
    legacy = replace(agreed, received=None)
    assert n.is_repeat(legacy, message(E.AGREEMENT), sender_role=P)
    other = m.ContractAgreementMessage(
        provider_pid=PPID, consumer_pid=CPID, agreement={**AGREEMENT, "@id": "urn:agreement:2"}
    )
    assert not n.is_repeat(legacy, other, sender_role=P)
    assert not n.is_repeat(legacy, message(E.OFFER), sender_role=P)


def test_a_different_offer_or_agreement_is_not_a_repeat() -> None:
    offered = n.apply(negotiation(S.REQUESTED, C), message(E.OFFER), sender_role=P, now=T1)
    other_offer = m.ContractOfferMessage(
        provider_pid=PPID, consumer_pid=CPID, offer={**OFFER, "@id": "urn:offer:2"}
    )
    assert not n.is_repeat(offered, other_offer, sender_role=P)
    agreed = n.apply(negotiation(S.REQUESTED, C), message(E.AGREEMENT), sender_role=P, now=T1)
    other_agreement = m.ContractAgreementMessage(
        provider_pid=PPID, consumer_pid=CPID, agreement={**AGREEMENT, "@id": "urn:agreement:2"}
    )
    assert not n.is_repeat(agreed, other_agreement, sender_role=P)
    other_pid = m.ContractAgreementMessage(
        provider_pid="urn:other", consumer_pid=CPID, agreement=AGREEMENT
    )
    assert not n.is_repeat(agreed, other_pid, sender_role=P)


def test_agreement_must_be_for_the_negotiated_dataset() -> None:
    requested = n.apply(negotiation(S.OFFERED, P), message(E.REQUEST), sender_role=C, now=T1)
    elsewhere = m.ContractAgreementMessage(
        provider_pid=PPID, consumer_pid=CPID, agreement={**AGREEMENT, "target": "urn:dataset:2"}
    )
    with pytest.raises(InvalidMessageError, match="target"):
        n.apply(requested, elsewhere, sender_role=P, now=T1)
