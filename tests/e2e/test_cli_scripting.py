"""The ``ekms`` admin CLI as scripts use it (issue 12, findings 2 to 6), against a real uvicorn:
``-o json|yaml`` on every command, NDJSON for ``--all``, tables that keep full ids when piped,
readable validation errors, the admin operations that were missing, and ``ekms token`` signing
with the server's own secret."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import text as sql
from structlog.testing import capture_logs
from typer.testing import CliRunner

from app.application.audit_checkpoints import make_checkpoint
from app.cli import cli
from app.infra.settings import Settings
from tests.e2e.rest_support import (
    ADMIN,
    AUDITOR,
    KEY_MANAGER,
    Cli,
    LiveServer,
    live_server,  # noqa: F401 - fixture
    serve,
)

KM = (KEY_MANAGER,)
LONG = "x" * 150  # wider than any terminal default, so a cut table would show


async def out(ekms: Cli, fmt: str, *args: str, roles: tuple[str, ...] = (ADMIN,)) -> Any:
    """The command's stdout, parsed as the format it was asked for."""
    text = (await ekms(*args, "-o", fmt, roles=roles)).stdout
    return json.loads(text) if fmt == "json" else yaml.safe_load(text)


def full_id(value: str) -> str:
    assert str(uuid.UUID(value)) == value
    return value


async def test_modules_and_keys_as_json_yaml_and_whole_tables(live_server: LiveServer) -> None:  # noqa: F811
    ekms = Cli(live_server.url)
    created = await out(ekms, "json", "modules", "create", "global.hr", "--rotation-days", "30")
    module_id = full_id(created["id"])
    assert created["rotation_period_days"] == 30
    shown = await out(ekms, "yaml", "modules", "show", "global.hr")
    assert (shown["id"], shown["destroy_deactivated_after_days"]) == (module_id, None)
    root = yaml.safe_load((await ekms("-o", "yaml", "modules", "list")).stdout)  # before it
    assert [m["id"] for m in root] == [module_id]
    over = json.loads((await ekms("-o", "yaml", "modules", "list", "-o", "json")).stdout)
    assert over == root  # given after the command, it wins

    described = f"[bold]people[/bold] {LONG}"
    updated = await out(
        ekms, "json", "modules", "update", "global.hr", "--description", described, "--no-rotation"
    )
    assert (updated["description"], updated["rotation_period_days"]) == (described, None)
    nothing = await ekms("modules", "update", "global.hr", code=2)
    assert "nothing to change" in nothing.stderr
    both = await ekms(
        "modules", "update", "global.hr", "--rotation-days", "3", "--no-rotation", code=2
    )
    assert "not both" in both.stderr

    listed = (await ekms("modules", "list")).stdout  # piped: never cut, markup shown as text
    assert module_id in listed and described in listed and "…" not in listed
    assert "None" not in listed and " - " in listed  # no rotation: "-"

    assert (await out(ekms, "json", "modules", "rotate", "global.hr", roles=KM))["version"] == 2
    suspended = await out(ekms, "yaml", "keys", "suspend", "global.hr", "1", "--yes", roles=KM)
    assert (suspended["version"], suspended["state"]) == (1, "suspended")
    versions = await out(ekms, "yaml", "keys", "list", "global.hr", roles=KM)
    assert {k["version"]: k["state"] for k in versions} == {1: "suspended", 2: "active"}
    resumed = await out(ekms, "json", "keys", "resume", "global.hr", "1", roles=KM)
    assert resumed["state"] == "deactivated"


async def test_policies_fields_and_deletes(live_server: LiveServer) -> None:  # noqa: F811
    ekms = Cli(live_server.url)
    await ekms("modules", "create", "global.hr")
    ops = await out(ekms, "json", "modules", "create", "global.ops")

    repeated = await ekms("policies", "create", "global.hr", "--role", "a", "--role", "b", code=2)
    assert "--role a, --role b" in repeated.stderr and "nothing was created" in repeated.stderr
    mixed = await ekms("policies", "create", "global.hr", "--role", "a", "--subject", "s", code=2)
    assert "one role or one subject" in mixed.stderr
    assert await out(ekms, "json", "policies", "list", "global.hr") == []
    helped = re.sub(r"[│\s]+", " ", (await ekms("policies", "create", "--help")).stdout)
    assert "left out: encrypt and decrypt (not rewrap)" in helped

    policy = await out(ekms, "json", "policies", "create", "global.hr", "--role", "hr")
    policy_id = full_id(policy["id"])
    assert policy["operations"] == ["decrypt", "encrypt"]
    updated = await out(
        ekms, "json", "policies", "update", policy_id, "--op", "rewrap", "--inactive"
    )
    assert (updated["operations"], updated["active"], updated["target"]) == (
        ["rewrap"],
        False,
        "hr",
    )
    retargeted = await out(ekms, "json", "policies", "update", policy_id, "--subject", "svc")
    assert (retargeted["target_type"], retargeted["target"]) == ("subject", "svc")
    assert retargeted["operations"] == ["rewrap"]  # the parts not given are kept
    await ekms("policies", "update", policy_id, "--role", "hr")
    shown = await out(ekms, "yaml", "policies", "show", policy_id)
    assert (shown["result"], shown["active"]) == ("track", False)
    table = (await ekms("policies", "list", "global.hr")).stdout
    assert policy_id in table and "role:hr" in table and " no " in table
    assert "False" not in table and "True" not in table

    field = await out(ekms, "json", "fields", "create", "employees.name", "global.hr")
    field_id = full_id(field["id"])
    moved = await out(ekms, "json", "fields", "update", field_id, "--module", "global.ops")
    assert (moved["module_id"], moved["active"]) == (ops["id"], True)
    off = await out(ekms, "yaml", "fields", "update", field_id, "--inactive")
    assert (off["module_id"], off["active"]) == (ops["id"], False)
    assert (await out(ekms, "json", "fields", "show", field_id))["column"] == "name"
    fields = (await ekms("fields", "list")).stdout
    assert field_id in fields and "global.ops" in fields and " no " in fields

    gone = await out(ekms, "json", "fields", "delete", field_id, "--yes")
    assert gone == {"id": field_id, "deleted": True}
    assert await out(ekms, "json", "fields", "list") == []
    gone = await out(ekms, "yaml", "policies", "delete", policy_id, "--yes")
    assert gone == {"id": policy_id, "deleted": True}


async def test_config_sync_kek_status_and_audit_as_documents(live_server: LiveServer) -> None:  # noqa: F811
    ekms = Cli(live_server.url)
    assert (await out(ekms, "yaml", "config", "show"))["provider"] == "local"
    assert (await out(ekms, "json", "config", "set", "--sync-interval", "25"))[
        "sync_interval_minutes"
    ] == 25
    assert (await out(ekms, "json", "config", "test"))["ok"] is True
    synced = await out(ekms, "json", "sync", roles=KM)
    assert synced["status"] == "enabled" and synced["inconclusive"] is False
    assert "external key enabled" in (await ekms("sync", roles=KM)).stdout
    rotated = await out(ekms, "json", "kek", "rotate", "--yes", roles=KM)
    full_id(rotated["new_kek_id"])
    status = await out(ekms, "yaml", "status", roles=(AUDITOR,))
    assert status["status"]["serving"] is True and status["keys"] == {}

    await live_server.container.ctx.audit.flush()
    page = await out(ekms, "json", "audit", "--limit", "2", roles=(AUDITOR,))
    assert len(page["items"]) == 2 and page["next_cursor"]
    lines = (await ekms("audit", "--all", "-o", "json", "--limit", "2", roles=(AUDITOR,))).stdout
    events = [json.loads(line) for line in lines.splitlines()]  # NDJSON: one event a line
    assert len(events) > 2 and len({e["id"] for e in events}) == len(events)
    assert {"ekms.config.update", "kek.rotate"} <= {e["action"] for e in events}
    every = await out(ekms, "yaml", "audit", "--all", "--limit", "2", roles=(AUDITOR,))
    assert [e["id"] for e in every] == [e["id"] for e in events]


async def test_audit_verify_says_intact_then_names_an_edited_row(live_server: LiveServer) -> None:  # noqa: F811
    ekms = Cli(live_server.url)
    await out(ekms, "json", "config", "set", "--sync-interval", "25")
    await live_server.container.ctx.audit.flush()
    events = (await ekms("audit", "--all", "-o", "json", roles=(AUDITOR,))).stdout.splitlines()
    report = await out(ekms, "json", "audit", "verify", roles=(AUDITOR,))
    assert report["ok"] is True and report["first_break"] is None
    assert report["checked"] == len(events) > 0
    assert "audit chain intact" in (await ekms("audit", "verify", roles=(AUDITOR,))).stdout
    refused = await ekms("audit", "verify", roles=KM, code=1)
    assert "403" in refused.stderr

    async with live_server.container.engine.begin() as conn:  # as the database owner
        await conn.execute(sql("DROP TRIGGER audit_events_no_update"))
        await conn.execute(sql("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1"))
    broken = await ekms("audit", "verify", "-o", "json", roles=(AUDITOR,), code=1)
    found = json.loads(broken.stdout)["first_break"]
    assert (found["kind"], found["seq"]) == ("altered", 1)
    assert "audit chain broken" in (await ekms("audit", "verify", roles=(AUDITOR,), code=1)).stdout


async def test_audit_checkpoints_export_as_ndjson_that_verifies_offline(
    live_server: LiveServer,  # noqa: F811
) -> None:
    ekms = Cli(live_server.url)
    ctx = live_server.container.ctx
    for interval in ("25", "26", "27"):  # three admin events, a checkpoint after each
        await out(ekms, "json", "config", "set", "--sync-interval", interval)
        assert await make_checkpoint(ctx, rows=10_000, seconds=3600, force=True) is not None
    lines = (
        await ekms("audit", "checkpoints", "--all", "-o", "json", "--limit", "2", roles=(AUDITOR,))
    ).stdout.splitlines()
    exported = [json.loads(line) for line in lines]  # NDJSON across two pages
    assert len(exported) >= 3  # and any the process made itself
    status = await out(ekms, "json", "status", roles=(AUDITOR,))
    pinned = status["status"]["audit_signing_key"]["public_key"]
    previous = 0
    for cp in exported:  # the offline check of docs/audit.md
        assert cp["public_key"] == pinned and cp["algorithm"] == "Ed25519"
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(pinned))
        key.verify(base64.b64decode(cp["signature"]), cp["payload"].encode())
        signed = json.loads(cp["payload"])
        assert (signed["seq"], signed["hash"]) == (cp["seq"], cp["hash"])
        assert signed["seq"] - signed["count"] == previous
        previous = signed["seq"]
    table = (await ekms("audit", "checkpoints", roles=(AUDITOR,))).stdout
    assert "audit checkpoints" in table and str(exported[-1]["seq"]) in table
    assert "audit signing key" in (await ekms("status", roles=(AUDITOR,))).stdout
    report = await out(ekms, "json", "audit", "verify", roles=(AUDITOR,))
    assert report["ok"] is True and report["checkpoints"] >= len(exported)
    assert report["keys_verified"] is True
    bad = await ekms("audit", "checkpoints", "--cursor", "x1", roles=(AUDITOR,), code=1)
    assert "INVALID_INPUT" in bad.stderr
    refused = await ekms("audit", "checkpoints", roles=KM, code=1)
    assert "403" in refused.stderr


async def test_validation_errors_read_as_sentences_naming_the_field(
    live_server: LiveServer,  # noqa: F811
) -> None:
    ekms = Cli(live_server.url)
    bad_name = await ekms("modules", "create", "Payroll", code=1)
    assert "422 INVALID_INPUT" in bad_name.stderr
    assert "name must be 2 to 4 dot-separated parts" in bad_name.stderr
    assert "should match pattern" not in bad_name.stderr
    bad_access = await ekms("modules", "create", "global.hr", "--default-access", "maybe", code=1)
    assert "default_access must be 'track', 'reject' or 'strict_reject'." in bad_access.stderr
    short_id = await ekms("policies", "delete", "e1ccdf33", "--yes", code=1)
    assert "policy_id (in the path) must be a full id" in short_id.stderr
    bad_field = await ekms("fields", "create", "1st.name", "global.hr", code=1)
    assert "table must be an SQL identifier" in bad_field.stderr


def test_version_and_shell_completion() -> None:
    runner = CliRunner()
    version = runner.invoke(cli, ["--version"])
    assert version.exit_code == 0 and version.stdout.startswith("ekms ")
    script = runner.invoke(cli, ["--show-completion", "bash"], prog_name="ekms")
    assert script.exit_code == 0 and "complete -o default -F _ekms_completion ekms" in script.stdout
    # what that script asks: the words after `ekms policies u`
    completion = {"_EKMS_COMPLETE": "complete_bash", "COMP_WORDS": "ekms policies u"}
    words = runner.invoke(cli, [], prog_name="ekms", env={**completion, "COMP_CWORD": "2"})
    assert words.exit_code == 0 and words.stdout.split() == ["update"]


async def test_token_signs_with_the_servers_secret_or_refuses(tmp_path: Path) -> None:
    data_dir, elsewhere = tmp_path / "server", tmp_path / "elsewhere"
    data_dir.mkdir()
    elsewhere.mkdir()
    # The embedded default with no EKMS_JWT_*: the server checks tokens against the dev secret
    # it created in its data directory.
    async with serve(Settings(data_dir=data_dir, audit_flush_seconds=60)) as live:
        runner = CliRunner()
        env = {"EKMS_DATA_DIR": str(data_dir), "EKMS_JWT_HS256_SECRET": None}
        minted = runner.invoke(cli, ["token", "--sub", "ops", "--role", ADMIN], env=env)
        assert minted.exit_code == 0, minted.output
        headers = {"Authorization": f"Bearer {minted.stdout.strip()}"}
        async with httpx.AsyncClient(base_url=live.url) as client:
            assert (await client.get("/api/v1/modules", headers=headers)).status_code == 200

        refused = runner.invoke(
            cli, ["token", "--sub", "ops"], env={**env, "EKMS_DATA_DIR": str(elsewhere)}
        )
        assert refused.exit_code == 2 and refused.stdout == ""
        assert f"no development JWT secret at {elsewhere.resolve()}" in refused.stderr
        assert "EKMS_DATA_DIR" in refused.stderr
        assert list(elsewhere.iterdir()) == []  # no new secret was made

        # -o json on the commands that run ekms itself, with the same settings as the server
        as_json = runner.invoke(
            cli, ["-o", "json", "token", "--sub", "km", "--role", KM[0]], env=env
        )
        assert as_json.exit_code == 0, as_json.output
        minted_json = json.loads(as_json.stdout)
        assert (minted_json["sub"], minted_json["roles"]) == ("km", [KM[0]])
        env_km = {**env, "EKMS_KMS_PROVIDER": "local"}
        disabled = runner.invoke(cli, ["local-key", "disable", "-o", "json"], env=env_km)
        assert disabled.exit_code == 0, disabled.output
        assert json.loads(disabled.stdout)["state"] == "disabled"
        # the server, with the token `ekms token` minted, sees it at once (CliRunner in a thread)
        sync = ["sync", "-o", "json", "--url", live.url, "--token", minted_json["token"]]
        with capture_logs():
            synced = await asyncio.to_thread(runner.invoke, cli, sync)
        assert synced.exit_code == 0 and json.loads(synced.stdout)["status"] == "disabled"
        enabled = runner.invoke(cli, ["local-key", "enable", "-o", "yaml"], env=env_km)
        assert yaml.safe_load(enabled.stdout)["previous"] == "disabled"


def test_migrate_as_json(tmp_path: Path) -> None:
    # In a process of its own, as an operator runs it: `migrate` configures the process's logging
    # (structlog caches loggers on first use), which in this process would outlive the test and
    # blind later tests' capture_logs.
    env = {k: v for k, v in os.environ.items() if not k.startswith("EKMS_")}
    result = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "migrate", "-o", "json"],
        env={**env, "EKMS_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["at_head"] is True
