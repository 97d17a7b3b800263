"""Several replicas on one Postgres: changes reach every cache, one leader runs the jobs.

The replicas here are full containers (engine, key chain, change feed, scheduler) in one test
process, each with its own connections: what crosses between them goes through Postgres.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.application.configuration import ConfigInput, configure_ekms, update_ekms_config
from app.application.crypto import Item
from app.application.modules import KeyAction, ModuleInput, change_key_state, create_module
from app.application.policies import PolicyInput, create_policy
from app.application.ports import AuditQuery
from app.application.targets import Target
from app.bootstrap import Container, running
from app.domain.errors import EkmsError, KeyUnavailable, Reason
from app.domain.values import AccessResult, Caller, KmsProvider, Operation, TargetType
from app.infra.settings import Settings
from tests.chain_support import make_sync_due

ADMIN = Caller("admin", frozenset({"ekms.admin"}))
APP = Caller("svc", frozenset({"svc"}))
MODULE = "global.replicated"
TARGET = Target(module=MODULE)


@pytest.fixture
async def replicas(
    pg_url: str, moto_server: str, aws_env: str, kms_key: str, tmp_path: Path
) -> AsyncIterator[list[Container]]:
    settings = Settings(
        database_url=pg_url,
        kms_provider="aws",
        aws_endpoint_url=moto_server,
        allow_insecure_kms_endpoint=True,
        aws_region=aws_env,
        data_dir=tmp_path,
        jwt_hs256_secret="y" * 40,
        scheduler_enabled=False,
        # Long: the propagation measured here is NOTIFY's, not the reconcile backstop's.
        reconcile_seconds=300,
    )
    async with AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(running(settings)) for _ in range(3)]
        await configure_ekms(nodes[0].ctx, ADMIN, ConfigInput(KmsProvider.AWS, kms_key))
        await create_module(nodes[0].ctx, ADMIN, ModuleInput(MODULE))
        await create_policy(
            nodes[0].ctx,
            ADMIN,
            MODULE,
            PolicyInput(TargetType.ROLE, "svc", frozenset(Operation), AccessResult.TRACK),
        )
        yield nodes


async def _until_refused(
    node: Container, call: Any, limit: float = 10.0
) -> tuple[float, EkmsError]:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        try:
            await call(node)
        except EkmsError as exc:
            return time.perf_counter() - started, exc
        await asyncio.sleep(0.005)
    raise AssertionError(f"still served after {limit} s")


async def _warm(nodes: list[Container]) -> bytes:
    blob = (await nodes[0].crypto.encrypt(APP, Item(TARGET, b"replicated"))).data
    assert blob is not None
    for node in nodes:  # every replica has the chain cached before the change
        assert (await node.crypto.decrypt(APP, Item(TARGET, blob))).data == b"replicated"
    return blob


async def test_suspend_on_one_replica_reaches_the_others(replicas: list[Container]) -> None:
    blob = await _warm(replicas)
    await change_key_state(replicas[0].ctx, ADMIN, MODULE, 1, KeyAction.SUSPEND)

    async def decrypt(node: Container) -> None:
        await node.crypto.decrypt(APP, Item(TARGET, blob))

    for node in replicas[1:]:
        elapsed, error = await _until_refused(node, decrypt)
        assert isinstance(error, KeyUnavailable) and error.reason is Reason.KEY_VERSION_SUSPENDED
        print(f"suspend reached a replica in {elapsed * 1000:.1f} ms")


async def test_revoke_on_one_replica_stops_encryption_under_it_elsewhere(
    replicas: list[Container],
) -> None:
    await _warm(replicas)
    await change_key_state(replicas[0].ctx, ADMIN, MODULE, 1, KeyAction.REVOKE, "compromised")
    for node in replicas[1:]:
        started = time.perf_counter()
        while True:
            result = await node.crypto.encrypt(APP, Item(TARGET, b"after revoke"))
            if result.key_version == 2:
                break
            assert time.perf_counter() - started < 10, "still encrypting under the revoked version"
            await asyncio.sleep(0.005)
        print(f"revoke reached a replica in {(time.perf_counter() - started) * 1000:.1f} ms")


async def test_only_one_replica_leads_and_the_lock_is_handed_over(
    replicas: list[Container],
) -> None:
    await make_sync_due(replicas[0].ctx)
    first = [await node.scheduler.tick() for node in replicas]
    leaders = [i for i, report in enumerate(first) if report is not None]
    assert len(leaders) == 1
    leader = replicas[leaders[0]]
    assert first[leaders[0]] is not None and "sync" in first[leaders[0]].ran  # type: ignore[union-attr]
    # The sync is not due again for 30 minutes: the next tick runs nothing.
    again = await leader.scheduler.tick()
    assert again is not None and again.ran == []
    # The leader goes away (its lock connection closes): another replica takes over.
    await leader.scheduler.aclose()
    others = [n for n in replicas if n is not leader]
    second = [await node.scheduler.tick() for node in others]
    assert sum(r is not None for r in second) == 1
    async with replicas[0].ctx.uow() as uow:
        ticks = await uow.audit.query(AuditQuery(action="scheduler.tick"))
    assert [t.details["replica"] for t in ticks] == [leader.scheduler.replica]


async def test_sync_interval_change_takes_effect_without_restart(replicas: list[Container]) -> None:
    node = replicas[0]
    await make_sync_due(node.ctx)
    report = await node.scheduler.tick()
    assert report is not None and report.ran == ["sync"]
    await update_ekms_config(node.ctx, ADMIN, {"sync_interval": timedelta(minutes=1)})
    async with node.ctx.uow() as uow:
        config = await uow.config.get()
        assert config is not None and config.sync_interval == timedelta(minutes=1)
        config.last_sync_at -= timedelta(seconds=61)  # type: ignore[operator]
        await uow.config.save(config)
        await uow.commit()
    report = await node.scheduler.tick()  # due under the new interval, no restart
    assert report is not None and report.ran == ["sync"]
