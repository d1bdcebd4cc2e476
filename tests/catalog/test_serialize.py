"""Content negotiation and serialisation."""

from __future__ import annotations

import pytest
from rdflib import Graph

from catalog.serialize import (
    HTML,
    JSON_LD,
    RDF_XML,
    TURTLE,
    NotAcceptable,
    best_media_type,
    serialize,
)

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, TURTLE),
        ("", TURTLE),
        ("*/*", TURTLE),
        (BROWSER, HTML),
        ("application/ld+json", JSON_LD),
        ("application/json", JSON_LD),
        ("application/rdf+xml", RDF_XML),
        ("text/turtle;q=0.5, application/rdf+xml", RDF_XML),
        ("*/*;q=0.1, application/rdf+xml", RDF_XML),
        ("text/html;q=0, */*", TURTLE),
        ("TEXT/TURTLE", TURTLE),
        ("application/ld+json;q=0.9, text/turtle;q=0.9", JSON_LD),
    ],
)
def test_best_media_type(accept: str | None, expected: str) -> None:
    assert best_media_type(accept) == expected


def test_not_acceptable() -> None:
    with pytest.raises(NotAcceptable):
        best_media_type("image/png, application/pdf")


def test_html_cannot_be_serialised_from_rdf() -> None:
    with pytest.raises(NotAcceptable):
        serialize(Graph(), HTML)
