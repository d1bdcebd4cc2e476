"""Build a dataset's flattened tables (``FlatViews``): runs in a worker process of the job pool.

Two steps:

1. **Flatten.** The views (``views.VIEWS``, ``views.CODING_VIEWS`` and the scope views) turn
   the resources into rows of raw tables in an in-memory DuckDB database (at most
   ``BUILD_MEMORY`` in memory, the rest spilled to the build's directory). When the runner also
   compiles views to SQL (``ViewSql``; the SQL-on-FHIR adapter does), DuckDB runs each view's
   query straight over the NDJSON files, on all cores. The views that do not compile, and all
   views of a resource type whose files a query failed on (data the SQL cannot represent
   exactly), are run by the runner instead: each file read once, line by line, the rows
   inserted in batches. Both give the same rows.
2. **Scope and opt-outs.** One SQL step per table keeps the rows of the dataset's scope whose
   patient has not opted out (the hospital's list, and active FHIR Consents that deny research
   use), converts the columns to their SQL types, and writes one Parquet file per table.

The output goes to a temporary directory that is renamed into place only when complete, so a
build killed half-way leaves nothing that looks like a cache (nor anything it spilled).
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from connector.errors import FhirSourceError
from connector.files import private_dir
from connector.fulfilment.scope import DatasetScope
from connector.fulfilment.views import (
    CODING_VIEWS,
    CONSENT_SCOPE_SYSTEM,
    SCOPE_VIEWS,
    TABLES,
    VIEWS,
    ViewDefinition,
)
from connector.ports import ViewRunner, ViewSql

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

BATCH_ROWS = 50_000
Progress = Callable[[str, float], None]

# The column every clinical table is dated by, for a scope's period.
DATED_BY: dict[str, str] = {
    "encounter": "start",
    "condition": "coalesce(onset, recorded)",
    "observation": "effective",
    "procedure": "performed",
    "medication_request": "authored",
    "medication_administration": "effective",
}
_TABLE_TYPE = {name: view["resource"] for name, view in VIEWS.items()}
_SQL_TYPES = {
    "decimal": "DOUBLE",
    "boolean": "BOOLEAN",
    "integer": "BIGINT",
    "positiveInt": "BIGINT",
    "unsignedInt": "BIGINT",
    "integer64": "BIGINT",
}
_SPILL = "duckdb.tmp"
BUILD_MEMORY = "1GB"  # what the build's DuckDB keeps in memory at most
_MACROS = (
    "SET TimeZone = 'UTC'",
    "SET enable_progress_bar = false",
    # FHIR partial dates take the start of their period; timestamps end up UTC, without a zone.
    "CREATE MACRO fhir_pad(x) AS CASE WHEN length(x) = 4 THEN x || '-01-01' "
    "WHEN length(x) = 7 THEN x || '-01' ELSE x END",
    "CREATE MACRO fhir_ts(x) AS CAST(try_cast(fhir_pad(x) AS TIMESTAMPTZ) AT TIME ZONE 'UTC' "
    "AS TIMESTAMP)",
    "CREATE MACRO fhir_date(x) AS try_cast(substr(fhir_pad(x), 1, 10) AS DATE)",
)


def build_flat_views(
    progress: Progress,
    runner: ViewRunner,
    files: dict[str, list[str]],
    scope_json: dict[str, Any],
    optouts: list[str],
    out_dir: str,
    now_iso: str,
) -> dict[str, Any]:
    """Flatten ``files`` (resource type -> NDJSON paths), apply the scope and opt-outs, and
    write ``out_dir/<table>.parquet``. Returns the row count of each table."""
    import duckdb

    scope = DatasetScope.parse(scope_json)
    target = Path(out_dir)
    work = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    private_dir(work)
    try:
        # In memory up to BUILD_MEMORY, spilling the rest to the (owner-only) work directory:
        # the intermediate tables are written once and read once, not worth a database file
        # (30,000 patients: 15.6 -> 7.6 s; peak RSS 540 MiB in a file, 1.2 GiB unbounded,
        # 1.06 GiB at 1 GB).
        config: dict[str, str | bool | int | float | list[str]] = {
            "temp_directory": str(work / _SPILL),
            "memory_limit": BUILD_MEMORY,
        }
        con = duckdb.connect(config=config)
        try:
            for statement in _MACROS:
                con.execute(statement)
            _flatten(con, runner, files, scope, progress)
            progress("applying scope and opt-outs", 90.0)
            counts = _scoped(con, scope, optouts, dt.datetime.fromisoformat(now_iso), work)
        finally:
            con.close()
        shutil.rmtree(work / _SPILL, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    progress("done", 100.0)
    return counts


# -- 1. flatten -------------------------------------------------------------------------------


def _all_views(scope: DatasetScope) -> dict[str, ViewDefinition]:
    wanted = {"Patient", *scope.resource_types}
    views = {n: v for n, v in VIEWS.items() if v["resource"] in wanted}
    views |= {f"coding_{t}": v for t, v in CODING_VIEWS.items() if t in wanted}
    return views | SCOPE_VIEWS


def _flatten(
    con: duckdb.DuckDBPyConnection,
    runner: ViewRunner,
    files: dict[str, list[str]],
    scope: DatasetScope,
    progress: Progress,
) -> None:
    paths = {rtype: [Path(p) for p in ps] for rtype, ps in files.items()}
    flatten_views(con, runner, _all_views(scope), paths, progress)


def flatten_views(
    con: duckdb.DuckDBPyConnection,
    runner: ViewRunner,
    views: Mapping[str, ViewDefinition],
    files: Mapping[str, list[Path]],
    progress: Progress,
) -> None:
    """Create a table ``raw_<name>`` for each view and fill it from the NDJSON files of the
    view's resource type (``files``: type -> paths): with the views' SQL form where the runner
    has one (``ViewSql``), else with the runner. Strings stay text; decimals are DOUBLE,
    integers BIGINT, booleans BOOLEAN. The view cache's first step; the views benchmark
    (``bench/bench_views.py``) measures it."""
    tables: dict[str, _Raw] = {}
    by_type: dict[str, list[str]] = {}
    for name, view in views.items():
        columns, process = runner.compile(view)
        raw = [(c, _SQL_TYPES.get(t or "", "VARCHAR")) for c, t in columns]
        tables[name] = _Raw(name, raw, process)
        con.execute(
            f'CREATE TABLE "raw_{name}" ('
            + ", ".join(f'"{c}" {sql_type}' for c, sql_type in raw)
            + ")"
        )
        by_type.setdefault(view["resource"], []).append(name)
    paths = {rtype: list(files.get(rtype, [])) for rtype in by_type}
    total = sum(p.stat().st_size for ps in paths.values() for p in ps) or 1
    done = 0
    for rtype, names in by_type.items():
        if not paths[rtype]:
            continue
        progress(f"reading {rtype}", 90.0 * done / total)
        left = names
        if isinstance(runner, ViewSql):
            left = _with_sql(con, runner, rtype, {n: views[n] for n in names}, paths[rtype])
        if left:
            _with_runner(con, [tables[n] for n in left], rtype, paths[rtype], done, total, progress)
        done += sum(p.stat().st_size for p in paths[rtype])


class _Raw:
    """A view's raw table: its columns (name, SQL type) and the runner's row function."""

    def __init__(
        self,
        name: str,
        columns: list[tuple[str, str]],
        process: Callable[[Any], list[tuple[Any, ...]]],
    ) -> None:
        self.name = name
        self.columns = columns
        self.process = process
        self.rows: list[tuple[Any, ...]] = []


def _with_sql(
    con: duckdb.DuckDBPyConnection,
    compiler: ViewSql,
    rtype: str,
    views: Mapping[str, ViewDefinition],
    paths: list[Path],
) -> list[str]:
    """Fill the raw tables of the views that compile to SQL, in one transaction; the names of
    the views left for the runner (all of them if a query failed: then nothing was kept)."""
    import duckdb

    queries = {n: compiler.view_sql(v, [str(p) for p in paths]) for n, v in views.items()}
    if not any(queries.values()):
        return list(views)
    con.begin()
    try:
        for name, query in queries.items():
            if query:
                con.execute(f'INSERT INTO "raw_{name}" {query}')
    except duckdb.Error as exc:
        con.rollback()
        # The message may quote the data: only its kind is logged.
        log.info(
            "the %s files did not suit the views' SQL form (%s): read with the runner instead",
            rtype,
            type(exc).__name__,
        )
        return list(views)
    con.commit()
    return [n for n, q in queries.items() if not q]


def _with_runner(
    con: duckdb.DuckDBPyConnection,
    tables: list[_Raw],
    rtype: str,
    paths: list[Path],
    done: int,
    total: int,
    progress: Progress,
) -> None:
    """Fill raw tables with the runner: each file read once, line by line."""
    for path in paths:
        for resource, position in _resources(path, rtype):
            for table in tables:
                rows = table.process(resource)
                if rows:
                    table.rows.extend(rows)
                    if len(table.rows) >= BATCH_ROWS:
                        _append(con, table)
            if position is not None:
                progress(f"reading {rtype}", 90.0 * (done + position) / total)
        done += path.stat().st_size
    for table in tables:
        _append(con, table)


def _append(con: duckdb.DuckDBPyConnection, table: _Raw) -> None:
    rows = table.rows
    if not rows:
        return
    import pandas as pd

    data: dict[str, list[Any]] = {}
    for (name, sql_type), values in zip(table.columns, zip(*rows, strict=True), strict=True):
        if sql_type == "VARCHAR":  # a number, boolean or object in a string element: its JSON
            data[name] = [v if v is None or type(v) is str else _json_text(v) for v in values]
        else:
            data[name] = list(values)
    frame = pd.DataFrame(data, columns=[c for c, _ in table.columns])
    con.register("batch", frame)
    try:
        con.execute(f'INSERT INTO "raw_{table.name}" SELECT * FROM batch')
    finally:
        con.unregister("batch")
    rows.clear()


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _resources(path: Path, rtype: str) -> Iterator[tuple[dict[str, Any], int | None]]:
    """Each resource of the file, with the bytes read so far every few thousand lines."""
    opener = gzip.open if path.suffix == ".gz" else open
    number = 0
    try:
        with opener(path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    resource = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise FhirSourceError(
                        f"{path.name} line {number}: invalid JSON ({exc})", url=str(path.parent)
                    ) from None
                if not isinstance(resource, dict) or resource.get("resourceType") != rtype:
                    raise FhirSourceError(
                        f"{path.name} line {number}: not a {rtype} resource", url=str(path.parent)
                    )
                position = None
                if number % 5000 == 0 and path.suffix != ".gz":
                    position = lines.tell()
                yield resource, position
    except (OSError, EOFError) as exc:
        raise FhirSourceError(
            f"{path.name} line {number + 1}: {exc}", url=str(path.parent)
        ) from None


# -- 2. scope, opt-outs, types -----------------------------------------------------------------


def _typed(columns: list[tuple[str, str]]) -> str:
    """The raw table's columns converted to their SQL types."""
    out = []
    for column, fhir_type in columns:
        quoted = f'"{column}"'
        if fhir_type in ("dateTime", "instant"):
            out.append(f"fhir_ts({quoted}) AS {quoted}")
        elif fhir_type == "date":
            out.append(f"fhir_date({quoted}) AS {quoted}")
        else:
            out.append(quoted)
    return ", ".join(out)


def _view_columns(view: ViewDefinition) -> list[tuple[str, str]]:
    columns: list[tuple[str, str]] = []
    for select in view["select"]:
        columns += [(c["name"], c.get("type", "string")) for c in select.get("column", [])]
    return columns


def _scoped(
    con: duckdb.DuckDBPyConnection,
    scope: DatasetScope,
    optouts: list[str],
    now: dt.datetime,
    out: Path,
) -> dict[str, Any]:
    import pandas as pd

    con.register("optout_list", pd.DataFrame({"patient_id": pd.Series(optouts, dtype=object)}))
    now_text = now.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    con.execute(
        f"""CREATE TABLE opted_out AS
        SELECT CAST(patient_id AS VARCHAR) AS patient_id FROM optout_list
        UNION
        SELECT patient_id FROM raw_consent
        WHERE patient_id IS NOT NULL AND status = 'active' AND provision_type = 'deny'
          AND scope_system = '{CONSENT_SCOPE_SYSTEM}' AND scope_code = 'research'
          AND (period_start IS NULL OR fhir_ts(period_start) <= TIMESTAMP '{now_text}')
          AND (period_end IS NULL OR fhir_ts(period_end) >= TIMESTAMP '{now_text}')"""
    )
    candidates = (
        "SELECT patient_id FROM raw_patient WHERE patient_id IS NOT NULL "
        "AND patient_id NOT IN (SELECT patient_id FROM opted_out)"
    )
    if scope.group:
        group = scope.group.replace("'", "''")
        candidates += (
            " AND patient_id IN (SELECT patient_id FROM raw_group_member "
            f"WHERE group_id = '{group}' AND coalesce(inactive, false) = false)"
        )
    con.execute(f"CREATE TABLE candidate AS {candidates}")
    clinical = [n for n in DATED_BY if _TABLE_TYPE[n] in scope.resource_types]
    dated = scope.start is not None or scope.end is not None
    for name in clinical:
        con.execute(
            f'CREATE TABLE "t_{name}" AS SELECT {_typed(_view_columns(VIEWS[name]))} '
            f'FROM "raw_{name}" WHERE patient_id IN (SELECT patient_id FROM candidate)'
        )
        inside = _in_period(scope, DATED_BY[name])
        if inside:
            con.execute(f'DELETE FROM "t_{name}" WHERE ({inside}) IS NOT TRUE')
    kept = "SELECT patient_id FROM candidate"
    if dated:
        kept = " UNION ".join(f'SELECT DISTINCT patient_id FROM "t_{n}"' for n in clinical)
        kept = f"SELECT patient_id FROM candidate WHERE patient_id IN ({kept or 'SELECT NULL'})"
    con.execute(f"CREATE TABLE kept AS {kept}")
    con.execute(
        f"CREATE TABLE t_patient AS SELECT {_typed(_view_columns(VIEWS['patient']))} "
        "FROM raw_patient WHERE patient_id IN (SELECT patient_id FROM kept)"
    )
    for name in clinical:
        con.execute(f'DELETE FROM "t_{name}" WHERE patient_id NOT IN (SELECT patient_id FROM kept)')
    _derived_tables(con, scope, clinical)
    counts: dict[str, Any] = {}
    for table in TABLES:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [f"t_{table}"]
        ).fetchone()
        if not exists or not exists[0]:
            _empty_table(con, table)
        path = out / f"{table}.parquet"
        con.execute(f"COPY \"t_{table}\" TO '{_sql_path(path)}' (FORMAT PARQUET)")
        row = con.execute(f'SELECT count(*) FROM "t_{table}"').fetchone()
        counts[table] = int(row[0]) if row else 0
    for path in out.glob("*.parquet"):
        path.chmod(0o600)
    return counts


def _derived_tables(
    con: duckdb.DuckDBPyConnection, scope: DatasetScope, clinical: list[str]
) -> None:
    """``coding`` and ``observation_component`` keep the rows of the records kept above."""
    parts = []
    for rtype in scope.resource_types:
        table = next((n for n, t in _TABLE_TYPE.items() if t == rtype and n in clinical), None)
        if table is None or f"coding_{rtype}" not in _coding_names():
            continue
        key = f"{table}_id"
        parts.append(
            "SELECT resource_type, resource_id, patient_id, system, code "
            f'FROM "raw_coding_{rtype}" '
            f'WHERE resource_id IN (SELECT "{key}" FROM "t_{table}")'
        )
    if parts:
        con.execute("CREATE TABLE t_coding AS " + " UNION ALL ".join(parts))
    if "observation" in clinical:
        columns = _view_columns(VIEWS["observation_component"])
        con.execute(
            f"CREATE TABLE t_observation_component AS SELECT {_typed(columns)} "
            "FROM raw_observation_component "
            "WHERE observation_id IN (SELECT observation_id FROM t_observation)"
        )


def _coding_names() -> set[str]:
    return {f"coding_{t}" for t in CODING_VIEWS}


def _empty_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """A table the scope leaves out still exists, with its columns and no rows."""
    if table == "coding":
        view = next(iter(CODING_VIEWS.values()))
    else:
        view = VIEWS[table]
    columns = _view_columns(view)
    sql_types = {"dateTime": "TIMESTAMP", "instant": "TIMESTAMP", "date": "DATE"}
    con.execute(
        f'CREATE TABLE "t_{table}" ('
        + ", ".join(f'"{c}" {sql_types.get(t) or _SQL_TYPES.get(t, "VARCHAR")}' for c, t in columns)
        + ")"
    )


def _in_period(scope: DatasetScope, expression: str) -> str | None:
    """A condition that ``expression`` (a timestamp) lies in the scope's period (both days
    included); None without a period. A NULL date is outside."""
    parts = []
    if scope.start:
        parts.append(f"{expression} >= TIMESTAMP '{scope.start.isoformat()} 00:00:00'")
    if scope.end:
        after = scope.end + dt.timedelta(days=1)
        parts.append(f"{expression} < TIMESTAMP '{after.isoformat()} 00:00:00'")
    return " AND ".join(parts) or None


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
