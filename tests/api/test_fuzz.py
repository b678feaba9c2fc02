"""Fuzzing: schemathesis generates requests, valid and invalid, from the OpenAPI description the server
serves, and each answer must be no 5xx, every error in the spec's format with one of our codes, and the
answer as described (status, content type, headers, body schema).

Hypothesis' strategies are used directly (one test per operation and database) rather than schemathesis'
pytest plugin, whose lazy fixture loader breaks on pytest 9. Examples are bounded so that both databases
together take about a minute on two cores; every run draws new ones, and a failure prints its seed.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from registry.api.openapi import describe
from registry.errors import ErrorCode
from tests.support.server import RegistryProcess

# Per operation, positive and negative cases together.
EXAMPLES = 20
CODES = {code.name for code in ErrorCode}
SCHEMA = schemathesis.openapi.from_dict(describe())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


def _assert_spec_error(response: schemathesis.Response) -> None:
    """Checked here as well as by the schema check, so the test states the rule it enforces."""
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), response.text
    body = json.loads(response.content)
    assert body["errors"], body
    for error in body["errors"]:
        assert error["code"] in CODES, body
        assert isinstance(error["message"], str), body
        assert "detail" in error, body


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_no_server_error_and_every_error_in_the_spec_format(
    server: RegistryProcess, operation: schemathesis.APIOperation
) -> None:
    cases = operation.as_strategy(generation_mode=GenerationMode.POSITIVE) | operation.as_strategy(
        generation_mode=GenerationMode.NEGATIVE
    )

    @given(case=cases)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def one_request(case: schemathesis.Case) -> None:
        response = case.call(base_url=server.url, timeout=30)
        assert response.status_code < 500, (case.as_curl_command(), response.text)
        if response.status_code >= 400 and case.method != "HEAD":
            _assert_spec_error(response)
        case.validate_response(
            response,
            checks=[
                status_code_conformance,
                content_type_conformance,
                response_headers_conformance,
                response_schema_conformance,
            ],
        )

    one_request()
