"""Errors of the SQL-on-FHIR view runner.

BadRequestError (400, connector.errors)
├── ViewDefinitionError     the ViewDefinition is invalid (structure, names, FHIRPath syntax,
│                           unknown function or constant); raised by ``compile_view``
└── ViewEvaluationError     a valid view met data it cannot turn into a row (several values
                            in a column that is not a collection, a non-boolean ``where``)
"""

from __future__ import annotations

from connector.errors import BadRequestError


class ViewDefinitionError(BadRequestError):
    code = "invalid-view-definition"
    title = "Invalid ViewDefinition"


class ViewEvaluationError(BadRequestError):
    code = "view-evaluation-error"
    title = "ViewDefinition could not be evaluated on a resource"
