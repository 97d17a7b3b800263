"""The REST resources end to end on a real container: configuration, modules, key lifecycle,
policies, field configurations, the data plane, KEK rotation, audit paging, headers, metrics
and logs."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from app.api.metrics_app import metrics_app
from app.infra.metrics import REGISTRY
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
    token,
)

M = f"/api/v1/modules/{MODULE}"
FIELD = {"table": "employees", "column": "iban"}
FORBIDDEN_KEYS = {"wrapped_dek", "wrapped_kek", "key", "dek", "kek", "secret"}


def _keys_of(data: Any) -> set[str]:
    if isinstance(data, dict):
        return set(data) | {k for v in data.values() for k in _keys_of(v)}
    if isinstance(data, list):
        return {k for v in data for k in _keys_of(v)}
    return set()


async def test_configuration_read_update_test_and_status(rest: Rest) -> None:  # noqa: F811
    config = await rest.ok("GET", "/api/v1/ekms/config")
    assert (config["provider"], config["active"]) == ("local", True)
    updated = await rest.call(
        "PUT",
        "/api/v1/ekms/config",
        json={"provider": "local", "key_id": "ekms-local-root", "sync_interval_minutes": 15},
    )
    assert updated.status_code == 200
    assert updated.json()["sync_interval_minutes"] == 15
    probe = await rest.ok("POST", "/api/v1/ekms/config/test")
    assert probe["ok"] is True and probe["status"] == "enabled"
    status = await rest.ok("GET", "/api/v1/ekms/status", (AUDITOR,))
    assert status["serving"] is True and status["alerts"] == []
    assert status["external_key"]["status"] == "enabled"
    assert len(status["instance_key"]["kek_fingerprint"]) == 32
    sync = await rest.ok("POST", "/api/v1/ekms/sync", (KEY_MANAGER,))
    assert sync["status"] == "enabled"


async def test_module_and_key_lifecycle(rest: Rest) -> None:  # noqa: F811
    created = await rest.call(
        "POST", "/api/v1/modules", json={"name": MODULE, "description": "pay"}
    )
    assert created.status_code == 201
    assert created.headers["location"] == M
    assert created.json()["algorithm"] == "AES-256-GCM"
    assert [m["name"] for m in await rest.ok("GET", "/api/v1/modules", (AUDITOR,))] == [MODULE]
    patched = await rest.ok("PATCH", M, json={"default_access": "track"})
    assert patched["default_access"] == "track" and patched["description"] == "pay"

    rotated = await rest.call("POST", f"{M}/keys/rotate", (KEY_MANAGER,))
    assert rotated.status_code == 201 and rotated.json()["version"] == 2
    assert (await rest.ok("POST", f"{M}/keys/1/suspend", (KEY_MANAGER,)))["state"] == "suspended"
    assert (await rest.ok("POST", f"{M}/keys/1/resume", (KEY_MANAGER,)))["state"] == "deactivated"
    revoked = await rest.ok(
        "POST", f"{M}/keys/2/revoke", (KEY_MANAGER,), json={"reason": "leaked in a log"}
    )
    assert revoked["state"] == "revoked"
    destroyed = await rest.ok("POST", f"{M}/keys/1/destroy", (KEY_MANAGER,))
    assert destroyed["state"] == "destroyed" and destroyed["has_key_material"] is False
    keys = await rest.ok("GET", f"{M}/keys", (KEY_MANAGER,))
    assert [(k["version"], k["state"]) for k in keys] == [
        (1, "destroyed"),
        (2, "revoked"),
        (3, "active"),  # revoking the active version made a new one
    ]
    assert not _keys_of(keys) & FORBIDDEN_KEYS


async def test_policies_and_field_configs(rest: Rest) -> None:  # noqa: F811
    seeded = await rest.seed()
    policy_id = seeded["policy"]["id"]
    assert (await rest.ok("GET", f"/api/v1/policies/{policy_id}"))["result"] == "track"
    assert len(await rest.ok("GET", f"{M}/policies")) == 1
    body = {**FIELD, "plaintext": b64(b"x")}
    assert (
        await rest.call("POST", "/api/v1/crypto/encrypt", (APP_ROLE,), json=body)
    ).status_code == 200
    replaced = await rest.ok(
        "PUT",
        f"/api/v1/policies/{policy_id}",
        json={
            "target_type": "role",
            "target": APP_ROLE,
            "operations": ["encrypt"],
            "result": "strict_reject",
        },
    )
    assert replaced["result"] == "strict_reject"
    denied = await rest.call("POST", "/api/v1/crypto/encrypt", (APP_ROLE,), json=body)
    assert denied.json()["reason"] == "MAP_REJECTED"
    assert (await rest.call("DELETE", f"/api/v1/policies/{policy_id}")).status_code == 204
    assert (await rest.call("GET", f"/api/v1/policies/{policy_id}")).status_code == 404

    field_id = seeded["field"]["id"]
    await rest.ok("POST", "/api/v1/modules", json={"name": "global.hr"})
    moved = await rest.ok(
        "PATCH", f"/api/v1/field-configs/{field_id}", json={"module": "global.hr"}
    )
    assert moved["module_id"] != seeded["module"]["id"]
    assert [f["id"] for f in await rest.ok("GET", "/api/v1/field-configs")] == [field_id]
    assert (await rest.call("DELETE", f"/api/v1/field-configs/{field_id}")).status_code == 204
    assert await rest.ok("GET", "/api/v1/field-configs") == []


async def _round_trip(rest: Rest) -> None:  # noqa: F811
    plaintext = b"DE89 3704 0044 0532 0130 00"
    context = b64(b"employee-42")
    sealed = await rest.ok(
        "POST",
        "/api/v1/crypto/encrypt",
        (APP_ROLE,),
        json={**FIELD, "plaintext": b64(plaintext), "context": context},
    )
    assert sealed["ciphertext"].startswith("ekms:v1:") and sealed["key_version"] == 1
    rotation = await rest.ok("POST", "/api/v1/ekms/kek/rotate", (KEY_MANAGER,))
    assert rotation["rewrapped_keys"] == 1
    status = await rest.ok("GET", "/api/v1/ekms/status", (AUDITOR,))
    assert status["instance_key"]["kek_fingerprint"] == rotation["new_fingerprint"]
    opened = await rest.ok(
        "POST",
        "/api/v1/crypto/decrypt",
        (APP_ROLE,),
        json={**FIELD, "ciphertext": sealed["ciphertext"], "context": context},
    )
    assert base64.b64decode(opened["plaintext"]) == plaintext


async def test_data_plane_survives_kek_rotation(rest: Rest) -> None:  # noqa: F811
    await rest.seed()
    await _round_trip(rest)


@pytest.mark.postgres
async def test_data_plane_and_audit_on_postgres(rest_pg: Rest) -> None:  # noqa: F811
    await rest_pg.seed()
    await _round_trip(rest_pg)
    await _page_through_audit(rest_pg)


async def _page_through_audit(rest: Rest) -> None:  # noqa: F811
    await rest.flush_audit()
    everything = await rest.ok("GET", "/api/v1/audit", (AUDITOR,), params={"limit": 500})
    assert everything["next_cursor"] is None
    ids: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await rest.ok(
            "GET", "/api/v1/audit", (AUDITOR,), params={"limit": 2, "cursor": cursor}
        )
        ids += [e["id"] for e in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids == [e["id"] for e in everything["items"]]
    assert pages >= 3


async def test_audit_filters_and_paging(rest: Rest) -> None:  # noqa: F811
    await rest.seed()
    await rest.call(
        "POST", "/api/v1/crypto/encrypt", ("intruder",), json={**FIELD, "plaintext": b64(b"x")}
    )
    await _page_through_audit(rest)
    created = await rest.ok("GET", "/api/v1/audit", (AUDITOR,), params={"action": "module.create"})
    assert [(e["action"], e["module"], e["actor"]) for e in created["items"]] == [
        ("module.create", MODULE, "alice")
    ]
    denied = await rest.ok("GET", "/api/v1/audit", (AUDITOR,), params={"result": "denied"})
    assert [e["reason"] for e in denied["items"]] == ["MAP_REJECTED"]
    by_actor = await rest.ok("GET", "/api/v1/audit", (AUDITOR,), params={"actor": "system:ekms"})
    assert {e["action"] for e in by_actor["items"]} == {"ekms.configure"}
    first = created["items"][0]["at"]
    later = await rest.ok(
        "GET", "/api/v1/audit", (AUDITOR,), params={"since": first, "action": "module.create"}
    )
    assert len(later["items"]) == 1
    none = await rest.ok(
        "GET", "/api/v1/audit", (AUDITOR,), params={"until": first, "action": "module.create"}
    )
    assert none["items"] == []


async def test_security_headers_request_id_and_no_cors(rest: Rest) -> None:  # noqa: F811
    for path, headers in (
        ("/api/v1/modules", auth(ADMIN)),
        ("/livez", {}),
        ("/api/v1/modules", {}),
    ):
        response = await rest.client.get(path, headers=headers)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert len(response.headers["x-request-id"]) == 32
    echoed = await rest.client.get("/livez", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    replaced = await rest.client.get("/livez", headers={"X-Request-ID": "bad id\twith spaces"})
    assert replaced.headers["x-request-id"] != "bad id\twith spaces"
    preflight = await rest.client.options(
        "/api/v1/modules",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    docs = await rest.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_move_after_calls(rest: Rest) -> None:  # noqa: F811
    await rest.seed()
    labels = {"method": "GET", "route": "/api/v1/modules/{name}", "status": "200"}
    before = _sample("ekms_http_requests_total", labels)
    latency = {"method": "GET", "route": "/api/v1/modules/{name}"}
    latency_before = _sample("ekms_http_request_seconds_count", latency)
    crypto = {
        "module": "global.payroll",  # the field's module: counted by the data plane, any adapter
        "operation": "encrypt",
        "result": "success",
    }
    crypto_before = _sample("ekms_crypto_operations_total", crypto)
    for _ in range(2):
        await rest.ok("GET", M)
    await rest.ok(
        "POST", "/api/v1/crypto/encrypt", (APP_ROLE,), json={**FIELD, "plaintext": b64(b"x")}
    )
    assert _sample("ekms_http_requests_total", labels) == before + 2
    assert _sample("ekms_http_request_seconds_count", latency) == latency_before + 2
    assert _sample("ekms_crypto_operations_total", crypto) == crypto_before + 1
    async with asgi_client(metrics_app) as scraper:  # the metrics listener's app
        exposition = (await scraper.get("/metrics")).text
    assert 'route="/api/v1/modules/{name}"' in exposition
    assert f'route="{M}"' not in exposition  # the template, never the raw path


async def test_logs_bind_request_and_subject_and_carry_no_secrets(rest: Rest) -> None:  # noqa: F811
    await rest.seed()
    bearer = token(APP_ROLE, sub="payroll-svc")
    plaintext = b"IBAN-DE89370400440532013000"
    with capture_logs(processors=[merge_contextvars]) as logs:
        response = await rest.client.post(
            "/api/v1/crypto/encrypt",
            json={**FIELD, "plaintext": b64(plaintext)},
            headers={"Authorization": f"Bearer {bearer}", "X-Request-ID": "req-42"},
        )
        await rest.client.get("/api/v1/modules", headers={"Authorization": f"Bearer {bearer}x"})
    assert response.status_code == 200
    access = [e for e in logs if e["event"] == "http_request"]
    assert access[0]["request_id"] == "req-42" and access[0]["subject"] == "payroll-svc"
    assert access[0]["route"] == "/api/v1/crypto/encrypt" and access[0]["status"] == 200
    assert "subject" not in access[1]  # the refused token names nobody
    dumped = json.dumps(logs, default=str)
    for secret in (bearer, b64(plaintext), plaintext.decode(), response.json()["ciphertext"]):
        assert secret not in dumped


async def test_openapi_documents_every_route(rest: Rest) -> None:  # noqa: F811
    doc = (await rest.client.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert {t["name"] for t in doc["tags"]} >= {"config", "modules", "keys", "audit", "crypto"}
    operations = [
        (path, method, op)
        for path, item in doc["paths"].items()
        if path.startswith("/api/v1")
        for method, op in item.items()
    ]
    # 26 + 3 /ekms/external-keys + 8 /crypto + DELETE /ekms/config + /audit/verify + explain
    # + /audit/checkpoints + 10 /xks/stores and /xks/keys
    assert len(operations) == 52
    for path, method, op in operations:
        codes = set(op["responses"])
        assert {"401", "403", "500", "503"} <= codes, (path, method)
        assert op["security"] == [{"bearerAuth": []}], (path, method)
        assert op["tags"], (path, method)
        for code, response in op["responses"].items():
            if int(code) >= 400:
                assert list(response["content"]) == ["application/problem+json"], (path, code)
        if "requestBody" in op:
            assert {"400", "413", "415", "422"} <= codes, (path, method)
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]
