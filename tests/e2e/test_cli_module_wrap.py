"""``ekms modules`` and ``ekms status`` show which modules depend on the external key, and move
one between the external chain and the local KEK, against a real uvicorn (issue 14, item 3)."""

from __future__ import annotations

import json

from tests.e2e.rest_support import (
    AUDITOR,
    KEY_MANAGER,
    Cli,
    LiveServer,
    live_server,  # noqa: F401 - fixture
)


async def test_the_cli_creates_lists_moves_and_shows_local_modules(
    live_server: LiveServer,  # noqa: F811
) -> None:
    ekms = Cli(live_server.url)
    created = json.loads(
        (
            await ekms("modules", "create", "global.catalog", "--no-external-wrap", "-o", "json")
        ).stdout
    )
    assert created["external_wrap"] is False
    await ekms("modules", "create", "global.payroll")
    table = (await ekms("modules", "list")).stdout
    assert any("wrap" in line for line in table.splitlines()[:4])  # the header

    def row(name: str) -> str:
        return next(line for line in table.splitlines() if name in line)

    assert "local" in row("global.catalog") and "external" not in row("global.catalog")
    assert "external" in row("global.payroll")

    tree = (await ekms("status", roles=(AUDITOR,))).stdout
    assert "local KEK" in tree and "not revocable through the external key" in tree
    assert tree.index("global.payroll") < tree.index("local KEK") < tree.index("global.catalog")

    moved = await ekms("modules", "update", "global.catalog", "--external-wrap")
    assert "(external wrap)" in moved.stdout
    status = json.loads((await ekms("status", "-o", "json", roles=(AUDITOR,))).stdout)
    assert {m["name"]: m["external_wrap"] for m in status["status"]["modules"]} == {
        "global.catalog": True,
        "global.payroll": True,
    }
    bad = await ekms("modules", "update", "global.nothing", "--no-external-wrap", code=1)
    assert "MODULE_NOT_FOUND" in bad.output or "does not exist" in bad.output


async def test_the_cli_rotates_the_local_kek(live_server: LiveServer) -> None:  # noqa: F811
    ekms = Cli(live_server.url)
    refused = await ekms("kek", "rotate", "--local", "--yes", roles=(KEY_MANAGER,), code=1)
    assert "LOCAL_KEK_UNAVAILABLE" in refused.output  # no local module yet: no local KEK
    await ekms("modules", "create", "global.catalog", "--no-external-wrap")
    before = json.loads((await ekms("keys", "list", "global.catalog", "-o", "json")).stdout)
    done = await ekms("kek", "rotate", "--local", "--yes", "-o", "json", roles=(KEY_MANAGER,))
    rotated = json.loads(done.stdout)
    assert rotated["old_kek_id"] == before[0]["kek_id"] != rotated["new_kek_id"]
    assert rotated["rewrapped_keys"] == 1
    after = json.loads((await ekms("keys", "list", "global.catalog", "-o", "json")).stdout)
    assert [k["kek_id"] for k in after] == [rotated["new_kek_id"]]
    text = await ekms("kek", "rotate", "--local", "--yes", roles=(KEY_MANAGER,))
    assert "local KEK rotated" in text.stdout and "1 key versions rewrapped" in text.stdout
