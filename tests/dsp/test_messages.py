"""Parsing and dumping of every DSP 2025-1 message: the spec's examples, the JSON-LD spellings
peers use, and the bad input a provider must refuse with a precise reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connector.dsp import messages as m
from connector.dsp.context import DSP_CONTEXT_URL, DSPACE
from connector.dsp.error_bodies import catalog_error, negotiation_error, transfer_error
from connector.dsp.states import NegotiationEventType, NegotiationState, TransferState
from connector.errors import InvalidMessageError, InvalidTransitionError, PhemsError
from tests.dsp.examples import DATA, EXAMPLE_TYPES, example

P = "urn:uuid:a343fcbf-99fc-4ce8-8e9b-148c97605aab"
C = "urn:uuid:32541fe6-c580-409e-85a8-8a9a32fbe833"


def test_every_message_type_has_an_example() -> None:
    assert set(EXAMPLE_TYPES.values()) == set(m.MESSAGE_TYPES.values())
    assert {p.stem for p in DATA.glob("*.json")} == set(EXAMPLE_TYPES)


@pytest.mark.parametrize("name", sorted(EXAMPLE_TYPES))
def test_spec_example_parses_and_round_trips(name: str) -> None:
    body = example(name)
    parsed = m.parse_message(json.dumps(body).encode(), EXAMPLE_TYPES[name])
    assert m.dump(parsed) == body
    assert m.parse_any(body) == parsed


@pytest.mark.parametrize("name", sorted(EXAMPLE_TYPES))
def test_dump_is_compact_with_one_context_and_string_type(name: str) -> None:
    out = m.dump(m.parse_message(example(name), EXAMPLE_TYPES[name]))
    assert out["@context"] == [DSP_CONTEXT_URL]
    assert out["@type"] == EXAMPLE_TYPES[name].TYPE
    assert list(out)[:2] == ["@context", "@type"]
    assert not any(key.startswith(("dspace:", DSPACE)) for key in out)


def test_typed_fields_of_the_examples() -> None:
    req = m.parse_message(example("contract-request-message_initial"), m.ContractRequestMessage)
    assert req.is_initial and req.provider_pid is None and req.consumer_pid == C
    assert req.callback_address == "https://example.com/callback"
    assert req.dataset_id == "urn:uuid:3dd1add8-4d2d-569e-d634-8394a8836a88"
    event = m.parse_message(
        example("contract-negotiation-event-message"), m.ContractNegotiationEventMessage
    )
    assert event.event_type is NegotiationEventType.FINALIZED
    start = m.parse_message(example("transfer-start-message"), m.TransferStartMessage)
    assert start.data_address is not None
    assert start.data_address.endpoint_type == "https://w3id.org/idsa/v4.1/HTTP"
    assert start.data_address.get_property("authorization") == "TOKEN-ABCDEFG"
    assert start.data_address.get_property("authType") == "bearer"
    assert start.data_address.get_property("missing") is None
    tp = m.parse_message(example("transfer-process"), m.TransferProcess)
    assert tp.state is TransferState.REQUESTED
    cn = m.parse_message(example("contract-negotiation"), m.ContractNegotiation)
    assert cn.state is NegotiationState.REQUESTED
    catalog = m.parse_message(example("catalog"), m.Catalog)
    assert catalog.participant_id == "urn:example:DataProviderA"
    assert catalog.dataset is not None
    dataset = m.parse_message({**catalog.dataset[0], "@context": [DSP_CONTEXT_URL]}, m.Dataset)
    assert dataset.has_policy[0]["@id"] == "urn:uuid:3dd1add8-4d2d-569e-d634-8394a8836a89"


def test_models_built_in_code_dump_to_the_wire_form() -> None:
    address = m.DataAddress(
        endpoint_type="https://w3id.org/idsa/v4.1/HTTP",
        endpoint="https://provider.example/data",
        endpoint_properties=[
            m.EndpointProperty(name="authorization", value="jwt"),
            m.EndpointProperty(name="authType", value="bearer"),
        ],
    )
    msg = m.TransferStartMessage(provider_pid=P, consumer_pid=C, data_address=address)
    assert m.dump(msg) == {
        "@context": [DSP_CONTEXT_URL],
        "@type": "TransferStartMessage",
        "providerPid": P,
        "consumerPid": C,
        "dataAddress": {
            "@type": "DataAddress",
            "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
            "endpoint": "https://provider.example/data",
            "endpointProperties": [
                {"@type": "EndpointProperty", "name": "authorization", "value": "jwt"},
                {"@type": "EndpointProperty", "name": "authType", "value": "bearer"},
            ],
        },
    }
    event = m.ContractNegotiationEventMessage(
        provider_pid=P, consumer_pid=C, event_type=NegotiationEventType.ACCEPTED
    )
    assert m.dump(event)["eventType"] == "ACCEPTED"


# --- JSON-LD forms peers send -------------------------------------------------------------


@pytest.mark.parametrize(
    "type_value",
    [
        "ContractRequestMessage",
        ["ContractRequestMessage"],
        "dspace:ContractRequestMessage",
        ["dspace:ContractRequestMessage"],
        f"{DSPACE}ContractRequestMessage",
        [f"{DSPACE}ContractRequestMessage"],
    ],
)
def test_type_as_term_prefixed_expanded_or_list_of_one(type_value: Any) -> None:
    body = example("contract-request-message_initial")
    body["@type"] = type_value
    assert m.parse_message(body, m.ContractRequestMessage).consumer_pid == C


def test_extra_top_level_id_is_kept_and_dumped() -> None:
    body = example("transfer-completion-message")
    body["@id"] = "urn:uuid:message-1"
    parsed = m.parse_message(body, m.TransferCompletionMessage)
    assert parsed.message_id == "urn:uuid:message-1"
    assert m.dump(parsed)["@id"] == "urn:uuid:message-1"


def test_prefixed_keys_and_id_objects_are_read() -> None:
    body = {
        "@context": {"dspace": DSPACE},
        "@type": "dspace:ContractNegotiationEventMessage",
        "dspace:providerPid": {"@id": P},
        "dspace:consumerPid": {"@id": C},
        "dspace:eventType": "dspace:ACCEPTED",
    }
    parsed = m.parse_message(body, m.ContractNegotiationEventMessage)
    assert (parsed.provider_pid, parsed.consumer_pid) == (P, C)
    assert parsed.event_type is NegotiationEventType.ACCEPTED


def test_expanded_json_ld_form_is_read() -> None:
    body = {
        "@type": [f"{DSPACE}TransferRequestMessage"],
        f"{DSPACE}consumerPid": [{"@id": C}],
        f"{DSPACE}agreementId": [{"@id": "urn:agreement:1"}],
        "http://purl.org/dc/terms/format": [{"@id": "FHIR-Aggregate-PULL"}],
        f"{DSPACE}callbackAddress": [{"@value": "https://consumer.example/cb"}],
    }
    parsed = m.parse_message(body, m.TransferRequestMessage)
    assert parsed.consumer_pid == C
    assert parsed.agreement_id == "urn:agreement:1"
    assert parsed.format == "FHIR-Aggregate-PULL"
    assert parsed.callback_address == "https://consumer.example/cb"


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("FINALIZED", NegotiationEventType.FINALIZED),
        ("dspace:FINALIZED", NegotiationEventType.FINALIZED),
        (f"{DSPACE}ACCEPTED", NegotiationEventType.ACCEPTED),
        ({"@id": "dspace:ACCEPTED"}, NegotiationEventType.ACCEPTED),
    ],
)
def test_event_type_spellings(event_type: Any, expected: NegotiationEventType) -> None:
    body = example("contract-negotiation-event-message")
    body["eventType"] = event_type
    assert m.parse_message(body, m.ContractNegotiationEventMessage).event_type is expected


@pytest.mark.parametrize(
    ("reason", "texts"),
    [
        (["License model does not fit."], ("License model does not fit.",)),
        ("a single string", ("a single string",)),
        ([{"@value": "no", "@language": "en"}], ('{"@language":"en","@value":"no"}',)),
        (["text", {"code": "x"}], ("text", '{"code":"x"}')),
    ],
)
def test_termination_reason_as_strings_or_objects(reason: Any, texts: tuple[str, ...]) -> None:
    body = example("contract-negotiation-termination-message")
    body["reason"] = reason
    parsed = m.parse_message(body, m.ContractNegotiationTerminationMessage)
    assert parsed.reason_texts() == texts


def test_unknown_properties_are_ignored() -> None:
    body = example("transfer-completion-message")
    body["https://example.org/vendor/extension"] = {"anything": True}
    assert m.parse_message(body, m.TransferCompletionMessage).consumer_pid == C


def test_plain_json_without_context_is_accepted() -> None:
    body = example("contract-agreement-verification-message")
    del body["@context"]
    assert m.parse_message(body, m.ContractAgreementVerificationMessage).provider_pid == P


def test_agreement_policy_spellings_are_accepted_and_kept_verbatim() -> None:
    body = example("contract-agreement-message")
    agreement = body["agreement"]
    body["agreement"] = {
        "@id": agreement["@id"],
        "@type": "odrl:Agreement",
        "odrl:target": {"@id": agreement["target"]},
        "http://www.w3.org/ns/odrl/2/assigner": agreement["assigner"],
        "assignee": [agreement["assignee"]],
        "dspace:timestamp": agreement["timestamp"],
        m.PHEMS_SIGNATURE: "eyJhbGciOiJFZERTQSJ9..sig",
    }
    parsed = m.parse_message(body, m.ContractAgreementMessage)
    assert parsed.agreement == body["agreement"]
    assert parsed.provider_signature == "eyJhbGciOiJFZERTQSJ9..sig"


def test_verification_carries_the_consumer_signature() -> None:
    body = example("contract-agreement-verification-message")
    body[m.PHEMS_SIGNATURE] = "consumer.jws.value"
    parsed = m.parse_message(body, m.ContractAgreementVerificationMessage)
    assert parsed.signature == "consumer.jws.value"
    assert m.dump(parsed)[m.PHEMS_SIGNATURE] == "consumer.jws.value"


# --- bad input ----------------------------------------------------------------------------


def _refused(body: bytes | str | dict[str, Any], cls: type[m.DspMessage]) -> str:
    with pytest.raises(InvalidMessageError) as info:
        m.parse_message(body, cls)
    assert info.value.status == 400
    return info.value.detail


@pytest.mark.parametrize("raw", [b"", b"{", b'{"@type": ', b"\xff\xfe", b"not json", "{'a': 1}"])
def test_malformed_json(raw: bytes | str) -> None:
    assert _refused(raw, m.ContractRequestMessage).startswith("malformed JSON")


@pytest.mark.parametrize("raw", [b"[]", b"42", b'"text"', b"null"])
def test_not_an_object(raw: bytes) -> None:
    assert "must be a JSON object" in _refused(raw, m.ContractRequestMessage)


def test_wrong_type() -> None:
    detail = _refused(example("transfer-start-message"), m.ContractRequestMessage)
    assert detail == "wrong @type: expected ContractRequestMessage, got 'TransferStartMessage'"


def test_missing_type() -> None:
    body = example("contract-request-message_initial")
    del body["@type"]
    assert _refused(body, m.ContractRequestMessage) == "missing @type"


def test_several_types() -> None:
    body = example("contract-request-message_initial")
    body["@type"] = ["ContractRequestMessage", "ContractOfferMessage"]
    assert "single type" in _refused(body, m.ContractRequestMessage)


def test_other_dsp_version_context_is_refused() -> None:
    body = example("contract-request-message_initial")
    body["@context"] = "https://w3id.org/dspace/2024/1/context.json"
    assert "unsupported DSP version" in _refused(body, m.ContractRequestMessage)


def test_unknown_type_in_parse_any() -> None:
    with pytest.raises(InvalidMessageError, match="unknown @type 'Nonsense'"):
        m.parse_any({"@type": "Nonsense"})


REQUIRED = [
    ("dataset-request-message", "dataset"),
    ("catalog", "@id"),
    ("dataset", "@id"),
    ("dataset", "hasPolicy"),
    ("contract-request-message_initial", "consumerPid"),
    ("contract-request-message_initial", "offer"),
    ("contract-offer-message", "providerPid"),
    ("contract-offer-message", "offer"),
    ("contract-agreement-message", "providerPid"),
    ("contract-agreement-message", "consumerPid"),
    ("contract-agreement-message", "agreement"),
    ("contract-agreement-verification-message", "providerPid"),
    ("contract-agreement-verification-message", "consumerPid"),
    ("contract-negotiation-event-message", "eventType"),
    ("contract-negotiation-event-message", "consumerPid"),
    ("contract-negotiation-termination-message", "providerPid"),
    ("contract-negotiation", "state"),
    ("contract-negotiation", "providerPid"),
    ("transfer-request-message", "consumerPid"),
    ("transfer-request-message", "agreementId"),
    ("transfer-request-message", "format"),
    ("transfer-request-message", "callbackAddress"),
    ("transfer-start-message", "providerPid"),
    ("transfer-suspension-message", "consumerPid"),
    ("transfer-completion-message", "providerPid"),
    ("transfer-termination-message", "consumerPid"),
    ("transfer-process", "state"),
]


@pytest.mark.parametrize(("name", "field"), REQUIRED)
def test_missing_required_field(name: str, field: str) -> None:
    body = example(name)
    del body[field]
    detail = _refused(body, EXAMPLE_TYPES[name])
    assert f"missing required field {field!r}" in detail


def test_initial_request_and_offer_need_a_callback_address() -> None:
    body = example("contract-request-message_initial")
    del body["callbackAddress"]
    assert "callbackAddress is required" in _refused(body, m.ContractRequestMessage)
    body = example("contract-offer-message_initial")
    del body["callbackAddress"]
    assert "callbackAddress is required" in _refused(body, m.ContractOfferMessage)


@pytest.mark.parametrize(
    "address",
    [
        "",
        "not a url",
        "callback",
        "/relative/callback",
        "ftp://consumer.example/cb",
        "https://",
        "https:///cb",
        "https://exa mple.com/cb",
        " https://consumer.example/cb",
        "https://consumer.example:99999/cb",
        "https://consumer.example:port/cb",
        "https://consumer.example/cb?x=1",
        "mailto:someone@example.com",
    ],
)
@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("contract-request-message_initial", m.ContractRequestMessage),
        ("contract-offer-message_initial", m.ContractOfferMessage),
        ("transfer-request-message", m.TransferRequestMessage),
    ],
)
def test_unintelligible_callback_address(address: str, name: str, cls: type[m.DspMessage]) -> None:
    body = example(name)
    body["callbackAddress"] = address
    assert "callbackAddress" in _refused(body, cls)


@pytest.mark.parametrize("value", [42, "", None, ["a", "b"], {"x": 1}])
def test_bad_pid_values(value: Any) -> None:
    body = example("transfer-completion-message")
    body["providerPid"] = value
    assert "providerPid" in _refused(body, m.TransferCompletionMessage)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda o: o.pop("@id"), "non-empty string @id"),
        (lambda o: o.update({"@type": "Agreement"}), "@type Offer"),
        (lambda o: o.pop("@type"), "@type Offer"),
        (lambda o: o.pop("target"), "must have a target"),
    ],
)
def test_bad_offer_in_request(mutate: Any, reason: str) -> None:
    body = example("contract-request-message_initial")
    mutate(body["offer"])
    assert reason in _refused(body, m.ContractRequestMessage)


def test_offer_must_be_an_object() -> None:
    body = example("contract-request-message_initial")
    body["offer"] = ["a", "b"]
    assert "offer" in _refused(body, m.ContractRequestMessage)


@pytest.mark.parametrize("field", ["@id", "target", "assigner", "assignee", "timestamp"])
def test_agreement_missing_field(field: str) -> None:
    body = example("contract-agreement-message")
    del body["agreement"][field]
    assert "agreement" in _refused(body, m.ContractAgreementMessage)


@pytest.mark.parametrize(
    "timestamp", ["yesterday", "2023-01-01", "2023-13-01T00:00:00Z", 1700000000]
)
def test_agreement_timestamp_must_be_xsd_datetime(timestamp: Any) -> None:
    body = example("contract-agreement-message")
    body["agreement"]["timestamp"] = timestamp
    assert "timestamp" in _refused(body, m.ContractAgreementMessage)


def test_agreement_with_offer_type_is_refused() -> None:
    body = example("contract-agreement-message")
    body["agreement"]["@type"] = "Offer"
    assert "@type Agreement" in _refused(body, m.ContractAgreementMessage)


def test_catalog_offer_without_id_is_refused() -> None:
    body = example("dataset")
    del body["hasPolicy"][0]["@id"]
    assert "hasPolicy" in _refused(body, m.Dataset)


@pytest.mark.parametrize("event_type", ["REJECTED", "accepted", "dspace:OFFERED", 3])
def test_unknown_event_type(event_type: Any) -> None:
    body = example("contract-negotiation-event-message")
    body["eventType"] = event_type
    assert "eventType" in _refused(body, m.ContractNegotiationEventMessage)


def test_internal_states_never_parse_from_the_wire() -> None:
    body = example("contract-negotiation")
    body["state"] = "INITIAL"
    assert "not a DSP state" in _refused(body, m.ContractNegotiation)
    body = example("transfer-process")
    body["state"] = "INITIAL"
    assert "not a DSP state" in _refused(body, m.TransferProcess)


def test_data_address_needs_endpoint_type_and_endpoint() -> None:
    body = example("transfer-start-message")
    del body["dataAddress"]["endpointType"]
    assert "dataAddress.endpointType" in _refused(body, m.TransferStartMessage)
    body = example("transfer-start-message")
    body["dataAddress"]["endpointProperties"][0] = {"name": "authorization"}
    assert "value" in _refused(body, m.TransferStartMessage)


def test_reason_items_must_be_strings_or_objects() -> None:
    body = example("transfer-termination-message")
    body["reason"] = [42]
    assert "reason" in _refused(body, m.TransferTerminationMessage)


# --- error bodies -------------------------------------------------------------------------


def test_error_bodies_carry_code_and_reason() -> None:
    exc = InvalidTransitionError("ContractRequestMessage from the provider is not allowed")
    body = m.dump(negotiation_error(exc, provider_pid=P, consumer_pid=C))
    assert body == {
        "@context": [DSP_CONTEXT_URL],
        "@type": "ContractNegotiationError",
        "providerPid": P,
        "consumerPid": C,
        "code": "invalid-transition",
        "reason": ["ContractRequestMessage from the provider is not allowed"],
    }
    t = m.dump(transfer_error(InvalidMessageError("missing @type")))
    assert t["@type"] == "TransferError" and "providerPid" not in t
    assert t["reason"] == ["missing @type"]
    internal = m.dump(catalog_error(PhemsError("database password wrong")))
    assert internal["reason"] == ["Internal error"]


# -- CatalogRequestMessage.filter: a paging-only QuerySpec (what Eclipse EDC sends) --------

_EDC_QUERY_SPEC = {
    "@type": "QuerySpec",
    "offset": 0,
    "limit": 50,
    "filterExpression": [],
    "sortOrder": "ASC",
}


@pytest.mark.parametrize(
    ("filter_", "window"),
    [
        (None, (None, None)),
        ([], (None, None)),
        ([_EDC_QUERY_SPEC], (0, 50)),
        ([{"edc:offset": 5, "https://w3id.org/edc/v0.0.1/ns/limit": "7"}], (5, 7)),
        ([{"offset": {"@value": 2}, "limit": [{"@value": 3}], "sortField": None}], (2, 3)),
        ([{"@type": "QuerySpec", "sortOrder": "DESC"}], (None, None)),
    ],
)
def test_catalog_request_filter_pages_only(filter_: Any, window: tuple[Any, Any]) -> None:
    body = {"@context": [DSP_CONTEXT_URL], "@type": "CatalogRequestMessage", "filter": filter_}
    assert m.parse_message(json.dumps(body), m.CatalogRequestMessage).window() == window


@pytest.mark.parametrize(
    ("filter_", "named"),
    [
        (
            [_EDC_QUERY_SPEC | {"filterExpression": [{"operandLeft": "id", "operator": "="}]}],
            "filterExpression",
        ),
        ([_EDC_QUERY_SPEC | {"sortField": "title"}], "sortField"),
        ([{"q": 1}], "'q'"),
        ([_EDC_QUERY_SPEC, _EDC_QUERY_SPEC], "at most one"),
        (["offset=0"], "QuerySpec object"),
        ([{"limit": -1}], "whole number"),
        ([{"limit": True}], "whole number"),
        ([{"offset": 1.5}], "whole number"),
    ],
)
def test_catalog_request_filter_that_would_narrow_is_refused(filter_: Any, named: str) -> None:
    body = {"@context": [DSP_CONTEXT_URL], "@type": "CatalogRequestMessage", "filter": filter_}
    message = m.parse_message(json.dumps(body), m.CatalogRequestMessage)
    with pytest.raises(ValueError, match=named):
        message.window()


def test_json_nested_too_deeply_is_refused() -> None:
    """Deeper than any DSP message: refused at parse, before our recursive walks (JSON-LD
    terms, policies, storing) could run out of stack on it (a 500)."""
    body = json.dumps(example("contract-request-message_initial"))
    deep = body[:-1] + ', "x": ' + "[" * 300 + "]" * 300 + "}"
    with pytest.raises(InvalidMessageError, match="nested more than 40 levels"):
        m.parse_message(deep, m.ContractRequestMessage)
    just = body[:-1] + ', "x": ' + "[" * 38 + "]" * 38 + "}"
    m.parse_message(just, m.ContractRequestMessage)
