"""Ending the configuration once every external key is deleted (issue 13, the dead end), on
fakes of our own ports: refused (and nothing changes) while a key is not deleted; then the key
versions are lost, a new configuration starts a fresh chain, an old ciphertext is lost."""

from __future__ import annotations

import grpc
import pytest

from app.api.errors import STATUS_BY_ERROR
from app.application.config_end import end_ekms_config
from app.application.configuration import ConfigInput, configure_ekms, get_status
from app.application.modules import list_module_keys
from app.application.sync import sync_external_key
from app.domain.errors import Conflict, InvalidInput, KeyUnavailable, NotFound, Reason
from app.domain.values import ExternalKeyStatus, KeyState, KmsProvider
from app.grpc.errors import code_for
from tests.unit.conftest import ADMIN, World

INSTANCE = "test-instance"


async def _stored(world: World) -> tuple[object, int, int]:
    async with world.ctx.uow() as uow:
        return (
            await uow.config.get(),
            len(await uow.instance_keys.list()),
            len(await uow.keys.list_all()),
        )


@pytest.mark.parametrize(
    "status",
    [ExternalKeyStatus.ENABLED, ExternalKeyStatus.DISABLED, ExternalKeyStatus.PENDING_DELETION],
)
async def test_the_end_is_refused_while_a_key_is_not_deleted(
    ready: World, status: ExternalKeyStatus
) -> None:
    ready.kms.status = status
    await sync_external_key(ready.ctx)
    before = await _stored(ready)

    with pytest.raises(Conflict) as err:
        await end_ekms_config(ready.ctx, ADMIN, INSTANCE)

    assert err.value.reason is Reason.EXTERNAL_KEY_NOT_DELETED
    assert status.value in err.value.message
    assert await _stored(ready) == before


async def test_a_wrong_confirm_changes_nothing(ready: World) -> None:
    ready.kms.status = ExternalKeyStatus.DELETED
    await sync_external_key(ready.ctx)
    before = await _stored(ready)

    with pytest.raises(InvalidInput) as err:
        await end_ekms_config(ready.ctx, ADMIN, "another-instance")

    assert err.value.field == "confirm"
    assert await _stored(ready) == before


async def test_with_every_key_deleted_the_config_ends_and_a_new_one_starts_fresh(
    ready: World,
) -> None:
    old = await ready.encrypt(b"before")
    ready.kms.status = ExternalKeyStatus.DELETED
    await sync_external_key(ready.ctx)
    assert (await get_status(ready.ctx)).open_alerts

    ended = await end_ekms_config(ready.ctx, ADMIN, INSTANCE)

    assert (ended.lost_versions, ended.ekeks) == (1, 1)
    config, ekeks, _ = await _stored(ready)
    assert config is None and ekeks == 0
    assert (await get_status(ready.ctx)).open_alerts == ()
    (lost,) = await list_module_keys(ready.ctx, "global.payroll")
    assert lost.state is KeyState.DESTROYED and lost.lost_at is not None
    assert lost.wrapped_dek is None
    with pytest.raises((KeyUnavailable, NotFound)):
        await ready.decrypt(old)

    await configure_ekms(ready.ctx, ADMIN, ConfigInput(KmsProvider.AWS, "new-key"))

    versions = await list_module_keys(ready.ctx, "global.payroll")
    assert [(k.version, k.state) for k in versions] == [
        (1, KeyState.DESTROYED),
        (2, KeyState.ACTIVE),
    ]
    assert await ready.decrypt(await ready.encrypt(b"after")) == b"after"
    with pytest.raises(KeyUnavailable) as err:
        await ready.decrypt(old)
    assert err.value.reason is Reason.KEY_VERSION_LOST
    actions = [e.action for e in ready.db.committed.audit]
    assert actions[-2:] == ["ekms.config.end", "ekms.configure"]
    assert ready.db.committed.audit[-1].details["fresh_key_versions"] == ["global.payroll"]


def test_a_lost_version_is_a_failed_precondition_on_grpc_and_409_on_rest() -> None:
    lost = KeyUnavailable("key version 1 is destroyed", reason=Reason.KEY_VERSION_LOST)
    assert code_for(lost) is grpc.StatusCode.FAILED_PRECONDITION
    assert STATUS_BY_ERROR[type(lost)] == 409
