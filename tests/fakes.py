"""Fakes of ekms's own ports, for unit tests: in-memory persistence, a KMS, a clock."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.application.context import AppContext
from app.application.keychain import KeyChain
from app.application.ports import (
    AuditQuery,
    ChainHead,
    ExternalKeyDescription,
    ExternalKeyRef,
    KmsWrapped,
    RotationState,
)
from app.domain.alerts import KeyStatusChange
from app.domain.audit import AuditEvent
from app.domain.audit_chain import GENESIS, ChainedEvent, chain
from app.domain.audit_checkpoint import Checkpoint, SigningKeyRecord
from app.domain.errors import (
    AlreadyExists,
    Conflict,
    DecryptionFailed,
    InvalidInput,
    KeyUnavailable,
    Reason,
    ServiceUnavailable,
)
from app.domain.values import ExternalKeyStatus, KeyState, KmsProvider


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


@dataclass
class Store:
    config: Any = None
    instance_keys: dict[uuid.UUID, Any] = field(default_factory=dict)
    local_kek: Any = None
    external_keys: dict[uuid.UUID, Any] = field(default_factory=dict)
    modules: dict[uuid.UUID, Any] = field(default_factory=dict)
    keys: dict[tuple[uuid.UUID, int], Any] = field(default_factory=dict)
    fields: dict[uuid.UUID, Any] = field(default_factory=dict)
    policies: dict[uuid.UUID, Any] = field(default_factory=dict)
    audit: list[AuditEvent] = field(default_factory=list)
    audit_chain: list[ChainedEvent] = field(default_factory=list)  # the chained rows, any order
    audit_head: tuple[int, bytes] = (0, GENESIS)
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)
    signing_keys: list[SigningKeyRecord] = field(default_factory=list)
    status_history: list[Any] = field(default_factory=list)
    alerts: list[Any] = field(default_factory=list)
    xks_stores: dict[uuid.UUID, Any] = field(default_factory=dict)
    xks_keys: dict[uuid.UUID, Any] = field(default_factory=dict)


def _check_revision(stored: Any, entity: Any) -> None:
    if stored is None or stored.revision != entity.revision:
        raise Conflict("concurrent update", reason=Reason.CONCURRENT_UPDATE)
    entity.revision += 1


class _Repo:
    def __init__(self, store: Store) -> None:
        self.s = store


class InMemoryConfigRepository(_Repo):
    async def get(self) -> Any:
        return copy.deepcopy(self.s.config)

    async def add(self, config: Any) -> None:
        if self.s.config is not None:
            raise AlreadyExists("configured", reason=Reason.ALREADY_CONFIGURED)
        self.s.config = copy.deepcopy(config)

    async def save(self, config: Any) -> None:
        _check_revision(self.s.config, config)
        self.s.config = copy.deepcopy(config)

    async def delete(self, config: Any) -> None:
        _check_revision(self.s.config, config)
        self.s.config = None


class InMemoryInstanceKeyRepository(_Repo):
    async def get_active(self) -> Any:
        return copy.deepcopy(next((k for k in self.s.instance_keys.values() if k.active), None))

    async def get(self, kek_id: uuid.UUID) -> Any:
        return copy.deepcopy(self.s.instance_keys.get(kek_id))

    async def list(self) -> list[Any]:
        return copy.deepcopy(list(self.s.instance_keys.values()))

    async def add(self, key: Any) -> None:
        if key.active and any(k.active for k in self.s.instance_keys.values()):
            raise Conflict("second active instance key", reason=Reason.CONCURRENT_UPDATE)
        self.s.instance_keys[key.id] = copy.deepcopy(key)

    async def save(self, key: Any) -> None:
        _check_revision(self.s.instance_keys.get(key.id), key)
        self.s.instance_keys[key.id] = copy.deepcopy(key)

    async def delete(self, kek_id: uuid.UUID) -> None:
        if any(k.kek_id == kek_id for k in self.s.keys.values()):
            raise Conflict("a key still names this KEK", reason=Reason.CONCURRENT_UPDATE)
        self.s.instance_keys.pop(kek_id, None)


class InMemoryExternalKeyRepository(_Repo):
    async def list(self) -> list[Any]:
        return copy.deepcopy(sorted(self.s.external_keys.values(), key=lambda k: k.position))

    async def add(self, key: Any) -> None:
        if any(k.position == key.position for k in self.s.external_keys.values()):
            raise Conflict("position taken", reason=Reason.CONCURRENT_UPDATE)
        self.s.external_keys[key.id] = copy.deepcopy(key)

    async def save(self, key: Any) -> None:
        _check_revision(self.s.external_keys.get(key.id), key)
        self.s.external_keys[key.id] = copy.deepcopy(key)

    async def delete(self, key_id: uuid.UUID) -> None:
        self.s.external_keys.pop(key_id, None)


class InMemoryModuleRepository(_Repo):
    async def get(self, module_id: uuid.UUID) -> Any:
        return copy.deepcopy(self.s.modules.get(module_id))

    async def get_by_name(self, name: str) -> Any:
        return copy.deepcopy(next((m for m in self.s.modules.values() if m.name == name), None))

    async def list(self) -> list[Any]:
        return copy.deepcopy(sorted(self.s.modules.values(), key=lambda m: m.name))

    async def add(self, module: Any) -> None:
        if any(m.name == module.name for m in self.s.modules.values()):
            raise AlreadyExists("module exists")
        self.s.modules[module.id] = copy.deepcopy(module)

    async def save(self, module: Any) -> None:
        _check_revision(self.s.modules.get(module.id), module)
        self.s.modules[module.id] = copy.deepcopy(module)


class InMemoryModuleKeyRepository(_Repo):
    async def list_for_module(self, module_id: uuid.UUID) -> list[Any]:
        keys = [k for (m, _), k in self.s.keys.items() if m == module_id]
        return copy.deepcopy(sorted(keys, key=lambda k: k.version))

    async def list_all(self) -> list[Any]:
        return copy.deepcopy(list(self.s.keys.values()))

    async def get(self, module_id: uuid.UUID, version: int) -> Any:
        return copy.deepcopy(self.s.keys.get((module_id, version)))

    def _one_active(self, key: Any) -> None:
        if key.state is KeyState.ACTIVE and any(
            k.state is KeyState.ACTIVE and k.module_id == key.module_id and k.version != key.version
            for k in self.s.keys.values()
        ):
            raise Conflict("second active key", reason=Reason.CONCURRENT_UPDATE)

    async def add(self, key: Any) -> None:
        if (key.module_id, key.version) in self.s.keys:
            raise Conflict("version exists", reason=Reason.CONCURRENT_UPDATE)
        self._one_active(key)
        self.s.keys[(key.module_id, key.version)] = copy.deepcopy(key)

    async def save(self, key: Any) -> None:
        _check_revision(self.s.keys.get((key.module_id, key.version)), key)
        self._one_active(key)
        self.s.keys[(key.module_id, key.version)] = copy.deepcopy(key)

    async def add_usage(self, counts: Mapping[tuple[uuid.UUID, int], int]) -> None:
        for ref, n in counts.items():
            if ref in self.s.keys:
                self.s.keys[ref].encryption_count += n

    async def reserve_usage(
        self, module_id: uuid.UUID, version: int, amount: int, limit: int
    ) -> int | None:
        key = self.s.keys.get((module_id, version))
        if key is None or key.usage_mark + amount > limit:
            return None
        key.encryptions_reserved = key.usage_mark + amount
        return int(key.encryptions_reserved)


class InMemoryFieldConfigRepository(_Repo):
    async def get(self, config_id: uuid.UUID) -> Any:
        return copy.deepcopy(self.s.fields.get(config_id))

    async def find(self, table: str, column: str) -> Any:
        return copy.deepcopy(
            next(
                (f for f in self.s.fields.values() if (f.table, f.column) == (table, column)), None
            )
        )

    async def list(self) -> list[Any]:
        return copy.deepcopy(list(self.s.fields.values()))

    async def add(self, config: Any) -> None:
        if await self.find(config.table, config.column) is not None:
            raise AlreadyExists("field exists")
        self.s.fields[config.id] = copy.deepcopy(config)

    async def save(self, config: Any) -> None:
        _check_revision(self.s.fields.get(config.id), config)
        self.s.fields[config.id] = copy.deepcopy(config)

    async def delete(self, config_id: uuid.UUID) -> None:
        self.s.fields.pop(config_id, None)


class InMemoryPolicyRepository(_Repo):
    async def get(self, policy_id: uuid.UUID) -> Any:
        return copy.deepcopy(self.s.policies.get(policy_id))

    async def list_for_module(self, module_id: uuid.UUID) -> list[Any]:
        return copy.deepcopy([p for p in self.s.policies.values() if p.module_id == module_id])

    async def list_all(self) -> list[Any]:
        return copy.deepcopy(list(self.s.policies.values()))

    async def add(self, policy: Any) -> None:
        self.s.policies[policy.id] = copy.deepcopy(policy)

    async def save(self, policy: Any) -> None:
        _check_revision(self.s.policies.get(policy.id), policy)
        self.s.policies[policy.id] = copy.deepcopy(policy)

    async def delete(self, policy_id: uuid.UUID) -> None:
        self.s.policies.pop(policy_id, None)


class InMemoryAuditRepository(_Repo):
    async def append(self, events: Sequence[AuditEvent]) -> None:
        self.s.audit.extend(events)
        if events:
            chained = chain(*self.s.audit_head, list(events))
            self.s.audit_chain.extend(chained)
            self.s.audit_head = (chained[-1].seq, chained[-1].hash)

    async def chain_start(self, since: datetime | None) -> ChainedEvent | None:
        rows = [c for c in self._by_seq() if since is None or c.event.at >= since]
        return rows[0] if rows else None

    async def chain_page(self, after_seq: int, limit: int) -> list[ChainedEvent]:
        return [c for c in self._by_seq() if c.seq > after_seq][:limit]

    async def chain_ends(self) -> tuple[int, int]:
        return self.s.audit_head[0], max((c.seq for c in self.s.audit_chain), default=0)

    async def has_hash(self, digest: bytes) -> bool:
        return any(c.hash == digest for c in self.s.audit_chain)

    async def first_unchained(self, since: datetime) -> uuid.UUID | None:
        chained = {c.event.id for c in self.s.audit_chain}
        rows = sorted(
            (e for e in self.s.audit if e.id not in chained and e.at >= since),
            key=lambda e: (e.at, e.id),
        )
        return rows[0].id if rows else None

    def _by_seq(self) -> list[ChainedEvent]:
        return sorted(self.s.audit_chain, key=lambda c: c.seq)

    async def query(self, query: AuditQuery) -> list[AuditEvent]:
        rows = sorted(self.s.audit, key=lambda e: (e.at, e.id), reverse=query.newest_first)
        out = []
        for e in rows:
            if query.actor and e.actor != query.actor:
                continue
            if query.action and e.action != query.action:
                continue
            if query.module and e.module != query.module:
                continue
            if query.after and not query.newest_first and (e.at, e.id) <= query.after:
                continue
            if query.after and query.newest_first and (e.at, e.id) >= query.after:
                continue
            out.append(e)
        return out[: query.limit]


class InMemoryAuditCheckpointRepository(_Repo):
    async def lock_head(self) -> ChainHead:
        seq, digest = self.s.audit_head
        ids = [c.event.id for c in self.s.audit_chain if c.seq == seq]
        return ChainHead(seq, digest, ids[0] if ids else None)

    async def last(self) -> Checkpoint | None:
        return self.s.checkpoints[max(self.s.checkpoints)] if self.s.checkpoints else None

    async def add(self, checkpoint: Checkpoint) -> bool:
        if checkpoint.seq in self.s.checkpoints:
            return False
        self.s.checkpoints[checkpoint.seq] = checkpoint
        return True

    async def page(self, after_seq: int, limit: int) -> list[Checkpoint]:
        return [self.s.checkpoints[k] for k in sorted(self.s.checkpoints) if k > after_seq][:limit]

    async def signing_keys(self) -> list[SigningKeyRecord]:
        return sorted(self.s.signing_keys, key=lambda k: (k.created_at, k.id))

    async def add_signing_key(self, key: SigningKeyRecord) -> None:
        self.s.signing_keys.append(key)

    async def rewrap_signing_key(
        self, key_id: uuid.UUID, kek_id: uuid.UUID, wrapped_seed: bytes
    ) -> None:
        self.s.signing_keys = [
            replace(k, kek_id=kek_id, wrapped_seed=wrapped_seed) if k.id == key_id else k
            for k in self.s.signing_keys
        ]


class InMemoryKeyStatusRepository(_Repo):
    async def record_change(self, change: Any) -> None:
        self.s.status_history.append(change)

    async def history(self, limit: int = 50) -> list[Any]:
        return list(reversed(self.s.status_history))[:limit]

    async def open_alert(self, alert: Any) -> bool:
        if any(a.kind == alert.kind and a.closed_at is None for a in self.s.alerts):
            return False
        self.s.alerts.append(alert)
        return True

    async def close_alerts(self, kind: str, at: datetime) -> int:
        closed = 0
        for i, a in enumerate(self.s.alerts):
            if a.kind == kind and a.closed_at is None:
                self.s.alerts[i] = dataclasses.replace(a, closed_at=at)
                closed += 1
        return closed

    async def open_alerts(self) -> list[Any]:
        return [a for a in self.s.alerts if a.closed_at is None]


class InMemoryXksStoreRepository(_Repo):
    async def list(self) -> list[Any]:
        return sorted(self.s.xks_stores.values(), key=lambda x: x.name)

    async def get(self, store_id: uuid.UUID) -> Any:
        return self.s.xks_stores.get(store_id)

    async def add(self, store: Any) -> None:
        if any(
            x.name == store.name or x.uri_prefix == store.uri_prefix
            for x in self.s.xks_stores.values()
        ):
            raise AlreadyExists("an XKS store with that name or URI prefix exists")
        self.s.xks_stores[store.id] = store

    async def save(self, store: Any) -> None:
        _check_revision(self.s.xks_stores.get(store.id), store)
        self.s.xks_stores[store.id] = store

    async def delete(self, store_id: uuid.UUID) -> None:
        self.s.xks_stores.pop(store_id, None)
        for key in [k for k in self.s.xks_keys.values() if k.store_id == store_id]:
            del self.s.xks_keys[key.id]


class InMemoryXksKeyRepository(_Repo):
    async def list(self) -> list[Any]:
        return list(self.s.xks_keys.values())

    async def get(self, key_id: uuid.UUID) -> Any:
        return self.s.xks_keys.get(key_id)

    async def add(self, key: Any) -> None:
        if any(
            k.store_id == key.store_id and k.external_key_id == key.external_key_id
            for k in self.s.xks_keys.values()
        ):
            raise AlreadyExists("the store has a key with that external key id")
        self.s.xks_keys[key.id] = key

    async def save(self, key: Any) -> None:
        _check_revision(self.s.xks_keys.get(key.id), key)
        self.s.xks_keys[key.id] = key

    async def delete(self, key_id: uuid.UUID) -> None:
        self.s.xks_keys.pop(key_id, None)


class InMemoryDatabase:
    """A committed store plus a switch that makes it unreachable (for outage tests)."""

    def __init__(self) -> None:
        self.committed = Store()
        self.down = False
        self.transactions = 0
        self.attempts = 0
        self.erased: list[tuple[Any, ...]] = []
        self.erase_fails = False

    def __call__(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self)

    async def erase_dead_rows(self, *stores: Any) -> None:
        """Nothing to erase in memory; records what was asked, for the tests."""
        if self.down or self.erase_fails:
            raise ServiceUnavailable("database down", reason=Reason.DATABASE_UNAVAILABLE)
        self.erased.append(tuple(stores))


class InMemoryLocalKeyRepository:
    def __init__(self, store: Store) -> None:
        self.s = store

    async def get(self, *, share: bool = False) -> Any:
        return copy.deepcopy(self.s.local_kek)

    async def add(self, key: Any) -> None:
        if self.s.local_kek is not None:
            raise Conflict("the local KEK exists", reason=Reason.CONCURRENT_UPDATE)
        self.s.local_kek = copy.deepcopy(key)

    async def replace(self, old_id: Any, new: Any) -> None:
        if self.s.local_kek is None or self.s.local_kek.id != old_id:
            raise Conflict("the local KEK changed", reason=Reason.CONCURRENT_UPDATE)
        self.s.local_kek = copy.deepcopy(new)


class InMemoryUnitOfWork:
    """Works on a deep copy of the committed store; ``commit()`` swaps it in."""

    def __init__(self, db: InMemoryDatabase) -> None:
        self._db = db

    async def __aenter__(self) -> Self:
        self._db.attempts += 1
        if self._db.down:
            raise ServiceUnavailable("database down", reason=Reason.DATABASE_UNAVAILABLE)
        self._db.transactions += 1
        self._work = copy.deepcopy(self._db.committed)
        self.config = InMemoryConfigRepository(self._work)
        self.instance_keys = InMemoryInstanceKeyRepository(self._work)
        self.local_keks = InMemoryLocalKeyRepository(self._work)
        self.external_keys = InMemoryExternalKeyRepository(self._work)
        self.modules = InMemoryModuleRepository(self._work)
        self.keys = InMemoryModuleKeyRepository(self._work)
        self.fields = InMemoryFieldConfigRepository(self._work)
        self.policies = InMemoryPolicyRepository(self._work)
        self.audit = InMemoryAuditRepository(self._work)
        self.checkpoints = InMemoryAuditCheckpointRepository(self._work)
        self.status = InMemoryKeyStatusRepository(self._work)
        self.xks_stores = InMemoryXksStoreRepository(self._work)
        self.xks_keys = InMemoryXksKeyRepository(self._work)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        if self._db.down:
            raise ServiceUnavailable("database down", reason=Reason.DATABASE_UNAVAILABLE)
        self._db.committed = self._work

    async def rollback(self) -> None:
        return None


class FakeKms:
    """An external key: AES-GCM under a root, with a state and a rotation history we set.

    Like moto, it keeps wrapping when "disabled" unless ``enforce`` is set, so tests prove
    that ekms reads the state through ``describe`` rather than inferring it.
    """

    def __init__(self, ref: ExternalKeyRef, enforce: bool = False) -> None:
        self.ref = ref
        self.status = ExternalKeyStatus.ENABLED
        self.reason: str | None = None
        self.rotations = 0
        self.enforce = enforce
        self.unreachable = False
        self.denied: set[str] = set()  # operations the key policy refuses (AccessDenied)
        self.calls: dict[str, int] = {}
        self._roots = {0: AESGCM(AESGCM.generate_key(256))}
        self.arn = f"arn:aws:kms:eu-west-1:111122223333:key/{ref.key_id}"

    def _call(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.unreachable:
            raise ServiceUnavailable("kms unreachable", reason=Reason.KMS_UNAVAILABLE)
        if name in self.denied:
            raise KeyUnavailable("access denied", reason=Reason.EXTERNAL_KEY_ACCESS_DENIED)
        if self.enforce and self.status is ExternalKeyStatus.DISABLED and name != "describe":
            raise KeyUnavailable("disabled", reason=Reason.EXTERNAL_KEY_DISABLED)

    @staticmethod
    def _aad(context: Mapping[str, str]) -> bytes:
        return json.dumps(dict(context), sort_keys=True).encode()

    def rotate(self) -> None:
        self.rotations += 1
        self._roots[self.rotations] = AESGCM(AESGCM.generate_key(256))

    async def wrap(self, key_to_wrap: bytes, context: Mapping[str, str]) -> KmsWrapped:
        self._call("wrap")
        nonce = os.urandom(12)
        gen = self.rotations
        blob = (
            bytes([gen]) + nonce + self._roots[gen].encrypt(nonce, key_to_wrap, self._aad(context))
        )
        return KmsWrapped(blob, self.arn)

    async def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        self._call("unwrap")
        try:
            return self._roots[wrapped[0]].decrypt(wrapped[1:13], wrapped[13:], self._aad(context))
        except (InvalidTag, KeyError, IndexError):
            raise DecryptionFailed() from None

    async def rewrap(self, wrapped: bytes, context: Mapping[str, str]) -> KmsWrapped:
        self._call("rewrap")
        plain = await self.unwrap(wrapped, context)
        self.calls["unwrap"] -= 1
        out = await self.wrap(plain, context)
        self.calls["wrap"] -= 1
        return out

    async def describe(self) -> ExternalKeyDescription:
        self.calls["describe"] = self.calls.get("describe", 0) + 1
        if self.unreachable:
            return ExternalKeyDescription(
                ExternalKeyStatus.UNAVAILABLE,
                reason="unreachable",
                reason_code=Reason.KMS_UNAVAILABLE,
            )
        if "describe" in self.denied:
            return ExternalKeyDescription(
                ExternalKeyStatus.UNAVAILABLE,
                reason="access denied",
                reason_code=Reason.EXTERNAL_KEY_ACCESS_DENIED,
            )
        return ExternalKeyDescription(self.status, key_name=self.arn, reason=self.reason)

    async def rotation_state(self) -> RotationState:
        self._call("rotation_state")
        return RotationState(f"fake:{self.rotations}", True, self.rotations)


class FakeKmsConnector:
    def __init__(self) -> None:
        self.keys: dict[str, FakeKms] = {}
        self.missing: set[KmsProvider] = set()  # providers this "process" has not set up

    def connect(self, ref: ExternalKeyRef) -> FakeKms:
        if ref.provider in self.missing:
            raise InvalidInput(f"the {ref.provider.value} KMS provider is not enabled")
        if ref.key_id not in self.keys:
            self.keys[ref.key_id] = FakeKms(ref)
        return self.keys[ref.key_id]

    def endpoint(self, ref: ExternalKeyRef) -> str:
        return "fake://kms"

    def key(self, key_id: str) -> FakeKms:
        return self.connect(ExternalKeyRef(provider=KmsProvider.AWS, key_id=key_id))

    async def aclose(self) -> None:
        return None


class LocalChangeFeed:
    """A ``ChangeFeed`` for one process: every change applies to this process's key chain."""

    def __init__(self, chain: KeyChain) -> None:
        self._chain = chain

    async def publish(self, scope: str) -> None:
        if scope == "purge":
            self._chain.purge()
        else:
            self._chain.invalidate()

    def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def status_history(ctx: AppContext, limit: int = 50) -> Sequence[KeyStatusChange]:
    """The external key's recorded status changes, newest first."""
    async with ctx.uow() as uow:
        return await uow.status.history(limit)
