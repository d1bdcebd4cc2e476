"""The example of docs/aggregate-queries.md parses and is answered, and its refusals are real."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from connector.clock import FixedClock
from connector.errors import BadRequestError
from connector.fulfilment.aggregate.fulfilment import AggregateFulfilment
from connector.fulfilment.aggregate.request import parse_request
from connector.fulfilment.aggregate.store import MemoryAnswerStore
from connector.ports import FulfilmentRequest
from tests.conftest import REPO

DOC = (REPO / "docs" / "aggregate-queries.md").read_text()


def _example() -> bytes:
    block = re.search(r"```json\n(.*?)```", DOC, re.S)
    assert block is not None
    return block.group(1).encode()


def test_the_example_is_answered(sample: Any) -> None:
    _, views = sample
    body = _example()
    fulfilment = AggregateFulfilment(
        MemoryAnswerStore(), FixedClock(datetime(2024, 3, 15, tzinfo=UTC))
    )
    request = FulfilmentRequest(
        "a", "t", "did:web:u", views.dataset_id, body, "application/json", {}
    )
    facts = fulfilment.facts(request)
    assert (facts.purpose, facts.min_cell_size, facts.epsilon) == ("asthma-research", 10, 0.5)

    async def go() -> bytes:
        result = await fulfilment.fulfil(request, facts, views)
        return b"".join([c async for c in result.chunks])

    report = orjson.loads(asyncio.run(go()))
    assert [g["code"]["text"] for g in report["group"]] == ["cohort", "weight"]
    assert [s["code"][0]["text"] for s in report["group"][0]["stratifier"]] == ["sex", "age"]
    assert [s["value"]["text"] for s in report["group"][0]["stratifier"][0]["stratum"]] == [
        "female",
        "male",
    ]


@pytest.mark.parametrize("line", re.findall(r"^(/\S+: .*)$", DOC, re.M))
def test_the_refusals_shown_are_real_messages(line: str) -> None:
    pointer, message = line.split(": ", 1)
    doc = json.loads(_example())
    if pointer.startswith("/inclusionCriteria/2"):
        doc["inclusionCriteria"].append(
            [
                dict(
                    doc["inclusionCriteria"][0][0],
                    context={"system": "fdpg.mii.cds", "code": "Specimen", "display": "Bioprobe"},
                )
            ]
        )
    elif "valueFilter/unit" in pointer:
        doc["inclusionCriteria"][0][0] = dict(
            doc["measures"][2]["criterion"],
            valueFilter={
                "type": "quantity-comparator",
                "comparator": "gt",
                "value": 3,
                "unit": {"code": "mmol/L", "display": "mmol/L"},
            },
        )
    else:
        doc["measures"][1]["edges"] = [6, 2]
    with pytest.raises(BadRequestError) as caught:
        parse_request(json.dumps(doc).encode())
    assert caught.value.detail.startswith(f"{pointer}: {message.removesuffix('...').rstrip(' ;')}")
