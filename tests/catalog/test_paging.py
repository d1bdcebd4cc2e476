"""Hydra paging as ckanext-dcat's RDF harvester reads it."""

from __future__ import annotations

import pytest
from rdflib import Graph, URIRef

from catalog.model import Catalog, Dataset
from catalog.paging import catalog_page, page_url
from catalog.vocab import DCAT, DCTERMS, HYDRA, RDF

BASE = "http://127.0.0.1:8080/catalog?format=ttl"


def next_page(g: Graph) -> str | None:
    """What ckanext-dcat's `RDFParser.next_page` does: hydra:next, else hydra:nextPage."""
    for node in g.subjects(RDF.type, HYDRA.PagedCollection):
        for o in g.objects(node, HYDRA.next):
            return str(o)
        for o in g.objects(node, HYDRA.nextPage):
            return str(o)
    return None


def test_harvester_walks_every_page(catalog: Catalog, several: list[Dataset]) -> None:
    seen: list[str] = []
    url: str | None = page_url(BASE, 1)
    pages = 0
    while url is not None:
        page = int(url.rsplit("page=", 1)[1])
        g = catalog_page(catalog, several, page=page, page_url_base=BASE, page_size=2)
        datasets = list(g.objects(URIRef(catalog.iri), DCAT.dataset))
        assert all(g.value(d, DCTERMS.modified) is not None for d in datasets)
        seen += [str(d) for d in datasets]
        url = next_page(g)
        pages += 1
    assert pages == 3
    assert sorted(seen) == sorted(d.iri for d in several)


def test_page_description(catalog: Catalog, several: list[Dataset]) -> None:
    g = catalog_page(catalog, several, page=2, page_url_base=BASE, page_size=2)
    node = URIRef(page_url(BASE, 2))
    assert (node, RDF.type, HYDRA.PagedCollection) in g
    assert int(str(g.value(node, HYDRA.totalItems))) == 5
    assert int(str(g.value(node, HYDRA.itemsPerPage))) == 2
    assert str(g.value(node, HYDRA.firstPage)) == page_url(BASE, 1)
    assert str(g.value(node, HYDRA.previousPage)) == page_url(BASE, 1)
    assert str(g.value(node, HYDRA.nextPage)) == page_url(BASE, 3)
    assert str(g.value(node, HYDRA.lastPage)) == page_url(BASE, 3)
    assert "format=ttl" in str(g.value(node, HYDRA.next))


def test_last_page_has_no_next(catalog: Catalog, several: list[Dataset]) -> None:
    g = catalog_page(catalog, several, page=3, page_url_base=BASE, page_size=2)
    assert next_page(g) is None
    assert len(list(g.subjects(RDF.type, DCAT.Dataset))) == 1


def test_page_out_of_range(catalog: Catalog, several: list[Dataset]) -> None:
    with pytest.raises(ValueError):
        catalog_page(catalog, several, page=4, page_url_base=BASE, page_size=2)
    with pytest.raises(ValueError):
        catalog_page(catalog, several, page=0, page_url_base=BASE, page_size=2)


def test_empty_catalog_has_one_page(catalog: Catalog) -> None:
    g = catalog_page(catalog, [], page=1, page_url_base=BASE)
    assert next_page(g) is None
