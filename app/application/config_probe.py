"""The configuration test (``POST /ekms/config/test``): a random probe wrapped and unwrapped
through every external key of the configuration; nothing is persisted but the audit event."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from app.application.context import AppContext
from app.application.lookups import key_ref, load_keys, require_config, require_enabled
from app.domain.audit import AuditResult
from app.domain.errors import EkmsError
from app.domain.external_keys import ExternalKey
from app.domain.keys import constant_time_equal
from app.domain.values import Caller, ExternalKeyStatus


@dataclass(frozen=True, slots=True)
class KeyProbe:
    """The probe's round trip through one external key."""

    key: uuid.UUID
    ok: bool
    key_name: str | None
    status: ExternalKeyStatus
    latency_ms: float
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The configuration test: ``ok`` when every key round-trips; the flat fields are the
    first key's, ``keys`` has each one, the first first."""

    ok: bool
    key_name: str | None
    status: ExternalKeyStatus
    latency_ms: float
    reason: str | None = None
    keys: tuple[KeyProbe, ...] = field(default=())


async def _probe(ctx: AppContext, key: ExternalKey) -> KeyProbe:
    kms = ctx.kms.connect(key_ref(key))
    started = time.perf_counter()
    description = await kms.describe()
    try:
        require_enabled(description)
        probe = ctx.rng.token_bytes(32)
        context = {"ekms:instance": ctx.chain.instance_id, "ekms:purpose": "probe"}
        wrapped = await kms.wrap(probe, context)
        back = await kms.unwrap(wrapped.ciphertext, context)
        ok = constant_time_equal(probe, back)
        return KeyProbe(
            key=key.id,
            ok=ok,
            key_name=wrapped.key_name,
            status=description.status,
            latency_ms=(time.perf_counter() - started) * 1000,
            reason=None if ok else "the probe did not round-trip",
        )
    except EkmsError as exc:
        return KeyProbe(
            key=key.id,
            ok=False,
            key_name=description.key_name,
            status=description.status,
            latency_ms=(time.perf_counter() - started) * 1000,
            reason=exc.message,
        )


async def probe_ekms_config(ctx: AppContext, caller: Caller) -> ProbeResult:
    """Wrap and unwrap a random probe through each external key; persist nothing but audit."""
    async with ctx.uow() as uow:
        config = await require_config(uow)
        keys = await load_keys(uow, config)
    probes = tuple([await _probe(ctx, key) for key in keys])
    first = probes[0]
    failed = [p for p in probes if not p.ok]
    reason = first.reason
    if failed and first.ok:
        reason = f"external key {failed[0].key}: {failed[0].reason}"
    result = ProbeResult(
        ok=not failed,
        key_name=first.key_name,
        status=first.status,
        latency_ms=first.latency_ms,
        reason=reason,
        keys=probes,
    )
    async with ctx.uow() as uow:
        await uow.audit.append(
            [
                ctx.event(
                    caller,
                    "ekms.config.test",
                    result=AuditResult.SUCCESS if result.ok else AuditResult.FAILURE,
                    target=config.key_id,
                    reason=result.reason,
                    details={"keys": len(probes), "failed": [str(p.key) for p in failed]},
                )
            ]
        )
        await uow.commit()
    return result
