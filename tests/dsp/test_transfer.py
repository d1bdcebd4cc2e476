"""The transfer process state machine: every arrow of the DSP 2025-1 diagram is accepted, every
other (state, message, sender) is refused and leaves the transfer unchanged."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from connector.dsp import messages as m
from connector.dsp import transfer as t
from connector.dsp.transfer import Role, Transfer, TransferEvent, TransferState
from connector.errors import InvalidMessageError, InvalidTransitionError

S, E = TransferState, TransferEvent
C, P = Role.CONSUMER, Role.PROVIDER
PPID, CPID = "urn:uuid:provider-tp", "urn:uuid:consumer-tp"
AGREEMENT_ID = "urn:agreement:1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=1)
ADDRESS = m.DataAddress(
    endpoint_type="https://w3id.org/idsa/v4.1/HTTP",
    endpoint="https://provider.example/data/tp",
    endpoint_properties=[
        m.EndpointProperty(name="authorization", value="short.lived.jwt"),
        m.EndpointProperty(name="authType", value="bearer"),
    ],
)

# The DSP 2025-1 transfer process diagram, written out independently of the table.
DIAGRAM = {
    (S.INITIAL, E.REQUEST, C): S.REQUESTED,
    (S.REQUESTED, E.START, P): S.STARTED,
    (S.REQUESTED, E.TERMINATION, C): S.TERMINATED,
    (S.REQUESTED, E.TERMINATION, P): S.TERMINATED,
    (S.STARTED, E.COMPLETION, C): S.COMPLETED,
    (S.STARTED, E.COMPLETION, P): S.COMPLETED,
    (S.STARTED, E.SUSPENSION, C): S.SUSPENDED,
    (S.STARTED, E.SUSPENSION, P): S.SUSPENDED,
    (S.STARTED, E.TERMINATION, C): S.TERMINATED,
    (S.STARTED, E.TERMINATION, P): S.TERMINATED,
    (S.SUSPENDED, E.START, C): S.STARTED,
    (S.SUSPENDED, E.START, P): S.STARTED,
    (S.SUSPENDED, E.TERMINATION, C): S.TERMINATED,
    (S.SUSPENDED, E.TERMINATION, P): S.TERMINATED,
}


def message(event: TransferEvent) -> m.TransferMessage:
    match event:
        case E.REQUEST:
            return m.TransferRequestMessage(
                consumer_pid=CPID,
                agreement_id=AGREEMENT_ID,
                format="FHIR-Aggregate-PULL",
                callback_address="https://consumer.example/cb",
            )
        case E.START:
            return m.TransferStartMessage(
                provider_pid=PPID, consumer_pid=CPID, data_address=ADDRESS
            )
        case E.SUSPENSION:
            return m.TransferSuspensionMessage(
                provider_pid=PPID, consumer_pid=CPID, code="pause", reason=["maintenance"]
            )
        case E.COMPLETION:
            return m.TransferCompletionMessage(provider_pid=PPID, consumer_pid=CPID)
        case E.TERMINATION:
            return m.TransferTerminationMessage(
                provider_pid=PPID, consumer_pid=CPID, code="stop", reason=[{"why": "expired"}]
            )
    raise AssertionError(event)


def transfer(state: TransferState, role: Role) -> Transfer:
    return Transfer(
        id="tp-1",
        role=role,
        state=state,
        provider_pid=PPID,
        consumer_pid=CPID,
        agreement_id=AGREEMENT_ID,
        format="FHIR-Aggregate-PULL",
        counterparty_did="did:web:other",
        counterparty_address="https://other.example/dsp",
        created_at=T0,
        updated_at=T0,
    )


def test_table_is_the_diagram() -> None:
    assert dict(t.TRANSITIONS) == DIAGRAM


@pytest.mark.parametrize(
    ("state", "event", "sender", "holder"), list(itertools.product(S, E, Role, Role))
)
def test_every_combination(
    state: TransferState, event: TransferEvent, sender: Role, holder: Role
) -> None:
    before = transfer(state, holder)
    snapshot = copy.deepcopy(before)
    expected = DIAGRAM.get((state, event, sender))
    if expected is None:
        with pytest.raises(InvalidTransitionError) as info:
            t.apply(before, message(event), sender_role=sender, now=T1)
        assert info.value.status == 400
        assert str(state) in info.value.detail and str(event) in info.value.detail
    else:
        after = t.apply(before, message(event), sender_role=sender, now=T1)
        assert after.state is expected and after.updated_at == T1
    assert before == snapshot


def test_pull_transfer_on_both_sides() -> None:
    request = message(E.REQUEST)
    assert isinstance(request, m.TransferRequestMessage)
    consumer = Transfer.new(
        id="c",
        role=C,
        counterparty_did="did:web:provider",
        counterparty_address="https://provider.example/dsp/2025-1",
        consumer_pid=CPID,
        agreement_id=AGREEMENT_ID,
        format="FHIR-Aggregate-PULL",
        now=T0,
    )
    consumer = t.apply(consumer, request, sender_role=C, now=T0)
    assert consumer.counterparty_address == "https://provider.example/dsp/2025-1"
    provider = Transfer.new(
        id="p", role=P, counterparty_did="did:web:consumer", provider_pid=PPID, now=T0
    )
    provider = t.apply(provider, request, sender_role=C, now=T0)
    assert provider.state is S.REQUESTED
    assert (provider.agreement_id, provider.format) == (AGREEMENT_ID, "FHIR-Aggregate-PULL")
    assert provider.counterparty_address == "https://consumer.example/cb"
    consumer = t.record_ack(consumer, provider.ack(), now=T1)
    assert consumer.provider_pid == PPID

    start = message(E.START)
    provider = t.apply(provider, start, sender_role=P, now=T1)
    consumer = t.apply(consumer, start, sender_role=P, now=T1)
    assert consumer.state is provider.state is S.STARTED
    assert consumer.data_address is not None
    assert consumer.data_address.get_property("authorization") == "short.lived.jwt"

    suspended = t.apply(consumer, message(E.SUSPENSION), sender_role=C, now=T1)
    assert suspended.state is S.SUSPENDED and suspended.reason == ("maintenance",)
    resumed = t.apply(
        suspended,
        m.TransferStartMessage(provider_pid=PPID, consumer_pid=CPID),
        sender_role=C,
        now=T1,
    )
    assert resumed.state is S.STARTED and resumed.data_address == ADDRESS
    done = t.apply(resumed, message(E.COMPLETION), sender_role=C, now=T1)
    assert done.state is S.COMPLETED and done.state.is_terminal
    assert m.dump(done.ack())["state"] == "COMPLETED"


def test_termination_records_code_reason_and_sender() -> None:
    after = t.apply(transfer(S.STARTED, C), message(E.TERMINATION), sender_role=P, now=T1)
    assert after.state is S.TERMINATED and after.terminated_by is P
    assert (after.code, after.reason) == ("stop", ('{"why":"expired"}',))


def test_ids_that_contradict_the_transfer_are_refused() -> None:
    before = transfer(S.INITIAL, P)
    other_agreement = m.TransferRequestMessage(
        consumer_pid=CPID,
        agreement_id="urn:agreement:other",
        format="FHIR-Aggregate-PULL",
        callback_address="https://consumer.example/cb",
    )
    with pytest.raises(InvalidMessageError, match="agreementId"):
        t.apply(before, other_agreement, sender_role=C, now=T1)
    with pytest.raises(InvalidMessageError, match="consumerPid"):
        t.apply(
            transfer(S.STARTED, P),
            m.TransferCompletionMessage(provider_pid=PPID, consumer_pid="urn:x"),
            sender_role=C,
            now=T1,
        )


def test_abandon_and_initial_ack() -> None:
    fresh = Transfer.new(id="x", role=C, counterparty_did="did:web:p", consumer_pid=CPID, now=T0)
    with pytest.raises(InvalidTransitionError):
        fresh.ack()
    gone = t.abandon(fresh, reason="refused: 400", now=T1)
    assert gone.state is S.TERMINATED and fresh.state is S.INITIAL
    with pytest.raises(InvalidTransitionError):
        t.abandon(gone, reason="again", now=T1)


@pytest.mark.parametrize(("arrow", "target"), list(DIAGRAM.items()))
def test_redelivered_message_is_a_repeat(
    arrow: tuple[TransferState, TransferEvent, Role], target: TransferState
) -> None:
    state, event, sender = arrow
    before = transfer(state, sender.other)  # held by the receiver
    after = t.apply(before, message(event), sender_role=sender, now=T1)
    assert after.state is target
    assert t.is_repeat(after, message(event), sender_role=sender)
    assert not t.is_repeat(before, message(event), sender_role=sender)
    ours = t.apply(transfer(state, sender), message(event), sender_role=sender, now=T1)
    assert not t.is_repeat(ours, message(event), sender_role=sender)


def test_a_request_received_before_stays_a_repeat_after_the_start() -> None:
    requested = t.apply(transfer(S.INITIAL, P), message(E.REQUEST), sender_role=C, now=T1)
    started = t.apply(requested, message(E.START), sender_role=P, now=T1)
    assert t.is_repeat(started, message(E.REQUEST), sender_role=C)
    assert not t.is_repeat(started, message(E.COMPLETION), sender_role=C)


def test_a_different_start_or_request_is_not_a_repeat() -> None:
    started = t.apply(transfer(S.REQUESTED, C), message(E.START), sender_role=P, now=T1)
    other = m.TransferStartMessage(
        provider_pid=PPID,
        consumer_pid=CPID,
        data_address=ADDRESS.model_copy(update={"endpoint": "https://elsewhere.example"}),
    )
    assert not t.is_repeat(started, other, sender_role=P)
    requested = t.apply(transfer(S.INITIAL, P), message(E.REQUEST), sender_role=C, now=T1)
    other_format = m.TransferRequestMessage(
        consumer_pid=CPID,
        agreement_id=AGREEMENT_ID,
        format="FHIR-Synthetic-PULL",
        callback_address="https://consumer.example/cb",
    )
    assert not t.is_repeat(requested, other_format, sender_role=C)
