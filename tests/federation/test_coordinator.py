"""The coordinator over fake hospitals that mask with the real code and fetch each other's keys
from DID documents served on loopback: plain and secure combination, the MII rules, timeouts,
failures per hospital, dropout re-runs and malformed shares."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.measurereport import MeasureReport

from connector.errors import BadRequestError
from connector.federation.coordinator import (
    ANSWER_EXTENSION,
    CoordinatorConfig,
    FederatedAnswer,
    FederatedQueries,
)
from connector.federation.hospital import KeyResolver
from connector.federation.ports import Hospital, HospitalReply
from connector.federation.rules import CombinationRules
from connector.identity.resolver import DidResolver
from connector.settings import load_settings
from tests.federation.fakes import FakeHospital, FakeNetwork
from tests.identity.conftest import DidServer, new_keys

QUERY: dict[str, Any] = {
    "cohort": {"inclusionCriteria": [[{"x": 1}]]},
    "strata": ["female", "male"],
}

# true cells (patients, female, male) and a fixed noise draw per hospital
CELLS = [[140, 70, 70], [95, 40, 55], [61, 33, 28], [24, 17, 7]]
NOISE = [[3, -1, 2], [-4, 0, 1], [1, 2, -3], [0, -2, 1]]


def hospitals(did_server: DidServer, n: int = 4, **behaviour: str) -> list[FakeHospital]:
    out = []
    for i in range(n):
        keys = new_keys()
        did = did_server.publish(keys)
        out.append(
            FakeHospital(
                did,
                CELLS[i % 4],
                NOISE[i % 4],
                key=keys.key_agreement,
                behaviour=behaviour.get(f"h{i}", "ok"),
            )
        )
    return out


class Recording:
    """A channel that keeps every answer the coordinator received."""

    def __init__(self, inner: FakeNetwork) -> None:
        self.inner = inner
        self.received: list[tuple[str, dict[str, Any]]] = []

    async def ask(self, hospital: Hospital, body: bytes) -> HospitalReply:
        reply = await self.inner.ask(hospital, body)
        try:
            self.received.append((hospital.did, orjson.loads(reply.body)))
        except orjson.JSONDecodeError:
            pass
        return reply


def coordinator(
    fakes: list[FakeHospital], resolver: KeyResolver, **config: Any
) -> tuple[FederatedQueries, Recording]:
    network = FakeNetwork(fakes, resolver)
    channel = Recording(network)
    ids = iter(f"urn:uuid:session-{i}" for i in range(100))
    return (
        FederatedQueries(
            directory=network,
            channel=channel,
            codec=network.codec,
            config=CoordinatorConfig(**config),
            new_session_id=lambda: next(ids),
        ),
        channel,
    )


def counts(answer: FederatedAnswer) -> list[int | None]:
    assert answer.report is not None
    group = answer.report["group"][0]
    strata = group["stratifier"][0]["stratum"]
    return [group["population"][0].get("count")] + [s["population"][0].get("count") for s in strata]


def the_extension(answer: FederatedAnswer) -> dict[str, list[Any]]:
    assert answer.report is not None
    MeasureReport.model_validate(answer.report)  # valid FHIR R4 as fhir.resources reads it
    (ext,) = [e for e in answer.report["extension"] if e["url"] == ANSWER_EXTENSION]
    out: dict[str, list[Any]] = {}
    for part in ext["extension"]:
        value = next(v for k, v in part.items() if k.startswith("value"))
        out.setdefault(part["url"], []).append(value)
    return out


async def test_plain_mode_sums_the_hospitals_answers_with_a_breakdown(
    did_server: DidServer, resolver: DidResolver
) -> None:
    fakes = hospitals(did_server)
    queries, _ = coordinator(fakes, resolver)
    answer = await queries.run(QUERY)
    assert answer.status == "complete" and answer.mode == "plain" and answer.rounds == 1
    # each hospital suppresses its cells under 10 and rounds to 10: 140/70/70, 90/40/60,
    # 60/40/20, 20/20/- -> the male cell of the fourth counts 0 and is reported suppressed
    assert counts(answer) == [310, 170, 150]
    assert answer.total == 310
    assert answer.suppressed == {"sex=male": 1}
    assert [h.did for h in (o.hospital for o in answer.breakdown)] == [f.did for f in fakes]
    ext = the_extension(answer)
    assert ext["mode"] == ["plain"] and ext["contributor"] == [f.did for f in fakes]
    assert "excluded" not in ext
    assert all(o.status == "answered" and o.seconds is not None for o in answer.hospitals)


async def test_plain_breakdown_needs_three_hospitals_with_twenty_each(
    did_server: DidServer, resolver: DidResolver
) -> None:
    fakes = hospitals(did_server)
    fakes[1].true_cells, fakes[3].true_cells = [15, 8, 7], [14, 7, 7]
    queries, _ = coordinator(fakes, resolver)
    answer = await queries.run(QUERY)
    assert answer.total == 140 + 10 + 60 + 10
    assert answer.breakdown == []  # only two hospitals have 20 or more
    queries, _ = coordinator(fakes, resolver, rules=CombinationRules(breakdown_min_hospitals=2))
    assert len((await queries.run(QUERY)).breakdown) == 4


async def test_a_total_under_twenty_is_withheld(
    did_server: DidServer, resolver: DidResolver
) -> None:
    fakes = hospitals(did_server, n=2)
    fakes[0].true_cells, fakes[1].true_cells = [10, 5, 5], [3, 1, 2]  # noisy 13 and -1
    for mode in ("plain", "secure"):
        queries, _ = coordinator(fakes, resolver)
        answer = await queries.run(QUERY, mode=mode)  # type: ignore[arg-type]
        assert answer.total is None and answer.breakdown == [] and answer.suppressed == {}
        assert answer.withheld == "fewer than 20 patients in total: no result"
        assert counts(answer) == [None, None, None]
        assert the_extension(answer)["withheld"] == [answer.withheld]
        assert answer.as_json()["total"] is None


async def test_secure_mode_gives_the_noisy_sum_and_nothing_per_hospital(
    did_server: DidServer, resolver: DidResolver
) -> None:
    fakes = hospitals(did_server)
    queries, channel = coordinator(fakes, resolver)
    plain = await queries.run(QUERY)
    secure = await queries.run(QUERY, mode="secure")
    noisy_sum = [sum(col) for col in zip(*(f.noisy for f in fakes), strict=True)]
    assert counts(secure) == noisy_sum == [320, 159, 161]
    assert secure.total == 320 and secure.status == "complete" and secure.rounds == 1
    # same totals up to the hospitals' rounding and suppression
    assert plain.total is not None and abs(plain.total - secure.total) <= 4 * 5 + 10
    assert secure.breakdown == [] and the_extension(secure)["mode"] == ["secure"]
    shares = [body for _, body in channel.received if "maskedVector" in body]
    assert len(shares) == 4
    by_did = {f.did: f for f in fakes}
    assert sorted(did for did, _ in channel.received[-4:]) == sorted(by_did)
    for did, body in channel.received[-4:]:  # in the order the answers came
        fake = by_did[did]
        assert set(body) == {
            "protocol",
            "sessionId",
            "participant",
            "layoutDigest",
            "queryDigest",
            "maskedVector",
        }
        assert not set(body["maskedVector"]) & set(fake.noisy + fake.true_cells)
    # what each hospital was asked: the query, plus the session
    session = fakes[0].bodies[-1]["secureAggregation"]
    assert session["participants"] == sorted(f.did for f in fakes)
    assert session["layout"] == ["patients", "sex=female", "sex=male"]
    assert session["modulus"] == 2**52 and session["protocol"] == "phems-secagg-1"


async def test_secure_round_reruns_without_a_hospital_that_drops_out(
    did_server: DidServer, resolver: DidResolver
) -> None:
    fakes = hospitals(did_server, h2="down")
    queries, _ = coordinator(fakes, resolver)
    answer = await queries.run(QUERY, mode="secure")
    assert answer.status == "partial" and answer.rounds == 2
    assert counts(answer) == [
        sum(col) for col in zip(*(f.noisy for f in fakes if f.behaviour == "ok"), strict=True)
    ]
    down = answer.hospitals[2]
    assert down.status == "unreachable"
    assert down.detail == (
        "round 1: connection refused (http://127.0.0.1:9/dataplane); the round ran again without it"
    )
    assert fakes[2].asked == 1 and [f.asked for f in fakes if f.behaviour == "ok"] == [2, 2, 2]
    second = fakes[0].bodies[-1]["secureAggregation"]
    assert second["sessionId"] == "urn:uuid:session-1"
    assert fakes[2].did not in second["participants"] and len(second["participants"]) == 3
    ext = the_extension(answer)
    assert ext["rounds"] == [2] and len(ext["contributor"]) == 3
    assert ext["excluded"] == [f"{fakes[2].did}: unreachable: {down.detail}"]


async def test_a_hospital_that_hangs_times_out_and_the_round_reruns(
    did_server: DidServer, resolver: DidResolver
) -> None:
    fakes = hospitals(did_server, h0="hang")
    queries, _ = coordinator(fakes, resolver, timeout_seconds=0.3)
    answer = await queries.run(QUERY, mode="secure")
    assert answer.hospitals[0].status == "timeout"
    assert answer.hospitals[0].detail.startswith("round 1: no answer within 0.3 s")
    assert answer.rounds == 2 and answer.total == sum(f.noisy[0] for f in fakes[1:])


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        ("short", "its share: maskedVector has 2 values, the layout 3"),
        ("float", "its share: maskedVector[0] is float, not an integer"),
        ("junk", "the answer is not JSON"),
        ("range", "its share: maskedVector[2] is outside [0, modulus)"),
    ],
)
async def test_a_malformed_share_excludes_its_sender(
    did_server: DidServer, resolver: DidResolver, behaviour: str, words: str
) -> None:
    fakes = hospitals(did_server, h1=behaviour)
    queries, _ = coordinator(fakes, resolver)
    answer = await queries.run(QUERY, mode="secure")
    bad = answer.hospitals[1]
    assert bad.status == "malformed"
    assert bad.detail == f"round 1: {words}; the round ran again without it"
    assert answer.rounds == 2 and answer.status == "partial"
    assert answer.total == sum(f.noisy[0] for i, f in enumerate(fakes) if i != 1)


async def test_a_share_from_another_session_or_query_is_refused(
    did_server: DidServer, resolver: DidResolver
) -> None:
    fakes = hospitals(did_server, n=3)

    class Replaying(Recording):
        """Answers the second round with the first round's shares."""

        async def ask(self, hospital: Hospital, body: bytes) -> HospitalReply:
            await super().ask(hospital, body)
            first = [b for d, b in self.received if d == hospital.did][0]
            return HospitalReply(orjson.dumps(first))

    network = FakeNetwork(fakes, resolver)
    queries = FederatedQueries(directory=network, channel=Replaying(network), codec=network.codec)
    await queries.run(QUERY, mode="secure")  # first round: the shares are recorded
    answer = await queries.run(QUERY, mode="secure")
    assert answer.status == "failed"
    assert all(o.status == "malformed" for o in answer.hospitals)
    assert "sessionId is" in answer.hospitals[0].detail


async def test_failures_are_reported_per_hospital(
    did_server: DidServer, resolver: DidResolver
) -> None:
    fakes = hospitals(did_server, h0="refuse", h1="budget", h3="no-agreement")
    queries, _ = coordinator(fakes, resolver)
    answer = await queries.run(QUERY)
    assert [o.status for o in answer.hospitals] == [
        "refused",
        "budget-exhausted",
        "answered",
        "no-agreement",
    ]
    assert answer.hospitals[1].detail == "epsilon budget exhausted: 1.0 of 1.0 spent"
    assert answer.status == "partial" and answer.total == 60
    assert answer.breakdown == []


async def test_nothing_answered_means_failed_without_a_report(
    did_server: DidServer, resolver: DidResolver
) -> None:
    fakes = hospitals(did_server, n=2, h0="down", h1="refuse")
    for mode in ("plain", "secure"):
        queries, _ = coordinator(fakes, resolver)
        answer = await queries.run(QUERY, mode=mode)  # type: ignore[arg-type]
        assert answer.status == "failed" and answer.report is None and answer.total is None
        assert answer.as_json()["hospitals"][0]["status"] == "unreachable"


async def test_secure_mode_stops_when_fewer_than_two_are_left(
    did_server: DidServer, resolver: DidResolver
) -> None:
    fakes = hospitals(did_server, n=2, h1="budget")
    queries, _ = coordinator(fakes, resolver)
    answer = await queries.run(QUERY, mode="secure")
    assert answer.status == "failed" and answer.rounds == 1 and answer.report is None
    assert answer.hospitals[0].status == "too-few-left"
    assert answer.hospitals[1].detail == "round 1: epsilon budget exhausted: 1.0 of 1.0 spent"


async def test_the_query_and_the_hospitals_are_checked_first(
    did_server: DidServer, resolver: DidResolver
) -> None:
    fakes = hospitals(did_server, n=2)
    queries, _ = coordinator(fakes, resolver)
    with pytest.raises(BadRequestError, match="strata: a list of strings"):
        await queries.run({"strata": "female"})
    with pytest.raises(BadRequestError, match="secureAggregation is set by the coordinator"):
        await queries.run({**QUERY, "secureAggregation": {}})
    with pytest.raises(BadRequestError, match="would be asked twice"):
        await queries.run(QUERY, hospitals=[fakes[0].did, fakes[0].did])
    empty = FakeNetwork([], resolver)
    nobody = FederatedQueries(directory=empty, channel=empty, codec=empty.codec)
    with pytest.raises(BadRequestError, match="holds no aggregate agreement"):
        await nobody.run(QUERY)
    assert all(f.asked == 0 for f in fakes)


def test_the_rules_and_timeout_come_from_the_settings() -> None:
    settings = load_settings(
        query_min_total=50, query_breakdown_min_hospitals=2, query_timeout_seconds=5
    )
    config = CoordinatorConfig.from_settings(settings)
    assert config.rules == CombinationRules(50, 2, 20) and config.timeout_seconds == 5
    assert CoordinatorConfig.from_settings(load_settings()) == CoordinatorConfig()


async def test_hospitals_are_asked_at_the_same_time(
    did_server: DidServer, resolver: DidResolver
) -> None:
    fakes = hospitals(did_server)
    network = FakeNetwork(fakes, resolver)
    everyone = asyncio.Barrier(len(fakes))

    class Together:
        """Each hospital answers only once all four have been asked."""

        async def ask(self, hospital: Hospital, body: bytes) -> HospitalReply:
            await everyone.wait()
            return await network.ask(hospital, body)

    queries = FederatedQueries(
        directory=network,
        channel=Together(),
        codec=network.codec,
        config=CoordinatorConfig(timeout_seconds=10),
    )
    answer = await queries.run(QUERY)
    assert answer.status == "complete", [o.detail for o in answer.hospitals]
