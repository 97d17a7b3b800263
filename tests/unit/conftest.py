"""Unit-test world: the real use cases wired to fakes of our own ports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from app.application.configuration import ConfigInput, configure_ekms
from app.application.context import AppContext
from app.application.crypto import CryptoService, Item
from app.application.modules import ModuleInput, create_module
from app.application.policies import PolicyInput, create_policy
from app.application.targets import Target
from app.bootstrap import wire_application
from app.domain.values import (
    AccessResult,
    Algorithm,
    Caller,
    KmsProvider,
    Operation,
    TargetType,
)
from app.infra.system import SystemRandom
from tests.fakes import FakeClock, FakeKms, FakeKmsConnector, InMemoryDatabase, LocalChangeFeed

ADMIN = Caller("alice", frozenset({"ekms.admin", "ekms.key_manager"}))
APP = Caller("payroll-svc", frozenset({"payroll"}))
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"


@dataclass
class World:
    ctx: AppContext
    db: InMemoryDatabase
    connector: FakeKmsConnector
    clock: FakeClock
    crypto: CryptoService

    @property
    def kms(self) -> FakeKms:
        return self.connector.key(KEY_ID)

    async def configure(self) -> None:
        await configure_ekms(self.ctx, ADMIN, ConfigInput(KmsProvider.AWS, KEY_ID))

    async def module(
        self, name: str = "global.payroll", algorithm: Algorithm = Algorithm.AES_256_GCM
    ) -> None:
        await create_module(self.ctx, ADMIN, ModuleInput(name, algorithm))
        await create_policy(
            self.ctx,
            ADMIN,
            name,
            PolicyInput(
                TargetType.ROLE,
                "payroll",
                frozenset({Operation.ENCRYPT, Operation.DECRYPT, Operation.REWRAP}),
                AccessResult.TRACK,
            ),
        )

    async def encrypt(
        self, value: bytes, module: str = "global.payroll", context: bytes = b""
    ) -> bytes:
        result = await self.crypto.encrypt(APP, Item(Target(module=module), value, context))
        assert result.data is not None
        return result.data

    async def decrypt(
        self, blob: bytes, module: str = "global.payroll", context: bytes = b""
    ) -> bytes:
        result = await self.crypto.decrypt(APP, Item(Target(module=module), blob, context))
        assert result.data is not None
        return result.data


def build_world(grace: timedelta = timedelta(minutes=15)) -> World:
    """The application wired by the composition root, on fakes of its ports."""
    db = InMemoryDatabase()
    connector = FakeKmsConnector()
    clock = FakeClock()
    app = wire_application(
        uow=db,
        kms=connector,
        clock=clock,
        rng=SystemRandom(),
        changes=LocalChangeFeed,
        instance_id="test-instance",
        unavailable_grace=grace,
    )
    return World(app.ctx, db, connector, clock, app.crypto)


@pytest.fixture
def world() -> World:
    return build_world()


@pytest.fixture
async def ready(world: World) -> World:
    """Configured, with module global.payroll (GCM) granting role 'payroll' everything."""
    await world.configure()
    await world.module()
    return world
