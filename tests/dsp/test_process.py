"""What negotiations and transfers share (connector.dsp.process): the table lookups, and the
fingerprints by which a re-delivered message is told from a new one."""

from __future__ import annotations

from connector.dsp import messages as m
from connector.dsp.negotiation import MACHINE as NEGOTIATION
from connector.dsp.negotiation import NegotiationEvent, NegotiationState
from connector.dsp.process import fingerprint, message_fingerprint
from connector.dsp.states import Role
from connector.dsp.transfer import MACHINE as TRANSFER
from connector.dsp.transfer import TransferEvent, TransferState

PIDS = {"providerPid": "urn:uuid:p", "consumerPid": "urn:uuid:c"}


def test_one_machine_serves_both_tables() -> None:
    assert NEGOTIATION.leads_to(NegotiationEvent.AGREEMENT, Role.PROVIDER, NegotiationState.AGREED)
    assert not NEGOTIATION.leads_to(
        NegotiationEvent.AGREEMENT, Role.CONSUMER, NegotiationState.AGREED
    )
    assert TRANSFER.allowed_events(TransferState.SUSPENDED, Role.CONSUMER) == {
        TransferEvent.START,
        TransferEvent.TERMINATION,
    }


def test_a_fingerprint_is_the_content_whatever_the_form_and_the_id() -> None:
    event = m.ContractNegotiationEventMessage.model_validate(PIDS | {"eventType": "ACCEPTED"})
    # The same message parsed from another form (prefixed terms), with its own @id.
    again = m.parse_message(
        b'{"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"], "@id": "urn:uuid:2",'
        b' "@type": "ContractNegotiationEventMessage", "dspace:eventType": "ACCEPTED",'
        b' "consumerPid": "urn:uuid:c", "providerPid": "urn:uuid:p"}',
        m.ContractNegotiationEventMessage,
    )
    assert message_fingerprint(again) == message_fingerprint(event)
    finalized = m.ContractNegotiationEventMessage.model_validate(PIDS | {"eventType": "FINALIZED"})
    assert message_fingerprint(finalized) != message_fingerprint(event)
    other_pid = m.ContractNegotiationEventMessage.model_validate(
        PIDS | {"consumerPid": "urn:uuid:x", "eventType": "ACCEPTED"}
    )
    assert message_fingerprint(other_pid) != message_fingerprint(event)
    assert fingerprint({"b": [1, 2], "a": 1}) == fingerprint({"a": 1, "b": [1, 2]})
    assert fingerprint({"a": [1, 2]}) != fingerprint({"a": [2, 1]})
