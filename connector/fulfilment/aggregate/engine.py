"""DuckDB, in-process, over a dataset's flattened tables (the one module that imports it).

One in-memory connection per data version names each Parquet file of ``FlatViews`` as a view
with its table's name (opening a connection and binding the views costs tens of milliseconds:
done once per version) and reads the units each table's quantities come in (the compiler
converts filter values into them). Each evaluation runs the compiled statement on a cursor of
its own, so evaluations in several worker threads share nothing else. Blocking: call it in a
worker thread.

DuckDB's error messages can quote data (a value that failed a conversion), so an error is
reported by its class only, never its text.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import date
from typing import Any

from connector.errors import PhemsError
from connector.fulfilment.aggregate.request import AggregateQuery
from connector.fulfilment.aggregate.sql import UNIT_COLUMNS, Compiler, DataProfile
from connector.fulfilment.views import TABLES
from connector.ports import FlatViews

log = logging.getLogger(__name__)

_VERSIONS_KEPT = 8  # data versions whose connections are kept open


class EvaluationError(PhemsError):
    code = "aggregate-evaluation-failed"
    title = "Aggregate query evaluation failed"


class DuckDbEngine:
    def __init__(self, *, threads: int | None = None) -> None:
        self._threads = threads
        # One connection per data version, its views created once; each evaluation runs on a
        # cursor of its own (DuckDB's way to share a database between threads).
        self._connections: OrderedDict[tuple[str, str], tuple[Any, DataProfile]]
        self._connections = OrderedDict()
        self._lock = threading.Lock()

    def evaluate(self, query: AggregateQuery, views: FlatViews, reference: date) -> list[float]:
        """The layout's cells, true values, for ``query`` on ``views``."""
        import duckdb

        try:
            con, profile = self._connection(views)
            statement = Compiler(reference, profile).statement(query)
            cursor = con.cursor()
            try:
                row = cursor.execute(statement.inline()).fetchone()
            finally:
                cursor.close()
        except duckdb.Error as exc:
            log.error(
                "aggregate query %s failed in DuckDB (%s)", query.digest[:16], type(exc).__name__
            )
            raise EvaluationError(
                f"evaluating the query failed in the analytical engine ({type(exc).__name__})"
            ) from None
        assert row is not None and len(row) == len(query.layout)
        return [float(v or 0) for v in row]

    def _connection(self, views: FlatViews) -> tuple[Any, DataProfile]:
        import duckdb

        key = (str(views.directory), views.version)
        with self._lock:
            found = self._connections.get(key)
            if found is not None:
                self._connections.move_to_end(key)
                return found
            missing = [t for t in TABLES if t not in views.tables]
            if missing:
                raise EvaluationError(f"the flattened views lack the tables {', '.join(missing)}")
            con = duckdb.connect(":memory:")
            if self._threads:
                con.execute(f"SET threads = {int(self._threads)}")
            for table in TABLES:
                path = str(views.tables[table]).replace("'", "''")
                con.execute(f"CREATE VIEW \"{table}\" AS SELECT * FROM read_parquet('{path}')")
            profile = DataProfile(
                units={
                    table: _distinct(con, table, unit_column)
                    for table, (_, unit_column) in UNIT_COLUMNS.items()
                },
                multi_coded=frozenset(
                    str(row[0])
                    for row in con.execute(
                        'SELECT "resource_type" FROM "coding" GROUP BY "resource_type" '
                        'HAVING COUNT(*) > COUNT(DISTINCT "resource_id")'
                    ).fetchall()
                ),
            )
            self._connections[key] = (con, profile)
            if len(self._connections) > _VERSIONS_KEPT:
                # Dropped, not closed: an evaluation may still run on a cursor of it.
                self._connections.popitem(last=False)
            return con, profile


def _distinct(con: Any, table: str, column: str) -> tuple[str, ...]:
    rows: Sequence[tuple[Any, ...]] = con.execute(
        f'SELECT DISTINCT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL'
    ).fetchall()
    return tuple(sorted(str(r[0]) for r in rows))
