"""Datasets in DSP 2025-1 compact JSON (the body of the DSP catalog), from the same model.

The HTTP layer adds filtering by what the caller may use, paging and `Link` headers; this
module only shapes JSON. Terms follow the DSP 2025-1 context (`Catalog`, `Dataset`,
`Distribution`, `DataService`, `hasPolicy`, `format`, `accessService`, `endpointURL`,
`participantId`), plus `dct:title`, `dct:description` and `dct:modified` (the DSP context
binds `dct`) so a harvester can tell changed datasets without fetching them; the offers are
the model's ODRL dicts, minus any `@context` of their own.

Two constraints of the DSP 2025-1 JSON schemas shape the output. A constraint's `rightOperand`
is a string, an object or an array (`negotiation/contract-schema.json`), so a JSON number or
boolean in a stored offer is sent as the equivalent typed literal (`{"@value": "10", "@type":
xsd:integer}`; the policy engine reads both forms as one value). A Catalog's `dataset` has at
least one item (`catalog/catalog-schema.json`), so an empty catalog has no `dataset` at all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from functools import partial
from typing import Any

from catalog.cache import RenderCache
from catalog.model import Catalog, DataService, Dataset
from catalog.vocab import ODRL, XSD

DSP_CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"


def _service(svc: DataService) -> dict[str, Any]:
    return {"@id": svc.iri, "@type": "DataService", "endpointURL": svc.endpoint_url}


_RIGHT_OPERAND = frozenset({"rightOperand", "odrl:rightOperand", str(ODRL.rightOperand)})
_BOOLEAN, _INTEGER, _DECIMAL = str(XSD.boolean), str(XSD.integer), str(XSD.decimal)


def _typed(value: Any) -> Any:
    """A JSON number or boolean (bare or an untyped `@value`) as an xsd typed literal."""
    if isinstance(value, dict) and set(value) == {"@value"}:
        native = value["@value"]
        value = native if isinstance(native, int | float) else value
    if isinstance(value, bool):
        return {"@value": "true" if value else "false", "@type": _BOOLEAN}
    if isinstance(value, int):
        return {"@value": str(value), "@type": _INTEGER}
    if isinstance(value, float):
        # repr is the shortest text that reads back as this float; fixed-point for xsd:decimal.
        return {"@value": format(Decimal(repr(value)), "f"), "@type": _DECIMAL}
    return value


def with_typed_operands(node: Any) -> Any:
    """A copy of an ODRL policy (or any JSON) whose number and boolean right operands are
    typed literals, as the DSP schema wants them; everything else as it was."""
    if isinstance(node, list):
        return [with_typed_operands(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _RIGHT_OPERAND:
            out[key] = [_typed(v) for v in value] if isinstance(value, list) else _typed(value)
        else:
            out[key] = with_typed_operands(value)
    return out


def _offer(policy: dict[str, Any]) -> dict[str, Any]:
    return {k: with_typed_operands(v) for k, v in policy.items() if k != "@context"}


def dsp_dataset(ds: Dataset, *, with_context: bool = False) -> dict[str, Any]:
    """One dataset as DSP `Dataset` (also the body of `GET .../catalog/datasets/{id}`)."""
    out: dict[str, Any] = {"@context": [DSP_CONTEXT]} if with_context else {}
    out |= {
        "@id": ds.identifier,
        "@type": "Dataset",
        "dct:title": ds.title,
        "dct:description": ds.description,
        **({"dct:modified": ds.modified.isoformat()} if ds.modified else {}),
        "hasPolicy": [_offer(p) for p in ds.policies],
        "distribution": [
            {
                "@type": "Distribution",
                "format": d.dsp_format,
                **({"accessService": _service(d.access_service)} if d.access_service else {}),
            }
            for d in ds.distributions
        ],
    }
    return out


def dsp_catalog(
    catalog: Catalog, datasets: Sequence[Dataset], *, participant_id: str
) -> dict[str, Any]:
    """A DSP `Catalog` holding `datasets` (already filtered and paged by the caller)."""
    body: dict[str, Any] = {
        "@context": [DSP_CONTEXT],
        "@id": catalog.iri,
        "@type": "Catalog",
        "participantId": participant_id,
    }
    if datasets:
        body["dataset"] = [dsp_dataset(d) for d in datasets]
    if catalog.service:
        body["service"] = [_service(catalog.service)]
    return body


def _offer_ids(ds: Dataset) -> str:
    """Part of the cache key: the fragment depends on which offers (per caller) it holds."""
    return "|".join(str(p.get("@id", "")) for p in ds.policies)


def _fragment(ds: Dataset) -> bytes:
    return json.dumps(dsp_dataset(ds), separators=(",", ":")).encode()


def dsp_catalog_bytes(
    catalog: Catalog,
    datasets: Sequence[Dataset],
    *,
    participant_id: str,
    cache: RenderCache,
) -> bytes:
    """`dsp_catalog` as UTF-8 JSON, reusing each dataset's cached JSON fragment."""
    head = dsp_catalog(catalog, [], participant_id=participant_id)
    if not datasets:
        return json.dumps(head, separators=(",", ":")).encode()
    fragments = [
        cache.get_or_render(
            (d.iri, d.modified, "application/dsp+json;" + _offer_ids(d)),
            partial(_fragment, d),
        )
        for d in datasets
    ]
    prefix = json.dumps(head, separators=(",", ":")).encode()[:-1]
    return prefix + b',"dataset":[' + b",".join(fragments) + b"]}"
