"""View rows to a pandas DataFrame with nullable dtypes chosen from the columns' FHIR types.

Dates and times stay strings: FHIR allows partial dates (``2012-03``) that no pandas datetime
holds without inventing a day; callers convert with ``pd.to_datetime`` when they know better.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import pandas as pd

from adapters.sof.definition import Column
from adapters.sof.fhirtypes import DATE_TIME_TYPES, INTEGER_TYPES, PRIMITIVE_STRINGS


def dtype_for(column: Column) -> str:
    if column.collection or column.type is None:
        return "object"
    if column.type == "boolean":
        return "boolean"
    if column.type in INTEGER_TYPES:
        return "Int64"
    if column.type == "decimal":
        return "Float64"
    if column.type in PRIMITIVE_STRINGS or column.type in DATE_TIME_TYPES:
        return "string"
    return "object"


def _series(column: Column, values: list[Any]) -> pd.Series:
    dtype = dtype_for(column)
    try:
        return pd.Series(values, dtype=dtype, name=column.name)
    except (TypeError, ValueError):  # data that does not fit the declared type stays as is
        return pd.Series(values, dtype="object", name=column.name)


def build_frame(columns: list[Column], rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    # One pass per column: zip(*rows) over many rows is several times slower.
    by_column = [list(map(itemgetter(i), rows)) for i in range(len(columns))]
    return pd.DataFrame(
        {col.name: _series(col, values) for col, values in zip(columns, by_column, strict=True)}
    )
