"""What each left operand accepts: its operators and how its right operand is parsed.

One table, ``OPERANDS``. A right operand arrives as a JSON literal, ``{"@value": ...,
"@type": ...}`` or ``{"@id": ...}``; each parser turns it into the one Python value the
evaluator compares with, or raises ``PolicyDefinitionError`` saying what was expected.
A number or boolean may come as a plain JSON value or as a typed literal whose ``@value`` is
the lexical form (``{"@value": "10", "@type": "xsd:integer"}``, as we send them) or a native
JSON value; both parse to the same value, and a lexical form that does not fit its XSD
datatype is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from connector.errors import PolicyDefinitionError
from connector.policy.model import Scalar
from connector.policy.spatial import normalise_place
from connector.policy.vocab import PHEMS, XSD, LeftOperand, Operator, OutputType, expand_value

Prefixes = Mapping[str, str]


@dataclass(frozen=True)
class Raw:
    """A right-operand item with its JSON-LD wrapping removed."""

    value: object
    datatype: str | None = None
    is_iri: bool = False


def unwrap(item: object, prefixes: Prefixes) -> Raw:
    if isinstance(item, dict):
        if "@id" in item and isinstance(item["@id"], str):
            return Raw(expand_value(item["@id"], prefixes), is_iri=True)
        if "@value" in item:
            datatype = item.get("@type")
            if datatype is not None and not isinstance(datatype, str):
                raise PolicyDefinitionError(f"rightOperand @type must be a string: {item!r}")
            return Raw(item["@value"], expand_value(datatype, prefixes) if datatype else None)
        raise PolicyDefinitionError(f"rightOperand object needs @id or @value: {item!r}")
    if isinstance(item, list):
        raise PolicyDefinitionError(f"nested lists are not a right operand: {item!r}")
    return Raw(item)


def _text(raw: Raw, prefixes: Prefixes) -> str:
    if not isinstance(raw.value, str) or not raw.value.strip():
        raise PolicyDefinitionError(f"expected a non-empty string or IRI, got {raw.value!r}")
    return raw.value if raw.is_iri else expand_value(raw.value.strip(), prefixes)


def _place(raw: Raw, prefixes: Prefixes) -> str:
    return normalise_place(_text(raw, prefixes))


def _output_type(raw: Raw, prefixes: Prefixes) -> str:
    text = _text(raw, prefixes)
    token = text[len(PHEMS) :] if text.startswith(PHEMS) else text
    if token not in {t.value for t in OutputType}:
        allowed = ", ".join(t.value for t in OutputType)
        raise PolicyDefinitionError(f"outputType must be one of {allowed}, got {text!r}")
    return token


def parse_instant(text: str) -> date | datetime:
    """An xsd:date (``2027-12-31``) or xsd:dateTime; a naive dateTime is taken as UTC."""
    try:
        if "T" not in text:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PolicyDefinitionError(f"not an xsd:date or xsd:dateTime: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _instant(raw: Raw, prefixes: Prefixes) -> date | datetime:
    if not isinstance(raw.value, str):
        raise PolicyDefinitionError(f"dateTime needs an ISO 8601 string, got {raw.value!r}")
    if raw.datatype not in (None, XSD + "dateTime", XSD + "date", XSD + "dateTimeStamp"):
        raise PolicyDefinitionError(f"dateTime cannot have datatype {raw.datatype}")
    return parse_instant(raw.value.strip())


# XSD datatypes of numbers and booleans, by the lexical space of their primitive type. The
# integer types derived by range (xsd:int, xsd:positiveInteger ...) share xsd:integer's; the
# operand's own bounds check the value.
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_DOUBLE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?INF|NaN")
_BOOLEAN = re.compile(r"true|false|1|0")
_INTEGER_TYPES = (
    "integer",
    "nonPositiveInteger",
    "negativeInteger",
    "long",
    "int",
    "short",
    "byte",
    "nonNegativeInteger",
    "unsignedLong",
    "unsignedInt",
    "unsignedShort",
    "unsignedByte",
    "positiveInteger",
)
_LEXICAL: Mapping[str, re.Pattern[str]] = {
    **{XSD + name: _INTEGER for name in _INTEGER_TYPES},
    XSD + "decimal": _DECIMAL,
    XSD + "double": _DOUBLE,
    XSD + "float": _DOUBLE,
    XSD + "boolean": _BOOLEAN,
}


# Bounds for numbers read from policies, which may come from any peer: no count, cell size or
# budget comes near them, and without them a long digit string or a huge exponent costs a
# ValueError from int() (a 500) or a conversion that does not end.
MAX_NUMBER_TEXT = 64
MAX_INTEGER = 10**18


def _literal(raw: Raw) -> object:
    """The value of a number or boolean right operand: a typed literal's lexical form as
    ``int`` / ``Decimal`` / ``bool``; a plain JSON value (or an untyped string) unchanged."""
    datatype = raw.datatype
    if datatype is None or datatype == XSD + "string":
        return raw.value
    pattern = _LEXICAL.get(datatype)
    if pattern is None:
        raise PolicyDefinitionError(f"datatype {datatype} is not a number or boolean datatype")
    name = "xsd:" + datatype[len(XSD) :]
    value = raw.value
    if isinstance(value, str):
        text = value.strip()  # these datatypes collapse whitespace
        if len(text) > MAX_NUMBER_TEXT or not pattern.fullmatch(text):
            raise PolicyDefinitionError(f"{value!r} is not a lexical form of {name}")
        if pattern is _BOOLEAN:
            return text in ("true", "1")
        if pattern is _INTEGER:
            return int(text)
        number = Decimal(text)
        if number.is_finite() and number and not -40 < number.adjusted() < 40:
            # Arithmetic on 1E+999999999 overflows the decimal context (an exception, a 500).
            raise PolicyDefinitionError(f"{value!r} is out of range (1e-40 to 1e40)")
        return number
    if pattern is _BOOLEAN:
        fits = isinstance(value, bool)
    elif pattern is _INTEGER:
        fits = isinstance(value, int) and not isinstance(value, bool)
    else:
        fits = isinstance(value, int | float) and not isinstance(value, bool)
    if not fits:
        raise PolicyDefinitionError(f"{value!r} is not a value of {name}")
    return value


def _integer(raw: Raw, minimum: int) -> int:
    value = _literal(raw)
    if isinstance(value, str) and len(value) > MAX_NUMBER_TEXT:
        raise PolicyDefinitionError(f"a number of more than {MAX_NUMBER_TEXT} characters")
    if isinstance(value, str) and value.strip().lstrip("+").isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < MAX_INTEGER:
        value = int(value)
    if (
        isinstance(value, Decimal)
        and value.is_finite()
        and abs(value) < MAX_INTEGER  # int() of 1E+999999999 would not end
        and value == value.to_integral_value()
    ):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise PolicyDefinitionError(f"expected an integer >= {minimum}, got {raw.value!r}")
    if value >= MAX_INTEGER:
        raise PolicyDefinitionError(f"expected an integer below {MAX_INTEGER}, got {value}")
    return value


def _decimal(raw: Raw, prefixes: Prefixes) -> Decimal:
    value = _literal(raw)
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise PolicyDefinitionError(f"expected a positive number, got {raw.value!r}")
    if isinstance(value, str) and len(value) > MAX_NUMBER_TEXT:
        raise PolicyDefinitionError(f"a number of more than {MAX_NUMBER_TEXT} characters")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise PolicyDefinitionError(f"expected a positive number, got {raw.value!r}") from exc
    if not number.is_finite() or number <= 0 or not -40 < number.adjusted() < 40:
        raise PolicyDefinitionError(
            f"expected a positive number between 1e-40 and 1e40, got {raw.value!r}"
        )
    return number.normalize()


def _true(raw: Raw, prefixes: Prefixes) -> bool:
    value = _literal(raw)
    if value is True or (isinstance(value, str) and value.strip() == "true"):
        return True
    raise PolicyDefinitionError(f"expected true (the credential is required), got {raw.value!r}")


@dataclass(frozen=True)
class OperandSpec:
    operators: frozenset[Operator]
    parse: Callable[[Raw, Prefixes], Scalar]


_O = Operator
_SETS = frozenset({_O.IS_ANY_OF, _O.IS_NONE_OF})
_ORDERED = frozenset({_O.EQ, _O.NEQ, _O.LT, _O.LTEQ, _O.GT, _O.GTEQ})

OPERANDS: Mapping[LeftOperand, OperandSpec] = {
    # isA on purpose is equality: the profile ships no purpose taxonomy.
    LeftOperand.PURPOSE: OperandSpec(frozenset({_O.EQ, _O.NEQ, _O.IS_A}) | _SETS, _text),
    LeftOperand.DATE_TIME: OperandSpec(_ORDERED, _instant),
    # count: the use being attempted is number uses_so_far + 1; only upper bounds make sense.
    LeftOperand.COUNT: OperandSpec(frozenset({_O.LT, _O.LTEQ}), lambda r, p: _integer(r, 0)),
    LeftOperand.SPATIAL: OperandSpec(frozenset({_O.EQ, _O.NEQ, _O.IS_PART_OF}) | _SETS, _place),
    LeftOperand.RECIPIENT: OperandSpec(frozenset({_O.EQ, _O.NEQ}) | _SETS, _text),
    LeftOperand.OUTPUT_TYPE: OperandSpec(frozenset({_O.EQ, _O.NEQ}) | _SETS, _output_type),
    # minCellSize is a floor and epsilon a budget whatever the operator's spelling: eq 10
    # reads "the minimum cell size is 10"; gt / lt make the bound strict.
    LeftOperand.MIN_CELL_SIZE: OperandSpec(
        frozenset({_O.EQ, _O.GTEQ, _O.GT}), lambda r, p: _integer(r, 1)
    ),
    LeftOperand.EPSILON: OperandSpec(frozenset({_O.EQ, _O.LTEQ, _O.LT}), _decimal),
    # patients: an upper bound on the patient records one call delivers.
    LeftOperand.PATIENTS: OperandSpec(frozenset({_O.LT, _O.LTEQ}), lambda r, p: _integer(r, 0)),
    LeftOperand.DATA_PERMIT: OperandSpec(frozenset({_O.EQ}), _true),
    LeftOperand.MEMBERSHIP: OperandSpec(frozenset({_O.EQ}), _true),
}
