"""ODRL offers as JSON-LD dicts <-> RDF, offline.

Policies arrive as JSON-LD dicts (the policy engine's compact ODRL, as DSP profiles it). They are
parsed with rdflib's JSON-LD parser against a bundled context (`contexts/odrl-local.jsonld`);
remote contexts the catalog knows (ODRL, DSP 2025-1) are replaced by that local one and any
other remote context is refused: nothing is ever fetched from the network.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, cast

from rdflib import BNode, Graph, Literal, URIRef
from rdflib.collection import Collection
from rdflib.term import Node

from catalog.vocab import ODRL, RDF

# Remote contexts whose ODRL terms the bundled context covers (replaced, never fetched).
KNOWN_REMOTE_CONTEXTS = frozenset(
    {
        "http://www.w3.org/ns/odrl.jsonld",
        "https://www.w3.org/ns/odrl.jsonld",
        "https://w3id.org/dspace/2025/1/context.jsonld",
    }
)
POLICY_CLASSES = (ODRL.Offer, ODRL.Set, ODRL.Policy, ODRL.Agreement)


class PolicyError(ValueError):
    """A policy dict that cannot be read as ODRL JSON-LD offline."""


@cache
def local_context() -> dict[str, Any]:
    text = resources.files("catalog").joinpath("contexts/odrl-local.jsonld").read_text("utf-8")
    return cast(dict[str, Any], json.loads(text)["@context"])


def _offline_context(ctx: Any) -> list[Any]:
    items = ctx if isinstance(ctx, list) else [ctx]
    out: list[Any] = [local_context()]
    for item in items:
        if isinstance(item, str):
            if item not in KNOWN_REMOTE_CONTEXTS:
                raise PolicyError(f"remote JSON-LD context {item!r} is not bundled")
        elif isinstance(item, dict):
            out.append(item)
        elif item is not None:
            raise PolicyError("JSON-LD @context must be a string, an object or a list")
    return out


def policy_graph(policy: dict[str, Any]) -> tuple[Graph, Node]:
    """Parse one policy dict; return its graph and its root node (the Offer/Set/Policy)."""
    doc = dict(policy)
    doc["@context"] = _offline_context(doc.get("@context"))
    graph = Graph()
    try:
        graph.parse(data=json.dumps(doc), format="json-ld")
    except Exception as exc:  # rdflib raises many unrelated types for bad JSON-LD
        raise PolicyError(f"policy is not valid JSON-LD: {exc}") from exc
    roots = [
        s
        for cls in POLICY_CLASSES
        for s in graph.subjects(RDF.type, cls)
        if (None, None, s) not in graph
    ]
    if len(roots) != 1:
        raise PolicyError("a policy must have exactly one @type Offer, Set, Policy or Agreement")
    return graph, roots[0]


def policy_dict(graph: Graph, root: Node) -> dict[str, Any]:
    """The policy rooted at `root` as compact nested JSON-LD (local context terms, no @context).

    Written by hand rather than with rdflib's JSON-LD serializer, which flattens the tree and
    drops nodes that sit inside RDF lists (`and`, `or`, ...).
    """
    return _node(graph, root, _Terms.get(), set())


class _Terms:
    """Reverse maps of the local context: IRI -> term, and each property term's coercion."""

    _instance: _Terms | None = None

    def __init__(self) -> None:
        ctx = local_context()
        prefixes = {k: v for k, v in ctx.items() if isinstance(v, str) and v.endswith(("/", "#"))}

        def expand(curie: str) -> str:
            prefix, _, local = curie.partition(":")
            return prefixes[prefix] + local if prefix in prefixes else curie

        self.vocab: dict[str, str] = {}
        self.props: dict[str, tuple[str, str | None, str | None]] = {}
        for term, value in ctx.items():
            if term in prefixes:
                continue
            if isinstance(value, str):
                self.vocab[expand(value)] = term
            else:
                iri = expand(value["@id"])
                self.props[iri] = (term, value.get("@type"), value.get("@container"))
        self.xsd = prefixes["xsd"]

    @classmethod
    def get(cls) -> _Terms:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance


def _node(graph: Graph, node: Node, terms: _Terms, seen: set[Node]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(node, URIRef):
        out["@id"] = str(node)
    types = [terms.vocab.get(str(t), str(t)) for t in graph.objects(node, RDF.type)]
    if types:
        out["@type"] = types[0] if len(types) == 1 else sorted(types)
    for p in sorted(set(graph.predicates(node)) - {RDF.type}, key=str):
        term, coerce, container = terms.props.get(str(p), (str(p), None, None))
        values = [_value(graph, o, coerce, terms, seen | {node}) for o in graph.objects(node, p)]
        if container == "@list" and len(values) == 1 and isinstance(values[0], list):
            out[term] = values[0]
        elif container == "@set" or len(values) > 1:
            out[term] = values
        else:
            out[term] = values[0]
    return out


def _value(graph: Graph, o: Node, coerce: str | None, terms: _Terms, seen: set[Node]) -> Any:
    if isinstance(o, Literal):
        if o.language:
            return {"@value": str(o), "@language": o.language}
        dtype = str(o.datatype) if o.datatype else None
        if dtype in (None, terms.xsd + "string"):
            return str(o)
        if dtype in (terms.xsd + "integer", terms.xsd + "boolean", terms.xsd + "double"):
            return o.toPython()
        return {
            "@value": str(o),
            "@type": "xsd:" + dtype[len(terms.xsd) :] if dtype.startswith(terms.xsd) else dtype,
        }
    if isinstance(o, BNode) and o not in seen:
        if (o, RDF.first, None) in graph:
            return [_value(graph, i, coerce, terms, seen) for i in Collection(graph, o)]
        return _node(graph, o, terms, seen)
    if o == RDF.nil:
        return []
    iri = str(o)
    if coerce == "@vocab":
        return terms.vocab.get(iri, iri)
    if coerce == "@id":
        return iri
    return {"@id": iri}


def add_policy(graph: Graph, subject: URIRef, policy: dict[str, Any]) -> None:
    """Attach `policy` to `subject` with `odrl:hasPolicy`."""
    pg, root = policy_graph(policy)
    graph += pg
    graph.add((subject, ODRL.hasPolicy, root))


__all__ = ["PolicyError", "add_policy", "local_context", "policy_dict", "policy_graph"]
