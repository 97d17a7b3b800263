"""The data plane: encrypt, decrypt and rewrap field values, one at a time or in batches.

Served entirely from the in-memory ``KeyChain`` snapshot: no KMS call and no query per call.
Each call checks, in order: the target resolves, the chain may serve (external key state),
the module's access policies allow the operation, the key version's state allows it. Audit is
aggregated in memory (``AuditBuffer``) and written in batches.

The shortcut: every check above depends only on the snapshot, the caller, the target and
(decrypt) the 22-byte ciphertext header, never on the value. So once an item has passed them
all, later items of the same caller with the same target (and header) reuse what it found (a
``_Sealer`` or an ``_Opener``: the data key, the binding, the audit key) and only do their own
part: the size checks, the cipher, the count. Any item the shortcut cannot serve exactly
(first of its kind, oversized, a ciphertext that does not verify) goes through the
item-by-item path, which stays the one definition of the behaviour. What the shortcut found
is kept per caller (``_Memo``) for as long as the chain serves the same snapshot: the first
call that gets another snapshot (any change anywhere, a purge included) drops it all, so it
never serves from an old one. Until that call it keeps the old snapshot (and its unwrapped data
keys) referenced, as a call in flight would: after a purge they stay in memory, unused, until
the next data-plane call. It is not used at all while the chain is inside its
unavailable-grace deadline (the one check that reads the clock).

Limits, before any of that: the caller's rate (``limits.RateLimiter``, a call costs its item
count), and for AES-GCM the key version's nonce budget (``budget``): a call first makes sure
the leases of the versions it will encrypt under hold enough reserved encryptions (no query
when they do, the usual case), then each GCM encrypt spends one, or is refused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.application.budget import EncryptionBudget, Lease
from app.application.context import AppContext
from app.application.keychain import ModuleView, Snapshot
from app.application.limits import DataPlaneLimits, StreamSlot
from app.application.targets import Target
from app.domain import ciphertext as ct
from app.domain.audit import AuditResult
from app.domain.errors import (
    AccessDenied,
    DecryptionFailed,
    EkmsError,
    InvalidInput,
    KeyUnavailable,
    NotFound,
    Reason,
    ResourceExhausted,
)
from app.domain.keys import DataKey
from app.domain.module import ModuleKey
from app.domain.policy import Decision
from app.domain.values import Caller, ModuleState, Operation

NONCE_SIZE = ct.GCM_NONCE_SIZE
_HEADER_SIZE = ct.HEADER_SIZE
# Shorter ciphertexts take the item-by-item path: no algorithm's minimal body is longer.
_SHORTCUT_MIN_SIZE = ct.HEADER_SIZE + ct.GCM_NONCE_SIZE + ct.TAG_SIZE
_MEMO_CALLERS = 4096  # distinct callers remembered per snapshot; then it starts over


@dataclass(frozen=True, slots=True)
class Item:
    """One value to encrypt (plaintext) or decrypt/rewrap (ciphertext, binary form)."""

    target: Target
    data: bytes
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class ItemResult:
    """Exactly one of ``data`` or ``error``."""

    data: bytes | None = None
    error: EkmsError | None = None
    key_version: int | None = None


class CryptoService:
    """The data-plane use cases. One instance per process, shared by gRPC and REST."""

    def __init__(
        self,
        ctx: AppContext,
        *,
        limits: DataPlaneLimits | None = None,
        budget: EncryptionBudget | None = None,
    ) -> None:
        self._ctx = ctx
        self._chain = ctx.chain
        self._audit = ctx.audit
        self._nonce = ctx.rng.token_bytes
        self.limits = limits or DataPlaneLimits()
        self.budget = budget or EncryptionBudget(ctx.uow, ctx.clock, ctx.rng, ctx.changes)
        self._memo_snap: Snapshot | None = None
        self._memos: dict[Caller, _Memo] = {}
        self._ops: dict[Operation, _ItemOp] = {
            Operation.ENCRYPT: self._encrypt_one,
            Operation.DECRYPT: self._decrypt_one,
            Operation.REWRAP: self._rewrap_one,
        }

    # --- public use cases ----------------------------------------------------------------------

    async def encrypt(self, caller: Caller, item: Item) -> ItemResult:
        return require_ok((await self.encrypt_batch(caller, (item,)))[0])

    async def decrypt(self, caller: Caller, item: Item) -> ItemResult:
        return require_ok((await self.decrypt_batch(caller, (item,)))[0])

    async def rewrap(self, caller: Caller, item: Item) -> ItemResult:
        return require_ok((await self.rewrap_batch(caller, (item,)))[0])

    async def encrypt_batch(self, caller: Caller, items: Sequence[Item]) -> list[ItemResult]:
        self._admit(caller, Operation.ENCRYPT, len(items))
        snap = await self._ready()
        if (short := self._nonce_shortfall(snap, items, for_encrypt=True)) is not None:
            await self.budget.reserve_for(short)
        if snap.fail_closed_at is not None:
            return [self._guard(Operation.ENCRYPT, snap, caller, item) for item in items]
        return self._encrypt_many(snap, caller, items, self._memo(snap, caller).sealers)

    async def decrypt_batch(self, caller: Caller, items: Sequence[Item]) -> list[ItemResult]:
        self._admit(caller, Operation.DECRYPT, len(items))
        snap = await self._ready()
        if snap.fail_closed_at is not None:
            return [self._guard(Operation.DECRYPT, snap, caller, item) for item in items]
        return self._decrypt_many(snap, caller, items, self._memo(snap, caller).openers)

    async def rewrap_batch(self, caller: Caller, items: Sequence[Item]) -> list[ItemResult]:
        self._admit(caller, Operation.REWRAP, len(items))
        snap = await self._ready()
        if (short := self._nonce_shortfall(snap, items, for_encrypt=False)) is not None:
            await self.budget.reserve_for(short)
        return [self._guard(Operation.REWRAP, snap, caller, item) for item in items]

    def open_stream(self, caller: Caller) -> StreamSlot:
        """A slot for one stream of ``caller``, held until released; ``ResourceExhausted``
        (TOO_MANY_STREAMS) past the per-caller or the total cap."""
        return self.limits.streams.open(caller.subject)

    # --- internals -------------------------------------------------------------------------------

    def _admit(self, caller: Caller, operation: Operation, cost: int) -> None:
        limiter = self.limits.rate
        if limiter is None:
            return
        try:
            limiter.acquire(caller.subject, cost)
        except ResourceExhausted as exc:
            self._audit.record(
                actor=caller.subject,
                action=operation.value,
                result=AuditResult.FAILURE,
                reason=exc.reason.value,
                count=cost,
            )
            raise

    def _nonce_shortfall(
        self, snap: Snapshot, items: Sequence[Item], *, for_encrypt: bool
    ) -> dict[Lease, int] | None:
        """What these items need from the GCM leases they will spend from (see ``budget``),
        or ``None`` when every lease holds enough: the usual case, with nothing to await. A
        rewrap is counted as if it re-encrypted (over-reserving is harmless)."""
        needs: dict[Lease, int] = {}
        last: Target | None = None
        lease: Lease | None = None
        run = 0  # items of a batch mostly share one Target object: count runs, not items
        for item in items:
            if item.target is not last:
                if lease is not None:
                    needs[lease] = needs.get(lease, 0) + run
                last, lease, run = item.target, None, 0
                try:
                    lease = self.budget.lease_for(
                        self._resolve(snap, last, for_encrypt=for_encrypt)
                    )
                except EkmsError:
                    pass  # the item fails on its own path, with its own error
            run += 1
        if lease is not None:
            needs[lease] = needs.get(lease, 0) + run
        for held, need in needs.items():
            if held.left < need and not held.exhausted:
                return needs
        return None

    async def _ready(self) -> Snapshot:
        await self._audit.wait_for_capacity()
        return await self._chain.snapshot()

    def _memo(self, snap: Snapshot, caller: Caller) -> _Memo:
        if snap is not self._memo_snap:  # the chain moved on: forget everything
            self._memo_snap, self._memos = snap, {}
        memo = self._memos.get(caller)
        if memo is None:
            if len(self._memos) >= _MEMO_CALLERS:
                self._memos.clear()
            memo = self._memos[caller] = _Memo()
        return memo

    def _guard(
        self, operation: Operation, snap: Snapshot, caller: Caller, item: Item
    ) -> ItemResult:
        """Run one item; a failure becomes that item's result and is audited (aggregated)."""
        op = self._ops[operation]
        try:
            return op(snap, caller, item)
        except AccessDenied as exc:  # audited where it was decided, with the deciding policy
            return ItemResult(error=exc)
        except EkmsError as exc:
            # An unknown name is not echoed: callers must not be able to grow the audit keys.
            known = not isinstance(exc, NotFound)
            self._audit.record(
                actor=caller.subject,
                action=operation.value,
                result=AuditResult.FAILURE,
                module=item.target.module if known else None,
                target=str(item.target) if known else None,
                reason=exc.reason.value,
            )
            return ItemResult(error=exc)

    def _resolve(self, snap: Snapshot, target: Target, *, for_encrypt: bool) -> ModuleView:
        if target.field is None:
            return snap.module_named(str(target.module))
        config = snap.fields.get((target.field.table, target.field.column))
        if config is None:
            raise NotFound(
                f"no field configuration for {target.field}", reason=Reason.FIELD_CONFIG_NOT_FOUND
            )
        if for_encrypt and not config.active:
            raise KeyUnavailable(
                f"field configuration for {target.field} is inactive",
                reason=Reason.FIELD_CONFIG_INACTIVE,
            )
        view = snap.modules_by_id.get(config.module_id)
        if view is None:  # pragma: no cover - the foreign key prevents it
            raise NotFound("the field's module does not exist", reason=Reason.MODULE_NOT_FOUND)
        return view

    def _authorize(
        self, snap: Snapshot, view: ModuleView, caller: Caller, operation: Operation, target: Target
    ) -> Decision:
        self._chain.check_serving(snap, view.module)
        decision = view.decide(caller, operation)
        name = view.module.name
        if not decision.allowed:
            self._audit.record(
                actor=caller.subject,
                action=operation.value,
                result=AuditResult.DENIED,
                module=name,
                target=str(target),
                reason=Reason.MAP_REJECTED.value,
                decided_by=str(decision.decided_by) if decision.decided_by else "default",
            )
            raise AccessDenied(
                f"{operation.value} on module {name!r} is not allowed for this caller"
            )
        if view.module.state is not ModuleState.PUBLISHED:
            raise KeyUnavailable(f"module {name!r} is a draft", reason=Reason.MODULE_NOT_PUBLISHED)
        return decision

    def _active_key(self, view: ModuleView) -> ModuleKey:
        key = view.active
        if key is None:
            raise KeyUnavailable(
                f"module {view.module.name!r} has no active key version",
                reason=Reason.NO_ACTIVE_KEY,
            )
        return key

    def _seal(self, snap: Snapshot, view: ModuleView, item: Item) -> tuple[bytes, int]:
        key = self._active_key(view)
        data_key = self._chain.data_key(snap, view, key)
        plaintext, context = ct.check_plaintext(item.data), ct.check_context(item.context)
        lease = self.budget.lease_for(view)
        nonce = b""
        if lease is not None:
            lease.spend()
            nonce = self._nonce(NONCE_SIZE)
        blob = data_key.encrypt(plaintext, item.target.binding, context, nonce)
        self._audit.count_usage(key.module_id, key.version)
        return blob, key.version

    def _open(
        self, snap: Snapshot, caller: Caller, item: Item, operation: Operation
    ) -> tuple[ModuleView, Decision, bytes, int]:
        ct.check_context(item.context)
        parsed = ct.parse(item.data)
        view, decision, key, data_key = self._unlock(
            snap, caller, item.target, parsed.header, operation
        )
        plaintext = data_key.decrypt(parsed, item.target.binding, item.context)
        return view, decision, plaintext, key.version

    def _unlock(
        self, snap: Snapshot, caller: Caller, target: Target, header: ct.Header, op: Operation
    ) -> tuple[ModuleView, Decision, ModuleKey, DataKey]:
        """The checks of a decrypt that depend on the header, not on the value."""
        view = snap.modules_by_id.get(header.module_id)
        declared = self._resolve(snap, target, for_encrypt=False)
        if view is None or (target.module is not None and view is not declared):
            raise DecryptionFailed()
        decision = self._authorize(snap, view, caller, op, target)
        key = view.keys.get(header.key_version)
        if key is None or header.algorithm is not view.module.algorithm:
            raise DecryptionFailed()
        key.ensure_can_decrypt()
        return view, decision, key, self._chain.data_key(snap, view, key)

    def _encrypt_one(self, snap: Snapshot, caller: Caller, item: Item) -> ItemResult:
        view = self._resolve(snap, item.target, for_encrypt=True)
        decision = self._authorize(snap, view, caller, Operation.ENCRYPT, item.target)
        blob, version = self._seal(snap, view, item)
        self._track(caller, decision, view, item.target)
        return ItemResult(data=blob, key_version=version)

    def _decrypt_one(self, snap: Snapshot, caller: Caller, item: Item) -> ItemResult:
        view, decision, plaintext, version = self._open(snap, caller, item, Operation.DECRYPT)
        self._track(caller, decision, view, item.target)
        return ItemResult(data=plaintext, key_version=version)

    def _rewrap_one(self, snap: Snapshot, caller: Caller, item: Item) -> ItemResult:
        view, decision, plaintext, version = self._open(snap, caller, item, Operation.REWRAP)
        active = self._active_key(view)
        if active.version == version:
            self._track(caller, decision, view, item.target)
            return ItemResult(data=item.data, key_version=version)
        blob, new_version = self._seal(snap, view, Item(item.target, plaintext, item.context))
        del plaintext
        self._track(caller, decision, view, item.target)
        return ItemResult(data=blob, key_version=new_version)

    def _track(self, caller: Caller, decision: Decision, view: ModuleView, target: Target) -> None:
        self._record(_success(caller, decision, view, target), 1)

    def _record(self, success: _Success, count: int) -> None:
        self._audit.record(
            actor=success.actor,
            action=success.action,
            result=AuditResult.SUCCESS,
            module=success.module,
            target=success.target,
            decided_by=success.decided_by,
            count=count,
        )

    # --- batches: the shortcut (see the module docstring) ----------------------------------------

    def _encrypt_many(
        self,
        snap: Snapshot,
        caller: Caller,
        items: Sequence[Item],
        sealers: dict[Target, _Sealer],
    ) -> list[ItemResult]:
        done: Counter[_Sealer] = Counter()
        results: list[ItemResult] = []
        append = results.append
        last_target: Target | None = None  # items of a batch mostly share one Target object
        sealer: _Sealer | None = None
        try:
            for item in items:
                target = item.target
                if target is not last_target:
                    last_target, sealer = target, sealers.get(target)
                if (
                    sealer is None
                    or len(item.data) > ct.MAX_PLAINTEXT
                    or len(item.context) > ct.MAX_CONTEXT
                    or (sealer.lease is not None and sealer.lease.left <= 0)
                ):
                    result = self._guard(Operation.ENCRYPT, snap, caller, item)
                    if result.error is None and target not in sealers:
                        sealer = sealers[target] = self._sealer(snap, caller, target)
                    append(result)
                    continue
                lease = sealer.lease
                if lease is None:
                    nonce = b""
                else:
                    lease.left -= 1  # checked above: the lease holds one
                    nonce = self._nonce(NONCE_SIZE)
                blob = sealer.data_key.encrypt(item.data, sealer.binding, item.context, nonce)
                done[sealer] += 1
                append(ItemResult(data=blob, key_version=sealer.data_key.version))
        finally:
            for sealer, count in done.items():
                self._audit.count_usage(sealer.data_key.module_id, sealer.data_key.version, count)
                self._record(sealer.success, count)
        return results

    def _sealer(self, snap: Snapshot, caller: Caller, target: Target) -> _Sealer:
        view = self._resolve(snap, target, for_encrypt=True)
        decision = self._authorize(snap, view, caller, Operation.ENCRYPT, target)
        data_key = self._chain.data_key(snap, view, self._active_key(view))
        return _Sealer(
            data_key,
            target.binding,
            self.budget.lease_for(view),
            _success(caller, decision, view, target),
        )

    def _decrypt_many(
        self,
        snap: Snapshot,
        caller: Caller,
        items: Sequence[Item],
        openers: dict[Target, dict[bytes, _Opener]],  # by target, then by header
    ) -> list[ItemResult]:
        done: Counter[_Opener] = Counter()
        results: list[ItemResult] = []
        append = results.append
        last_target: Target | None = None  # items of a batch mostly share one Target object
        by_header: dict[bytes, _Opener] = {}
        try:
            for item in items:
                data, context = item.data, item.context
                if item.target is not last_target:
                    last_target = item.target
                    by_header = openers.setdefault(last_target, {})
                header = data[:_HEADER_SIZE]
                opener = by_header.get(header)
                if (
                    opener is not None
                    and len(data) >= _SHORTCUT_MIN_SIZE
                    and len(context) <= ct.MAX_CONTEXT
                ):
                    sealed = ct.Ciphertext(opener.header, header, data[_HEADER_SIZE:])
                    try:
                        plaintext = opener.data_key.decrypt(sealed, opener.binding, context)
                    except DecryptionFailed:
                        pass  # the item-by-item path gives (and audits) the failure
                    else:
                        done[opener] += 1
                        append(ItemResult(data=plaintext, key_version=opener.data_key.version))
                        continue
                result = self._guard(Operation.DECRYPT, snap, caller, item)
                if result.error is None and header not in by_header:
                    by_header[header] = self._opener(snap, caller, item)
                append(result)
        finally:
            for opener, count in done.items():
                self._record(opener.success, count)
        return results

    def _opener(self, snap: Snapshot, caller: Caller, item: Item) -> _Opener:
        header = ct.parse(item.data).header
        view, decision, _, data_key = self._unlock(
            snap, caller, item.target, header, Operation.DECRYPT
        )
        success = _success(caller, decision, view, item.target)
        return _Opener(data_key, item.target.binding, header, success)


_ItemOp = Callable[[Snapshot, Caller, "Item"], "ItemResult"]


@dataclass(slots=True)
class _Memo:
    """What the shortcut found for one caller in one snapshot. Only successes are kept, so
    its size is bounded by the configuration (targets, key versions), not by the callers."""

    sealers: dict[Target, _Sealer] = field(default_factory=dict)
    openers: dict[Target, dict[bytes, _Opener]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: one per target and caller
class _Sealer:
    """What encrypting for one target needs, found by an item that passed every check."""

    data_key: DataKey
    binding: bytes
    lease: Lease | None  # AES-GCM: the nonce budget it spends from; AES-SIV: None
    success: _Success


@dataclass(frozen=True, slots=True, eq=False)
class _Opener:
    """What decrypting under one header for one target needs, found likewise."""

    data_key: DataKey
    binding: bytes
    header: ct.Header
    success: _Success


@dataclass(frozen=True, slots=True)
class _Success:
    """How a success is audited (the aggregation key of ``AuditBuffer.record``)."""

    actor: str
    action: str
    module: str
    target: str
    decided_by: str


def _success(caller: Caller, decision: Decision, view: ModuleView, target: Target) -> _Success:
    decided_by = str(decision.decided_by) if decision.decided_by else "default"
    return _Success(
        caller.subject, decision.operation.value, view.module.name, str(target), decided_by
    )


def require_ok(result: ItemResult) -> ItemResult:
    """For single-item callers: raise the item's error, or return it."""
    if result.error is not None:
        raise result.error
    return result


def check_items(items: Sequence[Item], limit: int) -> None:
    if len(items) > limit:
        raise InvalidInput(f"a batch holds at most {limit} items", field="items")
