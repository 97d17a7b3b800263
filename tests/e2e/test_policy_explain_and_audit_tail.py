"""Issue 17, items 5 and 6: the MAP debugger (``POST /modules/{name}/policies/explain``, ``ekms
policies explain``), the audit newest first (``order=desc``, ``ekms audit --order desc``) and
``ekms audit tail [-f]``, against the REST app and a live uvicorn."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.e2e.rest_support import (
    ADMIN,
    AUDITOR,
    Cli,
    LiveServer,
    Rest,
    live_server,  # noqa: F401 - fixture
    rest,  # noqa: F401 - fixture
    rest_on_each_db,  # noqa: F401 - fixture
    token,
)

M = "/api/v1/modules/global.payroll"
EXPLAIN = f"{M}/policies/explain"


async def _policies(rest: Rest) -> dict[str, str]:  # noqa: F811
    await rest.ok("POST", "/api/v1/modules", json={"name": "global.payroll"})
    bodies = {
        "grant": ("role", "payroll", ["encrypt", "decrypt"], "track", True),
        "ban": ("subject", "mallory", ["decrypt"], "strict_reject", True),
        "off": ("role", "payroll", ["rewrap"], "track", False),
    }
    ids = {}
    for name, (kind, target, ops, result, active) in bodies.items():
        body = {"target_type": kind, "target": target, "operations": ops, "result": result}
        ids[name] = (await rest.ok("POST", f"{M}/policies", json={**body, "active": active}))["id"]
    return ids


def _effects(answer: dict[str, Any], ids: dict[str, str]) -> dict[str, tuple[bool, str]]:
    by_id = {p["id"]: (p["matched"], p["effect"]) for p in answer["policies"]}
    return {name: by_id[policy_id] for name, policy_id in ids.items()}


async def test_explain_gives_the_decision_and_every_policy(rest: Rest) -> None:  # noqa: F811
    ids = await _policies(rest)
    before = await rest.ok("GET", f"{M}/policies")

    ask = {"subject": "mallory", "roles": ["payroll"], "operation": "decrypt"}
    banned = await rest.ok("POST", EXPLAIN, json=ask)
    assert (banned["allowed"], banned["result"], banned["decided_by"]) == (
        False,
        "strict_reject",
        ids["ban"],
    )
    assert _effects(banned, ids) == {
        "grant": (True, "outweighed"),
        "ban": (True, "decided"),
        "off": (False, "inactive"),
    }
    assert "decrypt denied (strict_reject)" in banned["explanation"]

    granted = await rest.ok("POST", EXPLAIN, json={**ask, "subject": "bob", "operation": "encrypt"})
    assert (granted["allowed"], granted["decided_by"]) == (True, ids["grant"])
    assert _effects(granted, ids)["ban"] == (False, "no_match")

    nobody = await rest.ok("POST", EXPLAIN, json={"subject": "bob", "operation": "rewrap"})
    assert (nobody["allowed"], nobody["result"], nobody["decided_by"]) == (False, "reject", None)
    assert nobody["default_access"] == "reject" and "the module default" in nobody["explanation"]
    assert await rest.ok("GET", f"{M}/policies") == before  # a dry run


async def test_explain_refuses_bad_input_unknown_modules_and_non_admins(rest: Rest) -> None:  # noqa: F811
    await _policies(rest)
    ask = {"subject": "bob", "roles": [], "operation": "decrypt"}
    cases = [
        ("/api/v1/modules/global.nothing/policies/explain", ask, (ADMIN,), 404),
        (EXPLAIN, {**ask, "operation": "sign"}, (ADMIN,), 422),
        (EXPLAIN, {**ask, "subject": ""}, (ADMIN,), 422),
        (EXPLAIN, {**ask, "roles": [""]}, (ADMIN,), 422),
        (EXPLAIN, {**ask, "extra": 1}, (ADMIN,), 422),
        (EXPLAIN, ask, (AUDITOR,), 403),
    ]
    for path, body, roles, status in cases:
        answer = await rest.call("POST", path, roles, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"


async def test_audit_newest_first_pages_with_the_cursor(rest_on_each_db: Rest) -> None:  # noqa: F811
    await _policies(rest_on_each_db)
    await rest_on_each_db.flush_audit()
    oldest_first = (
        await rest_on_each_db.ok("GET", "/api/v1/audit", (AUDITOR,), params={"limit": 500})
    )["items"]
    assert len(oldest_first) >= 4
    newest_first: list[dict[str, Any]] = []
    params: dict[str, Any] = {"order": "desc", "limit": 2}
    while True:
        page = await rest_on_each_db.ok("GET", "/api/v1/audit", (AUDITOR,), params=params)
        newest_first.extend(page["items"])
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert [e["id"] for e in newest_first] == [e["id"] for e in reversed(oldest_first)]
    wrong = await rest_on_each_db.call(
        "GET", "/api/v1/audit", (AUDITOR,), params={"order": "newest"}
    )
    assert wrong.status_code == 422


async def test_cli_explain_order_and_tail(live_server: LiveServer) -> None:  # noqa: F811
    ekms = Cli(live_server.url)
    await ekms("modules", "create", "global.payroll")
    await ekms("policies", "create", "global.payroll", "--role", "payroll", "--op", "decrypt")
    args = ["policies", "explain", "global.payroll", "--subject", "bob", "--op", "decrypt"]
    table = (await ekms(*args, "--role", "payroll")).stdout
    assert table.startswith("allowed: decrypt allowed (track)") and "decided" in table
    denied = json.loads((await ekms(*args, "-o", "json")).stdout)
    assert (denied["allowed"], denied["policies"][0]["effect"]) == (False, "no_match")
    missing = await ekms(
        "policies", "explain", "global.none", "--subject", "b", "--op", "mac", code=1
    )
    assert "404" in missing.stderr

    await live_server.container.ctx.audit.flush()
    audit = ("audit", "--all", "-o", "json", "--limit", "1")
    asc = [json.loads(x) for x in (await ekms(*audit, roles=(AUDITOR,))).stdout.splitlines()]
    desc_out = (await ekms(*audit, "--order", "desc", roles=(AUDITOR,))).stdout
    assert [json.loads(x)["id"] for x in desc_out.splitlines()] == [e["id"] for e in asc][::-1]
    last = (await ekms("audit", "tail", "-n", "2", "-o", "json", roles=(AUDITOR,))).stdout
    assert [json.loads(x)["id"] for x in last.splitlines()] == [e["id"] for e in asc[-2:]]


async def test_tail_follow_prints_new_events_as_json_lines(
    live_server: LiveServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    ekms = Cli(live_server.url)
    await ekms("modules", "create", "global.payroll")
    await live_server.container.ctx.audit.flush()
    out = tmp_path / "audit.jsonl"
    env = {**os.environ, "EKMS_URL": live_server.url, "EKMS_TOKEN": token(AUDITOR)}
    follow = ["audit", "tail", "-f", "-n", "1", "--interval", "0.2", "-o", "json"]
    code = "from app.cli import main; main()"
    to_stdout = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, *follow, env=env, stdout=asyncio.subprocess.PIPE
    )
    to_file = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, *follow, "--out", str(out), env=env
    )
    try:
        assert to_stdout.stdout is not None
        first = json.loads(await asyncio.wait_for(to_stdout.stdout.readline(), 30))
        assert first["action"] == "module.create"
        await asyncio.wait_for(_lines(out, 1), 30)  # both tails started before the new event
        await ekms("modules", "create", "global.hr")
        await live_server.container.ctx.audit.flush()
        second = json.loads(await asyncio.wait_for(to_stdout.stdout.readline(), 30))
        assert (second["action"], second["module"]) == ("module.create", "global.hr")
        lines = [json.loads(x) for x in await asyncio.wait_for(_lines(out, 2), 30)]
        assert [e["id"] for e in lines] == [first["id"], second["id"]]
    finally:
        for process in (to_stdout, to_file):
            process.terminate()
            await process.wait()


async def _lines(path: Path, count: int) -> list[str]:
    """The file's lines once it has at least ``count``."""
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        await asyncio.sleep(0.1)
