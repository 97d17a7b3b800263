"""``ekms xks stores|keys``: the CLI against a real server (uvicorn on port 0, SQLite, the
embedded default): a store is created with its AWS console file printed once, rotated, a key
created, disabled and deleted, the store moved to another region; the server's refusals reach
the operator."""

from __future__ import annotations

import asyncio
import json

from structlog.testing import capture_logs
from typer.testing import CliRunner, Result

from app.cli import cli
from tests.e2e.rest_support import ADMIN, KEY_MANAGER, LiveServer, live_server, token

__all__ = ["live_server"]


async def ekms(server: LiveServer, *args: str, role: str = ADMIN, code: int = 0) -> Result:
    argv = ["--url", server.url, "--token", token(role), "xks", *args]
    with capture_logs():
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, argv, env={"EKMS_URL": None, "COLUMNS": "250"}
        )
    assert result.exit_code == code, (args, result.output, result.exception)
    return result


async def test_stores_and_keys_through_the_cli(live_server: LiveServer) -> None:
    created = await ekms(live_server, "stores", "create", "pay", "eu-west-1", "--uri-prefix", "/p")
    console = json.loads(created.stdout.split("console file:\n", 1)[1])
    assert console["XksProxyUriPath"] == "/p/kms/xks/v1"
    credential = console["XksProxyAuthenticationCredential"]
    assert len(credential["AccessKeyId"]) == 24 and len(credential["RawSecretAccessKey"]) == 44

    (store,) = json.loads((await ekms(live_server, "stores", "list", "-o", "json")).stdout)
    assert store["name"] == "pay" and "RawSecretAccessKey" not in json.dumps(store)
    rotated = json.loads(
        (await ekms(live_server, "stores", "rotate", store["id"], "-o", "json")).stdout
    )
    assert len(rotated["credentials"]) == 2 and rotated["issued_credential"]["AccessKeyId"]
    await ekms(live_server, "stores", "rotate", store["id"], code=1)  # two already: refused
    await ekms(live_server, "stores", "remove-credential", store["id"], credential["AccessKeyId"])

    made = await ekms(
        live_server, "keys", "create", store["id"], "--external-key-id", "k1",
        "--usage", "encrypt", "-o", "json", role=KEY_MANAGER,
    )  # fmt: skip
    key = json.loads(made.stdout)
    assert key["usage"] == ["ENCRYPT"] and key["status"] == "ENABLED" and key["backend"] == "ekms"
    # No PKCS#11 token on this server: the HSM backend is refused, nothing is made.
    no_hsm = await ekms(
        live_server, "keys", "create", store["id"], "--backend", "pkcs11",
        role=KEY_MANAGER, code=1,
    )  # fmt: skip
    assert "PKCS#11" in no_hsm.output
    moved = await ekms(live_server, "stores", "set-region", store["id"], "us-west-2")
    assert "now in us-west-2" in moved.stdout
    await ekms(live_server, "stores", "set-region", store["id"], "mars", code=1)
    await ekms(live_server, "keys", "create", store["id"], role=ADMIN, code=1)  # wrong role
    disabled = await ekms(live_server, "keys", "disable", key["id"], role=KEY_MANAGER)
    assert "k1 disabled" in disabled.stdout
    listed = (await ekms(live_server, "keys", "list", role=KEY_MANAGER)).stdout
    assert "k1" in listed and "disabled" in listed
    await ekms(live_server, "keys", "delete", key["id"], "--yes", role=KEY_MANAGER)
    await ekms(live_server, "stores", "delete", store["id"], "--yes")
    assert json.loads((await ekms(live_server, "stores", "list", "-o", "json")).stdout) == []
