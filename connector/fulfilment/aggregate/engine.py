"""DuckDB, in-process, over a dataset's flattened tables (the one module that imports it).

Each evaluation opens its own in-memory connection (so concurrent evaluations in worker threads
share nothing), names each Parquet file of ``FlatViews`` as a view with its table's name, and
runs the compiled statement. The units each table's quantities come in are read once per data
version (the compiler converts filter values into them). Blocking: call it in a worker thread.

DuckDB's error messages can quote data (a value that failed a conversion), so an error is
reported by its class only, never its text.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import date
from typing import Any

from connector.errors import PhemsError
from connector.fulfilment.aggregate.request import AggregateQuery
from connector.fulfilment.aggregate.sql import UNIT_COLUMNS, Compiler
from connector.fulfilment.views import TABLES
from connector.ports import FlatViews

log = logging.getLogger(__name__)

_UNITS_KEPT = 64  # data versions whose units are remembered


class EvaluationError(PhemsError):
    code = "aggregate-evaluation-failed"
    title = "Aggregate query evaluation failed"


class DuckDbEngine:
    def __init__(self, *, threads: int | None = None) -> None:
        self._threads = threads
        self._units: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def evaluate(self, query: AggregateQuery, views: FlatViews, reference: date) -> list[float]:
        """The layout's cells, true values, for ``query`` on ``views``."""
        import duckdb

        missing = [t for t in TABLES if t not in views.tables]
        if missing:
            raise EvaluationError(f"the flattened views lack the tables {', '.join(missing)}")
        con = duckdb.connect(":memory:")
        try:
            if self._threads:
                con.execute(f"SET threads = {int(self._threads)}")
            for table in TABLES:
                path = str(views.tables[table]).replace("'", "''")
                con.execute(f"CREATE VIEW \"{table}\" AS SELECT * FROM read_parquet('{path}')")
            statement = Compiler(reference, self._data_units(con, views)).statement(query)
            row = con.execute(statement.text, statement.params).fetchone()
        except duckdb.Error as exc:
            log.error(
                "aggregate query %s failed in DuckDB (%s)", query.digest[:16], type(exc).__name__
            )
            raise EvaluationError(
                f"evaluating the query failed in the analytical engine ({type(exc).__name__})"
            ) from None
        finally:
            con.close()
        assert row is not None and len(row) == len(query.layout)
        return [float(v or 0) for v in row]

    def _data_units(self, con: Any, views: FlatViews) -> dict[str, tuple[str, ...]]:
        key = (str(views.directory), views.version)
        with self._lock:
            cached = self._units.get(key)
        if cached is not None:
            return cached
        found = {
            table: _distinct(con, table, unit_column)
            for table, (_, unit_column) in UNIT_COLUMNS.items()
        }
        with self._lock:
            if len(self._units) >= _UNITS_KEPT:
                self._units.pop(next(iter(self._units)))
            self._units[key] = found
        return found


def _distinct(con: Any, table: str, column: str) -> tuple[str, ...]:
    rows: Sequence[tuple[Any, ...]] = con.execute(
        f'SELECT DISTINCT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL'
    ).fetchall()
    return tuple(sorted(str(r[0]) for r in rows))
