"""The data user SDK: a Python client of the data user's own connector (docs/data-user.md).

client.py   ``Client``: harvest, search, negotiate, verify, query, synthetic
models.py   what it returns (datasets, agreements, query results with DataFrames)
errors.py   what it raises: one tree under ``PhemsError``
cli.py      the shell mirror: ``catalog search``, ``negotiate``
"""

from connector.sdk.client import Client
from connector.sdk.errors import (
    BadRequest,
    BudgetExhausted,
    ClientError,
    InvalidAgreement,
    NegotiationRefused,
    NotFound,
    NotReady,
    PhemsError,
    PolicyRefused,
    QueryFailed,
    Unauthorized,
    Unreachable,
)
from connector.sdk.models import (
    Agreement,
    Dataset,
    Datasets,
    QueryResult,
    SyntheticResult,
    Verified,
)

__all__ = [
    "Agreement",
    "BadRequest",
    "BudgetExhausted",
    "Client",
    "ClientError",
    "Dataset",
    "Datasets",
    "InvalidAgreement",
    "NegotiationRefused",
    "NotFound",
    "NotReady",
    "PhemsError",
    "PolicyRefused",
    "QueryFailed",
    "QueryResult",
    "SyntheticResult",
    "Unauthorized",
    "Unreachable",
    "Verified",
]
