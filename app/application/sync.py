"""The external key status sync: read the key's state, prove the key still unwraps the EKEK,
record what was seen, rewrap after a rotation of the key material.

A KMS may keep answering wrap/unwrap for a disabled key (moto does, and so may a KMS behind a
proxy), so ekms never infers "enabled" from those calls: it asks the provider to describe the
key and read its rotation marker. It does infer "refused" from them: a key policy that denies
unwrapping (AWS: kms:Decrypt) while describing still works is caught by the unwrap proof, and
fails closed at once.

A KMS that does not answer is asked again before the sync counts it Unavailable; when ekms
itself was too busy to hear the answer (``StallMeter``), the sync is inconclusive instead and
records nothing but a history note, so a saturated replica never fails a healthy key closed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from app.application.context import AppContext
from app.application.kek import rewrap_ekek
from app.application.lookups import key_ref, load_keys, load_wraps, require_config
from app.application.ports import ExternalKeyDescription, KeyManagementService
from app.application.status_record import record_inconclusive, record_observation
from app.domain.ekms_config import ExternalInstanceKey, ExternalKmsConfig
from app.domain.errors import (
    DecryptionFailed,
    EkmsError,
    KeyUnavailable,
    Reason,
    ServiceUnavailable,
)
from app.domain.external_keys import ExternalKey
from app.domain.keys import KeyEncryptionKey, constant_time_equal
from app.domain.values import SYSTEM, Caller, ExternalKeyStatus

log = structlog.get_logger(__name__)

ASK_ATTEMPTS = 2  # each is itself up to the adapter's own retries
BUSY_SHARE = 0.5  # stalled for at least this share of the wait: ekms, not the KMS, was late

_STATUS_OF_REFUSAL = {
    Reason.EXTERNAL_KEY_DISABLED: ExternalKeyStatus.DISABLED,
    Reason.EXTERNAL_KEY_PENDING_DELETION: ExternalKeyStatus.PENDING_DELETION,
    Reason.EXTERNAL_KEY_DELETED: ExternalKeyStatus.DELETED,
}


@dataclass(frozen=True, slots=True)
class KeySyncReport:
    """What one sync saw of one external key. ``inconclusive``: ekms was too busy to hear the
    KMS, so nothing but a history note was recorded and the sync stays due."""

    key: uuid.UUID
    status: ExternalKeyStatus
    previous: ExternalKeyStatus
    changed: bool
    reason: str | None
    rewrapped: bool
    rotation_marker: str | None
    inconclusive: bool = False


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one sync saw of every key, the first first; the flat names are the first key's."""

    keys: tuple[KeySyncReport, ...]

    @property
    def status(self) -> ExternalKeyStatus:
        return self.keys[0].status

    @property
    def previous(self) -> ExternalKeyStatus:
        return self.keys[0].previous

    @property
    def changed(self) -> bool:
        return self.keys[0].changed

    @property
    def reason(self) -> str | None:
        return self.keys[0].reason

    @property
    def rewrapped(self) -> bool:
        return self.keys[0].rewrapped

    @property
    def rotation_marker(self) -> str | None:
        return self.keys[0].rotation_marker

    @property
    def inconclusive(self) -> bool:
        return self.keys[0].inconclusive


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """What one revocation probe saw: ``None`` refusal means the EKEK still unwraps."""

    proven: bool
    refusal: ExternalKeyDescription | None
    changed: bool


async def sync_external_key(ctx: AppContext, caller: Caller = SYSTEM) -> SyncReport:
    """For every external key: describe it, prove the unwrap, record the outcome, and rewrap
    its own EKEK after a rotation of its key material."""
    async with ctx.uow() as uow:
        config = await require_config(uow)
        keys = await load_keys(uow, config)
        wraps = await load_wraps(uow, keys, await uow.instance_keys.get_active())
    reports = [
        await _sync_key(ctx, caller, config, key, wraps.get(key.id), first=index == 0)
        for index, key in enumerate(keys)
    ]
    return SyncReport(tuple(reports))


async def _sync_key(
    ctx: AppContext,
    caller: Caller,
    config: ExternalKmsConfig,
    key: ExternalKey,
    ekek: ExternalInstanceKey | None,
    *,
    first: bool,
) -> KeySyncReport:
    """One key's observe/record step and its rotation check."""
    kms = ctx.kms.connect(key_ref(key))
    previous = key.external_key_status
    marker = ekek.rotation_marker if ekek else None
    description, busy = await _observe(ctx, kms, ekek if config.active else None)
    if busy is not None:
        await record_inconclusive(ctx, key, busy, key.id)
        return KeySyncReport(key.id, previous, previous, False, busy, False, marker, True)
    changed = await record_observation(ctx, caller, config, description, key, first=first)
    rewrapped = False
    if description.status is ExternalKeyStatus.ENABLED and ekek is not None and config.active:
        try:
            rotation = await kms.rotation_state()
        except EkmsError as exc:
            log.warning("rotation_check_failed", reason=exc.reason.value, key=str(key.id))
        else:
            if rotation.marker != ekek.rotation_marker:
                result = await rewrap_ekek(ctx, caller, None if first else key)
                rewrapped, marker = True, result.new_marker
    return KeySyncReport(
        key.id, description.status, previous, changed, description.reason, rewrapped, marker
    )


async def probe_revocation(ctx: AppContext, caller: Caller = SYSTEM) -> ProbeReport:
    """One unwrap of each enabled key's EKEK (``EKMS_REVOCATION_PROBE_SECONDS``): a refusal is
    recorded for its key (the revocation policy then decides); success records nothing (the
    sync alone decides "enabled"). Reports the first refusal, or proven when every key was."""
    async with ctx.uow() as uow:
        config = await require_config(uow)
        keys = await load_keys(uow, config)
        wraps = await load_wraps(uow, keys, await uow.instance_keys.get_active())
    report = ProbeReport(proven=False, refusal=None, changed=False)
    for index, key in enumerate(keys):
        ekek = wraps.get(key.id)
        if ekek is None or not config.active:
            continue
        if key.external_key_status is not ExternalKeyStatus.ENABLED:
            continue
        refusal = await prove_unwrap(ctx.kms.connect(key_ref(key)), ekek)
        if refusal is None:
            if report.refusal is None:
                report = ProbeReport(proven=True, refusal=None, changed=False)
            continue
        if refusal.no_answer:  # unreachable is the sync's business (grace period)
            log.warning("revocation_probe_no_answer", reason=refusal.reason, key=str(key.id))
            changed = False
        else:
            changed = await record_observation(ctx, caller, config, refusal, key, first=index == 0)
        if report.refusal is None:
            report = ProbeReport(proven=False, refusal=refusal, changed=changed)
    return report


async def prove_unwrap(
    kms: KeyManagementService, ekek: ExternalInstanceKey
) -> ExternalKeyDescription | None:
    """``None`` when the external key still unwraps the EKEK to the KEK it fingerprints;
    otherwise what that says about the key (a refusal, or no answer)."""
    try:
        raw = await kms.unwrap(ekek.wrapped_kek, ekek.encryption_context)
    except KeyUnavailable as exc:
        status = _STATUS_OF_REFUSAL.get(exc.reason, ExternalKeyStatus.UNAVAILABLE)
        return ExternalKeyDescription(
            status=status,
            reason=f"the external key refused to unwrap the instance key: {exc.message}",
            reason_code=_refusal_code(exc.reason)
            if status is ExternalKeyStatus.UNAVAILABLE
            else None,
        )
    except ServiceUnavailable as exc:
        return ExternalKeyDescription(
            status=ExternalKeyStatus.UNAVAILABLE,
            reason=f"the unwrap proof got no answer: {exc.message}",
            reason_code=exc.reason,
        )
    except DecryptionFailed:
        return _unwrap_failed()
    kek = KeyEncryptionKey(ekek.id, raw)
    del raw
    if not constant_time_equal(kek.fingerprint, ekek.fingerprint):
        return _unwrap_failed()
    return None


def _refusal_code(reason: Reason) -> Reason:
    # Missing credentials and the like stay "unavailable" (grace); a KMS "no" is a refusal.
    if reason is Reason.EXTERNAL_KEY_UNAVAILABLE:
        return reason
    return Reason.EXTERNAL_KEY_ACCESS_DENIED


def _unwrap_failed() -> ExternalKeyDescription:
    return ExternalKeyDescription(
        status=ExternalKeyStatus.UNAVAILABLE,
        reason="the external key no longer unwraps the instance key to the same KEK",
        reason_code=Reason.EXTERNAL_KEY_UNWRAP_FAILED,
    )


async def _asked_again(
    ask: Callable[[], Awaitable[ExternalKeyDescription]],
) -> ExternalKeyDescription:
    """One KMS question, asked once more when the KMS did not answer."""
    for _ in range(ASK_ATTEMPTS - 1):
        seen = await ask()
        if not seen.no_answer:
            return seen
        log.warning("kms_no_answer_retrying", reason=seen.reason)
    return await ask()


async def _observe(
    ctx: AppContext, kms: KeyManagementService, ekek: ExternalInstanceKey | None
) -> tuple[ExternalKeyDescription, str | None]:
    """Describe the key, then (for an enabled key with an EKEK) the unwrap proof, each asked again
    when the KMS did not answer. Returns what was seen, and a reason when a silence was ekms's
    own (the loop that runs KMS calls stalled through the wait)."""
    mark = ctx.stalls.mark()
    started = ctx.clock.monotonic()
    seen = described = await _asked_again(kms.describe)
    if described.status is ExternalKeyStatus.ENABLED and ekek is not None:
        proven_ekek = ekek

        async def proof() -> ExternalKeyDescription:
            return await prove_unwrap(kms, proven_ekek) or described

        seen = await _asked_again(proof)
    if not seen.no_answer:
        return seen, None
    waited = max(ctx.clock.monotonic() - started, 1e-9)
    stalled = ctx.stalls.stalled_since(mark)
    if stalled >= BUSY_SHARE * waited:
        busy = (
            f"sync inconclusive: ekms was too busy to hear the KMS (its KMS event loop could "
            f"not run for {stalled:.1f} s of the {waited:.1f} s wait); nothing recorded"
        )
        log.warning("sync_inconclusive_busy", stalled_s=round(stalled, 3), waited_s=waited)
        return seen, busy
    why = seen.reason or "no answer"
    return (
        ExternalKeyDescription(
            status=seen.status,
            reason=(
                f"{why}: no answer in {ASK_ATTEMPTS} attempts over {waited:.1f} s "
                f"(ekms was responsive: stalled {stalled * 1000:.0f} ms)"
            ),
            reason_code=seen.reason_code,
        ),
        None,
    )
