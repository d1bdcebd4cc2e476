"""Minimal structural checks of the ODRL policies carried by DSP messages.

DSP 2025-1 (Contract Negotiation Protocol, Message Types): every Offer and Agreement has an
``@id``; an Offer inside a message has a ``target`` (one in a Catalog has none); an Agreement
has ``target``, ``assigner``, ``assignee`` and an XSD dateTime ``timestamp``. Everything else
(rules, constraints, operands) is the policy engine's business (``connector.policy``).

Policies stay the dicts the peer sent. These readers accept the compact (``target``), prefixed
(``odrl:target``) and expanded (``http://www.w3.org/ns/odrl/2/target``) spellings and the
``{"@id": ...}`` / list-of-one value forms, without rewriting the policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connector.dsp.context import DSPACE, ODRL, compact_iri


def policy_value(policy: Mapping[str, Any], term: str) -> Any:
    """The value of ODRL/DSP ``term`` in ``policy`` under any spelling, unwrapped; or None."""
    if term.startswith("@"):
        keys: tuple[str, ...] = (term,)
    else:
        keys = (term, f"odrl:{term}", ODRL + term, f"dspace:{term}", DSPACE + term)
    for key in keys:
        if key in policy:
            value = policy[key]
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            if isinstance(value, Mapping) and len(value) == 1:
                value = value.get("@id", value.get("@value", value))
            return value
    return None


def policy_id(policy: Mapping[str, Any]) -> str | None:
    value = policy_value(policy, "@id")
    return value if isinstance(value, str) and value else None


def policy_type(policy: Mapping[str, Any]) -> str | None:
    """``Offer`` / ``Agreement`` / ... in compact form, whatever spelling was sent."""
    value = policy_value(policy, "@type")
    return compact_iri(value) if isinstance(value, str) else None


def policy_target(policy: Mapping[str, Any]) -> str | None:
    value = policy_value(policy, "target")
    return value if isinstance(value, str) and value else None


def _common_problem(policy: Any, what: str, expected_type: str) -> str | None:
    if not isinstance(policy, Mapping):
        return f"{what} must be a JSON object"
    if policy_id(policy) is None:
        return f"{what} must have a non-empty string @id"
    found = policy_type(policy)
    if found != expected_type:
        return f"{what} must have @type {expected_type}, got {found!r}"
    return None


def offer_problem(policy: Any, *, require_target: bool) -> str | None:
    """Why ``policy`` is not an acceptable Offer, or None."""
    problem = _common_problem(policy, "offer", "Offer")
    if problem is None and require_target and policy_target(policy) is None:
        problem = "offer must have a target (the dataset id)"
    return problem


def agreement_problem(policy: Any) -> str | None:
    """Why ``policy`` is not an acceptable Agreement, or None."""
    problem = _common_problem(policy, "agreement", "Agreement")
    if problem is not None:
        return problem
    for term in ("target", "assigner", "assignee"):
        value = policy_value(policy, term)
        if not isinstance(value, str) or not value:
            return f"agreement must have a non-empty {term}"
    timestamp = policy_value(policy, "timestamp")
    if not isinstance(timestamp, str) or not _is_xsd_datetime(timestamp):
        return f"agreement timestamp must be an XSD dateTime, got {timestamp!r}"
    return None


def _is_xsd_datetime(value: str) -> bool:
    if "T" not in value:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True
