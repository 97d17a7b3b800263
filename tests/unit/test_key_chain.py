"""The key chain's use cases end to end, over fakes of our ports."""

from __future__ import annotations

import asyncio

import pytest

from app.application.config_probe import probe_ekms_config
from app.application.configuration import (
    ConfigInput,
    configure_ekms,
    get_status,
    update_ekms_config,
)
from app.application.crypto import Item
from app.application.field_configs import FieldConfigInput, create_field_config, update_field_config
from app.application.kek import rotate_kek
from app.application.modules import (
    KeyAction,
    ModuleInput,
    change_key_state,
    create_module,
    list_module_keys,
    rotate_module_key,
)
from app.application.sync import sync_external_key
from app.application.targets import Target
from app.domain.audit import AuditResult
from app.domain.errors import (
    AccessDenied,
    AlreadyExists,
    Conflict,
    DecryptionFailed,
    InvalidInput,
    KeyUnavailable,
    NotFound,
    Reason,
    ServiceUnavailable,
)
from app.domain.values import Algorithm, Caller, ExternalKeyStatus, KeyState, KmsProvider
from tests.fakes import status_history
from tests.unit.conftest import ADMIN, APP, KEY_ID, World

MODULE = "global.payroll"


async def test_configure_wraps_a_kek_and_stores_only_the_wrapped_form(world: World) -> None:
    await world.configure()
    ekek = next(iter(world.db.committed.instance_keys.values()))
    assert world.kms.calls["wrap"] == 1
    assert ekek.kms_key_arn == world.kms.arn
    assert ekek.encryption_context["ekms:purpose"] == "kek"
    assert ekek.encryption_context["ekms:instance"] == "test-instance"
    assert len(ekek.fingerprint) == 32 and ekek.rotation_marker == "fake:0"
    assert world.db.committed.config.active


async def test_second_configuration_is_refused_and_changes_nothing(world: World) -> None:
    await world.configure()
    before = world.db.committed
    with pytest.raises(AlreadyExists) as err:
        await configure_ekms(world.ctx, ADMIN, ConfigInput(KmsProvider.AWS, "other-key"))
    assert err.value.reason is Reason.ALREADY_CONFIGURED
    assert world.db.committed is before


async def test_critical_fields_are_immutable_once_active(world: World) -> None:
    await world.configure()
    with pytest.raises(Conflict) as err:
        await update_ekms_config(world.ctx, ADMIN, {"key_id": "another"})
    assert err.value.reason is Reason.IMMUTABLE_FIELD
    assert world.db.committed.config.key_id == KEY_ID


async def test_mutable_fields_update_and_draft_config_activates_later(world: World) -> None:
    await configure_ekms(
        world.ctx, ADMIN, ConfigInput(KmsProvider.AWS, "draft-key", activate=False)
    )
    assert not world.db.committed.config.active and not world.db.committed.instance_keys
    await update_ekms_config(world.ctx, ADMIN, {"key_id": KEY_ID}, activate=True)
    assert world.db.committed.config.active and world.db.committed.config.key_id == KEY_ID
    assert len(world.db.committed.instance_keys) == 1


async def test_configuring_against_a_disabled_key_is_refused(world: World) -> None:
    world.kms.status = ExternalKeyStatus.DISABLED
    with pytest.raises(KeyUnavailable) as err:
        await world.configure()
    assert err.value.reason is Reason.EXTERNAL_KEY_DISABLED
    assert world.db.committed.config is None


async def test_probe_round_trips_and_is_audited(world: World) -> None:
    await world.configure()
    result = await probe_ekms_config(world.ctx, ADMIN)
    assert result.ok and result.key_name == world.kms.arn
    assert world.db.committed.audit[-1].action == "ekms.config.test"


async def test_probe_reports_failure_without_raising(world: World) -> None:
    await world.configure()
    world.kms.status = ExternalKeyStatus.DISABLED
    result = await probe_ekms_config(world.ctx, ADMIN)
    assert not result.ok and result.status is ExternalKeyStatus.DISABLED


@pytest.mark.parametrize("algorithm", [Algorithm.AES_256_GCM, Algorithm.AES_256_SIV])
async def test_round_trip_both_algorithms(world: World, algorithm: Algorithm) -> None:
    await world.configure()
    await world.module(MODULE, algorithm)
    a = await world.encrypt(b"4111 1111 1111 1111", context=b"row-1")
    b = await world.encrypt(b"4111 1111 1111 1111", context=b"row-1")
    assert await world.decrypt(a, context=b"row-1") == b"4111 1111 1111 1111"
    assert (a == b) is algorithm.deterministic  # SIV is equality-preserving, GCM is not
    assert a[0] == 1 and a[1] == algorithm.value


async def test_empty_value_round_trips(ready: World) -> None:
    assert await ready.decrypt(await ready.encrypt(b"")) == b""


async def test_field_target_binds_the_field(ready: World) -> None:
    await create_field_config(ready.ctx, ADMIN, FieldConfigInput("employees", "salary", MODULE))
    await create_field_config(ready.ctx, ADMIN, FieldConfigInput("employees", "bonus", MODULE))
    salary, bonus = (
        Target.of(table="employees", column="salary"),
        Target.of(table="employees", column="bonus"),
    )
    blob = (await ready.crypto.encrypt(APP, Item(salary, b"100", b"emp-7"))).data
    assert blob is not None
    assert (await ready.crypto.decrypt(APP, Item(salary, blob, b"emp-7"))).data == b"100"
    for wrong in (
        Item(bonus, blob, b"emp-7"),
        Item(salary, blob, b"emp-8"),
        Item(Target(module=MODULE), blob, b"emp-7"),
    ):
        with pytest.raises(DecryptionFailed):
            await ready.crypto.decrypt(APP, wrong)


async def test_repointed_field_still_decrypts_old_values(ready: World) -> None:
    await ready.module("global.hr")
    config = await create_field_config(ready.ctx, ADMIN, FieldConfigInput("emp", "ssn", MODULE))
    target = Target.of(table="emp", column="ssn")
    old = (await ready.crypto.encrypt(APP, Item(target, b"123"))).data
    assert old is not None
    await update_field_config(ready.ctx, ADMIN, config.id, module="global.hr", active=None)
    new = (await ready.crypto.encrypt(APP, Item(target, b"456"))).data
    assert new is not None and new[2:18] != old[2:18]  # a different module id in the header
    assert (await ready.crypto.decrypt(APP, Item(target, old))).data == b"123"
    assert (await ready.crypto.decrypt(APP, Item(target, new))).data == b"456"


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda b: b[:-1] + bytes([b[-1] ^ 1]), id="tampered-tag"),
        pytest.param(lambda b: b[:30] + bytes([b[30] ^ 0x80]) + b[31:], id="tampered-body"),
        pytest.param(lambda b: b[:1] + b"\x02" + b[2:], id="algorithm-swapped"),
        pytest.param(lambda b: b[:21] + bytes([b[21] + 1]) + b[22:], id="other-version"),
        pytest.param(lambda b: b[:10], id="truncated-header"),
        pytest.param(lambda b: b[:40], id="truncated-body"),
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: b"\x00" * len(b), id="zeros"),
        pytest.param(lambda b: b"\x02" + b[1:], id="unknown-format"),
        pytest.param(lambda b: bytes(range(256)) * 2, id="garbage"),
    ],
)
async def test_bad_ciphertexts_fail_with_the_one_opaque_error(ready: World, mangle: object) -> None:
    blob = await ready.encrypt(b"secret", context=b"ctx")
    bad = mangle(blob)  # type: ignore[operator]
    audit_before = len(ready.db.committed.audit)
    with pytest.raises(DecryptionFailed) as err:
        await ready.decrypt(bad, context=b"ctx")
    assert str(err.value) == "ciphertext could not be decrypted"
    assert len(ready.db.committed.audit) == audit_before


async def test_unknown_module_and_field_are_not_found(ready: World) -> None:
    with pytest.raises(NotFound) as err:
        await ready.encrypt(b"x", module="global.nope")
    assert err.value.reason is Reason.MODULE_NOT_FOUND
    with pytest.raises(NotFound) as err:
        await ready.crypto.encrypt(APP, Item(Target.of(table="t", column="c"), b"x"))
    assert err.value.reason is Reason.FIELD_CONFIG_NOT_FOUND


async def test_invalid_targets_and_oversized_input(ready: World) -> None:
    with pytest.raises(InvalidInput):
        Target.of()
    with pytest.raises(InvalidInput):
        Target.of(table="t", column="c", module=MODULE)
    with pytest.raises(InvalidInput):
        Target(module="Not A Name")
    with pytest.raises(InvalidInput):
        Target.of(table="drop table;", column="x")
    with pytest.raises(InvalidInput):
        await ready.encrypt(b"x", context=b"c" * 4097)
    with pytest.raises(InvalidInput):
        await ready.encrypt(b"x" * ((1 << 20) + 1))


async def test_map_denies_without_a_grant_and_is_audited(ready: World) -> None:
    stranger = Caller("stranger", frozenset({"other"}))
    with pytest.raises(AccessDenied) as err:
        await ready.crypto.encrypt(stranger, Item(Target(module=MODULE), b"x"))
    assert err.value.reason is Reason.MAP_REJECTED
    await ready.ctx.audit.flush()
    denied = [e for e in ready.db.committed.audit if e.result.value == "denied"]
    assert denied and denied[0].actor == "stranger" and denied[0].details["decided_by"] == "default"


async def test_old_versions_decrypt_after_rotation_and_new_data_uses_the_new_one(
    ready: World,
) -> None:
    v1 = await ready.encrypt(b"one")
    new_key = await rotate_module_key(ready.ctx, ADMIN, MODULE)
    assert new_key.version == 2
    v2 = await ready.encrypt(b"two")
    assert int.from_bytes(v2[18:22], "big") == 2
    assert await ready.decrypt(v1) == b"one" and await ready.decrypt(v2) == b"two"
    states = {k.version: k.state for k in await list_module_keys(ready.ctx, MODULE)}
    assert states == {1: KeyState.DEACTIVATED, 2: KeyState.ACTIVE}


async def test_rewrap_moves_old_ciphertexts_to_the_active_version(ready: World) -> None:
    v1 = await ready.encrypt(b"payload", context=b"r")
    await rotate_module_key(ready.ctx, ADMIN, MODULE)
    result = await ready.crypto.rewrap(APP, Item(Target(module=MODULE), v1, b"r"))
    assert result.key_version == 2 and result.data != v1
    assert result.data is not None and await ready.decrypt(result.data, context=b"r") == b"payload"
    same = await ready.crypto.rewrap(APP, Item(Target(module=MODULE), result.data, b"r"))
    assert same.data == result.data


async def test_revoking_the_active_version_creates_a_new_one(ready: World) -> None:
    v1 = await ready.encrypt(b"old")
    await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.REVOKE, "compromised")
    v2 = await ready.encrypt(b"new")
    assert int.from_bytes(v2[18:22], "big") == 2
    assert await ready.decrypt(v1) == b"old"  # revoked: decrypt only


async def test_suspended_version_refuses_until_resumed(ready: World) -> None:
    v1 = await ready.encrypt(b"x")
    await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.SUSPEND)
    for call in (ready.decrypt(v1), ready.encrypt(b"y")):
        with pytest.raises(KeyUnavailable) as err:
            await call
        assert err.value.reason in (Reason.KEY_VERSION_SUSPENDED, Reason.NO_ACTIVE_KEY)
    await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.RESUME)
    assert await ready.decrypt(v1) == b"x"


async def test_destroyed_version_cannot_decrypt_and_material_is_gone(ready: World) -> None:
    v1 = await ready.encrypt(b"gone")
    await rotate_module_key(ready.ctx, ADMIN, MODULE)
    with pytest.raises(Conflict):
        await change_key_state(ready.ctx, ADMIN, MODULE, 2, KeyAction.DESTROY)
    await change_key_state(ready.ctx, ADMIN, MODULE, 1, KeyAction.DESTROY)
    with pytest.raises(KeyUnavailable) as err:
        await ready.decrypt(v1)
    assert err.value.reason is Reason.KEY_VERSION_DESTROYED
    stored = [k for k in ready.db.committed.keys.values() if k.version == 1][0]
    assert stored.wrapped_dek is None


async def test_unknown_key_version_action_is_not_found(ready: World) -> None:
    with pytest.raises(NotFound):
        await change_key_state(ready.ctx, ADMIN, MODULE, 9, KeyAction.SUSPEND)


async def test_kek_rotation_rewraps_every_dek_and_keeps_data_readable(ready: World) -> None:
    await ready.module("global.hr", Algorithm.AES_256_SIV)
    a = await ready.encrypt(b"a")
    await rotate_module_key(ready.ctx, ADMIN, MODULE)
    b = await ready.encrypt(b"b")
    c = await ready.encrypt(b"c", module="global.hr")
    old = {k: v.wrapped_dek for k, v in ready.db.committed.keys.items()}
    result = await rotate_kek(ready.ctx, ADMIN)
    assert result.rewrapped_keys == 3 and result.old_kek_id != result.new_kek_id
    for ref, key in ready.db.committed.keys.items():
        assert key.wrapped_dek != old[ref] and str(key.kek_id) == result.new_kek_id
    actives = [k for k in ready.db.committed.instance_keys.values() if k.active]
    assert len(actives) == 1 and str(actives[0].id) == result.new_kek_id
    ready.ctx.chain.purge()  # a cold replica: must unwrap the new KEK through the KMS
    assert await ready.decrypt(a) == b"a" and await ready.decrypt(b) == b"b"
    assert await ready.decrypt(c, module="global.hr") == b"c"


async def test_hot_path_makes_no_kms_call_and_no_query(ready: World) -> None:
    blob = await ready.encrypt(b"warm-up")
    await ready.decrypt(blob)
    kms_calls, transactions = dict(ready.kms.calls), ready.db.transactions
    for i in range(50):
        assert await ready.decrypt(await ready.encrypt(b"%d" % i)) == b"%d" % i
    assert ready.kms.calls == kms_calls and ready.db.transactions == transactions


async def test_disabled_external_key_stops_the_chain_and_reenabling_serves(ready: World) -> None:
    blob = await ready.encrypt(b"data")
    ready.kms.status = ExternalKeyStatus.DISABLED  # the fake keeps wrapping, like moto
    report = await sync_external_key(ready.ctx)
    assert report.changed and report.status is ExternalKeyStatus.DISABLED
    assert ready.ctx.chain.cached is None  # purged
    for call in (ready.decrypt(blob), ready.encrypt(b"more")):
        with pytest.raises(KeyUnavailable) as err:
            await call
        assert err.value.reason is Reason.EXTERNAL_KEY_DISABLED
    with pytest.raises(KeyUnavailable):
        await rotate_module_key(ready.ctx, ADMIN, MODULE)
    ready.kms.status = ExternalKeyStatus.ENABLED
    await sync_external_key(ready.ctx)
    assert await ready.decrypt(blob) == b"data"
    assert any(e.action == "ekms.status.change" for e in ready.db.committed.audit)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (ExternalKeyStatus.PENDING_DELETION, Reason.EXTERNAL_KEY_PENDING_DELETION),
        (ExternalKeyStatus.DELETED, Reason.EXTERNAL_KEY_DELETED),
    ],
)
async def test_other_unusable_states(
    ready: World, status: ExternalKeyStatus, reason: Reason
) -> None:
    blob = await ready.encrypt(b"data")
    ready.kms.status = status
    await sync_external_key(ready.ctx)
    with pytest.raises(KeyUnavailable) as err:
        await ready.decrypt(blob)
    assert err.value.reason is reason
    status_view = await get_status(ready.ctx)
    assert not status_view.serving and status_view.serving_reason == reason.value


async def test_unavailable_serves_within_grace_then_fails_closed(ready: World) -> None:
    blob = await ready.encrypt(b"data")
    ready.kms.unreachable = True
    report = await sync_external_key(ready.ctx)
    assert report.status is ExternalKeyStatus.UNAVAILABLE
    assert await ready.decrypt(blob) == b"data"  # within the grace period, from memory
    ready.clock.advance(16 * 60)
    with pytest.raises(KeyUnavailable) as err:
        await ready.decrypt(blob)
    assert err.value.reason is Reason.EXTERNAL_KEY_UNAVAILABLE
    ready.kms.unreachable = False
    await sync_external_key(ready.ctx)
    assert await ready.decrypt(blob) == b"data"


async def test_aws_rotation_is_detected_and_the_ekek_rewrapped(ready: World) -> None:
    blob = await ready.encrypt(b"data")
    before = next(iter(ready.db.committed.instance_keys.values()))
    ready.kms.rotate()
    report = await sync_external_key(ready.ctx)
    after = next(iter(ready.db.committed.instance_keys.values()))
    assert report.rewrapped and after.rotation_marker == "fake:1"
    assert after.wrapped_kek != before.wrapped_kek and after.fingerprint == before.fingerprint
    ready.ctx.chain.purge()
    assert await ready.decrypt(blob) == b"data"
    assert not (await sync_external_key(ready.ctx)).rewrapped  # nothing new: no second rewrap


async def test_modules_need_a_configuration(world: World) -> None:
    with pytest.raises(KeyUnavailable) as err:
        await create_module(world.ctx, ADMIN, ModuleInput(MODULE))
    assert err.value.reason is Reason.NOT_CONFIGURED


async def test_duplicate_module_refused(ready: World) -> None:
    with pytest.raises(AlreadyExists):
        await create_module(ready.ctx, ADMIN, ModuleInput(MODULE))


async def test_audit_buffer_aggregates_and_never_loses_events(ready: World) -> None:
    await ready.ctx.audit.flush()
    for _ in range(10):
        await ready.encrypt(b"x")
    ready.db.down = True
    with pytest.raises(ServiceUnavailable):
        await ready.ctx.audit.flush()
    ready.db.down = False
    await ready.ctx.audit.flush()
    encrypts = [e for e in ready.db.committed.audit if e.action == "encrypt"]
    assert sum(e.count for e in encrypts) == 10
    key1 = [k for k in ready.db.committed.keys.values() if k.version == 1][0]
    assert key1.encryption_count == 10


async def test_audit_back_pressure_blocks_instead_of_dropping(ready: World) -> None:
    buffer = ready.ctx.audit
    buffer.capacity = 2
    await buffer.flush()
    for subject in ("a", "b"):
        buffer.record(actor=subject, action="decrypt", result=AuditResult.SUCCESS)
    waiter = asyncio.create_task(buffer.wait_for_capacity())
    await asyncio.sleep(0)
    assert not waiter.done()
    await buffer.flush()
    await asyncio.wait_for(waiter, 1)


async def test_status_changes_are_recorded_and_alerts_open_and_close(ready: World) -> None:
    ready.kms.status = ExternalKeyStatus.DISABLED
    await sync_external_key(ready.ctx)
    await sync_external_key(ready.ctx)  # still disabled: no second change, no second alert
    status = await get_status(ready.ctx)
    assert [a.kind for a in status.open_alerts] == ["external_key_unusable"]
    assert "disabled" in status.open_alerts[0].message
    ready.kms.status = ExternalKeyStatus.ENABLED
    await sync_external_key(ready.ctx)
    assert (await get_status(ready.ctx)).open_alerts == ()
    history = await status_history(ready.ctx)
    assert [(h.previous, h.status) for h in history] == [
        (ExternalKeyStatus.DISABLED, ExternalKeyStatus.ENABLED),
        (ExternalKeyStatus.ENABLED, ExternalKeyStatus.DISABLED),
    ]
    assert len(ready.db.committed.alerts) == 1 and ready.db.committed.alerts[0].closed_at


async def test_failures_are_audited_and_counted_without_echoing_unknown_names(ready: World) -> None:
    blob = await ready.encrypt(b"x", context=b"a")
    with pytest.raises(DecryptionFailed):
        await ready.decrypt(blob, context=b"b")
    for i in range(3):
        with pytest.raises(NotFound):
            await ready.encrypt(b"x", module=f"global.nope{i}")
    totals = ready.ctx.audit.totals
    assert totals[(MODULE, "decrypt", "DECRYPTION_FAILED")] == 1
    assert totals[("unknown", "encrypt", "MODULE_NOT_FOUND")] == 3
    assert totals[(MODULE, "encrypt", "success")] == 1
    await ready.ctx.audit.flush()
    failures = [e for e in ready.db.committed.audit if e.result is AuditResult.FAILURE]
    assert {(e.action, e.reason, e.count) for e in failures} == {
        ("decrypt", "DECRYPTION_FAILED", 1),
        ("encrypt", "MODULE_NOT_FOUND", 3),
    }
    assert all("nope" not in str(e.target) for e in failures)


async def test_database_outage_keeps_the_data_plane_on_the_cached_chain(ready: World) -> None:
    blob = await ready.encrypt(b"cached")
    ready.db.down = True
    ready.ctx.chain.invalidate()  # e.g. the periodic reconcile fires during the outage
    for _ in range(3):
        assert await ready.decrypt(blob) == b"cached"
    attempts = ready.db.attempts
    ready.ctx.chain.invalidate()
    assert await ready.decrypt(blob) == b"cached"  # within the retry pause: no new attempt
    assert ready.db.attempts == attempts
    ready.clock.advance(3)
    assert await ready.decrypt(blob) == b"cached"  # after it: one attempt, still served
    assert ready.db.attempts == attempts + 1
    ready.ctx.chain.purge()  # an unusable external key: nothing cached may serve
    with pytest.raises(ServiceUnavailable):
        await ready.decrypt(blob)
    ready.db.down = False
    assert await ready.decrypt(blob) == b"cached"
