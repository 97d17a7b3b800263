"""Fixtures and helpers for the REST tests: a real container (real database, real KMS adapter,
real token verifier) behind the real app, reached through httpx.

Import the fixtures you use into the test module (``from tests.e2e.rest_support import rest``).

- ``rest``: the app on a migrated SQLite file with the local KMS provider; the embedded default
  configured itself, and ``seed`` adds module ``global.payroll`` with a policy granting role
  ``payroll`` everything and field ``employees.iban`` on it.
- ``rest_pg``: the same on a fresh Postgres database.
- ``live_server``: the same app served by a real uvicorn on 127.0.0.1, port 0.
- ``Cli``: the ``ekms`` command run against a live server (CliRunner in a worker thread; the
  server keeps the test's loop).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from click.testing import Result
from structlog.testing import capture_logs
from typer.testing import CliRunner

from app.bootstrap import Container, build_rest_app, running
from app.cli import cli
from app.infra.settings import Settings
from app.infra.system import SystemClock
from app.infra.tokens import mint_dev_token

SECRET = "rest-tests-hs256-secret-0123456789abcdef"
ADMIN = "ekms.admin"
KEY_MANAGER = "ekms.key_manager"
AUDITOR = "ekms.auditor"
ADMIN_ROLES = (ADMIN, KEY_MANAGER, AUDITOR)
MODULE = "global.payroll"
APP_ROLE = "payroll"


def token(*roles: str, sub: str = "alice", ttl: int = 600) -> str:
    return mint_dev_token(SECRET, sub=sub, roles=roles, ttl_seconds=ttl, clock=SystemClock())


def auth(*roles: str, sub: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*roles, sub=sub)}"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def settings_for(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "kms_provider": "local",
        "local_root_key": b64(os.urandom(32)),
        "jwt_hs256_secret": SECRET,
        "data_dir": data_dir,
        "audit_flush_seconds": 60,  # tests flush explicitly
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Rest:
    client: httpx.AsyncClient
    container: Container

    async def call(
        self, method: str, path: str, roles: Iterable[str] = (ADMIN,), **kwargs: Any
    ) -> httpx.Response:
        headers = {**auth(*roles), **kwargs.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def ok(
        self, method: str, path: str, roles: Iterable[str] = (ADMIN,), **kwargs: Any
    ) -> Any:
        response = await self.call(method, path, roles, **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    async def seed(self) -> dict[str, Any]:
        """Module global.payroll, a policy for role payroll, field employees.iban."""
        module = await self.ok("POST", "/api/v1/modules", json={"name": MODULE})
        policy = await self.ok(
            "POST",
            f"/api/v1/modules/{MODULE}/policies",
            json={
                "target_type": "role",
                "target": APP_ROLE,
                "operations": ["encrypt", "decrypt", "rewrap", "mac"],
                "result": "track",
            },
        )
        field = await self.ok(
            "POST",
            "/api/v1/field-configs",
            json={"table": "employees", "column": "iban", "module": MODULE},
        )
        return {"module": module, "policy": policy, "field": field}

    async def flush_audit(self) -> None:
        await self.container.ctx.audit.flush()


def asgi_client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://ekms.test")


@asynccontextmanager
async def rest_app(settings: Settings) -> AsyncIterator[Rest]:
    async with running(settings) as container, asgi_client(build_rest_app(container)) as client:
        yield Rest(client, container)


@pytest.fixture
async def rest(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Rest]:
    async with rest_app(settings_for(sqlite_url, tmp_path)) as env:
        yield env


@pytest.fixture
async def rest_pg(pg_url: str, tmp_path: Path) -> AsyncIterator[Rest]:
    async with rest_app(settings_for(pg_url, tmp_path)) as env:
        yield env


@dataclass
class LiveServer:
    url: str
    container: Container


class _QuietServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test owns the loop
        return None


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[LiveServer]:
    async with running(settings) as container:
        server = _QuietServer(
            uvicorn.Config(
                build_rest_app(container),
                host="127.0.0.1",
                port=0,
                lifespan="off",
                log_config=None,
                access_log=False,
            )
        )
        task = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            yield LiveServer(f"http://127.0.0.1:{port}", container)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def live_server(sqlite_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with serve(settings_for(sqlite_url, tmp_path)) as live:
        yield live


@pytest.fixture
async def rest_on_each_db(db_url: str, tmp_path: Path) -> AsyncIterator[Rest]:
    """``rest`` on Postgres and on SQLite (parametrized through ``db_url``)."""
    async with rest_app(settings_for(db_url, tmp_path)) as env:
        yield env


class Cli:
    def __init__(self, url: str) -> None:
        self.url = url
        self.runner = CliRunner()

    async def __call__(
        self, *args: str, roles: tuple[str, ...] = (ADMIN,), input: str | None = None, code: int = 0
    ) -> Result:
        env = {"EKMS_URL": self.url, "EKMS_TOKEN": token(*roles) if roles else None}
        # The runner swaps sys.stdout for the whole process: keep the server's logs out of it.
        with capture_logs():
            result = await asyncio.to_thread(
                self.runner.invoke, cli, list(args), input=input, env=env
            )
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    async def json(self, *args: str, roles: tuple[str, ...] = (ADMIN,)) -> Any:
        return json.loads((await self(*args, "--json", roles=roles)).stdout)
