"""DCAT-AP catalog pages for harvesters (CKAN ckanext-dcat, HealthData@EU, national nodes).

ckanext-dcat's RDF harvester follows `hydra:next` (or the older `hydra:nextPage`) of the node
typed `hydra:PagedCollection` until there is none, and its serializer writes both the old and
the new predicates with literal URL values; we do the same so either generation of harvester
pages through us. Every dataset carries `dct:modified`, which makes re-harvests incremental.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rdflib import Graph, Literal, URIRef

from catalog.model import Catalog, Dataset
from catalog.rdf import to_graph
from catalog.vocab import HYDRA, RDF, XSD

DEFAULT_PAGE_SIZE = 100


def page_url(base_url: str, page: int) -> str:
    """`base_url` with its `page` query parameter set (other parameters kept)."""
    parts = urlsplit(base_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "page"]
    query.append(("page", str(page)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def page_count(total: int, page_size: int) -> int:
    return max(1, math.ceil(total / page_size))


def catalog_page(
    catalog: Catalog,
    datasets: Sequence[Dataset],
    *,
    page: int,
    page_url_base: str,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> Graph:
    """The graph of page `page` (1-based) of `datasets`, with its `hydra:PagedCollection`.

    `catalog.datasets` is ignored: the page holds the catalog description plus this page's
    slice of `datasets` (sorted by the caller). Raises ValueError for a page out of range.
    """
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    last = page_count(len(datasets), page_size)
    if not 1 <= page <= last:
        raise ValueError(f"page {page} out of range 1..{last}")
    chunk = tuple(datasets[(page - 1) * page_size : page * page_size])
    graph = to_graph(catalog.model_copy(update={"datasets": chunk}))
    add_paging(
        graph,
        total=len(datasets),
        page=page,
        page_size=page_size,
        page_url_base=page_url_base,
    )
    return graph


def add_paging(graph: Graph, *, total: int, page: int, page_size: int, page_url_base: str) -> None:
    """Add the `hydra:PagedCollection` description of one page to `graph`."""
    last = page_count(total, page_size)
    node = URIRef(page_url(page_url_base, page))
    graph.bind("hydra", HYDRA)
    graph.add((node, RDF.type, HYDRA.PagedCollection))
    graph.add((node, HYDRA.totalItems, Literal(total, datatype=XSD.integer)))
    graph.add((node, HYDRA.itemsPerPage, Literal(page_size, datatype=XSD.integer)))
    links = {
        (HYDRA.firstPage, HYDRA.first): 1,
        (HYDRA.lastPage, HYDRA.last): last,
        (HYDRA.nextPage, HYDRA.next): page + 1 if page < last else None,
        (HYDRA.previousPage, HYDRA.previous): page - 1 if page > 1 else None,
    }
    for predicates, target in links.items():
        if target is not None:
            for predicate in predicates:
                graph.add((node, predicate, Literal(page_url(page_url_base, target))))
