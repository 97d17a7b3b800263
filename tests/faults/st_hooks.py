"""Schemathesis hooks for tests/faults/test_rest_schemathesis.py (loaded via SCHEMATHESIS_HOOKS).

The fuzzer must not repoint the instance's KMS endpoint: PUT /api/v1/ekms/config accepts a
new ``endpoint_url`` on an active configuration (see
test_endpoint_url_cannot_be_repointed_once_active), after which every KMS-backed route answers
503 or 422 for reasons the fuzzer itself created. Drop this hook once that is refused.
"""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    operation = case.operation
    if operation.method.upper() == "PUT" and operation.path == "/api/v1/ekms/config":
        if isinstance(case.body, dict):
            case.body.pop("endpoint_url", None)
