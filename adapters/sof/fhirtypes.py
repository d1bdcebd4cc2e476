"""What the runner knows about FHIR R4 types without loading a model (which would be slow).

Choice elements (``value[x]``) are stored in JSON under ``value`` + the type name
(``valueQuantity``), so ``value`` and ``value.ofType(Quantity)`` must know the suffixes. The
choice names were extracted from ``fhir.resources.R4B`` (fields with ``one_of_many``).
"""

from __future__ import annotations

import re
from typing import Any

CHOICE_NAMES = frozenset(
    """abatement additive age allowed amount answer asNeeded author born bounds characteristic
    chargeItem citeAs code collected concentration content created date deceased defaultValue
    definition detail diagnosis dose doseNumber due duration effective entity event example
    fastingStatus fixed identified indication item legallyBinding location manufacturer maxValue
    medication minValue minimumVolume module multipleBirth name occurred occurrence offset onset
    participantEffective pattern performed period presentation probability procedure product
    quantity rate reported scheduled seriesDoses serviced source start statusReason strength
    studyEffective subject substance substanceDefinition target time timing topic used value
    when""".split()
)

PRIMITIVE_STRINGS = frozenset(
    "string code id uri url canonical oid uuid markdown base64Binary xhtml".split()
)
DATE_TIME_TYPES = frozenset({"date", "dateTime", "instant", "time"})
INTEGER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt", "integer64"})
PRIMITIVES = PRIMITIVE_STRINGS | DATE_TIME_TYPES | INTEGER_TYPES | {"boolean", "decimal"}

COMPLEX_TYPES = frozenset(
    """Address Age Annotation Attachment CodeableConcept CodeableReference Coding ContactDetail
    ContactPoint Contributor Count DataRequirement Distance Dosage Duration Expression HumanName
    Identifier Meta Money ParameterDefinition Period Quantity Range Ratio RatioRange Reference
    RelatedArtifact SampledData Signature Timing TriggerDefinition UsageContext""".split()
)

# JSON suffix -> FHIR type name, e.g. "DateTime" -> "dateTime", "Quantity" -> "Quantity".
SUFFIX_TO_TYPE = {t[0].upper() + t[1:]: t for t in PRIMITIVES | COMPLEX_TYPES}

DATE_RE = re.compile(r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$")
DATETIME_RE = re.compile(r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?T")
_REFERENCE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
TIME_RE = re.compile(r"^[0-9]{2}(:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?$")


def choice_key(name: str, type_name: str) -> str:
    """JSON key of choice element ``name`` holding a ``type_name``: value + Quantity."""
    return name + type_name[0].upper() + type_name[1:]


def choice_values(item: dict[str, Any], name: str) -> Any:
    """The value of choice element ``name`` (``value[x]``) in ``item``, or None."""
    for key, val in item.items():
        if key.startswith(name) and key[len(name) :] in SUFFIX_TO_TYPE:
            return val
    return None


def is_type(item: Any, type_name: str) -> bool:
    """Runtime type test for ``ofType``/``is``/``as`` where the static type is unknown.

    Primitives are told apart by their JSON type (and date/time strings by their shape);
    resources by ``resourceType``. Complex data types cannot be told apart from JSON alone, so a
    complex type name matches any non-resource object: paths reaching ``ofType`` through a
    choice element (``value.ofType(Quantity)``) are resolved exactly at compile time instead.
    """
    if type_name == "boolean":
        return item is True or item is False
    if type_name in INTEGER_TYPES:
        return type(item) is int
    if type_name == "decimal":
        return type(item) is float or type(item) is int
    if isinstance(item, str):
        if type_name in ("date", "dateTime", "instant"):
            return bool(DATE_RE.match(item) if type_name == "date" else DATETIME_RE.match(item))
        if type_name == "time":
            return bool(TIME_RE.match(item))
        return type_name in PRIMITIVE_STRINGS
    if isinstance(item, dict):
        resource_type = item.get("resourceType")
        if type_name in ("Resource", "DomainResource"):
            return resource_type is not None
        if resource_type is not None:
            return bool(resource_type == type_name)
        return type_name in COMPLEX_TYPES or type_name in ("Element", "BackboneElement")
    return False


def reference_key(item: Any, wanted: str | None) -> Any:
    if type(item) is not dict:
        return None
    ref = item.get("reference")
    if not isinstance(ref, str):
        return None
    kind, slash, ident = ref.partition("/")
    if slash and kind.isalpha() and kind[:1].isupper() and 0 < len(ident) <= 64:
        if ident.isascii() and ident.replace("-", "").replace(".", "").isalnum():
            return ident if wanted is None or kind == wanted else None  # Type/id, the usual
    match = _REFERENCE.search(ref)
    if match is None or (wanted is not None and match.group(1) != wanted):
        return None
    return match.group(2)
