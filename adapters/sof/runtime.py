"""The shapes compiled FHIRPath shares: collections, the evaluation environment, compiled
expressions and the compile-time scope."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Coll = list[Any]


class Env:
    """What an expression sees besides its focus: the resource and ``%rowIndex``."""

    __slots__ = ("resource", "row_index")

    def __init__(self, resource: dict[str, Any], row_index: int = 0) -> None:
        self.resource = resource
        self.row_index = row_index


Fn = Callable[[Coll, Env], Coll]


@dataclass(frozen=True, slots=True)
class Compiled:
    fn: Fn
    type_name: str | None  # the FHIR type when known statically (literals, ofType, constants)


@dataclass
class Scope:
    """Compile-time environment: the view's constants (name -> (values, FHIR type))."""

    constants: dict[str, tuple[Coll, str]] = field(default_factory=dict)
