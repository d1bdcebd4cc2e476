"""The DSP 2025-1 JSON-LD context, bundled, and the lenient reader of compact messages.

We emit exactly one form: compact JSON with ``"@context": [DSP_CONTEXT_URL]`` and a string
``@type`` (DSP 2025-1, common protocol, "JSON-LD and JSON"). Peers may send any form that means
the same under the context, so before validation a body is normalised *structurally* (no
network, no full JSON-LD processor):

- keys written as prefixed (``dspace:consumerPid``) or expanded IRIs
  (``https://w3id.org/dspace/2025/1/consumerPid``) become the compact term (``consumerPid``);
- ``@type``, ``eventType``, ``state``, ``endpointType`` values given as a list of one, a prefixed
  or an expanded IRI become the compact term;
- scalar values wrapped as ``{"@id": x}``, ``{"@value": x}`` or ``[x]`` are unwrapped, except
  for terms the context declares as ``@set`` (``reason``, ``filter``, ``endpointProperties`` ...);
- extra top-level keywords (``@id``) are kept for the message model to read.

ODRL policies (``offer``, ``agreement``) are *not* rewritten: the provider signs the Agreement
over its exact JSON, and the policy engine compares expanded IRIs itself.

The context documents are files next to this module and are never fetched:
``bundled_document(url)`` is the document loader to give any JSON-LD processor.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

DSP_CONTEXT_URL = "https://w3id.org/dspace/2025/1/context.jsonld"
ODRL_PROFILE_URL = "https://w3id.org/dspace/2025/1/odrl-profile.jsonld"
DSPACE = "https://w3id.org/dspace/2025/1/"
ODRL = "http://www.w3.org/ns/odrl/2/"
DCT = "http://purl.org/dc/terms/"
DCAT = "http://www.w3.org/ns/dcat#"
PREFIXES: Mapping[str, str] = {"dspace": DSPACE, "odrl": ODRL, "dct": DCT, "dcat": DCAT}

_HERE = Path(__file__).resolve().parent
_BUNDLED: Mapping[str, Path] = {
    DSP_CONTEXT_URL: _HERE / "context.jsonld",
    ODRL_PROFILE_URL: _HERE / "odrl-profile.jsonld",
}
# Keys whose values are IRIs in the vocabulary and are compacted like @type.
_VOCAB_VALUED = frozenset({"eventType", "state", "endpointType"})
# Nested objects that are DSP structures (normalised too, with the type that scopes their
# terms); policies are deliberately absent.
_NESTED: Mapping[str, str] = {
    "dataAddress": "DataAddress",
    "endpointProperties": "EndpointProperty",
}


@cache
def bundled_document(url: str) -> dict[str, Any]:
    """The bundled JSON-LD document for ``url``; ``KeyError`` for anything not bundled."""
    path = _BUNDLED[url]
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def dsp_context() -> dict[str, Any]:
    """The 2025-1 context (the ``@context`` object of ``context.jsonld``)."""
    ctx: dict[str, Any] = bundled_document(DSP_CONTEXT_URL)["@context"]
    return ctx


def expand_iri(value: str) -> str:
    """``dspace:X`` -> full IRI; a term or unknown prefix is returned unchanged."""
    prefix, sep, local = value.partition(":")
    if sep and prefix in PREFIXES and not local.startswith("//"):
        return PREFIXES[prefix] + local
    return value


@cache
def _vocabulary() -> tuple[dict[str, str], dict[str, frozenset[str]]]:
    """(expanded IRI -> compact term, type term -> terms its scoped context declares
    ``@container: @set``)."""
    iri_to_term: dict[str, str] = {}
    set_terms: dict[str, frozenset[str]] = {}

    def walk(ctx: Mapping[str, Any], scope: str) -> None:
        sets: set[str] = set()
        for term, definition in ctx.items():
            if term.startswith("@") or term in PREFIXES or term == "xsd":
                continue
            if isinstance(definition, str):
                iri_to_term.setdefault(expand_iri(definition), term)
            elif isinstance(definition, Mapping):
                if isinstance(definition.get("@id"), str):
                    iri_to_term.setdefault(expand_iri(definition["@id"]), term)
                if definition.get("@container") == "@set":
                    sets.add(term)
                scoped = definition.get("@context")
                if isinstance(scoped, Mapping):
                    walk(scoped, term)
        set_terms[scope] = frozenset(sets)

    walk(dsp_context(), "")
    walk(bundled_document(ODRL_PROFILE_URL)["@context"], "odrl")
    return iri_to_term, set_terms


def compact_iri(value: str) -> str:
    """The compact term for a term, prefixed IRI or expanded IRI the context knows; else
    ``value`` unchanged (so an error message can show what was sent)."""
    iri_to_term, _ = _vocabulary()
    return iri_to_term.get(expand_iri(value), value)


def _unwrap(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict) and len(value) == 1:
        if "@id" in value:
            return value["@id"]
        if "@value" in value:
            return value["@value"]
    return value


def compact_type(value: Any) -> Any:
    """``@type`` as one compact term when it is a string or a list of one string; other values
    (missing, several types) are returned as they are for the caller to refuse."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return compact_iri(value) if isinstance(value, str) else value


def normalize(body: Mapping[str, Any], *, default_type: str = "") -> dict[str, Any]:
    """A copy of ``body`` in the compact form the message models read (see module doc).

    ``default_type`` scopes the terms of a nested object that carries no ``@type``.
    """
    _, set_terms = _vocabulary()
    out: dict[str, Any] = {}
    if "@type" in body:
        out["@type"] = compact_type(body["@type"])
    scope = out.get("@type") if isinstance(out.get("@type"), str) else default_type
    sets = set_terms.get(str(scope), frozenset())
    for key, raw in body.items():
        if key == "@type":
            continue
        term = key if key.startswith("@") else compact_iri(key)
        value = raw if term in sets else _unwrap(raw)
        if term in _VOCAB_VALUED and isinstance(value, str):
            value = compact_iri(value)
        elif term in sets and isinstance(value, dict | str):
            value = [value]  # a @set term given as a single value
        if term in _NESTED:
            value = _normalize_nested(value, _NESTED[term])
        out[term] = value
    return out


def _normalize_nested(value: Any, default_type: str) -> Any:
    if isinstance(value, Mapping):
        return normalize(value, default_type=default_type)
    if isinstance(value, list):
        return [
            normalize(v, default_type=default_type) if isinstance(v, Mapping) else v for v in value
        ]
    return value
