"""HTML rendering: content, accessibility landmarks, escaping, the request form."""

from __future__ import annotations

from typing import Any

from catalog.formats import OutputType
from catalog.html import render_catalog_page, render_dataset_page
from catalog.model import Dataset
from catalog.search import Query, search


def words(policy: dict[str, Any]) -> str:
    return f"research only, results of 10 persons or more ({policy['@id'].rsplit('-', 1)[-1]})"


def test_dataset_page_in_plain_words(dataset: Dataset) -> None:
    html = render_dataset_page(
        dataset,
        describe_policy=words,
        request_access_url="/ui/negotiations",
        hidden_fields={"csrf": "t0k3n"},
    )
    assert '<h1 id="ds-title">Paediatric respiratory care cohort</h1>' in html
    assert "Electronic health data from EHRs" in html
    assert "0 to 17 years" in html
    assert "about 1,870" in html
    assert "January 2019 to November 2024" in html
    assert "SNOMED CT" in html and "LOINC" in html
    assert "National Health Data Access Body (example)" in html
    assert "European Health Data Space Regulation (EU) 2025/327" in html
    assert "research only, results of 10 persons or more (aggregate)" in html
    assert "research only, results of 10 persons or more (synthetic)" in html
    assert '<form method="post" action="/ui/negotiations"' in html
    assert 'name="offer_id" value="http://127.0.0.1:8080/catalog/offers/' in html
    assert 'name="provider_endpoint" value="http://127.0.0.1:8080/dsp/2025-1"' in html
    assert 'name="csrf" value="t0k3n"' in html
    # variables table with header cells and a caption
    assert "<caption>Respiratory cohort view columns</caption>" in html
    assert '<th scope="row"><code>observation_value</code></th>' in html
    # landmarks and keyboard helpers, no external resources
    for marker in (
        '<main id="main"',
        'role="banner"',
        'role="contentinfo"',
        'class="skip"',
        'lang="en"',
    ):
        assert marker in html
    assert "<script" not in html and "http://cdn" not in html and "https://cdn" not in html
    assert "<link" not in html


def test_dataset_without_offers_has_no_form(dataset: Dataset) -> None:
    html = render_dataset_page(
        dataset.model_copy(update={"policies": ()}), describe_policy=words, request_access_url="/x"
    )
    assert "no open offer" in html and "<form" not in html


def test_withheld_statistics_say_so(dataset: Dataset) -> None:
    ds = dataset.model_copy(update={"number_of_unique_individuals": None, "min_typical_age": None})
    html = render_dataset_page(ds, describe_policy=words, request_access_url="/x")
    assert "fewer than 10 or not published" in html
    assert "Typical ages</dt><dd>Not published" in html


def test_text_is_escaped(dataset: Dataset) -> None:
    ds = dataset.model_copy(update={"title": "<script>alert(1)</script>"})
    html = render_dataset_page(ds, describe_policy=lambda p: "<b>x</b>", request_access_url="/x")
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


def test_catalog_page_has_search_and_filters(several: list[Dataset]) -> None:
    q = Query.from_params([("q", "oncology"), ("category", "HGPD"), ("min_age", "3")])
    found = search(several, q)
    html = render_catalog_page(found, query=q, all_datasets=several)
    assert '<input type="search" id="q" name="q" value="oncology"' in html
    assert '<label for="q">Search</label>' in html
    assert "1 dataset found of 5" in html
    assert 'href="/catalog/datasets/paediatric-respiratory-2019-2024-2"' in html
    assert 'name="category" value="HGPD" checked' in html
    assert 'id="min_age" name="min_age" value="3"' in html
    assert "Hospital Sant Joan de Deu (example)" in html
    assert "ORPHAcode (rare diseases)" in html  # coding-system facet in words
    for legend in (
        "Health category",
        "Age range (years)",
        "Coding system",
        "Hospital",
        "Output type",
    ):
        assert f"<legend>{legend}</legend>" in html


def test_catalog_page_without_results(several: list[Dataset]) -> None:
    html = render_catalog_page([], query=Query(text="zzz"), all_datasets=several)
    assert "0 datasets found of 5" in html and "No dataset matches" in html


def test_the_output_filter_offers_the_output_types_given(several: list[Dataset]) -> None:
    every = render_catalog_page(several)
    assert all(f'value="{o.value}"' in every for o in OutputType)
    html = render_catalog_page(several, outputs={OutputType.SYNTHETIC, OutputType.AGGREGATE})
    assert 'value="aggregate"' in html and 'value="synthetic"' in html
    assert 'value="anonymized"' not in html and "Anonymised extract</label>" not in html


def test_metadata_links_are_http_only() -> None:
    from catalog.html import safe_url

    assert safe_url("https://eur-lex.europa.eu/eli/reg/2025/327/oj").startswith("https://")
    assert safe_url("javascript:alert(1)") == "#"
    assert safe_url(" JavaScript:alert(1)") == "#"
    assert safe_url("data:text/html,x") == "#"
