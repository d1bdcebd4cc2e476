"""The shared 10-patient Bulk NDJSON fixture, read independently of the adapters under test."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from functools import cache
from typing import Any

from tests.conftest import SHARED

DATA_DIR = SHARED / "conformance" / "fhir" / "bulk-ndjson-10-patients"


@cache
def expected() -> dict[str, list[dict[str, Any]]]:
    """Resources per type, in file order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(DATA_DIR.glob("*.ndjson")):
        rtype = path.name.split(".")[0]
        if not rtype[0].isupper():
            continue
        out[rtype] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def ids(resources: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{r['resourceType']}/{r['id']}" for r in resources)


@cache
def _identifier_index() -> dict[str, str]:
    """``Type?identifier=system|value`` -> ``Type/id`` over the whole fixture."""
    index: dict[str, str] = {}
    for rtype, resources in expected().items():
        for r in resources:
            for ident in r.get("identifier", []):
                key = f"{rtype}?identifier={ident.get('system')}|{ident.get('value')}"
                index[key] = f"{rtype}/{r['id']}"
    return index


def normalise(resource: dict[str, Any]) -> dict[str, Any]:
    """What a server may legitimately change on storing: ``meta.versionId``/``lastUpdated``
    added, conditional references resolved to literal ones."""
    out = copy.deepcopy(resource)
    meta = out.get("meta", {})
    meta.pop("versionId", None)
    meta.pop("lastUpdated", None)
    if "meta" in out and not meta:
        del out["meta"]
    _resolve(out, _identifier_index())
    return out


def _resolve(node: Any, index: dict[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref in index:
            node["reference"] = index[ref]
        for value in node.values():
            _resolve(value, index)
    elif isinstance(node, list):
        for value in node:
            _resolve(value, index)


def by_key(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{r['resourceType']}/{r['id']}": normalise(r) for r in resources}


def patient_refs(resource: dict[str, Any]) -> set[str]:
    refs = set()
    for element in ("subject", "patient"):
        value = resource.get(element)
        if isinstance(value, dict) and str(value.get("reference", "")).startswith("Patient/"):
            refs.add(value["reference"])
    return refs


async def collect(iterator: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r async for r in iterator]


def keys(resources: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{r['resourceType']}/{r['id']}" for r in resources)
