"""``connector.ports.ViewRunner`` over this package's runner."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from adapters.sof.view import compile_view


class SqlOnFhirRunner:
    """Compiles ViewDefinitions with ``adapters.sof``. Stateless, so it pickles to a worker."""

    def compile(
        self, view: Mapping[str, Any]
    ) -> tuple[list[tuple[str, str | None]], Callable[[dict[str, Any]], list[tuple[Any, ...]]]]:
        compiled = compile_view(dict(view))
        return [(c.name, c.type) for c in compiled.columns], compiled.process
