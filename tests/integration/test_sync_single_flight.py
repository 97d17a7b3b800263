"""A sync asked for while one runs joins it, over Postgres and moto's KMS server.

The running sync is held on a slow DescribeKey answer (``KmsGate.hold``), so the requests
provably arrive while it runs; counting the DescribeKey calls that reached the KMS shows how
many syncs really ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from app.bootstrap import Container
from app.infra.db.sync_lock import SYNC_LOCK_KEY
from tests.chain_support import make_sync_due
from tests.e2e.rest_support import KEY_MANAGER, Rest, rest_app, settings_for
from tests.fixtures.kms_gate import KmsGate

SYNC = "/api/v1/ekms/sync"
DESCRIBE = "DescribeKey"
REQUESTS = 20


async def _until(check: Any, what: str, limit: float = 10.0) -> None:
    """Wait for a condition (not a timed assertion: the limit only ends a broken run)."""
    deadline = asyncio.get_running_loop().time() + limit
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.01)


@pytest.fixture
async def nodes(
    pg_url: str, aws_env: str, kms_gate: KmsGate, kms_key: str, tmp_path: Path
) -> AsyncIterator[list[Rest]]:
    """Two replicas on one Postgres, their KMS calls through the gate, configured on kms_key."""
    settings = settings_for(
        pg_url,
        tmp_path,
        kms_provider="aws",
        aws_endpoint_url=kms_gate.url,
        allow_insecure_kms_endpoint=True,
        aws_region=aws_env,
        scheduler_enabled=False,
    )
    async with AsyncExitStack() as stack:
        replicas = [await stack.enter_async_context(rest_app(settings)) for _ in range(2)]
        await replicas[0].ok(
            "PUT", "/api/v1/ekms/config", json={"provider": "aws", "key_id": kms_key}
        )
        yield replicas


async def _held_scheduled_sync(node: Container, gate: KmsGate) -> asyncio.Task[Any]:
    """The scheduler's tick, its sync waiting on DescribeKey."""
    await make_sync_due(node.ctx)
    gate.hold(DESCRIBE)
    tick = asyncio.create_task(node.scheduler.tick())
    assert await asyncio.to_thread(gate.arrived.wait, 10), "the scheduled sync never described"
    return tick


async def test_twenty_syncs_asked_during_a_scheduled_sync_share_it(
    nodes: list[Rest], kms_gate: KmsGate
) -> None:
    node = nodes[0]
    described = kms_gate.count(DESCRIBE)
    joined = node.container.ctx.sync_runs.joined
    tick = await _held_scheduled_sync(node.container, kms_gate)

    calls = [asyncio.create_task(node.call("POST", SYNC, (KEY_MANAGER,))) for _ in range(REQUESTS)]

    async def all_joined() -> bool:
        return node.container.ctx.sync_runs.joined - joined == REQUESTS

    await _until(all_joined, "every request joined the running sync")
    kms_gate.release()
    responses = await asyncio.gather(*calls)
    report = await tick

    assert [r.status_code for r in responses] == [200] * REQUESTS, responses[0].text
    assert report is not None and report.ran[:1] == ["sync"]
    bodies = [r.json() for r in responses]
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["status"] == "enabled" and bodies[0]["inconclusive"] is False
    assert kms_gate.count(DESCRIBE) - described == 1, "the requests ran syncs of their own"

    # Once that sync is over, the next request runs a sync of its own.
    await node.ok("POST", SYNC, (KEY_MANAGER,))
    assert kms_gate.count(DESCRIBE) - described == 2


async def _sync_lock_rows(node: Container, *, granted: bool) -> int:
    query = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted = :granted"
        " AND classid = :hi AND objid = :lo AND objsubid = 1"
    )
    params = {"granted": granted, "hi": SYNC_LOCK_KEY >> 32, "lo": SYNC_LOCK_KEY & 0xFFFFFFFF}
    async with node.engine.connect() as conn:
        return int((await conn.execute(query, params)).scalar_one())


async def test_a_sync_asked_of_another_replica_waits_and_answers_the_running_ones_result(
    nodes: list[Rest], kms_gate: KmsGate
) -> None:
    first, second = nodes
    described = kms_gate.count(DESCRIBE)
    kms_gate.hold(DESCRIBE)
    running = asyncio.create_task(first.call("POST", SYNC, (KEY_MANAGER,)))
    assert await asyncio.to_thread(kms_gate.arrived.wait, 10), "the first sync never described"
    waiting = asyncio.create_task(second.call("POST", SYNC, (KEY_MANAGER,)))

    async def second_waits_for_the_lock() -> bool:
        return await _sync_lock_rows(second.container, granted=False) == 1

    await _until(second_waits_for_the_lock, "the second replica waits for the sync lock")
    kms_gate.release()
    ran, joined = await asyncio.gather(running, waiting)

    assert (ran.status_code, joined.status_code) == (200, 200), joined.text
    assert joined.json() == ran.json()
    assert ran.json()["status"] == "enabled"
    assert kms_gate.count(DESCRIBE) - described == 1, "the second replica ran a sync of its own"
    assert await _sync_lock_rows(second.container, granted=True) == 0  # released after
