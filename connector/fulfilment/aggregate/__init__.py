"""Aggregate queries (DESIGN.md §4, docs/aggregate-queries.md): CCDL v2 cohorts and measures,
answered from a dataset's flattened tables as FHIR ``MeasureReport``s under disclosure control.

Modules, one concept each:

- ``ccdl``: the CCDL as typed values; ``terminology``: what its codes mean on our tables;
  ``criteria``: criteria resolved against the tables (or refused naming the part);
  ``measures``: stratifiers and numeric summaries; ``request``: the request body (schema,
  options, digest); ``units``, ``ages``: UCUM conversions, completed ages;
- ``cells``: the answer as an ordered vector of cells; ``sql``: one portable SQL statement;
  ``statement``: its portable and literal forms; ``engine``: DuckDB over the Parquet files;
- ``disclosure``: primary and secondary suppression; ``noise``: OpenDP Laplace;
  ``release``: suppression + noise + rounding; ``report``: the MeasureReport;
- ``store``: kept answers (the SQL store is ``connector.db.aggregate``);
  ``fulfilment``: the ``Fulfilment``; ``secure``: integer vectors for secure aggregation.
"""

from connector.fulfilment.aggregate.fulfilment import MEDIA_TYPE, AggregateFulfilment
from connector.fulfilment.aggregate.request import AggregateQuery, parse_request
from connector.fulfilment.aggregate.store import AnswerStore, MemoryAnswerStore

__all__ = [
    "MEDIA_TYPE",
    "AggregateFulfilment",
    "AggregateQuery",
    "AnswerStore",
    "MemoryAnswerStore",
    "parse_request",
]
