"""Property-based requests to a running connector's management API, generated from its own
OpenAPI description (schemathesis): whatever the request holds, the connector never answers
with a 5xx, answers only statuses documented for the operation, with the documented media
type and a body that matches the documented schema; and a request the description says is
invalid is refused with a 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import free_port
from tests.processes import ConnectorProcess, start_connector, stop

# Operations that reach out to a counterparty the request names are left out: tests talk only
# to loopback, and a generated address may be anywhere.
OUTBOUND = (
    r"^/management/(catalog/request|harvest|negotiations$|negotiations/offers"
    r"|transfers/\{tid\}/token)"
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def connector(tmp_path: Path) -> Iterator[ConnectorProcess]:
    c = start_connector(
        tmp_path, free_port(), {"PHEMS_LOG_LEVEL": "WARNING"}, args=("--with-sample-data",)
    )
    try:
        yield c
    finally:
        stop(c.proc)


def test_the_management_api_answers_as_documented(connector: ConnectorProcess) -> None:
    schema = (
        schemathesis.openapi.from_url(connector.url + "/openapi.json")
        .include(path_regex="^/management")
        .exclude(path_regex=OUTBOUND)
    )
    headers = {"X-Api-Key": connector.api_key}
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        _exercise(operation, GenerationMode.POSITIVE, CHECKS, headers)
        _exercise(operation, GenerationMode.NEGATIVE, [*CHECKS, negative_data_rejection], headers)
        tried += 1
    assert tried >= 20  # every management operation but the outbound ones


def _exercise(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    checks: list[Any],
    headers: dict[str, str],
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=25,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=checks)

    run()
