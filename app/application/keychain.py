"""The in-memory key chain: what the data plane serves from without KMS calls or queries.

A ``Snapshot``: configuration, modules, key versions, field configurations, policies and XKS
stores as read in one transaction, plus the unwrapped KEKs: the external chain's, and the local
one (under the local root key) of modules with ``external_wrap=false``; a key version is
unwrapped by the KEK it names (``ModuleKey.local_wrap``). Data keys are unwrapped lazily, MAP
decisions memoised per (caller, operation). Any state change calls ``invalidate()``; the next
call loads a fresh snapshot (no KMS call while the KEK is cached). ``purge()`` also forgets the
KEK: used when the external key stops being usable.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import structlog

from app.application.keychain_read import read_chain
from app.application.local_kek import unwrap_local_kek
from app.application.lookups import key_ref
from app.application.ports import Clock, KmsConnector, UnitOfWorkFactory
from app.application.snapshot import ModuleView, Snapshot
from app.domain.ekms_config import ExternalInstanceKey, ExternalKmsConfig
from app.domain.errors import (
    DecryptionFailed,
    EkmsError,
    KeyUnavailable,
    Reason,
    ServiceUnavailable,
)
from app.domain.external_keys import ExternalKey, chain_verdict, unusable_error
from app.domain.keys import DataKey, KeyEncryptionKey
from app.domain.module import CryptoModule, ModuleKey
from app.domain.policy import ModuleAccessPolicy
from app.domain.values import ExternalKeyStatus, KeyState

log = structlog.get_logger(__name__)

_KMS_RETRY_SECONDS = 2.0
_DB_RETRY_SECONDS = 2.0

__all__ = ["KeyChain", "unusable_error"]


class KeyChain:
    """The in-memory key chain: snapshot, KEK and data keys, invalidated by the change feed."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        kms: KmsConnector,
        clock: Clock,
        *,
        instance_id: str,
        unavailable_grace: timedelta,
    ) -> None:
        self._uow_factory = uow_factory
        self._kms = kms
        self._clock = clock
        self.instance_id = instance_id
        self.unavailable_grace = unavailable_grace
        self._snapshot: Snapshot | None = None
        self._fallback: Snapshot | None = None
        self._reload_retry_at = 0.0
        self._keks: dict[uuid.UUID, KeyEncryptionKey] = {}
        self._local_keks: dict[uuid.UUID, KeyEncryptionKey] = {}
        self._generation = 0
        self._lock = asyncio.Lock()
        self._kms_retry_at = 0.0
        self._kms_error: EkmsError | None = None
        self.loads = 0

    # --- cache control ----------------------------------------------------------------------

    def invalidate(self) -> None:
        """Forget the snapshot (not the KEK); the next call reloads it. The old one is kept as
        a fallback, served while the database is unreachable (see ``snapshot``)."""
        self._generation += 1
        if self._snapshot is not None:
            self._fallback = self._snapshot
        self._snapshot = None

    def purge(self) -> None:
        """Forget everything unwrapped, both KEKs included, and every fallback."""
        self._keks.clear()
        self._local_keks.clear()
        self.invalidate()
        self._fallback = None

    def remember_kek(self, kek: KeyEncryptionKey, *, local: bool = False) -> None:
        """Install a KEK this process just created, so it needs no KMS round trip."""
        (self._local_keks if local else self._keks)[kek.id] = kek

    @property
    def cached(self) -> Snapshot | None:
        """The current snapshot if one is loaded, without I/O."""
        return self._snapshot

    # --- loading ----------------------------------------------------------------------------

    async def snapshot(self) -> Snapshot:
        """The current snapshot, loading it (one query round, at most one KMS call) if needed."""
        snap = self._snapshot
        if snap is not None:
            return snap
        fallback = self._fallback
        if fallback is not None and self._clock.monotonic() < self._reload_retry_at:
            return fallback  # the database was away a moment ago: do not queue on it again
        async with self._lock:
            if self._snapshot is not None:
                return self._snapshot
            generation = self._generation
            try:
                snap = await self._load()
            except ServiceUnavailable as exc:
                fallback = self._fallback
                if fallback is None or exc.reason is not Reason.DATABASE_UNAVAILABLE:
                    raise
                self._reload_retry_at = self._clock.monotonic() + _DB_RETRY_SECONDS
                log.warning("keychain_reload_failed_serving_cached", reason=exc.reason.value)
                return fallback
            if generation == self._generation:
                self._snapshot = snap
                self._fallback = None
            return snap

    async def _load(self) -> Snapshot:
        self.loads += 1
        rows = await read_chain(self._uow_factory)
        config, ekek, local_row, keys, wraps = (
            rows.config,
            rows.ekek,
            rows.local_row,
            rows.keys,
            rows.wraps,
        )
        modules, keys_versions, policies = rows.modules, rows.keys_versions, rows.policies
        fields, alerts, xks = rows.fields, rows.alerts, rows.xks
        kek, kek_error, fail_closed_at = await self._kek_for(config, ekek, keys, wraps)
        local_kek, local_error = None, None
        if local_row is not None:
            local_kek = self._local_keks.get(local_row.id)
            if local_kek is None:
                local_kek, local_error = await unwrap_local_kek(self._kms, local_row)
                if local_kek is not None:
                    self._local_keks = {local_row.id: local_kek}
                else:
                    log.error("local_kek_unwrap_failed", reason=str(local_error))
        by_module_keys: dict[uuid.UUID, dict[int, ModuleKey]] = {}
        for key in keys_versions:
            by_module_keys.setdefault(key.module_id, {})[key.version] = key
        by_module_policies: dict[uuid.UUID, list[ModuleAccessPolicy]] = {}
        for policy in policies:
            by_module_policies.setdefault(policy.module_id, []).append(policy)
        views: dict[str, ModuleView] = {}
        for module in modules:
            mkeys = by_module_keys.get(module.id, {})
            active = next((k for k in mkeys.values() if k.state is KeyState.ACTIVE), None)
            views[module.name] = ModuleView(
                module, mkeys, tuple(by_module_policies.get(module.id, ())), active
            )
        return Snapshot(
            config=config,
            ekek=ekek,
            kek=kek,
            modules=views,
            modules_by_id={v.module.id: v for v in views.values()},
            fields={(f.table, f.column): f for f in fields},
            fail_closed_at=fail_closed_at,
            kek_error=kek_error,
            open_alerts=tuple(alerts),
            keys=tuple(keys),
            wraps=wraps,
            local_kek=local_kek,
            local_kek_error=local_error,
            xks=xks,
        )

    async def _kek_for(
        self,
        config: ExternalKmsConfig | None,
        ekek: ExternalInstanceKey | None,
        keys: list[ExternalKey],
        wraps: dict[uuid.UUID, ExternalInstanceKey],
    ) -> tuple[KeyEncryptionKey | None, EkmsError | None, float | None]:
        """The KEK, the reason there is none, and (while no key answers) the monotonic moment
        the chain fails closed. The revocation policy decides; the KEK is unwrapped with the
        first usable key that answers."""
        if config is None or ekek is None or not config.active:
            unset = KeyUnavailable("ekms is not configured", reason=Reason.NOT_CONFIGURED)
            return None, unset, None
        now = self._clock.now()
        verdict = chain_verdict(config.revocation_policy, keys, self.unavailable_grace, now)
        if verdict.error is not None:
            self._keks.clear()
            return None, verdict.error, None
        fail_closed_at = None
        if verdict.fail_closed_at is not None:
            remaining = (verdict.fail_closed_at - now).total_seconds()
            fail_closed_at = self._clock.monotonic() + max(remaining, 0.0)
        cached = self._keks.get(ekek.id)
        if cached is not None:
            return cached, None, fail_closed_at
        if self._clock.monotonic() < self._kms_retry_at and self._kms_error is not None:
            return None, self._kms_error, fail_closed_at
        error: EkmsError = KeyUnavailable(
            "no external key holds the key encryption key",
            reason=Reason.EXTERNAL_KEY_UNAVAILABLE,
        )
        for key in verdict.usable:
            wrap = wraps.get(key.id)
            if wrap is None:
                continue
            kek, failure = await self._unwrap(key, wrap, ekek)
            if kek is not None:
                self._keks = {ekek.id: kek}
                self._kms_error = None
                return kek, None, fail_closed_at
            error = failure or error
        log.error("kek_unwrap_failed", reason=error.reason.value)
        self._kms_error = error
        self._kms_retry_at = self._clock.monotonic() + _KMS_RETRY_SECONDS
        return None, error, fail_closed_at

    async def _unwrap(
        self, key: ExternalKey, wrap: ExternalInstanceKey, kek_row: ExternalInstanceKey
    ) -> tuple[KeyEncryptionKey | None, EkmsError | None]:
        """The KEK as one key's EKEK unwraps it, or why not."""
        try:
            raw = await self._kms.connect(key_ref(key)).unwrap(
                wrap.wrapped_kek, wrap.encryption_context
            )
        except EkmsError as exc:
            if isinstance(exc, KeyUnavailable | ServiceUnavailable):
                return None, exc
            return None, KeyUnavailable(
                "the key encryption key could not be unwrapped",
                reason=Reason.EXTERNAL_KEY_UNAVAILABLE,
            )
        kek = KeyEncryptionKey(kek_row.id, raw)
        del raw
        if kek.fingerprint != kek_row.fingerprint:
            log.error("kek_fingerprint_mismatch", kek_id=str(kek_row.id), key=str(key.id))
            return None, KeyUnavailable(
                "the unwrapped key encryption key does not match its fingerprint",
                reason=Reason.EXTERNAL_KEY_UNAVAILABLE,
            )
        return kek, None

    # --- serving ----------------------------------------------------------------------------

    def check_serving(self, snap: Snapshot, module: CryptoModule | None) -> KeyEncryptionKey:
        """The KEK if the chain may serve ``module`` now (the external chain's for None, the
        local KEK for a module with ``external_wrap=false``); else the reason it may not."""
        if module is not None and not module.external_wrap:
            return self.local_kek(snap)
        if snap.fail_closed_at is not None and self._clock.monotonic() >= snap.fail_closed_at:
            raise unusable_error(ExternalKeyStatus.UNAVAILABLE)
        if snap.kek is None:
            raise snap.kek_error or KeyUnavailable(
                "ekms is not configured", reason=Reason.NOT_CONFIGURED
            )
        return snap.kek

    def local_kek(self, snap: Snapshot) -> KeyEncryptionKey:
        """The local KEK, or why there is none."""
        if snap.local_kek is None:
            raise snap.local_kek_error or KeyUnavailable(
                "no local KEK exists yet", reason=Reason.LOCAL_KEK_UNAVAILABLE
            )
        return snap.local_kek

    def data_key(self, snap: Snapshot, view: ModuleView, key: ModuleKey) -> DataKey:
        """A key version's unwrapped data key, cached in the view."""
        cached = view.data_keys.get(key.version)
        if cached is not None:
            return cached
        kek = self.local_kek(snap) if key.local_wrap else self.check_serving(snap, None)
        if key.wrapped_dek is None or key.kek_id != kek.id:
            raise KeyUnavailable(
                f"key version {key.version} has no usable key material",
                reason=Reason.KEY_VERSION_LOST if key.lost_at else Reason.KEY_VERSION_DESTROYED,
            )
        try:
            raw = kek.unwrap(key.wrapped_dek, key.module_id, key.version)
        except DecryptionFailed:
            log.error("dek_unwrap_failed", module=view.module.name, version=key.version)
            raise KeyUnavailable(
                f"key version {key.version} could not be unwrapped",
                reason=Reason.EXTERNAL_KEY_UNAVAILABLE,
            ) from None
        data_key = DataKey(view.module.algorithm, key.module_id, key.version, raw)
        del raw
        view.data_keys[key.version] = data_key
        return data_key
