"""``connector.ports.ViewRunner`` (and ``ViewSql``) over this package's runner and its SQL
compiler."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from adapters.sof.sql import view_sql
from adapters.sof.view import compile_view


class SqlOnFhirRunner:
    """Compiles ViewDefinitions with ``adapters.sof``, to Python and (``view_sql``) to DuckDB
    SQL over NDJSON files. Stateless, so it pickles to a worker."""

    def compile(
        self, view: Mapping[str, Any]
    ) -> tuple[list[tuple[str, str | None]], Callable[[dict[str, Any]], list[tuple[Any, ...]]]]:
        compiled = compile_view(dict(view))
        return [(c.name, c.type) for c in compiled.columns], compiled.process

    def view_sql(self, view: Mapping[str, Any], files: Sequence[str]) -> str | None:
        return view_sql(view, files)
