"""Modules outside the external wrap (``external_wrap=false``) over fakes of our ports: their DEKs
under the local KEK, serving through an external key outage, and the move between the two."""

from __future__ import annotations

import asyncio

import pytest

from app.application.config_end import end_ekms_config
from app.application.configuration import get_status
from app.application.health import check_readiness
from app.application.kek import rotate_kek
from app.application.modules import (
    ModuleInput,
    create_module,
    rotate_module_key,
    update_module,
)
from app.application.policies import PolicyInput, create_policy
from app.application.sync import sync_external_key
from app.domain.errors import InvalidInput, KeyUnavailable, Reason
from app.domain.local_kek import LOCAL_KEK_KEY_ID
from app.domain.values import (
    AccessResult,
    ExternalKeyStatus,
    KmsProvider,
    Operation,
    TargetType,
)
from tests.unit.conftest import ADMIN, World

EXTERNAL = "global.payroll"
LOCAL = "global.catalog"


async def _local_module(world: World, name: str = LOCAL) -> None:
    await create_module(world.ctx, ADMIN, ModuleInput(name, external_wrap=False))
    await create_policy(
        world.ctx,
        ADMIN,
        name,
        PolicyInput(TargetType.ROLE, "payroll", frozenset(Operation), AccessResult.TRACK),
    )


def _keys(world: World, name: str) -> list[object]:
    module = next(m for m in world.db.committed.modules.values() if m.name == name)
    return [k for (mid, _), k in sorted(world.db.committed.keys.items()) if mid == module.id]


def _actions(world: World) -> list[str]:
    return [e.action for e in world.db.committed.audit]


async def _disable_external(world: World) -> None:
    world.kms.status = ExternalKeyStatus.DISABLED
    assert (await sync_external_key(world.ctx)).status is ExternalKeyStatus.DISABLED


async def test_a_local_module_wraps_its_dek_under_the_local_kek_made_on_first_need(
    ready: World,
) -> None:
    await _local_module(ready)
    local = ready.db.committed.local_kek
    assert local is not None and local.encryption_context["ekms:purpose"] == "local-kek"
    assert ready.connector.keys[LOCAL_KEK_KEY_ID].calls["wrap"] == 1
    (key,) = _keys(ready, LOCAL)
    assert key.local_wrap and key.kek_id == local.id  # type: ignore[attr-defined]
    (external,) = _keys(ready, EXTERNAL)
    assert not external.local_wrap  # type: ignore[attr-defined]
    assert "local_kek.create" in _actions(ready)
    blob = await ready.encrypt(b"sku-1", LOCAL)
    assert await ready.decrypt(blob, LOCAL) == b"sku-1"

    await _local_module(ready, "global.second")  # the same local KEK, not a second one
    assert ready.connector.keys[LOCAL_KEK_KEY_ID].calls["wrap"] == 1
    assert _actions(ready).count("local_kek.create") == 1


async def test_a_disabled_external_key_stops_external_modules_only(ready: World) -> None:
    await _local_module(ready)
    external_blob = await ready.encrypt(b"salary", EXTERNAL)
    local_blob = await ready.encrypt(b"sku-1", LOCAL)

    await _disable_external(ready)

    with pytest.raises(KeyUnavailable) as err:
        await ready.decrypt(external_blob, EXTERNAL)
    assert err.value.reason is Reason.EXTERNAL_KEY_DISABLED
    assert await ready.decrypt(local_blob, LOCAL) == b"sku-1"
    assert await ready.decrypt(await ready.encrypt(b"sku-2", LOCAL), LOCAL) == b"sku-2"
    status = await get_status(ready.ctx)
    assert not status.serving
    by_name = {m.name: m for m in status.modules}
    assert by_name[EXTERNAL].external_wrap
    assert by_name[EXTERNAL].serving_reason == Reason.EXTERNAL_KEY_DISABLED.value
    assert not by_name[LOCAL].external_wrap and by_name[LOCAL].serving_reason is None
    assert status.local_kek_fingerprint is not None

    ready.kms.status = ExternalKeyStatus.ENABLED
    await sync_external_key(ready.ctx)
    assert await ready.decrypt(external_blob, EXTERNAL) == b"salary"


async def test_readiness_stays_up_for_local_modules_through_an_external_outage(
    ready: World,
) -> None:
    async def at_head() -> str:
        return "ok"

    await _disable_external(ready)
    assert not (await check_readiness(ready.ctx, at_head)).ready  # no local module yet

    ready.kms.status = ExternalKeyStatus.ENABLED
    await sync_external_key(ready.ctx)
    await _local_module(ready)
    await _disable_external(ready)
    readiness = await check_readiness(ready.ctx, at_head)
    assert readiness.ready
    assert readiness.checks["key_chain"] == Reason.EXTERNAL_KEY_DISABLED.value
    assert readiness.checks["local_kek"] == "ok"


async def test_moving_a_module_out_rewraps_every_dek_and_keeps_its_ciphertexts(
    ready: World,
) -> None:
    old = await ready.encrypt(b"v1 value")
    await rotate_module_key(ready.ctx, ADMIN, EXTERNAL)
    new = await ready.encrypt(b"v2 value")
    before = {k.version: k.wrapped_dek for k in _keys(ready, EXTERNAL)}  # type: ignore[attr-defined]

    module = await update_module(ready.ctx, ADMIN, EXTERNAL, external_wrap=False)

    assert not module.external_wrap
    local = ready.db.committed.local_kek
    after = _keys(ready, EXTERNAL)
    assert all(k.local_wrap and k.kek_id == local.id for k in after)  # type: ignore[attr-defined]
    assert all(before[k.version] != k.wrapped_dek for k in after)  # type: ignore[attr-defined]
    event = next(e for e in ready.db.committed.audit if e.action == "module.external_wrap")
    assert event.actor == ADMIN.subject and event.module == EXTERNAL
    assert event.details["from"] == "external" and event.details["to"] == "local"
    assert event.details["rewrapped_keys"] == 2
    assert await ready.decrypt(old) == b"v1 value"
    assert await ready.decrypt(new) == b"v2 value"

    await _disable_external(ready)  # now outside the external key's reach
    assert await ready.decrypt(old) == b"v1 value"
    ready.kms.status = ExternalKeyStatus.ENABLED
    await sync_external_key(ready.ctx)

    await update_module(ready.ctx, ADMIN, EXTERNAL, external_wrap=True)  # and back in
    assert all(not k.local_wrap for k in _keys(ready, EXTERNAL))  # type: ignore[attr-defined]
    await _disable_external(ready)
    with pytest.raises(KeyUnavailable):
        await ready.decrypt(old)


async def test_asking_for_the_wrap_a_module_has_changes_nothing(ready: World) -> None:
    before = {k.version: k.wrapped_dek for k in _keys(ready, EXTERNAL)}  # type: ignore[attr-defined]
    await update_module(ready.ctx, ADMIN, EXTERNAL, external_wrap=True)
    assert {k.version: k.wrapped_dek for k in _keys(ready, EXTERNAL)} == before  # type: ignore[attr-defined]
    assert "module.external_wrap" not in _actions(ready)
    assert ready.db.committed.local_kek is None


async def test_a_module_moves_neither_way_while_the_external_chain_cannot_serve(
    ready: World,
) -> None:
    await _local_module(ready)
    await _disable_external(ready)
    before = ready.db.committed
    for name, target in ((EXTERNAL, False), (LOCAL, True)):
        with pytest.raises(KeyUnavailable) as err:
            await update_module(ready.ctx, ADMIN, name, external_wrap=target)
        assert err.value.reason is Reason.EXTERNAL_KEY_DISABLED
        assert "external_wrap cannot change" in err.value.message
    assert ready.db.committed is before  # nothing written, not even an audit event


async def test_without_a_local_root_key_external_wrap_false_is_refused(ready: World) -> None:
    ready.connector.missing.add(KmsProvider.LOCAL)
    before = ready.db.committed
    with pytest.raises(InvalidInput) as err:
        await create_module(ready.ctx, ADMIN, ModuleInput(LOCAL, external_wrap=False))
    assert err.value.field == "external_wrap" and "EKMS_LOCAL_ROOT_KEY" in err.value.message
    with pytest.raises(InvalidInput):
        await update_module(ready.ctx, ADMIN, EXTERNAL, external_wrap=False)
    assert ready.db.committed is before


async def test_local_versions_rotate_under_the_local_kek_and_a_kek_rotation_leaves_them(
    ready: World,
) -> None:
    await _local_module(ready)
    blob = await ready.encrypt(b"sku-1", LOCAL)
    await rotate_module_key(ready.ctx, ADMIN, LOCAL)
    local_before = {k.version: k.wrapped_dek for k in _keys(ready, LOCAL)}  # type: ignore[attr-defined]
    assert all(k.local_wrap for k in _keys(ready, LOCAL))  # type: ignore[attr-defined]

    result = await rotate_kek(ready.ctx, ADMIN)

    assert result.rewrapped_keys == 1  # the external module's one version only
    assert {k.version: k.wrapped_dek for k in _keys(ready, LOCAL)} == local_before  # type: ignore[attr-defined]
    assert await ready.decrypt(blob, LOCAL) == b"sku-1"


async def test_ending_the_configuration_keeps_local_versions(ready: World) -> None:
    await _local_module(ready)
    blob = await ready.encrypt(b"sku-1", LOCAL)
    ready.kms.status = ExternalKeyStatus.DELETED
    await sync_external_key(ready.ctx)

    ended = await end_ekms_config(ready.ctx, ADMIN, "test-instance")

    assert ended.lost_versions == 1
    assert await ready.decrypt(blob, LOCAL) == b"sku-1"


async def test_moving_under_concurrent_decrypts_loses_none(ready: World) -> None:
    blobs = [await ready.encrypt(f"value {i}".encode()) for i in range(20)]
    failures: list[BaseException] = []
    done = asyncio.Event()

    async def decrypt_all() -> int:
        rounds = 0
        while not done.is_set() or rounds == 0:
            for i, blob in enumerate(blobs):
                try:
                    assert await ready.decrypt(blob) == f"value {i}".encode()
                except Exception as exc:  # noqa: BLE001 - collected and asserted below
                    failures.append(exc)
            rounds += 1
            await asyncio.sleep(0)
        return rounds

    readers = [asyncio.create_task(decrypt_all()) for _ in range(4)]
    for target in (False, True, False):
        await update_module(ready.ctx, ADMIN, EXTERNAL, external_wrap=target)
        await asyncio.sleep(0)
    done.set()
    assert all(r >= 1 for r in await asyncio.gather(*readers))
    assert failures == []
    assert [await ready.decrypt(b) for b in blobs] == [f"value {i}".encode() for i in range(20)]


async def test_a_move_with_another_bad_field_is_refused_before_anything_is_written(
    ready: World,
) -> None:
    before = ready.db.committed
    with pytest.raises(InvalidInput):
        await update_module(ready.ctx, ADMIN, EXTERNAL, description="x" * 1025, external_wrap=False)
    assert ready.db.committed is before  # not even the local KEK


async def test_warm_decrypts_of_a_local_module_touch_neither_database_nor_kms(
    ready: World,
) -> None:
    await _local_module(ready)
    blob = await ready.encrypt(b"sku-1", LOCAL)
    assert await ready.decrypt(blob, LOCAL) == b"sku-1"  # warm-up
    transactions = ready.db.transactions
    calls = {name: dict(kms.calls) for name, kms in ready.connector.keys.items()}
    for _ in range(50):
        assert await ready.decrypt(blob, LOCAL) == b"sku-1"
        await ready.encrypt(b"sku-2", LOCAL)
    assert ready.db.transactions == transactions
    assert {name: dict(kms.calls) for name, kms in ready.connector.keys.items()} == calls
