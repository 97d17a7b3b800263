"""A real uvicorn on 127.0.0.1, port 0: a smoke test over a real socket, and the ``ekms`` admin
CLI driven end to end against it (CliRunner in a worker thread; the server keeps this loop)."""

from __future__ import annotations

import socket

import httpx

from tests.e2e.rest_support import (
    AUDITOR,
    KEY_MANAGER,
    Cli,
    LiveServer,
    auth,
    live_server,  # noqa: F401 - fixture
)


async def test_smoke_over_a_real_socket(live_server: LiveServer) -> None:  # noqa: F811
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        assert (await client.get("/livez")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
        status = await client.get("/api/v1/ekms/status", headers=auth(AUDITOR))
        assert status.status_code == 200 and status.json()["serving"] is True
        assert status.headers["x-content-type-options"] == "nosniff"
        assert status.headers["cache-control"] == "no-store"
        refused = await client.get("/api/v1/ekms/status")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        # The metrics have their own listener (finding 8): the public port does not serve them.
        hidden = await client.get("/metrics")
        assert hidden.status_code == 404
        assert hidden.headers["content-type"] == "application/problem+json"


async def test_cli_end_to_end(live_server: LiveServer) -> None:  # noqa: F811
    ekms = Cli(live_server.url)
    KM = (KEY_MANAGER,)

    assert "ekms-local-root" in (await ekms("config", "show")).stdout
    assert "updated" in (await ekms("config", "set", "--sync-interval", "20")).stdout
    assert (await ekms.json("config", "show"))["sync_interval_minutes"] == 20
    assert "ok" in (await ekms("config", "test")).stdout

    await ekms("modules", "create", "global.hr", "--description", "people")
    assert [m["name"] for m in await ekms.json("modules", "list")] == ["global.hr"]
    assert "key version 2" in (await ekms("modules", "rotate", "global.hr", roles=KM)).stdout

    declined = await ekms("keys", "suspend", "global.hr", "1", roles=KM, input="n\n", code=1)
    assert "aborted" in declined.output
    states = {
        k["version"]: k["state"] for k in await ekms.json("keys", "list", "global.hr", roles=KM)
    }
    assert states == {1: "deactivated", 2: "active"}
    await ekms("keys", "suspend", "global.hr", "1", "--yes", roles=KM)
    await ekms("keys", "resume", "global.hr", "1", roles=KM)
    await ekms("keys", "revoke", "global.hr", "1", "--reason", "retired", roles=KM, input="y\n")
    assert (
        "destroyed" in (await ekms("keys", "destroy", "global.hr", "1", "--yes", roles=KM)).stdout
    )
    table = (await ekms("keys", "list", "global.hr", roles=KM)).stdout
    assert "destroyed" in table and "active" in table

    await ekms(
        "policies", "create", "global.hr", "--role", "hr", "--op", "encrypt", "--op", "decrypt"
    )
    [policy] = await ekms.json("policies", "list", "global.hr")
    assert (policy["target"], policy["operations"]) == ("hr", ["decrypt", "encrypt"])
    await ekms("policies", "delete", policy["id"], "--yes")
    assert await ekms.json("policies", "list", "global.hr") == []

    await ekms("fields", "create", "employees.name", "global.hr")
    assert "employees.name" in (await ekms("fields", "list")).stdout
    [field] = await ekms.json("fields", "list")
    await ekms("fields", "delete", field["id"], "--yes")

    rotated = await ekms("kek", "rotate", "--yes", roles=KM)
    assert "KEK rotated" in rotated.stdout and "key versions rewrapped" in rotated.stdout

    await live_server.container.ctx.audit.flush()
    first = await ekms("audit", "--limit", "3", roles=(AUDITOR,))
    assert "more: ekms audit --cursor" in first.stderr
    everything = await ekms("audit", "--all", "--json", "--limit", "4", roles=(AUDITOR,))
    assert "key.destroy" in everything.stdout and "kek.rotate" in everything.stdout

    tree = (await ekms("status", roles=(AUDITOR,))).stdout
    assert "ekms key chain" in tree and "serving" in tree
    assert "global.hr" in tree and "v2" in tree


async def test_cli_reports_problems_and_connection_errors(live_server: LiveServer) -> None:  # noqa: F811
    ekms = Cli(live_server.url)
    unauthenticated = await ekms("modules", "list", roles=(), code=1)
    assert "401 UNAUTHENTICATED" in unauthenticated.stderr
    forbidden = await ekms("kek", "rotate", "--yes", roles=(AUDITOR,), code=1)
    assert "403 ROLE_REQUIRED" in forbidden.stderr
    invalid = await ekms("modules", "create", "NoScope", code=1)
    assert "422 INVALID_INPUT" in invalid.stderr and "name" in invalid.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    unreachable = await Cli(closed)("status", code=1)
    assert "cannot reach ekms" in unreachable.stderr
