"""The status sync against a KMS that is silent, refuses, or answers while ekms is too busy to
hear it (issues 10 and 19): fakes of our own ports, a fake clock, no network."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest

from app.application.config_probe import probe_ekms_config
from app.application.configuration import get_status
from app.application.ports import ExternalKeyDescription, StallMark
from app.application.status_record import alert_message
from app.application.sync import probe_revocation, sync_external_key
from app.domain.alerts import KeyStatusChange
from app.domain.errors import KeyUnavailable, Reason, ServiceUnavailable
from app.domain.values import ExternalKeyStatus
from tests.fakes import FakeKms
from tests.unit.conftest import ADMIN, World


class StallingMeter:
    """A StallMeter that reports ``stalled`` seconds for every wait."""

    def __init__(self, stalled: float) -> None:
        self.stalled = stalled

    def mark(self) -> StallMark:
        return StallMark(0.0, 0.0)

    def stalled_since(self, mark: StallMark) -> float:
        return self.stalled


class SilentOnce(FakeKms):
    """Describe gets no answer ``silent`` times, then answers."""

    silent = 1

    async def describe(self) -> ExternalKeyDescription:
        if self.silent > 0:
            self.silent -= 1
            self.calls["describe"] = self.calls.get("describe", 0) + 1
            return ExternalKeyDescription(
                ExternalKeyStatus.UNAVAILABLE,
                reason="timed out",
                reason_code=Reason.KMS_UNAVAILABLE,
            )
        return await super().describe()


async def _history(world: World) -> list[KeyStatusChange]:
    async with world.ctx.uow() as uow:
        return list(await uow.status.history(10))


def _silent(ready: World, times: int) -> SilentOnce:
    kms = SilentOnce(ready.kms.ref)
    kms._roots = ready.kms._roots  # the same key material: the EKEK still unwraps
    kms.silent = times
    ready.connector.keys[ready.kms.ref.key_id] = kms
    return kms


async def test_a_kms_silent_once_is_asked_again_and_the_key_stays_enabled(ready: World) -> None:
    kms = _silent(ready, times=1)
    report = await sync_external_key(ready.ctx)
    assert report.status is ExternalKeyStatus.ENABLED and not report.inconclusive
    assert kms.calls["describe"] == 2
    assert await _history(ready) == []  # nothing to record


async def test_silence_while_ekms_was_too_busy_is_inconclusive_and_records_no_status(
    ready: World,
) -> None:
    _silent(ready, times=2)
    ready.clock.advance(1)  # the wait the silence took
    busy = dataclasses.replace(ready.ctx, stalls=StallingMeter(stalled=10.0))
    before = (await get_status(ready.ctx)).last_sync_at

    report = await sync_external_key(busy)

    assert report.inconclusive and report.status is ExternalKeyStatus.ENABLED
    assert "too busy" in (report.reason or "")
    status = await get_status(ready.ctx)
    assert status.external_key_status is ExternalKeyStatus.ENABLED
    assert status.last_sync_at == before, "the sync stays due"
    assert status.open_alerts == ()
    (note,) = await _history(ready)
    assert note.previous is note.status is ExternalKeyStatus.ENABLED
    assert "too busy" in (note.reason or "")
    assert await ready.decrypt(await ready.encrypt(b"x")) == b"x"


async def test_silence_while_ekms_was_responsive_is_unavailable_with_grace(ready: World) -> None:
    blob = await ready.encrypt(b"kept")
    _silent(ready, times=2)
    report = await sync_external_key(ready.ctx)
    assert report.status is ExternalKeyStatus.UNAVAILABLE and not report.inconclusive
    assert "ekms was responsive" in (report.reason or "")
    assert (await get_status(ready.ctx)).status_reason_code == Reason.KMS_UNAVAILABLE.value
    assert await ready.decrypt(blob) == b"kept"  # no answer: the grace period applies


@pytest.mark.parametrize("operation", ["unwrap", "describe"])
async def test_a_refusal_stops_the_chain_at_once_without_grace(
    ready: World, operation: str
) -> None:
    blob = await ready.encrypt(b"secret")
    ready.kms.denied.add(operation)  # the key policy now denies kms:Decrypt / DescribeKey

    report = await sync_external_key(ready.ctx)

    assert report.status is ExternalKeyStatus.UNAVAILABLE
    status = await get_status(ready.ctx)
    assert status.status_reason_code == Reason.EXTERNAL_KEY_ACCESS_DENIED.value
    assert not status.serving
    with pytest.raises(KeyUnavailable) as err:
        await ready.decrypt(blob)
    assert err.value.reason is Reason.EXTERNAL_KEY_ACCESS_DENIED
    (alert,) = status.open_alerts
    assert "unavailable" in alert.message and "refuse" in alert.message.replace("denied", "refuse")

    ready.kms.denied.clear()  # the customer restores access
    assert (await sync_external_key(ready.ctx)).status is ExternalKeyStatus.ENABLED
    assert await ready.decrypt(blob) == b"secret"
    assert (await get_status(ready.ctx)).open_alerts == ()


async def test_a_key_that_no_longer_unwraps_the_instance_key_is_refused(ready: World) -> None:
    ready.kms._roots = {0: type(ready.kms._roots[0])(bytes(32))}  # other key material
    await sync_external_key(ready.ctx)
    status = await get_status(ready.ctx)
    assert status.status_reason_code == Reason.EXTERNAL_KEY_UNWRAP_FAILED.value
    assert not status.serving


async def test_the_revocation_probe_fails_closed_and_success_records_nothing(ready: World) -> None:
    blob = await ready.encrypt(b"v")
    proven = await probe_revocation(ready.ctx)
    assert proven.proven and not proven.changed
    assert await _history(ready) == []
    assert ready.kms.calls.get("describe", 0) <= 1, "the probe is one Decrypt, not a sync"

    ready.kms.denied.add("unwrap")
    refused = await probe_revocation(ready.ctx)
    assert refused.changed and refused.refusal is not None
    with pytest.raises(KeyUnavailable) as err:
        await ready.decrypt(blob)
    assert err.value.reason is Reason.EXTERNAL_KEY_ACCESS_DENIED


async def test_the_probe_leaves_a_silent_kms_to_the_sync(ready: World) -> None:
    ready.kms.unreachable = True
    report = await probe_revocation(ready.ctx)
    assert not report.proven and not report.changed
    assert (await get_status(ready.ctx)).external_key_status is ExternalKeyStatus.ENABLED


def test_the_alert_names_the_true_state() -> None:
    assert alert_message(ExternalKeyStatus.DELETED, None) == "the external key is deleted"
    assert "pending_deletion" in alert_message(ExternalKeyStatus.PENDING_DELETION, "scheduled")


class SilentUnwrap(FakeKms):
    """DescribeKey answers; Decrypt (the unwrap proof) gets no answer ``silent`` times."""

    silent = 2

    async def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        if self.silent > 0:
            self.silent -= 1
            raise ServiceUnavailable("AWS KMS timed out", reason=Reason.KMS_UNAVAILABLE)
        return await super().unwrap(wrapped, context)


def _silent_unwrap(ready: World, times: int) -> SilentUnwrap:
    kms = SilentUnwrap(ready.kms.ref)
    kms._roots = ready.kms._roots
    kms.silent = times
    ready.connector.keys[ready.kms.ref.key_id] = kms
    return kms


async def test_an_unwrap_proof_silent_once_is_asked_again(ready: World) -> None:
    _silent_unwrap(ready, times=1)
    report = await sync_external_key(ready.ctx)
    assert report.status is ExternalKeyStatus.ENABLED and not report.inconclusive


async def test_an_unwrap_proof_silent_while_ekms_was_too_busy_is_inconclusive(
    ready: World,
) -> None:
    _silent_unwrap(ready, times=2)
    busy = dataclasses.replace(ready.ctx, stalls=StallingMeter(stalled=10.0))
    report = await sync_external_key(busy)
    assert report.inconclusive and report.status is ExternalKeyStatus.ENABLED
    assert (await get_status(ready.ctx)).external_key_status is ExternalKeyStatus.ENABLED


async def test_an_unwrap_proof_silent_while_ekms_was_responsive_is_unavailable(
    ready: World,
) -> None:
    _silent_unwrap(ready, times=2)
    report = await sync_external_key(ready.ctx)
    assert report.status is ExternalKeyStatus.UNAVAILABLE and not report.inconclusive
    assert (await get_status(ready.ctx)).status_reason_code == Reason.KMS_UNAVAILABLE.value


async def test_the_config_test_says_a_deleted_key_is_deleted(ready: World) -> None:
    ready.kms.status = ExternalKeyStatus.DELETED
    result = await probe_ekms_config(ready.ctx, ADMIN)
    assert not result.ok and result.status is ExternalKeyStatus.DELETED
    assert "deleted" in (result.reason or "")
    assert "must be enabled" not in (result.reason or "")
    ready.kms.status = ExternalKeyStatus.DISABLED
    assert "enable it" in ((await probe_ekms_config(ready.ctx, ADMIN)).reason or "")


async def test_the_open_alert_follows_the_state_from_unavailable_to_deleted(ready: World) -> None:
    _silent(ready, times=2)
    assert (await sync_external_key(ready.ctx)).status is ExternalKeyStatus.UNAVAILABLE
    (alert,) = (await get_status(ready.ctx)).open_alerts
    assert "unavailable" in alert.message

    ready.kms.status = ExternalKeyStatus.DELETED
    assert (await sync_external_key(ready.ctx)).status is ExternalKeyStatus.DELETED

    (alert,) = (await get_status(ready.ctx)).open_alerts
    assert alert.message == "the external key is deleted"
