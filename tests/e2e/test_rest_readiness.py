"""Readiness and the key chain against moto's KMS server over HTTP: /readyz flips to 503 when
the customer disables the external key (seen by POST /ekms/sync) and back when re-enabled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.rest_support import (
    APP_ROLE,
    AUDITOR,
    KEY_MANAGER,
    Rest,
    b64,
    rest_app,
    settings_for,
)

pytestmark = pytest.mark.kms
FIELD = {"table": "employees", "column": "iban"}


@pytest.fixture
async def aws_rest(
    sqlite_url: str, tmp_path: Path, aws_env: str, moto_server: str
) -> AsyncIterator[Rest]:
    settings = settings_for(
        sqlite_url,
        tmp_path,
        kms_provider="aws",
        local_root_key=None,
        aws_endpoint_url=moto_server,
        allow_insecure_kms_endpoint=True,
        aws_region=aws_env,
    )
    async with rest_app(settings) as env:
        yield env


async def _ready(env: Rest) -> tuple[int, dict[str, Any]]:
    response = await env.client.get("/readyz")
    return response.status_code, response.json()


async def test_readiness_follows_the_external_key(
    aws_rest: Rest, kms_key: str, kms_admin: Any
) -> None:
    env = aws_rest
    assert await _ready(env) == (
        200,
        {
            "ready": True,
            "reason": None,
            "checks": {"database": "ok", "schema": "ok", "key_chain": "not_configured"},
        },
    )
    missing = await env.call("GET", "/api/v1/ekms/config")
    assert missing.json()["reason"] == "NOT_CONFIGURED"

    created = await env.call(
        "PUT", "/api/v1/ekms/config", json={"provider": "aws", "key_id": kms_key}
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/api/v1/ekms/config"
    assert created.json()["active"] is True
    assert (await _ready(env))[0] == 200
    await env.seed()
    body = {**FIELD, "plaintext": b64(b"salary")}
    sealed = await env.ok("POST", "/api/v1/crypto/encrypt", (APP_ROLE,), json=body)

    kms_admin.disable_key(KeyId=kms_key)
    sync = await env.ok("POST", "/api/v1/ekms/sync", (KEY_MANAGER,))
    assert (sync["previous"], sync["status"], sync["changed"]) == ("enabled", "disabled", True)
    status_code, readiness = await _ready(env)
    assert (status_code, readiness["reason"]) == (503, "EXTERNAL_KEY_DISABLED")
    status = await env.ok("GET", "/api/v1/ekms/status", (AUDITOR,))
    assert status["serving"] is False
    assert [a["kind"] for a in status["alerts"]] == ["external_key_unusable"]
    assert "disabled" in status["alerts"][0]["message"]
    refused = await env.call("POST", "/api/v1/crypto/encrypt", (APP_ROLE,), json=body)
    assert (refused.status_code, refused.json()["reason"]) == (409, "EXTERNAL_KEY_DISABLED")
    probe = await env.ok("POST", "/api/v1/ekms/config/test")
    assert (probe["ok"], probe["status"]) == (False, "disabled")

    kms_admin.enable_key(KeyId=kms_key)
    await env.ok("POST", "/api/v1/ekms/sync", (KEY_MANAGER,))
    assert (await _ready(env))[0] == 200
    assert (await env.ok("GET", "/api/v1/ekms/status", (AUDITOR,)))["alerts"] == []
    opened = await env.ok(
        "POST",
        "/api/v1/crypto/decrypt",
        (APP_ROLE,),
        json={**FIELD, "ciphertext": sealed["ciphertext"]},
    )
    assert opened["plaintext"] == b64(b"salary")


async def test_configuring_a_disabled_key_is_a_409(
    aws_rest: Rest, kms_key: str, kms_admin: Any
) -> None:
    kms_admin.disable_key(KeyId=kms_key)
    response = await aws_rest.call(
        "PUT", "/api/v1/ekms/config", json={"provider": "aws", "key_id": kms_key}
    )
    assert response.status_code == 409
    assert response.json()["reason"] == "EXTERNAL_KEY_DISABLED"
    assert response.headers["content-type"] == "application/problem+json"
    assert (await aws_rest.call("GET", "/api/v1/ekms/config")).status_code == 404
