"""The catalog UI's query run, without a hospital: a pasted query checked as JSON, the purpose
read from an agreement, refusals put in words, and the form posts read (urlencoded and
multipart)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from connector.api.forms import form_fields
from connector.api.query_run import QueryFailure, agreed_purpose, encode, parse_ccdl
from connector.errors import BadRequestError


@pytest.mark.parametrize(
    ("text", "title", "detail"),
    [
        ("", "No query", "Paste a CCDL query"),
        ("  \n", "No query", "Paste a CCDL query"),
        ('{"version": "2",', "The query is not JSON", "line 1, column 17"),
        ("[1, 2]", "The query is not a CCDL query", "not an array"),
        ('"text"', "The query is not a CCDL query", "not a string"),
        ("3", "The query is not a CCDL query", "not a number"),
        ("null", "The query is not a CCDL query", "not null"),
    ],
)
def test_a_pasted_query_that_is_no_json_object(text: str, title: str, detail: str) -> None:
    with pytest.raises(QueryFailure) as caught:
        parse_ccdl(text)
    assert caught.value.status == 400 and caught.value.title == title
    assert detail in caught.value.detail


def test_a_pasted_query_is_sent_as_parsed() -> None:
    query = parse_ccdl('{"version": "2", "display": "Kinder"}')
    assert encode(query) == b'{\n  "version": "2",\n  "display": "Kinder"\n}'


def test_refusals_in_words() -> None:
    limit = QueryFailure.answered(429, "epsilon budget used up", {"retry-after": "30"})
    assert limit.title == "Refused: a limit is used up"
    assert limit.detail == "epsilon budget used up" and limit.hint.endswith(
        "Try again in 30 seconds."
    )
    busy = QueryFailure.answered(503, "tables being built", {"Retry-After": "5"})
    assert busy.hint == "Nothing was spent. Try again in 5 seconds."
    policy = QueryFailure.answered(403, "")
    assert policy.title == "The agreement's conditions do not permit this query"
    assert policy.detail == "No reason was given."
    odd = QueryFailure.answered(418, "x" * 5000)
    assert odd.title == "The hospital's connector answered 418" and len(odd.detail) == 2000


def _agreement(*constraints: dict[str, object]) -> dict[str, object]:
    return {
        "@context": "http://www.w3.org/ns/odrl.jsonld",
        "@type": "Agreement",
        "@id": "urn:uuid:1",
        "target": "asthma",
        "assigner": "did:web:hospital",
        "assignee": "did:web:lab",
        "permission": [{"action": "use", "constraint": list(constraints)}],
    }


RESEARCH = {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"}
MEMBER = {"leftOperand": "phems:membership", "operator": "eq", "rightOperand": True}


@pytest.mark.parametrize(
    ("agreement", "purpose"),
    [
        (_agreement(RESEARCH, MEMBER), "research"),
        (_agreement({"and": [MEMBER, RESEARCH]}), "research"),
        (_agreement({"or": [RESEARCH, MEMBER]}), ""),
        (_agreement({**RESEARCH, "operator": "isAnyOf", "rightOperand": ["a", "b"]}), ""),
        (_agreement(MEMBER), ""),
        ({"permission": "nonsense"}, ""),
    ],
)
def test_the_purpose_an_agreement_names(agreement: dict[str, object], purpose: str) -> None:
    assert agreed_purpose(agreement) == purpose


def _request(media: str, body: bytes) -> Request:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/catalog/transfers/x/query",
        "headers": [(b"content-type", media.encode())],
    }
    return Request(scope, receive)


async def test_a_urlencoded_form() -> None:
    fields = await form_fields(
        _request("application/x-www-form-urlencoded", b"csrf=abc&ccdl=%7B%22a%22%3A1%7D")
    )
    assert fields == {"csrf": "abc", "ccdl": '{"a":1}'}


async def test_a_multipart_form_with_a_file() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="csrf"\r\n\r\nabc\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="ccdl_file"; filename="q.json"\r\n'
        b'Content-Type: application/json\r\n\r\n{"display": "Kinder \xc3\xa4"}\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="ccdl"\r\n\r\n\r\n--XyZ--\r\n'
    )
    fields = await form_fields(_request("multipart/form-data; boundary=XyZ", body))
    assert fields == {"csrf": "abc", "ccdl_file": '{"display": "Kinder ä"}', "ccdl": ""}


async def test_other_bodies_are_no_form() -> None:
    with pytest.raises(BadRequestError):
        await form_fields(_request("application/json", b"{}"))
    with pytest.raises(BadRequestError):
        await form_fields(_request("multipart/form-data; boundary=XyZ", b"not multipart"))
