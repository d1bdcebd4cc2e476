"""The shape of FHIR R4 elements (list or single, primitive or complex), read from the models of
``fhir.resources.R4B`` (imported on first use), for compiling views to SQL.

``element(owner, key)`` answers for a JSON key of a resource, data type or backbone element:
whether it repeats, its FHIR type, and for a complex type the model of its own elements. Choice
elements are looked up by their typed key (``valueQuantity``), as they appear in JSON.
"""

from __future__ import annotations

import functools
import types
import typing
from dataclasses import dataclass
from typing import Any

INTEGER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt", "integer64"})


@dataclass(frozen=True)
class Element:
    many: bool
    type_name: str  # FHIR type: "code", "dateTime", "decimal", "boolean", "CodeableConcept", ...
    model: Any  # the fhir.resources model of a complex type (its elements), None for a primitive

    @property
    def kind(self) -> str:
        """How the value is held in JSON: complex, boolean, integer, decimal or string."""
        if self.model is not None:
            return "complex"
        if self.type_name == "boolean":
            return "boolean"
        if self.type_name in INTEGER_TYPES:
            return "integer"
        return "decimal" if self.type_name == "decimal" else "string"


@functools.cache
def resource_model(resource_type: str) -> Any:
    """The model of a resource type, or None if R4 has no such resource."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError, AttributeError):
        return None
    if getattr(model, "__resource_type__", None) != resource_type or not _is_resource(model):
        return None
    return model


@functools.cache
def _fields(model: Any) -> dict[str, Any]:
    return {f.alias or name: f for name, f in model.model_fields.items()}


@functools.cache
def element(model: Any, key: str) -> Element | None:
    """``key`` of ``model`` (a JSON key), or None if the model has no such element or its shape
    is not one the compiler reads (a resource, an extension-only ``_key``, a union)."""
    if key.startswith("_"):
        return None
    field = _fields(model).get(key)
    if field is None:
        return None
    annotation = _strip_optional(field.annotation)
    many = typing.get_origin(annotation) in (list, typing.List)  # noqa: UP006
    if many:  # items may be null: primitives whose only content is an extension
        (annotation,) = typing.get_args(annotation)
        annotation = _strip_optional(annotation)
    return _element(annotation, many)


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else None
    return annotation


def _element(annotation: Any, many: bool) -> Element | None:
    if annotation is bool:
        return Element(many, "boolean", None)
    metadata = getattr(annotation, "__metadata__", None)
    if metadata:  # Annotated[str, Code()]: a primitive, named by its marker class
        name = type(metadata[0]).__name__
        return Element(many, name[:1].lower() + name[1:], None)
    klass = getattr(annotation, "get_model_klass", None)
    if klass is None:
        return None
    model = klass()
    if getattr(model, "__resource_type__", None) in ("Resource", "DomainResource"):
        return None
    if not hasattr(model, "model_fields") or _is_resource(model):
        return None
    return Element(many, model.__name__, model)


def _is_resource(model: Any) -> bool:
    return any(base.__name__ in ("Resource", "DomainResource") for base in model.__mro__[1:])
