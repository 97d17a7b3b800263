"""GCM nonce budget reservations in SQL: atomic, never past the limit, even between replicas."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from pathlib import Path

import pytest

from app.application.budget import RESERVATION_BLOCK, EncryptionBudget
from app.application.crypto import Item
from app.application.modules import ModuleInput, create_module
from app.application.policies import PolicyInput, create_policy
from app.application.targets import Target
from app.bootstrap import running
from app.domain.module import NONCE_WARN_AT, key_usage_alert_kind
from app.domain.values import AccessResult, Caller, Operation, TargetType
from app.infra.db.engine import create_engine
from app.infra.db.uow import SqlaUnitOfWorkFactory
from app.infra.settings import Settings
from app.infra.system import SystemClock, SystemRandom
from tests.integration.test_repositories import add_module, make_key

ADMIN = Caller("admin", frozenset({"ekms.admin", "ekms.key_manager"}))
APP = Caller("app-svc", frozenset({"app"}))
MODULE = "global.orders"


class _NoFeed:
    async def publish(self, scope: str) -> None:
        return None


async def _key_row(uow_factory: SqlaUnitOfWorkFactory, **changes: object) -> uuid.UUID:
    module = await add_module(uow_factory)
    async with uow_factory() as uow:
        await uow.keys.add(make_key(module.id, 1, **changes))
        await uow.commit()
    return module.id


async def test_a_reservation_never_passes_the_limit_and_leaves_the_revision(
    uow_factory: SqlaUnitOfWorkFactory,
) -> None:
    module_id = await _key_row(uow_factory, encryption_count=7)
    async with uow_factory() as uow:
        assert await uow.keys.reserve_usage(module_id, 1, 3, 100) == 10  # from the count
        assert await uow.keys.reserve_usage(module_id, 1, 90, 100) == 100
        assert await uow.keys.reserve_usage(module_id, 1, 1, 100) is None
        assert await uow.keys.reserve_usage(uuid.uuid4(), 1, 1, 100) is None
        await uow.commit()
    async with uow_factory() as uow:
        key = await uow.keys.get(module_id, 1)
        assert key is not None
        key.encryption_count = 0  # a stale count in a lifecycle save is not written back
        key.encryptions_reserved = 0
        key.suspend(key.created_at)
        await uow.keys.save(key)
        await uow.commit()
    async with uow_factory() as uow:
        key = await uow.keys.get(module_id, 1)
    assert key is not None
    assert (key.encryption_count, key.encryptions_reserved, key.revision) == (7, 100, 1)


@pytest.mark.postgres
async def test_two_replicas_reserving_at_once_never_exceed_the_limit(pg_url: str) -> None:
    engines = [create_engine(pg_url) for _ in range(2)]
    try:
        factories = [SqlaUnitOfWorkFactory(engine) for engine in engines]
        module_id = await _key_row(factories[0], encryption_count=0)
        limit = 1000
        budgets = [
            EncryptionBudget(f, SystemClock(), SystemRandom(), _NoFeed(), block=7, limit=limit)
            for f in factories
        ]

        async def drain(budget: EncryptionBudget) -> int:
            """Reserve block after block until the version is exhausted; count what was got."""
            lease = budget.lease(module_id, 1, "global.payroll")
            got = 0
            for _ in range(limit):  # a bound: each round reserves at least one, or ends it
                await budget.reserve_for({lease: 1})
                got += lease.left
                lease.left = 0  # spent
                if lease.exhausted:
                    break
            return got

        granted = await asyncio.gather(*(drain(b) for b in budgets))
        async with factories[0]() as uow:
            key = await uow.keys.get(module_id, 1)
        assert key is not None and key.encryptions_reserved == limit
        assert sum(granted) == limit  # no overlap, nothing past the limit, nothing lost
        assert all(g > 0 for g in granted)
        assert sum(b.reservations for b in budgets) >= limit // 7
    finally:
        for engine in engines:
            await engine.dispose()


async def test_crossing_the_warning_mark_opens_the_alert_in_the_same_transaction(
    uow_factory: SqlaUnitOfWorkFactory,
) -> None:
    module_id = await _key_row(uow_factory, encryption_count=NONCE_WARN_AT - 1)
    budget = EncryptionBudget(uow_factory, SystemClock(), SystemRandom(), _NoFeed(), block=2)
    lease = budget.lease(module_id, 1, "global.payroll")
    await budget.reserve_for({lease: 1})
    await budget.reserve_for({lease: 5})
    async with uow_factory() as uow:
        alerts = await uow.status.open_alerts()
    assert [a.kind for a in alerts] == [key_usage_alert_kind(module_id, 1)]


async def test_across_restarts_the_reserved_mark_only_grows(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The real wiring (``running``): each process lifetime reserves above the last one's."""
    settings = Settings(
        database_url=sqlite_url,
        kms_provider="local",
        local_root_key=base64.b64encode(os.urandom(32)).decode(),
        jwt_hs256_secret="x" * 40,
        data_dir=tmp_path,
        scheduler_enabled=False,
    )
    marks, performed = [], 0
    for lifetime in range(3):
        async with running(settings) as container:
            if lifetime == 0:
                await create_module(container.ctx, ADMIN, ModuleInput(MODULE))
                await create_policy(
                    container.ctx,
                    ADMIN,
                    MODULE,
                    PolicyInput(TargetType.ROLE, "app", frozenset(Operation), AccessResult.TRACK),
                )
            for i in range(5):
                item = Item(Target(module=MODULE), b"%d" % i)
                await container.crypto.encrypt(APP, item)
                performed += 1
            async with container.ctx.uow() as uow:
                module = await uow.modules.get_by_name(MODULE)
                assert module is not None
                key = await uow.keys.get(module.id, 1)
            assert key is not None
            marks.append(key.encryptions_reserved)
    assert marks == [RESERVATION_BLOCK, 2 * RESERVATION_BLOCK, 3 * RESERVATION_BLOCK]
    async with running(settings) as container, container.ctx.uow() as uow:
        key = await uow.keys.get(module.id, 1)
    assert key is not None and key.encryption_count == performed  # flushed at each shutdown
