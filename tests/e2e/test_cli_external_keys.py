"""``ekms keys external``: the CLI against a real server (uvicorn on port 0, SQLite, the
embedded default on the local root key): it lists the one key, and the server's refusals
(the last key, the same key twice) reach the operator as the problem's reason."""

from __future__ import annotations

import asyncio
import json

from structlog.testing import capture_logs
from typer.testing import CliRunner, Result

from app.cli import cli
from tests.e2e.rest_support import ADMIN, ADMIN_ROLES, LiveServer, live_server, token

__all__ = ["live_server"]


async def ekms(server: LiveServer, *args: str, code: int = 0) -> Result:
    """Run the CLI off the loop (the server answers on it)."""
    argv = ["--url", server.url, "--token", token(ADMIN), "keys", "external", *args]
    with capture_logs():  # the server's log lines would land in the captured stdout
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, argv, env={"EKMS_URL": None, "COLUMNS": "250"}
        )
    assert result.exit_code == code, (args, result.output, result.exception)
    return result


async def test_the_cli_lists_the_key_and_shows_the_servers_refusals(
    live_server: LiveServer,
) -> None:
    (key,) = json.loads((await ekms(live_server, "list", "--json")).stdout)
    assert (key["provider"], key["first"], key["state"]) == ("local", True, "enabled")
    table = (await ekms(live_server, "list")).stdout
    assert key["key_id"] in table

    last = await ekms(live_server, "remove", key["id"], "--yes", code=1)
    twice = await ekms(live_server, "add", "local", key["key_id"], code=1)

    assert "409 LAST_EXTERNAL_KEY" in last.output
    assert "409 EXTERNAL_KEY_EXISTS" in twice.output
    (still,) = json.loads((await ekms(live_server, "list", "--json")).stdout)
    assert still["id"] == key["id"]


async def test_status_draws_every_key_and_sync_names_each(live_server: LiveServer) -> None:
    adding = await ekms(live_server, "add", "local", "second-root", "-o", "json")
    added = json.loads(adding.stdout)
    assert added["key_id"] == "second-root" and added["first"] is False

    def run(*args: str) -> Result:
        argv = ["--url", live_server.url, "--token", token(*ADMIN_ROLES), *args]
        with capture_logs():
            return CliRunner().invoke(cli, argv, env={"EKMS_URL": None, "COLUMNS": "250"})

    tree = (await asyncio.to_thread(run, "status")).stdout
    synced = (await asyncio.to_thread(run, "sync")).stdout
    await ekms(live_server, "remove", added["id"], "--yes")
    after = (await asyncio.to_thread(run, "status")).stdout

    assert "external keys (2, each wraps the KEK)" in tree
    assert "local:second-root" in tree and f"id {added['id']}" in tree
    assert f"and key {added['id']}: enabled" in synced
    assert "second-root" not in after and "external key local:" in after
