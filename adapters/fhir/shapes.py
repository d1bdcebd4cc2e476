"""What the REST adapter accepts from a FHIR server's JSON, checked before it is used.

A searchset ``Bundle`` (R4 §3.1.1 search, §2.36 Bundle): ``total`` a non-negative integer,
``link`` an array of objects with string ``relation`` and ``url``, ``entry`` an array of objects
whose ``search`` is an object with ``mode`` ``match``, ``include`` or ``outcome`` and whose
``resource`` is an object with a string ``resourceType`` and, for matches, a string ``id``.
A match must be of the type searched for. An entry without ``search.mode`` is a match, an
``OperationOutcome`` or (when the search asked for ``_include``/``_revinclude``) an include.
An ``OperationOutcome``'s ``issue`` is an array of objects; an ``error`` or ``fatal`` issue
fails the search. A ``CapabilityStatement``'s ``rest``, ``rest[].resource`` and
``resource[].interaction`` are arrays of objects.

Anything else is the server's fault: ``FhirSourceError`` (502 through the connector) naming the
request, the element and what was wrong, never an ``AttributeError`` on the way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from connector.errors import FhirSourceError
from connector.ports import FhirResource

RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
MODES = ("match", "include", "outcome")


@dataclass(frozen=True)
class SearchPage:
    """One checked page of a search: its matches in order, ``Bundle.total`` and the next link."""

    total: int | None
    matches: list[FhirResource]
    next_url: str | None


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def malformed(what: str, thing: str, problem: str, base_url: str) -> FhirSourceError:
    return FhirSourceError(
        f"{what}: the server answered a malformed {thing}: {problem}", url=base_url
    )


def _array(value: Any, path: str, what: str, thing: str, base_url: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise malformed(what, thing, f"{path} is {_kind(value)}, not an array", base_url)
    return value


def _object(value: Any, path: str, what: str, thing: str, base_url: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise malformed(what, thing, f"{path} is {_kind(value)}, not an object", base_url)
    return value


def bundle(doc: Any, what: str, base_url: str) -> dict[str, Any]:
    """``doc`` if it is a Bundle; its ``total``, ``link`` and ``entry`` are checked by
    :func:`search_page` / :func:`total`."""
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        found = doc.get("resourceType") if isinstance(doc, dict) else None
        also = f" but {found}" if isinstance(found, str) else f" but {_kind(doc)}"
        raise FhirSourceError(f"{what}: the server answered no Bundle{also}", url=base_url)
    return doc


def total(doc: dict[str, Any], what: str, base_url: str) -> int | None:
    value = doc.get("total")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise malformed(what, "Bundle", f"total is {value!r}, not a count", base_url)
    return value


def next_link(doc: dict[str, Any], what: str, base_url: str) -> str | None:
    found: str | None = None
    for n, item in enumerate(_array(doc.get("link"), "link", what, "Bundle", base_url)):
        link = _object(item, f"link[{n}]", what, "Bundle", base_url)
        relation, url = link.get("relation"), link.get("url")
        if not isinstance(relation, str) or not isinstance(url, str):
            raise malformed(what, "Bundle", f"link[{n}] needs a string relation and url", base_url)
        if relation == "next" and url:
            if found is not None and found != url:
                raise malformed(what, "Bundle", "two different next links", base_url)
            found = url
    return found


def search_page(
    doc: Any, resource_type: str, what: str, base_url: str, *, includes: bool = False
) -> SearchPage:
    """Check one searchset page; raise on a malformed one or on an error ``OperationOutcome``.

    ``includes``: the search asked for ``_include``/``_revinclude``, so an entry of another
    type without ``search.mode`` is an include rather than a wrong answer.
    """
    page = bundle(doc, what, base_url)
    matches: list[FhirResource] = []
    for n, item in enumerate(_array(page.get("entry"), "entry", what, "Bundle", base_url)):
        entry = _object(item, f"entry[{n}]", what, "Bundle", base_url)
        resource = entry.get("resource")
        if resource is None:
            raise malformed(what, "Bundle", f"entry[{n}] has no resource", base_url)
        resource = _object(resource, f"entry[{n}].resource", what, "Bundle", base_url)
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str) or not RESOURCE_TYPE.match(rtype):
            raise malformed(what, "Bundle", f"entry[{n}].resource has no resourceType", base_url)
        mode = _mode(entry, n, what, base_url)
        if mode is None:
            if rtype == "OperationOutcome" and resource_type != "OperationOutcome":
                mode = "outcome"
            elif rtype != resource_type and includes:
                mode = "include"
            else:
                mode = "match"
        if mode == "outcome":
            raise_on_errors(resource, what, base_url)
        elif mode == "match":
            if rtype != resource_type:
                raise FhirSourceError(
                    f"{what}: the server answered a {rtype} resource to a search for "
                    f"{resource_type} (entry[{n}])",
                    url=base_url,
                )
            if not isinstance(resource.get("id"), str) or not resource["id"]:
                raise malformed(what, "Bundle", f"entry[{n}].resource has no id", base_url)
            matches.append(resource)
    return SearchPage(total(page, what, base_url), matches, next_link(page, what, base_url))


def _mode(entry: dict[str, Any], n: int, what: str, base_url: str) -> str | None:
    search = entry.get("search")
    if search is None:
        return None
    search = _object(search, f"entry[{n}].search", what, "Bundle", base_url)
    mode = search.get("mode")
    if mode is None:
        return None
    if mode not in MODES:
        raise malformed(
            what, "Bundle", f"entry[{n}].search.mode is {mode!r}, not one of {MODES}", base_url
        )
    return str(mode)


def raise_on_errors(outcome: Any, what: str, base_url: str) -> None:
    """Raise the first ``error``/``fatal`` issue of an OperationOutcome (its diagnostics)."""
    outcome = _object(outcome, "OperationOutcome", what, "OperationOutcome", base_url)
    issues = _array(outcome.get("issue"), "issue", what, "OperationOutcome", base_url)
    for n, item in enumerate(issues):
        issue = _object(item, f"issue[{n}]", what, "OperationOutcome", base_url)
        if issue.get("severity") in ("error", "fatal"):
            text = issue.get("diagnostics") or issue.get("code")
            raise FhirSourceError(f"{what}: {text}", url=base_url)


def newest(resource: FhirResource, what: str, base_url: str) -> str:
    """``meta.lastUpdated`` of a resource ("" when absent)."""
    meta = resource.get("meta")
    if meta is None:
        return ""
    meta = _object(meta, "meta", what, resource["resourceType"], base_url)
    last = meta.get("lastUpdated", "")
    if not isinstance(last, str):
        problem = "meta.lastUpdated is not a string"
        raise malformed(what, resource["resourceType"], problem, base_url)
    return last


def searchable_types(capability: Any, base_url: str) -> list[str]:
    """Resource types a CapabilityStatement declares ``search-type`` for (server mode)."""
    what, thing = "GET metadata", "CapabilityStatement"
    if not isinstance(capability, dict) or capability.get("resourceType") != thing:
        raise FhirSourceError(f"{what}: the server answered no CapabilityStatement", url=base_url)
    types: set[str] = set()
    for r, item in enumerate(_array(capability.get("rest"), "rest", what, thing, base_url)):
        rest = _object(item, f"rest[{r}]", what, thing, base_url)
        if rest.get("mode", "server") != "server":
            continue
        resources = _array(rest.get("resource"), f"rest[{r}].resource", what, thing, base_url)
        for n, res_item in enumerate(resources):
            path = f"rest[{r}].resource[{n}]"
            resource = _object(res_item, path, what, thing, base_url)
            interactions = _array(
                resource.get("interaction"), f"{path}.interaction", what, thing, base_url
            )
            codes: set[Any] = set()
            for i, interaction in enumerate(interactions):
                code = _object(interaction, f"{path}.interaction[{i}]", what, thing, base_url)
                value = code.get("code")
                if isinstance(value, str):
                    codes.add(value)
            rtype = resource.get("type")
            if isinstance(rtype, str) and RESOURCE_TYPE.match(rtype) and "search-type" in codes:
                types.add(rtype)
    return sorted(types)
