"""Every error class answers an RFC 9457 problem with a stable type, title, status, detail,
reason and request id; bad input never becomes a 500; a real bug becomes an opaque 500."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from app.bootstrap import build_container, build_rest_app
from tests.e2e.rest_support import (
    ADMIN,
    APP_ROLE,
    AUDITOR,
    KEY_MANAGER,
    MODULE,
    Rest,
    asgi_client,
    auth,
    b64,
    rest,  # noqa: F401 - fixture
    rest_pg,  # noqa: F401 - fixture
    settings_for,
)

M = f"/api/v1/modules/{MODULE}"


def assert_problem(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["reason"] == reason
    assert problem["type"] == f"https://ekms.dev/problems/{reason.lower()}"
    assert problem["title"] and problem["detail"]
    assert problem["request_id"] == response.headers["x-request-id"]
    return problem


async def test_not_found(rest: Rest) -> None:  # noqa: F811
    await rest.seed()
    cases = [
        ("GET", "/api/v1/modules/global.nope", (ADMIN,), "MODULE_NOT_FOUND"),
        ("POST", f"{M}/keys/9/revoke", (KEY_MANAGER,), "KEY_VERSION_NOT_FOUND"),
        ("GET", f"/api/v1/policies/{uuid.uuid4()}", (ADMIN,), "POLICY_NOT_FOUND"),
        ("DELETE", f"/api/v1/field-configs/{uuid.uuid4()}", (ADMIN,), "FIELD_CONFIG_NOT_FOUND"),
        ("GET", "/api/v1/no-such-route", (ADMIN,), "NOT_FOUND"),
    ]
    for method, path, roles, reason in cases:
        assert_problem(await rest.call(method, path, roles), 404, reason)


async def test_conflicts(rest: Rest) -> None:  # noqa: F811
    await rest.seed()
    again = await rest.call("POST", "/api/v1/modules", json={"name": MODULE})
    assert_problem(again, 409, "ALREADY_EXISTS")
    destroy_active = await rest.call("POST", f"{M}/keys/1/destroy", (KEY_MANAGER,))
    problem = assert_problem(destroy_active, 409, "INVALID_KEY_TRANSITION")
    assert "rotate the module first" in problem["detail"]
    back_to_draft = await rest.call("PATCH", M, json={"state": "draft"})
    assert_problem(back_to_draft, 409, "INVALID_KEY_TRANSITION")
    critical = await rest.call(
        "PUT", "/api/v1/ekms/config", json={"provider": "aws", "key_id": "k"}
    )
    assert_problem(critical, 409, "IMMUTABLE_FIELD")
    duplicate_field = await rest.call(
        "POST",
        "/api/v1/field-configs",
        json={"table": "employees", "column": "iban", "module": MODULE},
    )
    assert_problem(duplicate_field, 409, "ALREADY_EXISTS")


async def test_key_unavailable_is_409(rest: Rest) -> None:  # noqa: F811
    await rest.seed()
    await rest.ok("POST", f"{M}/keys/1/suspend", (KEY_MANAGER,))
    encrypt = await rest.call(
        "POST",
        "/api/v1/crypto/encrypt",
        (APP_ROLE,),
        json={"module": MODULE, "plaintext": b64(b"x")},
    )
    assert_problem(encrypt, 409, "NO_ACTIVE_KEY")
    await rest.ok(
        "PATCH", "/api/v1/field-configs/" + (await _field_id(rest)), json={"active": False}
    )
    inactive = await rest.call(
        "POST",
        "/api/v1/crypto/encrypt",
        (APP_ROLE,),
        json={"table": "employees", "column": "iban", "plaintext": b64(b"x")},
    )
    assert_problem(inactive, 409, "FIELD_CONFIG_INACTIVE")


async def _field_id(rest: Rest) -> str:  # noqa: F811
    fields = await rest.ok("GET", "/api/v1/field-configs")
    return str(fields[0]["id"])


async def test_access_denied_and_decryption_failed(rest: Rest) -> None:  # noqa: F811
    await rest.seed()
    body = {"module": MODULE, "plaintext": b64(b"salary 85000")}
    denied = await rest.call("POST", "/api/v1/crypto/encrypt", ("someone-else",), json=body)
    assert_problem(denied, 403, "MAP_REJECTED")
    sealed = await rest.ok("POST", "/api/v1/crypto/encrypt", (APP_ROLE,), json=body)
    tampered = sealed["ciphertext"][:-2] + (
        "AA" if not sealed["ciphertext"].endswith("AA") else "BB"
    )
    for ciphertext, context in (
        (tampered, ""),
        (sealed["ciphertext"], b64(b"another record")),
        ("not-a-ciphertext", ""),
        ("ekms:v1:!!!", ""),
    ):
        response = await rest.call(
            "POST",
            "/api/v1/crypto/decrypt",
            (APP_ROLE,),
            json={"module": MODULE, "ciphertext": ciphertext, "context": context},
        )
        problem = assert_problem(response, 400, "DECRYPTION_FAILED")
        assert problem["detail"] == "ciphertext could not be decrypted"


async def test_validation_names_fields_and_never_echoes_input(rest: Rest) -> None:  # noqa: F811
    await rest.seed()
    secret = "TOP-SECRET-PLAINTEXT"
    response = await rest.call(
        "POST", "/api/v1/crypto/encrypt", (APP_ROLE,), json={"module": MODULE, "plaintext": secret}
    )
    problem = assert_problem(response, 422, "INVALID_INPUT")
    assert [e["field"] for e in problem["errors"]] == ["plaintext"]
    assert secret not in response.text

    cases: list[tuple[str, str, tuple[str, ...], dict[str, Any] | None, set[str]]] = [
        ("POST", "/api/v1/modules", (ADMIN,), {"name": "NoScope"}, {"name"}),
        ("POST", "/api/v1/modules", (ADMIN,), {"name": "global.a", "colour": "red"}, {"colour"}),
        (
            "POST",
            "/api/v1/modules",
            (ADMIN,),
            {"name": "global.a", "external_wrap": "sometimes"},
            {"external_wrap"},
        ),
        (
            "POST",
            f"{M}/policies",
            (ADMIN,),
            {"target_type": "role", "target": "x", "operations": [], "result": "track"},
            {"operations"},
        ),
        (
            "POST",
            f"{M}/policies",
            (ADMIN,),
            {"target_type": "role", "target": " x", "operations": ["encrypt"], "result": "track"},
            {"target"},
        ),
        ("POST", f"{M}/keys/abc/revoke", (KEY_MANAGER,), None, {"version"}),
        ("POST", f"{M}/keys/0/revoke", (KEY_MANAGER,), None, {"version"}),
        ("POST", f"{M}/keys/1/explode", (KEY_MANAGER,), None, {"action"}),
        ("GET", "/api/v1/policies/not-a-uuid", (ADMIN,), None, {"policy_id"}),
        ("GET", "/api/v1/audit?limit=0", (AUDITOR,), None, {"limit"}),
        ("GET", "/api/v1/audit?since=2026-01-01T00:00:00", (AUDITOR,), None, {"since"}),
        ("GET", "/api/v1/audit?result=maybe", (AUDITOR,), None, {"result"}),
        ("GET", "/api/v1/audit?cursor=garbage", (AUDITOR,), None, {"cursor"}),
        ("GET", "/api/v1/audit?since=0001-01-01T00:00:00%2B14:00", (AUDITOR,), None, {"since"}),
        ("GET", "/api/v1/audit?until=9999-12-31T23:59:59-14:00", (AUDITOR,), None, {"until"}),
        (
            "GET",
            "/api/v1/audit?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            (AUDITOR,),
            None,
            {"until"},
        ),
        ("POST", "/api/v1/crypto/encrypt", (APP_ROLE,), {"plaintext": b64(b"x")}, set()),
        (
            "PUT",
            "/api/v1/ekms/config",
            (ADMIN,),
            {"provider": "local", "key_id": "ekms-local-root", "sync_interval_minutes": 0},
            {"sync_interval_minutes"},
        ),
        ("PUT", "/api/v1/ekms/config", (ADMIN,), {"provider": "gcp", "key_id": "k"}, {"provider"}),
    ]
    for method, path, roles, body, fields in cases:
        response = await rest.call(method, path, roles, json=body)
        problem = assert_problem(response, 422, "INVALID_INPUT")
        named = {e["field"] for e in problem.get("errors", [])}
        assert fields <= named, (path, body, problem)


async def test_malformed_requests_are_4xx(rest: Rest) -> None:  # noqa: F811
    headers = {**auth(ADMIN), "content-type": "application/json"}
    bad_json = await rest.client.post("/api/v1/modules", content=b'{"name": ', headers=headers)
    assert_problem(bad_json, 400, "MALFORMED_REQUEST")
    not_object = await rest.client.post("/api/v1/modules", content=b"[1, 2]", headers=headers)
    assert_problem(not_object, 422, "INVALID_INPUT")
    no_body = await rest.client.post("/api/v1/modules", headers=auth(ADMIN))
    assert_problem(no_body, 422, "INVALID_INPUT")
    wrong_type = await rest.client.post(
        "/api/v1/modules",
        content=b"name=global.x",
        headers={**auth(ADMIN), "content-type": "text/plain"},
    )
    assert_problem(wrong_type, 415, "UNSUPPORTED_MEDIA_TYPE")
    method = await rest.client.delete("/api/v1/modules", headers=auth(ADMIN))
    assert_problem(method, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in method.headers["allow"]
    huge = b'{"name": "' + b"a" * (3 * 1024 * 1024) + b'"}'
    declared = await rest.client.post("/api/v1/modules", content=huge, headers=headers)
    assert_problem(declared, 413, "PAYLOAD_TOO_LARGE")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 100_000

    streamed = await rest.client.post("/api/v1/modules", content=chunks(), headers=headers)
    assert_problem(streamed, 413, "PAYLOAD_TOO_LARGE")


async def test_unmapped_exception_is_an_opaque_500_with_a_logged_correlation_id(
    sqlite_url: str, tmp_path: Path
) -> None:
    container = build_container(settings_for(sqlite_url, tmp_path))
    app = build_rest_app(container)

    async def boom() -> None:
        raise RuntimeError("internal detail that must not leak")

    app.add_api_route("/api/v1/boom", boom, methods=["GET"])
    try:
        async with asgi_client(app) as client:
            with capture_logs(processors=[merge_contextvars]) as logs:
                response = await client.get("/api/v1/boom", headers={"X-Request-ID": "trace-123"})
    finally:
        await container.engine.dispose()
    problem = assert_problem(response, 500, "INTERNAL_ERROR")
    assert problem["request_id"] == "trace-123"
    assert "internal detail" not in response.text
    failures = [e for e in logs if e["event"] == "unhandled_error"]
    assert failures and failures[0]["request_id"] == "trace-123"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def unreachable_db(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/ekms"
    container = build_container(settings_for(url, tmp_path))
    try:
        async with asgi_client(build_rest_app(container)) as client:
            yield client
    finally:
        await container.engine.dispose()


async def test_database_unreachable_is_503_and_not_ready(
    unreachable_db: httpx.AsyncClient,
) -> None:
    status = await unreachable_db.get("/api/v1/ekms/status", headers=auth(AUDITOR))
    assert_problem(status, 503, "DATABASE_UNAVAILABLE")
    assert status.headers["retry-after"] == "5"
    ready = await unreachable_db.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["reason"] == "DATABASE_UNAVAILABLE"
    assert (await unreachable_db.get("/livez")).status_code == 200


async def test_no_token_source_means_every_call_is_401(sqlite_url: str, tmp_path: Path) -> None:
    container = build_container(settings_for(sqlite_url, tmp_path, jwt_hs256_secret=None))
    assert container.verifier is None
    try:
        async with asgi_client(build_rest_app(container)) as client:
            response = await client.get("/api/v1/ekms/status", headers=auth(AUDITOR))
    finally:
        await container.engine.dispose()
    assert_problem(response, 401, "UNAUTHENTICATED")


@pytest.mark.postgres
async def test_nul_characters_are_422_not_a_database_error(rest_pg: Rest) -> None:  # noqa: F811
    await rest_pg.seed()
    policy = {
        "target_type": "role",
        "target": "a\u0000b",
        "operations": ["encrypt"],
        "result": "track",
    }
    cases: list[tuple[str, str, tuple[str, ...], dict[str, Any] | None, str]] = [
        ("GET", "/api/v1/audit?actor=a%00b", (AUDITOR,), None, "actor"),
        ("GET", "/api/v1/modules/a%00b", (ADMIN,), None, "name"),
        ("POST", f"{M}/policies", (ADMIN,), policy, "target"),
        ("PATCH", M, (ADMIN,), {"description": "a\u0000b"}, "description"),
    ]
    for method, path, roles, body, field in cases:
        response = await rest_pg.call(method, path, roles, json=body)
        problem = assert_problem(response, 422, "INVALID_INPUT")
        assert field in problem["detail"], problem
