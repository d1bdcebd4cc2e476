"""Rules of the DSP 2025-1 JSON schemas that our bodies broke, written out (not copied).

``negotiation/contract-schema.json``: ``RightOperand`` is ``oneOf [string, object, array]``
(the array's items are not constrained; we hold them to string or object too, and a typed
literal to its lexical form as a string). ``catalog/catalog-schema.json``: a Catalog's
``dataset`` is an array with ``minItems: 1``.
"""

from __future__ import annotations

from typing import Any

RIGHT_OPERAND = ("rightOperand", "odrl:rightOperand", "http://www.w3.org/ns/odrl/2/rightOperand")


def _operand_problem(item: Any) -> str | None:
    if isinstance(item, str):
        return None
    if not isinstance(item, dict):
        return f"{item!r} is neither a string nor an object"
    if "@value" in item and not isinstance(item["@value"], str):
        return f"typed literal {item!r} has no lexical form (string @value)"
    return None


def wire_problems(body: Any, where: str = "$") -> list[str]:
    """Where ``body`` (a DSP message, Catalog, Dataset or policy) breaks those rules."""
    problems: list[str] = []
    if isinstance(body, list):
        for i, item in enumerate(body):
            problems += wire_problems(item, f"{where}[{i}]")
        return problems
    if not isinstance(body, dict):
        return problems
    if body.get("@type") == "Catalog" and "dataset" in body:
        if not isinstance(body["dataset"], list) or not body["dataset"]:
            problems.append(f"{where}.dataset must be a non-empty array or absent")
    for key, value in body.items():
        if key in RIGHT_OPERAND:
            for item in value if isinstance(value, list) else [value]:
                problem = _operand_problem(item)
                if problem:
                    problems.append(f"{where}.{key}: {problem}")
        problems += wire_problems(value, f"{where}.{key}")
    return problems
