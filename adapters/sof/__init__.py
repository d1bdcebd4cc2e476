"""SQL-on-FHIR v2 ViewDefinition runner: FHIR resources (dicts) to rows and pandas DataFrames.

    view = compile_view({"resource": "Patient", "select": [{"column": [...]}]})
    frame = view.to_frame(resources)          # or view.rows(...), await view.ato_frame(...)

Views are validated and their FHIRPath compiled once (``ViewDefinitionError`` if invalid);
running them raises ``ViewEvaluationError`` for data the view cannot represent.
"""

from __future__ import annotations

from adapters.sof.definition import Column
from adapters.sof.errors import ViewDefinitionError, ViewEvaluationError
from adapters.sof.view import CompiledView, compile_view

__all__ = ["Column", "CompiledView", "ViewDefinitionError", "ViewEvaluationError", "compile_view"]
