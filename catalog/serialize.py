"""Serialisations and content negotiation for `/catalog` and `/catalog/datasets/{id}`."""

from __future__ import annotations

from rdflib import Graph

from catalog.vocab import PREFIXES

TURTLE = "text/turtle"
JSON_LD = "application/ld+json"
RDF_XML = "application/rdf+xml"
HTML = "text/html"

RDF_FORMATS: dict[str, str] = {TURTLE: "turtle", JSON_LD: "json-ld", RDF_XML: "xml"}
# Offered in order of preference when the client has no preference between them.
OFFERED: tuple[str, ...] = (HTML, TURTLE, JSON_LD, RDF_XML)
ALIASES: dict[str, str] = {"application/json": JSON_LD, "application/xhtml+xml": HTML}


class NotAcceptable(ValueError):
    """No offered media type satisfies the Accept header (HTTP 406)."""


def serialize(graph: Graph, media_type: str) -> bytes:
    """Serialise `graph` as Turtle, JSON-LD (compacted with our prefixes) or RDF/XML."""
    fmt = RDF_FORMATS.get(media_type)
    if fmt is None:
        raise NotAcceptable(f"cannot serialise RDF as {media_type!r}")
    if fmt == "json-ld":
        context = {prefix: str(ns) for prefix, ns in PREFIXES.items()}
        return graph.serialize(format=fmt, context=context, auto_compact=True, encoding="utf-8")
    return graph.serialize(format=fmt, encoding="utf-8")


def _parse_accept(header: str) -> list[tuple[str, float, int]]:
    out = []
    for index, part in enumerate(header.split(",")):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        out.append((ALIASES.get(media, media), q, index))
    return out


def best_media_type(
    accept_header: str | None, *, offered: tuple[str, ...] = OFFERED, default: str = TURTLE
) -> str:
    """Pick the offered media type the client prefers (RFC 9110 section 12.5.1).

    No header (or only `*/*`) gives `default`. Exact types beat `type/*` beat `*/*`; ties in q
    go to the earlier entry of the header, then to `offered` order. Raises `NotAcceptable`.
    """
    if not accept_header or not accept_header.strip():
        return default
    entries = _parse_accept(accept_header)
    best: tuple[float, int, int, int] | None = None
    choice = None
    for position, media in enumerate(offered):
        main = media.split("/")[0]
        matches = [
            (2 if e == media else 1 if e == f"{main}/*" else 0, q, index)
            for e, q, index in entries
            if e in (media, f"{main}/*", "*/*")
        ]
        if not matches:
            continue
        specificity, q, index = max(matches, key=lambda m: (m[0], -m[2]))  # most specific wins
        if q <= 0:
            continue
        # Under a bare */* the server's default comes first, then `offered` order.
        position_key = position if specificity or media == default else len(offered) + position
        rank = (q, specificity, -index, -position_key)
        if best is None or rank > best:
            best, choice = rank, media
    if choice is None:
        raise NotAcceptable(f"none of {', '.join(offered)} is acceptable")
    return choice
