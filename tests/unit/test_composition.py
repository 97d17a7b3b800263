"""The composition root owns all wiring: the REST app runs on explicit services (no container),
``build_container`` takes every port a test swaps in, and the gRPC table holds its exceptions."""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx
import pytest

from app.api.app import create_app
from app.api.services import ApiServices
from app.application.configuration import ConfigInput, configure_ekms, get_config
from app.application.health import Readiness
from app.bootstrap import build_container
from app.domain.errors import AlreadyExists, Conflict, Reason
from app.domain.values import KmsProvider
from app.grpc.errors import STATUS_CODES, code_for
from app.infra.settings import Settings
from app.infra.system import SystemRandom
from app.infra.tokens import JwtVerifier, TokenSettings, mint_dev_token
from tests.fakes import FakeClock, FakeKmsConnector, InMemoryDatabase, LocalChangeFeed
from tests.unit.conftest import ADMIN, KEY_ID, World

SECRET = "composition-test-secret-0123456789abcdef"


async def test_the_rest_app_runs_on_explicit_services_without_a_container(world: World) -> None:
    async def readiness() -> Readiness:
        return Readiness(ready=False, reason="FAKE_NOT_READY", checks={"fake": "down"})

    services = ApiServices(
        ctx=world.ctx,
        crypto=world.crypto,
        verifier=JwtVerifier(TokenSettings(hs256_secret=SECRET), world.clock),
        readiness=readiness,
        sync_interval_minutes=45,
    )
    token = mint_dev_token(SECRET, sub="alice", roles=["ekms.admin"], clock=world.clock)
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://ekms.test") as client:
        ready = await client.get("/readyz")
        created = await client.put(
            "/api/v1/ekms/config",
            json={"provider": "aws", "key_id": KEY_ID},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert (ready.status_code, ready.json()["reason"]) == (503, "FAKE_NOT_READY")
    assert created.status_code == 201, created.text
    # the default of a configuration created without an interval comes from the services
    assert created.json()["sync_interval_minutes"] == 45
    assert (await get_config(world.ctx)).key_id == KEY_ID


async def test_build_container_uses_every_port_it_is_given(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"
    )
    db, connector, clock, rng = InMemoryDatabase(), FakeKmsConnector(), FakeClock(), SystemRandom()
    container = build_container(
        settings, uow=db, kms=connector, clock=clock, rng=rng, changes=LocalChangeFeed
    )
    try:
        ctx = container.ctx
        assert (ctx.uow, ctx.clock, ctx.rng) == (db, clock, rng)
        assert isinstance(ctx.changes, LocalChangeFeed)
        assert container.changes is ctx.changes
        assert container.crypto is not None
        # the KMS given is the one the chain calls, behind the control loop and the metrics
        await configure_ekms(ctx, ADMIN, ConfigInput(KmsProvider.AWS, KEY_ID))
        assert connector.key(KEY_ID).calls.get("wrap", 0) >= 1
    finally:
        await container.ctx.kms.aclose()
        await container.engine.dispose()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (Conflict("x", reason=Reason.CONCURRENT_UPDATE), grpc.StatusCode.ABORTED),
        (Conflict("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (AlreadyExists("x"), grpc.StatusCode.ALREADY_EXISTS),
    ],
)
def test_the_grpc_table_alone_decides_a_conflicts_code(
    error: Conflict, code: grpc.StatusCode
) -> None:
    assert STATUS_CODES[(Conflict, Reason.CONCURRENT_UPDATE)] is grpc.StatusCode.ABORTED
    assert code_for(error) is code
