"""The authorization matrix: every route x {no token, bad token, each admin role, another role}.

Each answer is also checked against the OpenAPI document: a route never answers a status it
does not document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from app.api.app import api_routes, create_app
from app.api.services import ApiServices
from tests.e2e.rest_support import (
    ADMIN,
    ADMIN_ROLES,
    APP_ROLE,
    AUDITOR,
    KEY_MANAGER,
    MODULE,
    Rest,
    b64,
    rest,  # noqa: F401 - fixture
    token,
)

ALL = frozenset(ADMIN_ROLES)
POLICY = {"target_type": "role", "target": "hr", "operations": ["decrypt"], "result": "track"}
TARGET = {"table": "employees", "column": "iban"}
NO_SUCH = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Case:
    method: str
    template: str
    allowed: frozenset[str] | None  # None: the data plane, where policies decide
    body: dict[str, Any] | None = field(default=None, hash=False)
    per_item: bool = False  # a batch: the policies decide per item, the call itself is 200

    @property
    def id(self) -> str:
        return f"{self.method} {self.template}"


M = f"/api/v1/modules/{MODULE}"
CASES = [
    Case("GET", "/api/v1/ekms/config", frozenset({ADMIN})),
    Case(
        "PUT",
        "/api/v1/ekms/config",
        frozenset({ADMIN}),
        {"provider": "local", "key_id": "ekms-local-root"},
    ),
    Case("DELETE", "/api/v1/ekms/config", frozenset({ADMIN})),  # no confirm: 422, nothing ends
    Case("POST", "/api/v1/ekms/config/test", frozenset({ADMIN})),
    Case("GET", "/api/v1/ekms/status", ALL),
    Case("POST", "/api/v1/ekms/sync", frozenset({KEY_MANAGER})),
    Case("POST", "/api/v1/ekms/kek/rotate", frozenset({KEY_MANAGER})),
    Case("POST", "/api/v1/ekms/local-kek/rotate", frozenset({KEY_MANAGER})),
    Case("GET", "/api/v1/ekms/external-keys", ALL),
    Case(
        "POST",
        "/api/v1/ekms/external-keys",
        frozenset({ADMIN}),
        {"provider": "local", "key_id": "ekms-local-root"},
    ),
    Case("DELETE", "/api/v1/ekms/external-keys/{key_id}", frozenset({ADMIN})),
    Case("GET", "/api/v1/modules", ALL),
    Case("POST", "/api/v1/modules", frozenset({ADMIN}), {"name": "global.hr"}),
    Case("GET", "/api/v1/modules/{name}", ALL),
    Case("PATCH", "/api/v1/modules/{name}", frozenset({ADMIN}), {"description": "pay"}),
    Case("GET", "/api/v1/modules/{name}/keys", ALL),
    Case("POST", "/api/v1/modules/{name}/keys/rotate", frozenset({KEY_MANAGER})),
    Case("POST", "/api/v1/modules/{name}/keys/{version}/{action}", frozenset({KEY_MANAGER})),
    Case("GET", "/api/v1/modules/{name}/policies", frozenset({ADMIN})),
    Case("POST", "/api/v1/modules/{name}/policies", frozenset({ADMIN}), POLICY),
    Case(
        "POST",
        "/api/v1/modules/{name}/policies/explain",
        frozenset({ADMIN}),
        {"subject": "bob", "roles": ["hr"], "operation": "decrypt"},
    ),
    Case("GET", "/api/v1/policies/{policy_id}", frozenset({ADMIN})),
    Case("PUT", "/api/v1/policies/{policy_id}", frozenset({ADMIN}), POLICY),
    Case("DELETE", "/api/v1/policies/{policy_id}", frozenset({ADMIN})),
    Case("GET", "/api/v1/field-configs", frozenset({ADMIN})),
    Case(
        "POST",
        "/api/v1/field-configs",
        frozenset({ADMIN}),
        {"table": "t", "column": "c", "module": MODULE},
    ),
    Case("GET", "/api/v1/field-configs/{config_id}", frozenset({ADMIN})),
    Case("PATCH", "/api/v1/field-configs/{config_id}", frozenset({ADMIN}), {"active": False}),
    Case("DELETE", "/api/v1/field-configs/{config_id}", frozenset({ADMIN})),
    Case("GET", "/api/v1/audit", frozenset({AUDITOR})),
    Case("GET", "/api/v1/audit/verify", frozenset({AUDITOR})),
    Case("GET", "/api/v1/audit/checkpoints", frozenset({AUDITOR})),
    Case("GET", "/api/v1/xks/stores", ALL),
    Case(
        "POST",
        "/api/v1/xks/stores",
        frozenset({ADMIN}),
        {"name": "s1", "uri_prefix": "/s1", "region": "eu-west-1"},
    ),
    Case("GET", "/api/v1/xks/stores/{store_id}", ALL),
    Case("PATCH", "/api/v1/xks/stores/{store_id}", frozenset({ADMIN}), {"add_credential": True}),
    Case("DELETE", "/api/v1/xks/stores/{store_id}", frozenset({ADMIN})),
    Case("GET", "/api/v1/xks/keys", ALL),
    Case("POST", "/api/v1/xks/keys", frozenset({KEY_MANAGER}), {"store_id": NO_SUCH}),
    Case("GET", "/api/v1/xks/keys/{key_id}", ALL),
    Case("PATCH", "/api/v1/xks/keys/{key_id}", frozenset({KEY_MANAGER}), {"enabled": False}),
    Case("DELETE", "/api/v1/xks/keys/{key_id}", frozenset({KEY_MANAGER})),
    Case("POST", "/api/v1/crypto/encrypt", None, {**TARGET, "plaintext": b64(b"DE89")}),
    Case("POST", "/api/v1/crypto/decrypt", None, {**TARGET, "ciphertext": "{ciphertext}"}),
    Case("POST", "/api/v1/crypto/rewrap", None, {**TARGET, "ciphertext": "{ciphertext}"}),
    Case("POST", "/api/v1/crypto/data-key", None, TARGET),
    Case("POST", "/api/v1/crypto/data-key/decrypt", None, {**TARGET, "sealed_key": "{sealed}"}),
    Case("POST", "/api/v1/crypto/mac", None, {**TARGET, "value": b64(b"DE89")}),
    Case(
        "POST", "/api/v1/crypto/mac/verify", None, {**TARGET, "value": b64(b"DE89"), "mac": "{mac}"}
    ),
    *(
        Case("POST", f"/api/v1/crypto/{kind}-batch", None, {**TARGET, "items": [item]}, True)
        for kind, item in (
            ("encrypt", {"plaintext": b64(b"DE89")}),
            ("decrypt", {"ciphertext": "{ciphertext}"}),
            ("rewrap", {"ciphertext": "{ciphertext}"}),
        )
    ),
]


@pytest.fixture(scope="module")
def openapi_doc() -> dict[str, Any]:
    # The document does not depend on the container's state.
    return create_app(cast(ApiServices, None)).openapi()


def documented(doc: dict[str, Any], case: Case) -> set[int]:
    operation = doc["paths"][case.template][case.method.lower()]
    return {int(code) for code in operation["responses"]}


def test_the_matrix_covers_every_api_route() -> None:
    routes = {
        f"{method} {route.path}"
        for route in api_routes()
        if route.path.startswith("/api/v1")
        for method in route.methods
    }
    assert routes == {case.id for case in CASES}


async def _concrete(env: Rest, case: Case) -> tuple[str, dict[str, Any] | None]:
    seeded = await env.seed()
    encrypted = await env.ok(
        "POST", "/api/v1/crypto/encrypt", (APP_ROLE,), json={**TARGET, "plaintext": b64(b"DE89")}
    )
    path = case.template.format(
        name=MODULE,
        version=1,
        action="suspend",
        policy_id=seeded["policy"]["id"],
        config_id=seeded["field"]["id"],
        key_id=NO_SUCH,  # no such key: 404 once allowed
        store_id=NO_SUCH,
    )
    body = case.body
    if body is not None and body.get("ciphertext") == "{ciphertext}":
        body = {**body, "ciphertext": encrypted["ciphertext"]}
    if body is not None and "items" in body:
        items = [
            {**i, "ciphertext": encrypted["ciphertext"]} if "ciphertext" in i else i
            for i in body["items"]
        ]
        body = {**body, "items": items}
    if body is not None and body.get("sealed_key") == "{sealed}":
        made = await env.ok("POST", "/api/v1/crypto/data-key", (APP_ROLE,), json=TARGET)
        body = {**body, "sealed_key": made["sealed_key"]}
    if body is not None and body.get("mac") == "{mac}":
        made = await env.ok(
            "POST", "/api/v1/crypto/mac", (APP_ROLE,), json={**TARGET, "value": body["value"]}
        )
        body = {**body, "mac": made["mac"]}
    return path, body


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_route_answers_each_identity(
    rest: Rest,  # noqa: F811
    case: Case,
    openapi_doc: dict[str, Any],
) -> None:
    path, body = await _concrete(rest, case)
    allowed_codes = documented(openapi_doc, case)

    async def send(headers: dict[str, str]) -> Any:
        response = await rest.client.request(case.method, path, json=body, headers=headers)
        assert response.status_code in allowed_codes, (response.status_code, response.text)
        return response

    missing = await send({})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.headers["content-type"] == "application/problem+json"

    forged = await send(
        {"Authorization": "Bearer " + token(ADMIN, KEY_MANAGER, AUDITOR)[:-4] + "AAAA"}
    )
    assert forged.status_code == 401
    assert 'error="invalid_token"' in forged.headers["www-authenticate"]

    for role in (*ADMIN_ROLES, APP_ROLE):
        response = await send({"Authorization": f"Bearer {token(role)}"})
        if case.per_item:  # a batch: each item answers the module's policies
            assert response.status_code == 200, (role, response.text)
            errors = [r.get("error") for r in response.json()["results"]]
            if role == APP_ROLE:
                assert errors == [None], response.text
            else:
                assert [e["reason"] for e in errors] == ["MAP_REJECTED"], response.text
        elif case.allowed is None:  # data plane: the module's policies decide, never a role
            assert response.json().get("reason") != "ROLE_REQUIRED"
            expected_ok = role == APP_ROLE
            assert (response.status_code == 200) is expected_ok, (role, response.text)
            if not expected_ok:
                assert response.status_code == 403
                assert response.json()["reason"] == "MAP_REJECTED"
        elif role in case.allowed:
            assert response.status_code not in (401, 403), (role, response.text)
            assert response.status_code < 500, (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            problem = response.json()
            assert problem["reason"] == "ROLE_REQUIRED"
            assert problem["type"] == "https://ekms.dev/problems/role_required"


async def test_expired_token_is_401_token_expired(rest: Rest) -> None:  # noqa: F811
    from app.infra.tokens import mint_dev_token
    from tests.e2e.rest_support import SECRET

    class PastClock:
        def now(self) -> Any:
            from datetime import UTC, datetime, timedelta

            return datetime.now(UTC) - timedelta(hours=2)

        def monotonic(self) -> float:
            return 0.0

    stale = mint_dev_token(SECRET, sub="alice", roles=[ADMIN], ttl_seconds=60, clock=PastClock())
    response = await rest.client.get(
        "/api/v1/ekms/config", headers={"Authorization": f"Bearer {stale}"}
    )
    assert response.status_code == 401
    assert response.json()["reason"] == "TOKEN_EXPIRED"


async def test_probes_need_no_token(rest: Rest) -> None:  # noqa: F811
    for path in ("/livez", "/readyz", "/openapi.json", "/docs"):
        response = await rest.client.get(path)
        assert response.status_code == 200, path
    # /metrics is on the metrics listener only (tests/e2e/test_metrics_listener.py).
    assert (await rest.client.get("/metrics")).status_code == 404
