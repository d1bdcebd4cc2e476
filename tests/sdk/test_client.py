"""The data user SDK against real connectors on loopback: harvest, search, negotiate, verify
and query round trip, and each refusal as its typed error."""

from __future__ import annotations

import pytest

from connector.sdk import (
    Agreement,
    BudgetExhausted,
    Client,
    NegotiationRefused,
    NotFound,
    PolicyRefused,
    Unauthorized,
    Unreachable,
)
from tests.conftest import free_port
from tests.sdk.conftest import (
    ONE_QUERY_DATASET,
    QUERY,
    SAMPLE_DATASET,
    UNPERMITTED_DATASET,
    Space,
    fresh,
)


def test_harvest_search_negotiate_verify_and_query(space: Space) -> None:
    with space.client() as phems:
        report = phems.harvest(*space.addresses())
        assert [t["state"] for t in report["targets"]] == ["ok", "ok"]
        everything = phems.search(output="aggregate")
        assert sorted(d.id for d in everything) == [ONE_QUERY_DATASET] + [SAMPLE_DATASET] * 2
        synthetic = phems.search(output="synthetic", hospital="Hospital 0")
        assert UNPERMITTED_DATASET in {d.id for d in synthetic} - {d.id for d in everything}
        found = phems.search(SAMPLE_DATASET)
        assert sorted(d.publisher for d in found) == ["Hospital 0", "Hospital 1"]
        assert {d.id for d in found} == {SAMPLE_DATASET}
        assert all("aggregate" in d.output_types and d.offers for d in found)
        frame = found.frame
        assert len(frame) == 2 and set(frame["publisher"]) == {"Hospital 0", "Hospital 1"}
        assert phems.search("no-such-word-anywhere") == []
        agreements = [phems.negotiate(d) for d in found]
        assert {a.provider for a in agreements} == {h.did for h in space.hospitals}
        assert all(a.dataset.endswith(SAMPLE_DATASET) for a in agreements)
        assert all(a.output_type == "aggregate" for a in agreements)
        held = {a.id: a for a in phems.agreements()}
        assert all(held[a.id].provider == a.provider for a in agreements)
        for a in agreements:
            verified = phems.verify(a)
            assert (verified.agreement_id, verified.provider) == (a.id, a.provider)
            assert verified.consumer == a.consumer
        secure = phems.query(QUERY, agreements, mode="secure", timeout=180)
        assert secure.status == "complete" and secure.mode == "secure"
        assert [h["status"] for h in secure.hospitals] == ["answered", "answered"]
        assert secure.measure_report is not None
        assert secure.measure_report["resourceType"] == "MeasureReport"
        assert secure.total is not None and 200 <= secure.total <= 600  # 2 x 200 children, noisy
        combined = secure.frame[secure.frame["hospital"] == "all"]
        cohort = combined["count"].iloc[0]
        assert combined["stratum"].tolist()[:1] == [""] and cohort % 10 == 0
        assert abs(cohort - secure.total) <= 5  # the report's count is rounded to 10
        plain = phems.query(QUERY, [a.id for a in agreements], mode="plain")  # ids do too
        assert plain.status == "complete" and len(plain.hospitals) == 2
        assert abs(plain.total - secure.total) <= 15  # type: ignore[operator]


def test_a_refused_negotiation_names_the_reason(space: Space) -> None:
    # the synthetic offer needs a data permit for the dataset, which the data user lacks
    with space.client() as phems:
        with pytest.raises(NegotiationRefused) as refused:
            phems.negotiate(UNPERMITTED_DATASET, space.addresses()[0], output="synthetic")
    assert "refused" in str(refused.value) and "ermit" in str(refused.value)
    assert refused.value.status == 403


def test_an_unreachable_hospital_or_connector(space: Space) -> None:
    with space.client() as phems, pytest.raises(Unreachable) as down:
        phems.negotiate(SAMPLE_DATASET, space.dead)
    assert space.dead.removesuffix("/dsp/2025-1") in str(down.value)
    gone = f"http://127.0.0.1:{free_port()}"
    with Client(gone, "key") as phems, pytest.raises(Unreachable) as down:
        phems.search()
    assert str(down.value).startswith(f"cannot reach the connector at {gone}")


def test_an_exhausted_budget(space: Space) -> None:
    with space.client() as phems:
        agreement = phems.negotiate(ONE_QUERY_DATASET, space.addresses()[0])
        assert isinstance(agreement, Agreement)
        query = fresh(QUERY, "by-sex-sdk")
        first = phems.query(query, [agreement])
        assert first.status == "complete"
        with pytest.raises(BudgetExhausted) as exhausted:
            phems.query(query, [agreement])
    assert "budget-exhausted" in str(exhausted.value) and "epsilon" in str(exhausted.value)
    assert exhausted.value.answer["status"] == "failed"


def test_bad_calls(space: Space) -> None:
    with space.client() as phems:
        with pytest.raises(NotFound, match="offers no such dataset"):
            phems.negotiate("no-such-dataset", space.addresses()[1])
        with pytest.raises(NotFound, match="no an offer|no offer"):
            phems.negotiate(SAMPLE_DATASET, space.addresses()[1], offer="offer-that-is-not")
    with Client(space.user.url, "wrong-key") as phems, pytest.raises(Unauthorized):
        phems.search()


def test_synthetic_patients_with_their_report(space: Space) -> None:
    told: list[str] = []
    with space.client() as phems:
        [dataset] = phems.search(SAMPLE_DATASET, hospital="Hospital 1")
        agreement = phems.negotiate(dataset, output="synthetic")
        assert agreement.output_type == "synthetic"
        # the first call waits while the hospital fits its model (503 + Retry-After)
        result = phems.synthetic(agreement, patients=20, timeout=300,
                                 waiting=lambda seconds, why: told.append(why))  # fmt: skip
        assert result.patients == 20 and result.bundle["resourceType"] == "Bundle"
        assert told, "the first fetch waited for the model"
        report = result.report
        assert report is not None and 0.0 <= report["quality"]["score"] <= 1.0
        assert report["privacy"]["exact_copy_rate_delivered"] == 0.0
        frames = result.frames
        assert len(frames["Patient"]) == 20 and "Encounter" in frames
        assert not {"name.0.family", "identifier.0.value"} & set(frames["Patient"].columns)
        refs = set(frames["Encounter"]["subject.reference"])
        assert refs <= {f"Patient/{i}" for i in frames["Patient"]["id"]}
        # more than the policy lets one call ask for: refused, nothing fetched
        with pytest.raises(PolicyRefused) as refused:
            phems.synthetic(agreement, patients=5000, timeout=60)
        assert refused.value.status == 403 and "5000" in str(refused.value)
