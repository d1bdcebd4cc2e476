"""The ODRL vocabulary this profile understands, and IRI expansion / compaction.

Policies arrive as compact JSON-LD under the DSP 2025-1 context, which maps the ODRL terms
(``permission``, ``use``, ``purpose``, ``eq`` ...) into ``http://www.w3.org/ns/odrl/2/``. The
profile terms live under ``https://w3id.org/phems/ns/`` and are written as full IRIs (or with
a ``phems:`` prefix). Everything here compares *expanded* IRIs, so ``purpose``,
``odrl:purpose`` and ``http://www.w3.org/ns/odrl/2/purpose`` are one term.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from catalog.formats import OutputType as OutputType

ODRL = "http://www.w3.org/ns/odrl/2/"
PHEMS = "https://w3id.org/phems/ns/"
DSPACE = "https://w3id.org/dspace/2025/1/"
XSD = "http://www.w3.org/2001/XMLSchema#"
DSP_CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"

PREFIXES: Mapping[str, str] = {
    "odrl": ODRL,
    "phems": PHEMS,
    "dspace": DSPACE,
    "xsd": XSD,
    "dct": "http://purl.org/dc/terms/",
    "dcat": "http://www.w3.org/ns/dcat#",
}

SIGNATURE = PHEMS + "signature"
# Policy-level profile property: the provider's data protection officer approves each
# negotiation in the management API before AGREED.
APPROVAL_REQUIRED = PHEMS + "approvalRequired"


class LeftOperand(StrEnum):
    PURPOSE = ODRL + "purpose"
    DATE_TIME = ODRL + "dateTime"
    COUNT = ODRL + "count"
    SPATIAL = ODRL + "spatial"
    RECIPIENT = ODRL + "recipient"
    OUTPUT_TYPE = PHEMS + "outputType"
    MIN_CELL_SIZE = PHEMS + "minCellSize"
    EPSILON = PHEMS + "epsilon"
    # The number of patient records one call delivers (synthetic or extracted patients).
    PATIENTS = PHEMS + "patients"
    DATA_PERMIT = PHEMS + "dataPermit"
    MEMBERSHIP = PHEMS + "membership"


class Operator(StrEnum):
    EQ = ODRL + "eq"
    NEQ = ODRL + "neq"
    LT = ODRL + "lt"
    LTEQ = ODRL + "lteq"
    GT = ODRL + "gt"
    GTEQ = ODRL + "gteq"
    IS_A = ODRL + "isA"
    IS_ANY_OF = ODRL + "isAnyOf"
    IS_NONE_OF = ODRL + "isNoneOf"
    IS_PART_OF = ODRL + "isPartOf"
    HAS_PART = ODRL + "hasPart"
    IS_ALL_OF = ODRL + "isAllOf"


SET_OPERATORS = frozenset({Operator.IS_ANY_OF, Operator.IS_NONE_OF, Operator.IS_ALL_OF})


class Logic(StrEnum):
    AND = ODRL + "and"
    OR = ODRL + "or"
    XONE = ODRL + "xone"
    AND_SEQUENCE = ODRL + "andSequence"


class PolicyType(StrEnum):
    SET = ODRL + "Set"
    OFFER = ODRL + "Offer"
    AGREEMENT = ODRL + "Agreement"


class RuleKind(StrEnum):
    PERMISSION = ODRL + "permission"
    PROHIBITION = ODRL + "prohibition"
    OBLIGATION = ODRL + "obligation"


# ODRL 2.2 common-vocabulary actions. Only ``use`` and ``read`` describe what our data plane
# does; the others are accepted because an offer may forbid or require them of the consumer.
ACTIONS = frozenset(
    ODRL + name
    for name in (
        "use",
        "read",
        "transfer",
        "reproduce",
        "distribute",
        "derive",
        "aggregate",
        "anonymize",
        "delete",
        "inform",
        "attribute",
        "compensate",
        "commercialize",
        "display",
        "modify",
        "present",
        "share",
        "index",
        "archive",
        "execute",
        "include",
        "obtainConsent",
        "reviewPolicy",
    )
)
ENFORCED_ACTIONS = frozenset({ODRL + "use", ODRL + "read"})


def expand(term: str, prefixes: Mapping[str, str] = PREFIXES) -> str:
    """Expand a vocabulary position value (``@type`` / ``action`` / ``leftOperand`` ...).

    A bare term means the ODRL term (the DSP context imports the ODRL vocabulary); a compact
    IRI with a known prefix is expanded; anything else with a scheme is already an IRI.
    """
    if ":" in term:
        prefix, _, rest = term.partition(":")
        if prefix in prefixes and not rest.startswith("//"):
            return prefixes[prefix] + rest
        return term
    return ODRL + term


def expand_value(value: str, prefixes: Mapping[str, str] = PREFIXES) -> str:
    """Expand a compact IRI in a value position; plain strings stay as they are."""
    if ":" in value:
        prefix, _, rest = value.partition(":")
        if prefix in prefixes and not rest.startswith("//"):
            return prefixes[prefix] + rest
    return value


def compact(iri: str) -> str:
    """Compact form for output: ODRL terms bare (as the DSP context defines them), profile
    terms as full IRIs (the DSP context has no ``phems`` prefix)."""
    if iri.startswith(ODRL):
        return str(iri[len(ODRL) :])
    return str(iri)  # a plain str, not the StrEnum member, for JSON encoders


def local_name(iri: str) -> str:
    for sep in ("#", "/", ":"):
        if sep in iri:
            tail = iri.rsplit(sep, 1)[1]
            if tail:
                return tail
    return iri
