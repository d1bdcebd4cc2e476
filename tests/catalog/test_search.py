"""Free-text search and filters."""

from __future__ import annotations

from catalog.codes import CodingSystem, HealthCategory
from catalog.model import Dataset, OutputType
from catalog.search import Query, facets, search


def titles(found: list[Dataset]) -> list[str]:
    return [d.title for d in found]


def test_empty_query_returns_all(several: list[Dataset]) -> None:
    assert len(search(several, Query())) == 5


def test_free_text_is_case_insensitive_and_all_terms_must_match(several: list[Dataset]) -> None:
    assert titles(search(several, Query(text="ONCOLOGY"))) == ["Paediatric oncology cohort"]
    assert titles(search(several, Query(text="hba1c diabetes"))) == [
        "Adolescent diabetes outpatients"
    ]
    assert search(several, Query(text="oncology diabetes")) == []


def test_text_matches_variables_and_codes(several: list[Dataset]) -> None:
    assert len(search(several, Query(text="observation_unit"))) == 5
    assert len(search(several, Query(text="J45"))) == 5


def test_filters(several: list[Dataset]) -> None:
    by_cat = search(several, Query(health_categories=frozenset({HealthCategory.HGPD})))
    assert titles(by_cat) == ["Paediatric oncology cohort", "Rare disease genetics"]
    by_code = search(several, Query(coding_systems=frozenset({CodingSystem.LOINC})))
    assert "Adolescent diabetes outpatients" in titles(by_code)
    assert "Rare disease genetics" not in titles(by_code)
    aggregate = search(several, Query(output_types=frozenset({OutputType.AGGREGATE})))
    assert "Neonatal intensive care registry" not in titles(aggregate)
    sjd = search(several, Query(hospitals=frozenset({"Hospital Sant Joan de Deu (example)"})))
    assert len(sjd) == 2


def test_age_range_overlap(several: list[Dataset]) -> None:
    teens = titles(search(several, Query(min_age=13, max_age=15)))
    assert "Adolescent diabetes outpatients" in teens
    assert "Neonatal intensive care registry" not in teens
    assert "Rare disease genetics" not in teens  # no published ages: cannot match an age filter
    newborns = titles(search(several, Query(max_age=0)))
    assert "Neonatal intensive care registry" in newborns


def test_query_from_params_ignores_junk() -> None:
    q = Query.from_params(
        [
            ("q", "asthma"),
            ("category", "EHRS"),
            ("category", "NOPE"),
            ("coding", "LOINC"),
            ("output", "synthetic"),
            ("min_age", "2"),
            ("max_age", "x"),
            ("hospital", ""),
        ]
    )
    assert q.text == "asthma"
    assert q.health_categories == frozenset({HealthCategory.EHRS})
    assert q.coding_systems == frozenset({CodingSystem.LOINC})
    assert q.output_types == frozenset({OutputType.SYNTHETIC})
    assert (q.min_age, q.max_age) == (2, None)
    assert q.hospitals == frozenset()


def test_facets(several: list[Dataset]) -> None:
    f = facets(several)
    assert f["category"] == ["EHRS", "HGPD", "MRMR"]
    assert len(f["hospital"]) == 2
    assert f["output"] == ["aggregate", "synthetic"]
