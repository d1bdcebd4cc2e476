"""Which hospitals a federated query asks: aggregate agreements held as consumer, the named
ones, and a hospital with two aggregate agreements refused as ambiguous."""

from __future__ import annotations

from typing import Any

import pytest

from connector.errors import BadRequestError
from connector.federation.directory import (
    AgreementDirectory,
    HeldAgreement,
    allows_aggregate,
)
from connector.federation.ports import Hospital
from tests.policy.helpers import c, offer

PHEMS = "https://w3id.org/phems/ns/"


def agreement(*constraints: dict[str, Any]) -> dict[str, Any]:
    return {**offer(*constraints), "@type": "Agreement"}


@pytest.mark.parametrize(
    ("constraints", "aggregate"),
    [
        ((), True),
        ((c("purpose", "eq", "research"),), True),
        ((c("phems:outputType", "eq", "aggregate"),), True),
        ((c(PHEMS + "outputType", "isAnyOf", ["synthetic", "aggregate"]),), True),
        ((c("phems:outputType", "neq", "anonymized"),), True),
        ((c("phems:outputType", "eq", "synthetic"),), False),
        ((c("phems:outputType", "isNoneOf", ["aggregate"]),), False),
        (({"and": [c("phems:outputType", "eq", "synthetic"), c("purpose", "eq", "x")]},), False),
        (({"or": [c("phems:outputType", "eq", "synthetic"), c("purpose", "eq", "x")]},), True),
    ],
)
def test_aggregate_agreements(constraints: tuple[dict[str, Any], ...], aggregate: bool) -> None:
    assert allows_aggregate(agreement(*constraints)) is aggregate


def test_an_unreadable_policy_is_not_an_aggregate_agreement() -> None:
    assert not allows_aggregate(
        {"permission": [{"action": "use", "constraint": [c("phems:shoeSize", "eq", 1)]}]}
    )


class Held:
    def __init__(self, *agreements: HeldAgreement) -> None:
        self.agreements = list(agreements)

    async def consumer_agreements(self) -> list[HeldAgreement]:
        return self.agreements


A = HeldAgreement("agr-a", "did:web:a.example", "asthma", agreement(), "https://a/dsp", "A")
B = HeldAgreement("agr-b", "did:web:b.example", "asthma", agreement())
B2 = HeldAgreement("agr-b2", "did:web:b.example", "diabetes", agreement())
SYN = HeldAgreement(
    "agr-c", "did:web:c.example", "asthma", agreement(c("phems:outputType", "eq", "synthetic"))
)


async def test_every_aggregate_agreement_or_the_named_hospitals() -> None:
    directory = AgreementDirectory(Held(A, B, SYN))
    assert await directory.hospitals() == [
        Hospital("did:web:a.example", "agr-a", "asthma", "https://a/dsp", "A"),
        Hospital("did:web:b.example", "agr-b", "asthma"),
    ]
    named = await directory.hospitals(["did:web:b.example", "agr-a", "did:web:c.example"])
    assert [(h.did, h.agreement_id) for h in named] == [
        ("did:web:b.example", "agr-b"),
        ("did:web:a.example", "agr-a"),
        ("did:web:c.example", None),  # a synthetic agreement only: the channel negotiates
    ]


async def test_two_aggregate_agreements_with_one_hospital_must_be_named() -> None:
    directory = AgreementDirectory(Held(A, B, B2))
    with pytest.raises(
        BadRequestError,
        match=r"did:web:b.example has 2 aggregate agreements "
        r"\(agr-b \(dataset asthma\), agr-b2 \(dataset diabetes\)\)",
    ):
        await directory.hospitals()
    assert [h.agreement_id for h in await directory.hospitals(["agr-b2", "agr-a"])] == [
        "agr-b2",
        "agr-a",
    ]
