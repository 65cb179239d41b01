"""Schemathesis against the API in-process: every operation, 100 generated requests each that fit
the document and 30 that deliberately do not, checked against the OpenAPI document the API serves:
no 5xx, only documented status codes, bodies, headers and content types as documented, invalid
input rejected (negative_data_rejection) and valid input not refused for its shape.

Schemathesis's own pytest plugin (schema.parametrize with from_fixture) does not work with pytest 9
(it reads a private attribute pytest removed), so each operation is one parametrized test that
draws its cases from Schemathesis's strategy with Hypothesis directly; the checks are the same
call_and_validate runs."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

import membership.api.views  # noqa: F401  (fills the registry)
from membership.api.registry import OPERATIONS

EXAMPLES = {GenerationMode.POSITIVE: 100, GenerationMode.NEGATIVE: 30}  # 130 per operation; ~2 minutes in all
SEED = 20261204


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("operation_id", [op.endpoint for op in OPERATIONS])
def test_api_conforms_to_its_document(app, make_token, api_data, operation_id, mode):
    _, secret = make_token(("read", "write"))
    # the token through Schemathesis's auth settings (not a fixed header), so that its negative cases
    # can leave it out and expect the 401
    config = SchemathesisConfig.from_dict({"auth": {"openapi": {"bearerAuth": {"bearer": secret}}}})
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)
    operation = schema.find_operation_by_id(operation_id)
    # Writes pass through the domain's own rules, which no JSON Schema can state (a phone number that
    # exists, a date of birth in the past, a registration window that is open): a schema-valid body may
    # rightly get 422, so "schema-valid data must be accepted" is checked on reads only.
    excluded = [positive_data_acceptance] if operation.method.upper() != "GET" else []
    calls = []

    @seed(SEED)
    @settings(max_examples=EXAMPLES[mode], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        calls.append(case.call_and_validate(excluded_checks=excluded).status_code)

    run()
    assert len(calls) >= min(EXAMPLES[mode], 20), calls  # it did run (small enumerations give fewer distinct cases)
    if mode is GenerationMode.POSITIVE:
        # authenticated (not 100 times 401) and reaching the operation itself; reads find data (random
        # ids for a write mostly name nobody: 404)
        assert any(c not in (401, 403) for c in calls), calls
        if operation.method.upper() == "GET":
            assert any(200 <= c < 300 for c in calls), calls
