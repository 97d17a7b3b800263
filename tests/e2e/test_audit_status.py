"""``GET /api/v1/ekms/status`` and ``ekms status`` show this replica's audit mode, its flush
interval and its last flush, against a live uvicorn (buffered) and the REST app (strict)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from app.domain.audit import AuditResult
from tests.e2e.rest_support import (
    AUDITOR,
    Cli,
    LiveServer,
    auth,
    live_server,  # noqa: F401 - fixture
    rest_app,
    settings_for,
)


async def test_status_shows_the_buffered_mode_and_the_last_flush(
    live_server: LiveServer,  # noqa: F811
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        before = (await http.get("/api/v1/ekms/status", headers=auth(AUDITOR))).json()["audit"]
        assert before == {
            "mode": "buffered",
            "flush_interval_seconds": 60.0,
            "last_flush_at": None,
            "last_flush_ok": None,
            "pending": 0,
            "strict_waiters": 0,
            "failed_flushes": 0,
        }
        audit = live_server.container.ctx.audit
        audit.record(actor="app", action="encrypt", result=AuditResult.SUCCESS, module="m")
        pending = (await http.get("/api/v1/ekms/status", headers=auth(AUDITOR))).json()["audit"]
        assert pending["pending"] == 1
        await audit.flush()
        after = (await http.get("/api/v1/ekms/status", headers=auth(AUDITOR))).json()["audit"]
    assert (after["last_flush_ok"], after["pending"]) == (True, 0)
    assert after["last_flush_at"] is not None
    ekms = Cli(live_server.url)
    tree = (await ekms("status", roles=(AUDITOR,))).stdout
    assert "audit buffered, flush every 60 s; last flush " in tree
    assert "ok; 0 pending, 0 failed flushes" in tree
    shown = json.loads((await ekms("status", "-o", "json", roles=(AUDITOR,))).stdout)
    assert shown["status"]["audit"]["last_flush_at"] == after["last_flush_at"]


async def test_status_shows_strict_mode(sqlite_url: str, tmp_path: Path) -> None:
    settings = settings_for(sqlite_url, tmp_path, audit_mode="strict", audit_flush_seconds=2)
    async with rest_app(settings) as rest:
        audit = (await rest.ok("GET", "/api/v1/ekms/status", roles=(AUDITOR,)))["audit"]
    assert (audit["mode"], audit["flush_interval_seconds"]) == ("strict", 2.0)
