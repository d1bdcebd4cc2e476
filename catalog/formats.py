"""What a distribution delivers: the one definition of output types and DSP transfer formats.

Every part reads it: the catalog (distributions), the policy engine (the ``outputType``
operand), the dataset store and the management API (a dataset's formats), transfer start and
the data plane (which fulfilment serves a transfer).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class OutputType(StrEnum):
    """What a distribution delivers (phems profile term ``outputType``)."""

    AGGREGATE = "aggregate"
    SYNTHETIC = "synthetic"
    ANONYMIZED = "anonymized"


class Format(StrEnum):
    """A DSP transfer format (``dct:format`` of a distribution, ``format`` of a transfer)."""

    AGGREGATE = "FHIR-Aggregate-PULL"
    SYNTHETIC = "FHIR-Synthetic-PULL"
    ANONYMIZED = "FHIR-Anonymized-PULL"

    @property
    def output_type(self) -> OutputType:
        return OutputType[self.name]


DSP_FORMATS: Mapping[OutputType, Format] = MappingProxyType({f.output_type: f for f in Format})
FORMATS: tuple[str, ...] = tuple(f.value for f in Format)


def output_type_of(fmt: str | None) -> OutputType | None:
    """The output type a transfer format delivers; None for a format we do not know."""
    try:
        return Format(fmt or "").output_type
    except ValueError:
        return None
