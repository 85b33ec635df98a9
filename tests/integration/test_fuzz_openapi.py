"""Property-based API fuzzing (schemathesis against the app's own OpenAPI): no input, valid or
not, makes the gateway answer 5xx. A bounded number of examples per operation keeps it short."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

from tests.integration.conftest import bearer

MAX_EXAMPLES = 25
# fault injection is an admin-only dev tool (fuzzing it would disturb the rest of the suite);
# the SSE stream stays open until an order is final
SKIPPED = {"/api/admin/faults", "/api/orders/{order_id}/events"}


def test_no_generated_input_makes_the_gateway_answer_5xx(base_url: str, mint: Any) -> None:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    tokens = [mint("fuzz-customer"), mint("fuzz-admin", "admin")]
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIPPED:
            continue
        tested.append(f"{operation.method.upper()} {operation.path}")

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def fuzz(case: Any) -> None:
            for token in tokens:
                case.call_and_validate(
                    headers=bearer(token), checks=[not_a_server_error], timeout=15
                )

        fuzz()
    assert "POST /api/orders" in tested and "PUT /api/inventory/{sku}" in tested
    assert len(tested) >= 8, tested
