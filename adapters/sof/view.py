"""Run a compiled SQL-on-FHIR v2 ViewDefinition over resources: the resource type filter, the
view-level ``where``, then the selection tree (``adapters.sof.selection``). Rows stay tuples
until the caller asks for dicts or a DataFrame.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any

from adapters.sof import definition as d
from adapters.sof.errors import ViewEvaluationError
from adapters.sof.fhirpath import compile_path
from adapters.sof.runtime import Env, Fn, Scope
from adapters.sof.selection import Row, compile_select

if TYPE_CHECKING:
    import pandas as pd


class CompiledView:
    """A ViewDefinition compiled once; run it over any number of resources."""

    def __init__(self, view: dict[str, Any]) -> None:
        self.resource, selects = d.check_view(view)
        scope = Scope(d.check_constants(view))
        self.wheres: list[tuple[str, Fn]] = []
        for i, raw in enumerate(d.require_list(view.get("where", []), "ViewDefinition.where")):
            path = d.require_string(d.require_object(raw, f"where[{i}]").get("path"), "path")
            self.wheres.append((path, compile_path(path, scope).fn))
        root = selects[0] if len(selects) == 1 else {"select": selects}
        where = "ViewDefinition.select[0]" if len(selects) == 1 else "ViewDefinition"
        self._proc, self.columns = compile_select(root, scope, where, set())
        self.names = [c.name for c in self.columns]
        #: The rows (tuples in column order) one resource contributes.
        self.process = self._processor()

    def _keep(self, resource: dict[str, Any], env: Env) -> bool:
        """Apply ``ViewDefinition.where``: each path must be true (empty is false)."""
        for path, fn in self.wheres:
            result = fn([resource], env)
            if not result:
                return False
            if len(result) != 1 or not isinstance(result[0], bool):
                raise ViewEvaluationError(f"where path {path!r} returned {result!r}, not a boolean")
            if not result[0]:
                return False
        return True

    def _processor(self) -> Callable[[dict[str, Any]], list[Row]]:
        resource_type, proc, keep = self.resource, self._proc, self._keep

        if not self.wheres:

            def process(resource: dict[str, Any]) -> list[Row]:
                if resource.get("resourceType") != resource_type:
                    return []
                return proc(resource, Env(resource))

            return process

        if len(self.wheres) == 1:
            ((path, where),) = self.wheres

            def process_one_where(resource: dict[str, Any]) -> list[Row]:
                if resource.get("resourceType") != resource_type:
                    return []
                env = Env(resource)
                result = where([resource], env)
                if len(result) == 1 and result[0] is True:
                    return proc(resource, env)
                if result and (len(result) > 1 or result[0] is not False):
                    raise ViewEvaluationError(
                        f"where path {path!r} returned {result!r}, not a boolean"
                    )
                return []

            return process_one_where

        def process_where(resource: dict[str, Any]) -> list[Row]:
            if resource.get("resourceType") != resource_type:
                return []
            env = Env(resource)
            return proc(resource, env) if keep(resource, env) else []

        return process_where

    def tuples(self, resources: Iterable[dict[str, Any]]) -> Iterator[Row]:
        process = self.process
        for resource in resources:
            yield from process(resource)

    def rows(self, resources: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        names = self.names
        for row in self.tuples(resources):
            yield dict(zip(names, row, strict=True))

    def to_frame(self, resources: Iterable[dict[str, Any]]) -> pd.DataFrame:
        from adapters.sof.frame import build_frame

        rows = list(chain.from_iterable(map(self.process, resources)))
        return build_frame(self.columns, rows)

    async def arows(
        self, resources: AsyncIterable[dict[str, Any]]
    ) -> AsyncIterator[dict[str, Any]]:
        names = self.names
        async for resource in resources:
            for row in self.process(resource):
                yield dict(zip(names, row, strict=True))

    async def ato_frame(self, resources: AsyncIterable[dict[str, Any]]) -> pd.DataFrame:
        from adapters.sof.frame import build_frame

        rows: list[Row] = []
        async for resource in resources:
            rows.extend(self.process(resource))
        return build_frame(self.columns, rows)


def compile_view(view: dict[str, Any]) -> CompiledView:
    """Validate and compile ``view``; raise ``ViewDefinitionError`` (HTTP 400) if invalid."""
    return CompiledView(view)
