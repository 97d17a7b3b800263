"""Fail-closed on the embedded default (issue 10, finding 12): ``ekms local-key`` disables,
enables and deletes the local root key, and a running server (SQLite and the local root key in
its data directory, nothing else configured) follows at its next sync.

The CLI runs through typer's CliRunner with the environment an operator would have; the server
is the real app from ``bootstrap.running`` behind an in-process ASGI client.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from typer.testing import CliRunner, Result

from app.cli import cli
from app.infra.settings import Settings
from tests.e2e.rest_support import (
    APP_ROLE,
    AUDITOR,
    KEY_MANAGER,
    MODULE,
    SECRET,
    Rest,
    b64,
    rest_app,
)


def embedded(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, jwt_hs256_secret=SECRET, audit_flush_seconds=60)


def local_key(
    data_dir: Path, *args: str, code: int = 0, input: str | None = None, **env: str
) -> Result:
    with capture_logs():
        result = CliRunner().invoke(
            cli,
            ["local-key", *args],
            env={"EKMS_DATA_DIR": str(data_dir), "EKMS_KMS_PROVIDER": "local", **env},
            input=input,
        )
    assert result.exit_code == code, (args, result.output, result.exception)
    return result


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Rest]:
    async with rest_app(embedded(tmp_path)) as env:
        await env.seed()
        yield env


async def encrypt(env: Rest, plaintext: bytes = b"DE89") -> Any:
    return await env.call(
        "POST",
        "/api/v1/crypto/encrypt",
        (APP_ROLE,),
        json={"module": MODULE, "plaintext": b64(plaintext)},
    )


async def decrypt(env: Rest, ciphertext: str) -> Any:
    return await env.call(
        "POST",
        "/api/v1/crypto/decrypt",
        (APP_ROLE,),
        json={"module": MODULE, "ciphertext": ciphertext},
    )


async def sync(env: Rest) -> str:
    body = await env.ok("POST", "/api/v1/ekms/sync", (KEY_MANAGER,))
    return str(body["status"])


def refused_with(response: Any, reason: str) -> bool:
    return response.status_code == 409 and response.json()["reason"] == reason


async def test_disable_then_enable_on_a_running_embedded_server(
    server: Rest, tmp_path: Path
) -> None:
    sealed = (await encrypt(server)).json()["ciphertext"]

    out = local_key(tmp_path, "disable").output
    assert "disabled (was enabled" in out
    assert await sync(server) == "disabled"
    assert refused_with(await encrypt(server), "EXTERNAL_KEY_DISABLED")
    assert refused_with(await decrypt(server, sealed), "EXTERNAL_KEY_DISABLED")
    status = await server.ok("GET", "/api/v1/ekms/status", (AUDITOR,))
    assert status["external_key"]["status"] == "disabled" and not status["serving"]
    assert status["serving_reason"] == "EXTERNAL_KEY_DISABLED"

    local_key(tmp_path, "enable")
    assert await sync(server) == "enabled"
    opened = await decrypt(server, sealed)
    assert opened.status_code == 200 and base64.b64decode(opened.json()["plaintext"]) == b"DE89"
    assert (await encrypt(server)).status_code == 200


async def test_delete_asks_then_destroys_the_root_key_for_good(tmp_path: Path) -> None:
    key_file = tmp_path / "local-root.key"
    async with rest_app(embedded(tmp_path)) as env:
        await env.seed()
        sealed = (await encrypt(env)).json()["ciphertext"]
        assert key_file.exists()

        local_key(tmp_path, "delete", input="n\n", code=1)  # declined: nothing happens
        assert key_file.exists() and await sync(env) == "enabled"

        local_key(tmp_path, "delete", "--yes")
        assert not key_file.exists()
        assert await sync(env) == "deleted"
        assert refused_with(await decrypt(env, sealed), "EXTERNAL_KEY_DELETED")
        local_key(tmp_path, "enable", code=2)  # irreversible

    async with rest_app(embedded(tmp_path)) as env:  # a restart does not mint a new root key
        assert not key_file.exists()
        assert refused_with(await decrypt(env, sealed), "EXTERNAL_KEY_DELETED")


def test_local_key_is_for_the_local_provider_with_a_key_file(tmp_path: Path) -> None:
    local_key(tmp_path, "disable", code=2, EKMS_KMS_PROVIDER="aws")
    env_key = base64.b64encode(b"k" * 32).decode()
    local_key(tmp_path, "delete", "--yes", code=2, EKMS_LOCAL_ROOT_KEY=env_key)
    assert not (tmp_path / "local-root.key.state").exists()
