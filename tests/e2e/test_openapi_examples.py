"""/openapi.json shows, for each problem response, examples that fit that response: its own
status, the reasons its description names, and the reason the route really answers."""

from __future__ import annotations

import uuid
from typing import Any

from app.api.problems import PROBLEM_MEDIA_TYPE, Problem, problem_type
from tests.e2e.rest_support import AUDITOR, MODULE, Rest, rest  # noqa: F401 - fixture


def _examples(doc: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    response = doc["paths"][path][method]["responses"][str(status)]
    examples: dict[str, Any] = response["content"][PROBLEM_MEDIA_TYPE]["examples"]
    return examples


async def test_every_problem_example_fits_its_response(rest: Rest) -> None:  # noqa: F811
    doc = (await rest.client.get("/openapi.json")).json()
    seen_404: set[str] = set()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                content = response.get("content", {})
                if int(code) < 400 or PROBLEM_MEDIA_TYPE not in content:
                    continue
                examples = content[PROBLEM_MEDIA_TYPE]["examples"]
                assert examples, (path, method, code)
                for name, example in examples.items():
                    body = Problem.model_validate(example["value"])
                    assert body.status == int(code), (path, method, code, name)
                    assert body.reason == name and body.type == problem_type(name)
                    assert "_NOT_FOUND" not in name or code == "404", (path, method, code)
                    if code == "404":
                        seen_404.add(name)
    # Not the same 404 everywhere (the finding): each resource has its own.
    assert {"MODULE_NOT_FOUND", "POLICY_NOT_FOUND", "FIELD_CONFIG_NOT_FOUND"} <= seen_404
    assert {"KEY_VERSION_NOT_FOUND", "NOT_CONFIGURED"} <= seen_404


async def test_the_documented_reasons_are_the_ones_answered(rest: Rest) -> None:  # noqa: F811
    doc = (await rest.client.get("/openapi.json")).json()
    await rest.seed()
    policy = f"/api/v1/policies/{uuid.uuid4()}"
    field = f"/api/v1/field-configs/{uuid.uuid4()}"
    calls = [
        ("/api/v1/policies/{policy_id}", "get", await rest.call("GET", policy)),
        ("/api/v1/field-configs/{config_id}", "get", await rest.call("GET", field)),
        ("/api/v1/modules/{name}", "get", await rest.call("GET", "/api/v1/modules/global.nope")),
        (
            "/api/v1/modules/{name}/keys/{version}/{action}",
            "post",
            await rest.call("POST", f"/api/v1/modules/{MODULE}/keys/99/suspend"),
        ),
        ("/api/v1/modules", "post", await rest.call("POST", "/api/v1/modules", json={})),
        ("/api/v1/modules", "get", await rest.client.get("/api/v1/modules")),
        ("/api/v1/ekms/config", "get", await rest.call("GET", "/api/v1/ekms/config", [AUDITOR])),
    ]
    for path, method, answer in calls:
        examples = _examples(doc, path, method, answer.status_code)
        assert answer.json()["reason"] in examples, (path, answer.json(), list(examples))
