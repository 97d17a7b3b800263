"""Key lifecycle automation, run by the scheduler tick: age, nonce budget, retention."""

from __future__ import annotations

from datetime import timedelta

from app.application.maintenance import run_due_jobs
from app.application.modules import list_module_keys, rotate_module_key, update_module
from app.domain.module import NONCE_ROTATE_AT, NONCE_WARN_AT
from app.domain.values import KeyState
from tests.unit.conftest import ADMIN, World

MODULE = "global.payroll"


async def _states(world: World) -> dict[int, KeyState]:
    return {k.version: k.state for k in await list_module_keys(world.ctx, MODULE)}


async def test_nothing_is_automated_by_default(ready: World) -> None:
    ready.clock.advance(400 * 86400)
    report = await run_due_jobs(ready.ctx, "replica-a")
    assert report.ran == ["sync"] and await _states(ready) == {1: KeyState.ACTIVE}


async def test_rotation_by_age(ready: World) -> None:
    await update_module(
        ready.ctx, ADMIN, MODULE, automation={"rotation_period": timedelta(days=90)}
    )
    ready.clock.advance(89 * 86400)
    assert "rotate:global.payroll:age" not in (await run_due_jobs(ready.ctx, "a")).ran
    ready.clock.advance(2 * 86400)
    report = await run_due_jobs(ready.ctx, "a")
    assert "rotate:global.payroll:age" in report.ran
    assert await _states(ready) == {1: KeyState.DEACTIVATED, 2: KeyState.ACTIVE}
    actions = [e.action for e in ready.db.committed.audit]
    assert "key.auto_rotate.age" in actions and "scheduler.tick" in actions
    tick = [e for e in ready.db.committed.audit if e.action == "scheduler.tick"][-1]
    assert tick.details["replica"] == "a" and tick.actor == "system:scheduler@a"


async def test_rotation_before_the_gcm_nonce_limit(ready: World) -> None:
    key = next(iter(ready.db.committed.keys.values()))
    key.encryption_count = NONCE_WARN_AT  # warned, not yet rotated
    assert not any(r.startswith("rotate") for r in (await run_due_jobs(ready.ctx, "a")).ran)
    key = next(k for k in ready.db.committed.keys.values() if k.version == 1)
    key.encryption_count = NONCE_ROTATE_AT
    report = await run_due_jobs(ready.ctx, "a")
    assert "rotate:global.payroll:nonce_budget" in report.ran
    assert (await _states(ready))[2] is KeyState.ACTIVE


async def test_deactivated_versions_destroyed_after_retention_only_when_enabled(
    ready: World,
) -> None:
    await rotate_module_key(ready.ctx, ADMIN, MODULE)
    ready.clock.advance(40 * 86400)
    await run_due_jobs(ready.ctx, "a")
    assert (await _states(ready))[1] is KeyState.DEACTIVATED  # retention not enabled
    await update_module(
        ready.ctx, ADMIN, MODULE, automation={"destroy_deactivated_after": timedelta(days=30)}
    )
    report = await run_due_jobs(ready.ctx, "a")
    assert "destroy:global.payroll:1" in report.ran
    assert await _states(ready) == {1: KeyState.DESTROYED, 2: KeyState.ACTIVE}
