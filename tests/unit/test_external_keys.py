"""Several external keys wrap one KEK: the revocation policy (pure domain) and the use cases on
fakes (add, remove, KEK rotation under every key, the first key's state shared with the
previous schema head)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.application.configuration import update_ekms_config
from app.application.external_keys import (
    ExternalKeyInput,
    add_external_key,
    list_external_keys,
    remove_external_key,
)
from app.application.kek import rotate_kek
from app.application.sync import probe_revocation, sync_external_key
from app.domain.errors import Conflict, KeyUnavailable, Reason, ServiceUnavailable
from app.domain.external_keys import ExternalKey, chain_verdict
from app.domain.values import ExternalKeyStatus, KmsProvider, RevocationPolicy
from app.infra.telemetry import ChainCollector
from tests.unit.conftest import ADMIN, KEY_ID, World

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=15)
ANY, ALL = RevocationPolicy.ANY, RevocationPolicy.ALL
SECOND = "second-key"


def _key(
    position: int,
    status: ExternalKeyStatus = ExternalKeyStatus.ENABLED,
    *,
    code: Reason | None = None,
    since: datetime | None = None,
) -> ExternalKey:
    key = ExternalKey(uuid.uuid4(), position, KmsProvider.AWS, f"k{position}", None, NOW)
    key.external_key_status, key.status_reason_code, key.unavailable_since = status, code, since
    return key


D, E, U = ExternalKeyStatus.DISABLED, ExternalKeyStatus.ENABLED, ExternalKeyStatus.UNAVAILABLE


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (D, Reason.EXTERNAL_KEY_DISABLED),
        (ExternalKeyStatus.PENDING_DELETION, Reason.EXTERNAL_KEY_PENDING_DELETION),
        (ExternalKeyStatus.DELETED, Reason.EXTERNAL_KEY_DELETED),
    ],
)
def test_under_any_one_stopped_key_stops_the_chain(
    status: ExternalKeyStatus, reason: Reason
) -> None:
    verdict = chain_verdict(ANY, [_key(0), _key(1, status)], GRACE, NOW)
    assert verdict.error is not None and verdict.error.reason is reason


def test_under_all_the_chain_serves_while_one_key_is_enabled() -> None:
    first, second = _key(0, D), _key(1)
    verdict = chain_verdict(ALL, [second, first], GRACE, NOW)
    assert verdict.error is None and verdict.usable == (second,)
    both = chain_verdict(ALL, [first, _key(1, ExternalKeyStatus.DELETED)], GRACE, NOW)
    assert both.error is not None and both.error.reason is Reason.EXTERNAL_KEY_DISABLED


def test_a_refusal_stops_under_any_and_is_outvoted_under_all() -> None:
    refused = _key(1, U, code=Reason.EXTERNAL_KEY_ACCESS_DENIED, since=NOW)
    verdict = chain_verdict(ANY, [_key(0), refused], GRACE, NOW)
    assert verdict.error is not None and verdict.error.reason is Reason.EXTERNAL_KEY_ACCESS_DENIED
    assert chain_verdict(ALL, [_key(0), refused], GRACE, NOW).error is None


@pytest.mark.parametrize("policy", [ANY, ALL])
def test_an_unreachable_key_beside_an_enabled_one_never_fails_the_chain(
    policy: RevocationPolicy,
) -> None:
    first, second = _key(0, U, code=Reason.KMS_UNAVAILABLE, since=NOW - GRACE * 4), _key(1)
    verdict = chain_verdict(policy, [first, second], GRACE, NOW)
    assert verdict.error is None and verdict.fail_closed_at is None
    assert verdict.usable == (first, second)  # the unwrap still tries the first key first


@pytest.mark.parametrize("policy", [ANY, ALL])
def test_every_key_unreachable_fails_closed_a_grace_period_after_the_last_answer(
    policy: RevocationPolicy,
) -> None:
    early, late = NOW - timedelta(minutes=10), NOW - timedelta(minutes=2)
    keys = [_key(0, U, since=early), _key(1, U, since=late)]
    verdict = chain_verdict(policy, keys, GRACE, NOW)
    assert verdict.error is None and verdict.fail_closed_at == late + GRACE


def test_under_all_a_stopped_key_leaves_the_unreachable_one_its_grace() -> None:
    keys = [_key(0, D), _key(1, U, since=NOW)]
    verdict = chain_verdict(ALL, keys, GRACE, NOW)
    assert verdict.error is None and verdict.fail_closed_at == NOW + GRACE
    assert chain_verdict(ANY, keys, GRACE, NOW).error is not None


async def _two_keys(world: World, policy: RevocationPolicy = ANY) -> bytes:
    await world.configure()
    if policy is ALL:
        await update_ekms_config(world.ctx, ADMIN, {"revocation_policy": ALL})
    await world.module()
    await add_external_key(world.ctx, ADMIN, ExternalKeyInput(KmsProvider.AWS, SECOND))
    return await world.encrypt(b"salary")


async def test_a_kek_rotation_wraps_the_new_kek_under_every_key(world: World) -> None:
    blob = await _two_keys(world)
    await rotate_kek(world.ctx, ADMIN)

    world.kms.unreachable = True  # only the second key can give the new KEK back
    world.ctx.chain.purge()
    assert await world.decrypt(blob) == b"salary"
    views = await list_external_keys(world.ctx)
    assert [v.ekek is not None for v in views] == [True, True]
    assert len({v.ekek.wraps for v in views if v.ekek}) == 1  # one KEK, two wraps


async def test_adding_a_key_that_does_not_answer_writes_nothing(world: World) -> None:
    await world.configure()
    world.connector.key(SECOND).unreachable = True
    before = world.db.committed
    with pytest.raises(KeyUnavailable):
        await add_external_key(world.ctx, ADMIN, ExternalKeyInput(KmsProvider.AWS, SECOND))
    world.connector.key(SECOND).unreachable = False
    world.connector.key(SECOND).denied = {"unwrap"}  # wraps, but the round trip fails
    with pytest.raises(KeyUnavailable):
        await add_external_key(world.ctx, ADMIN, ExternalKeyInput(KmsProvider.AWS, SECOND))
    assert world.db.committed is before  # no transaction committed


async def test_the_same_key_cannot_be_added_twice_and_the_last_cannot_go(world: World) -> None:
    await world.configure()
    with pytest.raises(Conflict) as twice:
        await add_external_key(world.ctx, ADMIN, ExternalKeyInput(KmsProvider.AWS, KEY_ID))
    (only,) = await list_external_keys(world.ctx)
    with pytest.raises(Conflict) as last:
        await remove_external_key(world.ctx, ADMIN, only.key.id)
    assert (twice.value.reason, last.value.reason) == (
        Reason.EXTERNAL_KEY_EXISTS,
        Reason.LAST_EXTERNAL_KEY,
    )


async def test_removing_the_second_key_leaves_the_first_alone(world: World) -> None:
    blob = await _two_keys(world)
    first, second = await list_external_keys(world.ctx)
    await remove_external_key(world.ctx, ADMIN, second.key.id)
    (only,) = await list_external_keys(world.ctx)
    assert only.key.id == first.key.id and only.ekek == first.ekek
    assert all(k.kek_id is None for k in world.db.committed.instance_keys.values())
    world.connector.key(SECOND).unreachable = True
    world.ctx.chain.purge()
    assert await world.decrypt(blob) == b"salary"


async def test_the_first_keys_state_written_by_the_previous_head_is_obeyed(world: World) -> None:
    blob = await _two_keys(world, ALL)
    # The previous schema head records only in the configuration row.
    world.db.committed.config.external_key_status = ExternalKeyStatus.DISABLED
    world.ctx.chain.purge()
    assert await world.decrypt(blob) == b"salary"  # under all: the second key serves
    world.connector.key(SECOND).status = ExternalKeyStatus.DISABLED
    report = await sync_external_key(world.ctx)
    assert [k.status for k in report.keys] == [ExternalKeyStatus.ENABLED, D]
    world.kms.unreachable = True  # the first key (enabled again) must now unwrap alone
    world.ctx.chain.purge()
    with pytest.raises(ServiceUnavailable):
        await world.decrypt(blob)


async def test_the_metrics_show_each_keys_state_labelled_by_key(world: World) -> None:
    blob = await _two_keys(world, ALL)
    world.connector.key(SECOND).status = D
    await sync_external_key(world.ctx)
    assert await world.decrypt(blob) == b"salary"  # loads the snapshot the scrape reads
    collector = ChainCollector()
    collector.chain = world.ctx.chain
    (family,) = [m for m in collector.collect() if m.name == "ekms_external_keys_status"]
    on = {(s.labels["position"], s.labels["state"]) for s in family.samples if s.value == 1.0}
    first, second = await list_external_keys(world.ctx)
    keys = {s.labels["key"] for s in family.samples}
    assert on == {("0", "enabled"), ("1", "disabled")}
    assert keys == {str(first.key.id), str(second.key.id)}


async def test_the_revocation_probe_proves_every_key_and_records_a_refusal_for_its_key(
    world: World,
) -> None:
    blob = await _two_keys(world)
    assert (await probe_revocation(world.ctx)).proven
    world.connector.key(SECOND).denied = {"unwrap"}  # the second holder revokes kms:Decrypt

    report = await probe_revocation(world.ctx)

    assert report.refusal is not None and report.changed
    first, second = await list_external_keys(world.ctx)
    assert first.key.external_key_status is ExternalKeyStatus.ENABLED
    assert second.key.refused
    with pytest.raises(KeyUnavailable) as err:
        await world.decrypt(blob)
    assert err.value.reason is Reason.EXTERNAL_KEY_ACCESS_DENIED
