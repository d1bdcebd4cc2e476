"""Federated aggregate queries over real aggregate fulfilments (three hospitals' flattened
tables, their peers' key agreement keys from DID documents on loopback): the cell codec, the
hospital's side of a secure round, and the coordinator combining both modes. The processes
and HTTP around them are tests/e2e/test_federated_queries.py."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from connector.clock import FixedClock
from connector.errors import BadRequestError, NotInstalledError
from connector.federation.coordinator import FederatedQueries
from connector.federation.ports import Hospital, HospitalReply, QueryRefused
from connector.federation.secure import Session, query_digest, unmask_sum
from connector.federation.wire import read_share, with_session
from connector.fulfilment.aggregate.codec import AggregateCodec
from connector.fulfilment.aggregate.fulfilment import AggregateFulfilment, SecureParty
from connector.fulfilment.aggregate.request import parse_request
from connector.fulfilment.aggregate.secure import cell_names, share_vector
from connector.fulfilment.aggregate.store import AnswerStore, MemoryAnswerStore
from connector.identity.resolver import DidResolver
from connector.ports import FlatViews, FulfilmentRequest, FulfilmentResult
from tests.fulfilment.aggregate.queries import ASTHMA, OTITIS, WEIGHT, lab, query, sex
from tests.fulfilment.aggregate.test_fulfilment import sql_store
from tests.fulfilment.aggregate.test_secure import _split
from tests.fulfilment.flat_views import build_flat_views
from tests.identity.conftest import DidServer, clock, did_server, http, new_keys, resolver

__all__ = ["clock", "did_server", "http", "resolver", "sql_store"]

NOW = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)
DOC = query(
    [[ASTHMA, OTITIS]],
    measures=[
        {"type": "stratify", "by": "sex", "id": "sex"},
        {"type": "numeric", "id": "weight", "column": "observation.value_quantity",
         "criterion": lab(WEIGHT), "unit": "kg", "bounds": [0, 80],
         "statistics": ["mean", "stddev"], "histogram": [15, 30]},
    ],
    purpose="research",
)  # fmt: skip


@dataclass
class Site:
    """One hospital: its fulfilment (its own answer store) over its part of the patients."""

    did: str
    views: FlatViews
    fulfilment: AggregateFulfilment
    results: list[FulfilmentResult] = field(default_factory=list)

    async def answer(self, body: bytes) -> bytes:
        request = FulfilmentRequest(
            "a1", "t1", "did:web:user", self.views.dataset_id, body, "application/json", {}, {}
        )
        result = await self.fulfilment.fulfil(request, self.fulfilment.facts(request), self.views)
        self.results.append(result)
        return b"".join([c async for c in result.chunks])


@dataclass
class Network:
    """Directory and channel over the sites (the channel calls each fulfilment as the data
    plane does; ``down`` sites refuse)."""

    sites: list[Site]
    down: set[str] = field(default_factory=set)
    received: list[tuple[str, Any]] = field(default_factory=list)

    async def hospitals(self, named: Sequence[str] = ()) -> list[Hospital]:
        return [
            Hospital(s.did, f"agreement-{i}", s.views.dataset_id) for i, s in enumerate(self.sites)
        ]

    async def ask(self, hospital: Hospital, body: bytes) -> HospitalReply:
        if hospital.did in self.down:
            raise QueryRefused("policy: purpose is not permitted")
        site = next(s for s in self.sites if s.did == hospital.did)
        answer = await site.answer(body)
        self.received.append((site.did, orjson.loads(answer)))
        return HospitalReply(answer)


@pytest.fixture(scope="module")
def parts(sample: Any, tmp_path_factory: pytest.TempPathFactory) -> list[FlatViews]:
    resources, _ = sample
    return [
        build_flat_views(part, tmp_path_factory.mktemp(f"fed{i}"), dataset_id=f"fed{i}")
        for i, part in enumerate(_split(resources, 3))
    ]


@pytest.fixture
def sites(parts: list[FlatViews], did_server: DidServer, resolver: DidResolver) -> list[Site]:
    out = []
    for views in parts:
        keys = new_keys()
        did = did_server.publish(keys)
        party = SecureParty(did, keys.key_agreement, resolver)
        fulfilment = AggregateFulfilment(MemoryAnswerStore(), FixedClock(NOW), party=party)
        out.append(Site(did, views, fulfilment))
    return out


def _session(sites: Sequence[Site], session_id: str = "urn:uuid:s1") -> Session:
    q = parse_request(json.dumps(DOC).encode())
    return Session.open(session_id, [s.did for s in sites], cell_names(q))


async def _share(site: Site, session: Session) -> list[int]:
    answer = orjson.loads(await site.answer(orjson.dumps(with_session(DOC, session))))
    share = read_share(answer, session, participant=site.did, query=query_digest(DOC))
    return share.masked_vector


async def test_the_masked_shares_sum_to_the_hospitals_kept_draws(sites: list[Site]) -> None:
    session = _session(sites)
    shares = [await _share(s, session) for s in sites]
    q = parse_request(json.dumps(DOC).encode())
    drawn = [share_vector(q, (await s.fulfilment.drawn(q, s.views))[0]) for s in sites]
    assert unmask_sum(shares, session) == [sum(col) for col in zip(*drawn, strict=True)]
    for share, vector in zip(shares, drawn, strict=True):
        # uniform on [0, 2^52): none of them near a count, a fixed-point sum or its negative
        assert all(2**20 < v < session.modulus - 2**20 for v in share)
        assert not set(share) & {v % session.modulus for v in vector}
    # the draw spent the epsilon; the shares carry no media type of a MeasureReport
    assert [s.results[0].epsilon_spent for s in sites] == [None, None, None]
    assert {s.results[0].media_type for s in sites} == {"application/json"}
    assert sites[0].results[0].audit["secureAggregation"] == {
        "sessionId": "urn:uuid:s1",
        "participants": 3,
    }


async def test_a_repeat_re_masks_the_kept_draw_and_spends_nothing(sites: list[Site]) -> None:
    first, again = _session(sites, "urn:uuid:a"), _session(sites, "urn:uuid:b")
    one = [await _share(s, first) for s in sites]
    assert [await _share(s, first) for s in sites] == one  # the same session: the same share
    two = [await _share(s, again) for s in sites]
    assert not set(one[0]) & set(two[0])  # a new session: new masks
    assert unmask_sum(one, first) == unmask_sum(two, again)  # ... over the same noisy vectors
    assert [r.epsilon_spent for r in sites[0].results] == [None, 0.0, 0.0]
    # the plain answer is released from the same draw, and spends nothing either
    body = await sites[0].answer(json.dumps(DOC).encode())
    assert orjson.loads(body)["resourceType"] == "MeasureReport"
    assert sites[0].results[-1].epsilon_spent == 0.0


async def test_plain_and_secure_rounds_agree_up_to_rounding(sites: list[Site]) -> None:
    network = Network(sites)
    codec = AggregateCodec(FixedClock(NOW))
    queries = FederatedQueries(directory=network, channel=network, codec=codec)
    # girls and boys (about 130 a hospital: no noisy count near 0, where plain mode's rounding
    # would clamp it), by sex, with their weight
    everyone = {**DOC, "inclusionCriteria": [[sex("female", "male")]]}
    plain = await queries.run(everyone)
    secure = await queries.run(everyone, mode="secure")
    assert plain.status == secure.status == "complete" and secure.rounds == 1
    assert plain.total is not None and secure.total is not None
    # one draw per hospital behind both: plain rounds each hospital's count, secure the sum
    assert abs(plain.total - secure.total) <= 5 * (len(sites) + 1)
    assert secure.report is not None and secure.report["resourceType"] == "MeasureReport"
    weights = [g for g in secure.report["group"] if g["code"]["text"] == "weight"]
    assert weights[0]["measureScore"]["unit"] == "kg"
    assert 0 <= weights[0]["measureScore"]["value"] <= 80  # clamped to the bounds
    # what the coordinator received in secure mode: shares, never a MeasureReport
    secure_answers = network.received[len(sites) :]
    assert all("maskedVector" in a and "group" not in a for _, a in secure_answers)
    plain_counts = {
        did: a["group"][0]["population"][0].get("count")
        for did, a in network.received[: len(sites)]
    }
    for did, answer in secure_answers:
        assert plain_counts[did] not in answer["maskedVector"]


async def test_a_refusing_hospital_is_left_out_of_the_round(sites: list[Site]) -> None:
    network = Network(sites, down={sites[1].did})
    queries = FederatedQueries(
        directory=network, channel=network, codec=AggregateCodec(FixedClock(NOW))
    )
    answer = await queries.run(DOC, mode="secure")
    assert answer.status == "partial" and answer.rounds == 2
    assert [o.status for o in answer.hospitals] == ["answered", "refused", "answered"]
    assert answer.hospitals[1].detail.startswith("round 1: policy")


async def test_a_session_that_does_not_fit_is_refused_before_any_data(
    sites: list[Site], parts: list[FlatViews]
) -> None:
    site = sites[0]

    def facts(doc: Mapping[str, Any], fulfilment: AggregateFulfilment = site.fulfilment) -> None:
        body = orjson.dumps(doc)
        fulfilment.facts(FulfilmentRequest("a", "t", "u", "d", body, "application/json", {}, {}))

    others = Session.open("urn:uuid:x", [s.did for s in sites[1:]], _session(sites).layout)
    with pytest.raises(BadRequestError, match="this hospital\\) is not listed"):
        facts(with_session(DOC, others))
    wrong = Session.open("urn:uuid:x", [s.did for s in sites], ["cohort", "sex/female"])
    with pytest.raises(BadRequestError, match="^secureAggregation.layout: the query's answer"):
        facts(with_session(DOC, wrong))
    with pytest.raises(BadRequestError, match="^secureAggregation.modulus"):
        facts({**DOC, "secureAggregation": {**with_session(DOC, others)["secureAggregation"],
                                            "modulus": 12}})  # fmt: skip
    with pytest.raises(BadRequestError, match="^/options/epsilon"):
        facts({**with_session(DOC, _session(sites)), "options": {"epsilon": -1}})
    bystander = AggregateFulfilment(MemoryAnswerStore(), FixedClock(NOW))
    with pytest.raises(NotInstalledError, match="does not take part"):
        facts(with_session(DOC, _session(sites)), bystander)


async def test_an_answer_kept_without_its_draw_gets_a_draw_of_its_own(
    sites: list[Site], sql_store: AnswerStore
) -> None:
    """An answer kept by a version before secure aggregation (no draw beside it): the first
    share draws and keeps one (spending epsilon), the next re-masks it."""
    q = parse_request(json.dumps(DOC).encode())
    site = sites[0]
    released = {"values": [None] * len(q.layout), "reference": "2024-03-15",
                "computedAt": NOW.isoformat()}  # fmt: skip
    await sql_store.keep(site.views.dataset_id, site.views.version, q.digest, released)
    assert site.fulfilment._party is not None
    site.fulfilment = AggregateFulfilment(sql_store, FixedClock(NOW), party=site.fulfilment._party)
    session = _session(sites)
    first = await _share(site, session)
    assert await _share(site, session) == first
    assert [r.epsilon_spent for r in site.results] == [None, 0.0]
    drawn, kept = await site.fulfilment.drawn(q, site.views)
    assert kept and len(drawn) == len(q.layout)
    assert (await site.fulfilment.answer(q, site.views)).release.values == tuple(released["values"])


# -- the codec --------------------------------------------------------------------------------


async def test_the_codec_reads_a_hospitals_report_back_into_its_cells(sites: list[Site]) -> None:
    codec = AggregateCodec(FixedClock(NOW))
    layout = codec.layout(DOC)
    assert layout[:3] == ["cohort", "sex/female", "sex/male"]
    assert {"weight", "weight/sum", "weight/sumsq"} <= set(layout)
    report = orjson.loads(await sites[0].answer(json.dumps(DOC).encode()))
    cells = codec.cells(DOC, report)
    assert cells[0] == report["group"][0]["population"][0].get("count")
    strata = report["group"][0]["stratifier"][0]["stratum"]
    assert cells[1:5] == [s["population"][0].get("count") for s in strata]
    # a vector of shown cells gives back its cells: counts, and mean and deviation as sums
    known = [120, 60, 40, 10, 10, 50, 1_025_000, 21_812_500, 10, 30, 10]
    weight = codec.report(DOC, known)["group"][1]
    assert weight["measureScore"]["value"] == 20.5
    assert weight["extension"][0]["valueQuantity"]["value"] == 4.0
    assert codec.cells(DOC, codec.report(DOC, known)) == known
    with pytest.raises(ValueError, match="stratifier"):
        codec.cells({**DOC, "measures": [{"type": "stratify", "by": "ageBand", "id": "sex"}]},
                    report)  # fmt: skip
    with pytest.raises(ValueError, match="not an integer"):
        broken = json.loads(json.dumps(report))
        broken["group"][0]["population"][0]["count"] = "12"
        codec.cells(DOC, broken)
    with pytest.raises(BadRequestError, match="^/measures/0"):
        codec.layout({**DOC, "measures": [{"type": "stratify", "by": "shoe size"}]})
    with pytest.raises(BadRequestError, match="^query: not a query a hospital can read"):
        codec.layout({**DOC, "x": [-156937090479506358272]})  # found by the API fuzz test


def test_the_codec_suppresses_and_rounds_the_totals() -> None:
    codec = AggregateCodec(FixedClock(NOW))
    doc = query([[ASTHMA]], measures=[{"type": "stratify", "by": "sex", "id": "sex"}])
    assert codec.layout(doc) == ["cohort", "sex/female", "sex/male", "sex/other", "sex/unknown"]

    def shown(cells: list[int | None]) -> list[int | None]:
        group = codec.report(doc, cells)["group"][0]
        strata = group["stratifier"][0]["stratum"]
        return [group["population"][0].get("count")] + [
            s["population"][0].get("count") for s in strata
        ]

    # a secure sum: 7 and 2 under 10, and together under 10: a third stratum goes with them
    assert shown([104, 61, 34, 7, 2]) == [100, 60, None, None, None]
    # hospitals' released answers added up: what they hid stays hidden, nothing more
    assert shown([100, 60, 40, None, None]) == [100, 60, 40, None, None]
    assert shown([-4, 3, 0, 0, 0]) == [None, None, None, None, None]
