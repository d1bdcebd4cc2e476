"""Interim: build a dataset's ``FlatViews`` (Parquet) from FHIR resources, for the synthetic CLI.

The seam's view cache (scope, opt-outs, one cache per data version) replaces this module: the
coordinator swaps :func:`flat_views_from_source` for the cache's lookup. Until then the
``phems-connector synthetic`` commands and the tests build the tables here, with the types
``connector.fulfilment.views`` documents: ``dateTime`` columns as TIMESTAMP (UTC, no zone;
partial dates take the start of their period), ``date`` as DATE, ``decimal`` as DOUBLE.

It runs the views with ``adapters.sof``, so it is, like ``connector.composition``, a place
where ``connector`` meets ``adapters`` (listed next to it in ``tests/test_layers.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters.fhir_factory import build_fhir_source
from adapters.sof import compile_view
from connector.fulfilment.views import CODING_VIEWS, VIEWS
from connector.ports import FhirResource, FhirSource, FlatViews
from connector.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

_TIMESTAMP = {"dateTime", "instant"}


async def flat_views_from_source(
    source: FhirSource, directory: Path, *, dataset_id: str
) -> FlatViews:
    """The dataset's flattened tables from the whole FHIR source (no scope, no opt-outs: the
    seam adds those), written under ``directory/<version>`` unless already there."""
    version = hashlib.sha256(f"{dataset_id}\0{await source.version()}".encode()).hexdigest()[:16]
    if (directory / version / "patient.parquet").exists():
        return _existing(directory / version, dataset_id=dataset_id, version=version)
    types = {v["resource"] for v in (*VIEWS.values(), *CODING_VIEWS.values())}
    resources: dict[str, list[FhirResource]] = {}
    for rtype in sorted(types):
        resources[rtype] = [r async for r in source.search(rtype)]
    return write_flat_views(resources, directory / version, dataset_id=dataset_id, version=version)


def _existing(directory: Path, *, dataset_id: str, version: str) -> FlatViews:
    import duckdb

    tables = {p.stem: p for p in sorted(directory.glob("*.parquet"))}
    patients = (
        duckdb.connect()
        .execute("SELECT count(*) FROM read_parquet(?)", [str(tables["patient"])])
        .fetchone()
    )
    return FlatViews(dataset_id, version, directory, tables, int(patients[0]) if patients else 0)


def write_flat_views(
    resources: Mapping[str, Iterable[FhirResource]],
    directory: Path,
    *,
    dataset_id: str,
    version: str,
) -> FlatViews:
    """Run every view over ``resources`` (by resource type) and write one Parquet file per
    table into ``directory``."""
    import duckdb

    directory.mkdir(parents=True, exist_ok=True)
    by_type = {t: list(rs) for t, rs in resources.items()}
    tables: dict[str, Path] = {}
    frames = {name: _frame(view, by_type.get(view["resource"], [])) for name, view in VIEWS.items()}
    coding = [_frame(view, by_type.get(view["resource"], [])) for view in CODING_VIEWS.values()]
    import pandas as pd

    frames["coding"] = (pd.concat([f for f, _ in coding], ignore_index=True), coding[0][1])
    con = duckdb.connect()
    try:
        for name, (frame, sql_types) in frames.items():
            path = directory / f"{name}.parquet"
            columns = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in sql_types.items())
            con.register("frame", frame)
            con.execute(f"COPY (SELECT {columns} FROM frame) TO '{path}' (FORMAT parquet)")
            con.unregister("frame")
            tables[name] = path
    finally:
        con.close()
    return FlatViews(
        dataset_id=dataset_id,
        version=version,
        directory=directory,
        tables=tables,
        patients=len(frames["patient"][0]),
    )


def _frame(
    view: dict[str, Any], resources: list[FhirResource]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The view's rows, and each column's SQL type in the cache."""
    compiled = compile_view(view)
    frame = compiled.to_frame(resources)
    sql_types: dict[str, str] = {}
    for column in compiled.columns:
        if column.type in _TIMESTAMP:
            frame[column.name] = _timestamps(frame[column.name])
            sql_types[column.name] = "TIMESTAMP"
        elif column.type == "date":
            frame[column.name] = _timestamps(frame[column.name]).dt.normalize()
            sql_types[column.name] = "DATE"
        elif column.type == "decimal":
            frame[column.name] = frame[column.name].astype("float64")
            sql_types[column.name] = "DOUBLE"
        else:
            frame[column.name] = frame[column.name].astype("object")
            sql_types[column.name] = "VARCHAR"
    return frame, sql_types


def _timestamps(values: pd.Series) -> pd.Series:
    import pandas as pd

    text = values.astype("object")
    padded = text.map(_pad, na_action="ignore")
    stamps = pd.to_datetime(padded, utc=True, format="ISO8601")
    return stamps.dt.tz_convert(None).astype("datetime64[us]")


def _pad(value: str) -> str:
    """A partial FHIR date takes the start of its period (``2012`` -> ``2012-01-01``)."""
    if len(value) == 4:
        return f"{value}-01-01"
    if len(value) == 7:
        return f"{value}-01"
    return value


async def flat_views_for(settings: Settings, dataset_id: str, directory: Path) -> FlatViews:
    """The dataset's flat views from the configured FHIR source (the CLI's entry; the
    coordinator replaces it with the view cache)."""
    source = build_fhir_source(settings)
    try:
        return await flat_views_from_source(source, directory, dataset_id=dataset_id)
    finally:
        await source.aclose()
