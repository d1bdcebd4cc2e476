"""Parquet fixtures of the flattened tables, built as the seam's view cache will build them.

The views of ``connector.fulfilment.views`` run over FHIR resources with the SQL-on-FHIR runner
(``adapters.sof``); DuckDB writes each table as Parquet with ``dateTime`` columns as TIMESTAMP
(UTC, no zone; a partial date takes the start of its period) and ``date`` columns as DATE.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from adapters.sof import compile_view
from connector.fulfilment.views import CODING_VIEWS, TABLES, VIEWS
from connector.ports import FlatViews

Resources = dict[str, list[dict[str, Any]]]


def load_ndjson(directory: Path) -> Resources:
    """Resources by type from ``<Type>.NNN.ndjson`` (optionally gzipped) files."""
    found: Resources = {}
    for f in sorted(directory.iterdir()):
        if not f.name.endswith((".ndjson", ".ndjson.gz")):
            continue
        rtype = f.name.split(".")[0]
        data = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        found.setdefault(rtype, []).extend(orjson.loads(line) for line in data.splitlines() if line)
    return found


def _types(view: Mapping[str, Any]) -> dict[str, str]:
    return {
        col["name"]: col.get("type", "string")
        for select in view["select"]
        for col in select.get("column", [])
    }


def _frame(table: str, resources: Resources) -> tuple[pd.DataFrame, dict[str, str]]:
    if table == "coding":
        frames = [
            compile_view(v).to_frame(resources.get(v["resource"], []))
            for v in CODING_VIEWS.values()
        ]
        return pd.concat(frames, ignore_index=True), _types(next(iter(CODING_VIEWS.values())))
    view = VIEWS[table]
    return compile_view(view).to_frame(resources.get(view["resource"], [])), _types(view)


def _select(types: Mapping[str, str]) -> str:
    exprs = []
    for name, fhir_type in types.items():
        col = f'"{name}"'
        if fhir_type in ("dateTime", "instant"):
            text = (
                f"CASE length({col}) WHEN 4 THEN {col} || '-01-01' "
                f"WHEN 7 THEN {col} || '-01' ELSE {col} END"
            )
            exprs.append(
                f"CAST(CAST({text} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP) AS {col}"
            )
        elif fhir_type == "date":
            text = (
                f"CASE length({col}) WHEN 4 THEN {col} || '-01-01' "
                f"WHEN 7 THEN {col} || '-01' ELSE {col} END"
            )
            exprs.append(f"CAST({text} AS DATE) AS {col}")
        elif fhir_type == "decimal":
            exprs.append(f"CAST({col} AS DOUBLE) AS {col}")
        else:
            exprs.append(f"CAST({col} AS VARCHAR) AS {col}")
    return ", ".join(exprs)


def build_flat_views(
    resources: Resources, out: Path, *, dataset_id: str = "ds", version: str = "v1"
) -> FlatViews:
    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    tables: dict[str, Path] = {}
    try:
        for table in TABLES:
            frame, types = _frame(table, resources)
            for name in types:  # an empty frame still needs its columns
                if name not in frame.columns:
                    frame[name] = pd.Series(dtype="string")
            frame = frame.astype({n: "object" for n in types if frame[n].dtype == "string"})
            con.register("frame", frame)
            path = out / f"{table}.parquet"
            con.execute(f"COPY (SELECT {_select(types)} FROM frame) TO '{path}' (FORMAT PARQUET)")
            con.unregister("frame")
            tables[table] = path
    finally:
        con.close()
    patients = len(resources.get("Patient", []))
    return FlatViews(dataset_id, version, out, tables, patients)


def resources_of(items: Iterable[dict[str, Any]]) -> Resources:
    found: Resources = {}
    for r in items:
        found.setdefault(r["resourceType"], []).append(r)
    return found
