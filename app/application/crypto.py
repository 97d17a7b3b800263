"""The data plane: encrypt, decrypt and rewrap field values, one at a time or in batches.

Served entirely from the in-memory ``KeyChain`` snapshot: no KMS call and no query per call.
Each item runs every check once per kind (``dataplane.item_path``); later items of the same
caller and kind are served from what it found (``dataplane.permits``, ``dataplane.shortcut``).
Audit is aggregated in memory (``AuditBuffer``) and written in batches. A single call is a batch
of one: every operation has one path. ``run_columns`` is the batch as an adapter holds it,
column by column (``dataplane.columns``): nothing is built per item that is served. In strict
audit mode a call answers (result or error) only once its events are committed
(``AuditBuffer.durable``, group commit), else ``ServiceUnavailable`` (``AUDIT_UNAVAILABLE``).

Limits, before any of that: a batch's size (``run_batch``, before its entries are read), the
caller's rate (``limits.RateLimiter``, a call costs its item count), and for AES-GCM the key
version's nonce budget (``budget``): a call first makes sure the leases of the versions it will
encrypt under hold enough reserved encryptions (no query when they do, the usual case), then
each GCM encrypt spends one, or is refused. The shortcut is not used while the chain is inside
its unavailable-grace deadline (the one check that reads the clock).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from app.application.budget import EncryptionBudget, Lease
from app.application.context import AppContext
from app.application.dataplane.columns import (
    ColumnResults,
    ItemColumns,
    refused,
    serve_columns,
    serve_items,
)
from app.application.dataplane.data_keys import (
    DataKeyPair,
    DataKeySpec,
    OpenedDataKey,
    SealedDataKey,
    check_opened,
)
from app.application.dataplane.item_path import ItemPath
from app.application.dataplane.items import Item, ItemResult, data_of, require_ok
from app.application.dataplane.macs import MacPath, MacResult
from app.application.dataplane.nonces import nonce_shortfall, target_runs
from app.application.dataplane.shortcut import PermitCache, PermitTable, serve_batch
from app.application.limits import DataPlaneLimits, StreamSlot
from app.application.snapshot import Snapshot
from app.application.targets import Target
from app.domain.audit import AuditResult
from app.domain.errors import EkmsError, InvalidInput, ResourceExhausted, ServiceUnavailable
from app.domain.values import Caller, Operation

__all__ = [
    "ColumnResults",
    "CryptoService",
    "DataKeySpec",
    "Item",
    "ItemColumns",
    "ItemResult",
    "check_batch_size",
    "MacResult",
    "data_of",
    "require_ok",
]

_Entry = TypeVar("_Entry")
_Out = TypeVar("_Out")


class CryptoService:
    """The data-plane use cases. One instance per process, shared by gRPC and REST."""

    def __init__(
        self,
        ctx: AppContext,
        *,
        limits: DataPlaneLimits | None = None,
        budget: EncryptionBudget | None = None,
    ) -> None:
        self._chain = ctx.chain
        self._audit = ctx.audit
        self.limits = limits or DataPlaneLimits()
        self.budget = budget or EncryptionBudget(ctx.uow, ctx.clock, ctx.rng, ctx.changes)
        self.item_path = ItemPath(ctx.chain, ctx.audit, self.budget, ctx.rng.token_bytes)
        self._permits = PermitCache()
        self._random = ctx.rng.token_bytes
        self._macs = MacPath(self.item_path, ctx.chain, ctx.audit)

    # --- public use cases ----------------------------------------------------------------------

    async def encrypt(self, caller: Caller, item: Item) -> ItemResult:
        """Encrypt one value; its error is raised."""
        return require_ok((await self._serve(Operation.ENCRYPT, caller, (item,)))[0])

    async def decrypt(self, caller: Caller, item: Item) -> ItemResult:
        """Decrypt one ciphertext; its error is raised."""
        return require_ok((await self._serve(Operation.DECRYPT, caller, (item,)))[0])

    async def rewrap(self, caller: Caller, item: Item) -> ItemResult:
        """Re-encrypt one ciphertext under the active key version; its error is raised."""
        return require_ok((await self._serve(Operation.REWRAP, caller, (item,)))[0])

    async def encrypt_batch(self, caller: Caller, items: Sequence[Item]) -> list[ItemResult]:
        """Encrypt many values: one result per item."""
        return await self._serve(Operation.ENCRYPT, caller, items) if items else []

    async def decrypt_batch(self, caller: Caller, items: Sequence[Item]) -> list[ItemResult]:
        """Decrypt many ciphertexts: one result per item."""
        return await self._serve(Operation.DECRYPT, caller, items) if items else []

    async def rewrap_batch(self, caller: Caller, items: Sequence[Item]) -> list[ItemResult]:
        """Rewrap many ciphertexts: one result per item."""
        return await self._serve(Operation.REWRAP, caller, items) if items else []

    async def generate_data_key(
        self, caller: Caller, target: Target, context: bytes, spec: DataKeySpec
    ) -> DataKeyPair:
        """A fresh data key and its sealed form, authorised as ``encrypt``."""
        plaintext_key = self._random(spec.value)
        result = await self.encrypt(caller, Item(target, plaintext_key, context))
        sealed = SealedDataKey(data_of(result), result.key_version or 0)
        return DataKeyPair(sealed, plaintext_key)

    async def decrypt_data_key(self, caller: Caller, item: Item) -> OpenedDataKey:
        """Open a sealed data key (``item.data``), authorised as ``decrypt``."""
        result = await self.decrypt(caller, item)
        return OpenedDataKey(check_opened(data_of(result)), result.key_version or 0)

    async def compute_mac(
        self, caller: Caller, item: Item, key_version: int | None = None
    ) -> MacResult:
        """A blind-index MAC of ``item.data`` (the active key version unless named)."""
        if self._audit.strict:
            return await self._durable(self._compute_mac(caller, item, key_version))
        return await self._compute_mac(caller, item, key_version)

    async def verify_mac(self, caller: Caller, item: Item, mac: bytes) -> int:
        """The key version of ``mac`` if it is ``item.data``'s MAC; else ``MacMismatch``."""
        if self._audit.strict:
            return await self._durable(self._verify_mac(caller, item, mac))
        return await self._verify_mac(caller, item, mac)

    async def run_batch(
        self,
        operation: Operation,
        caller: Caller,
        entries: Sequence[_Entry],
        to_item: Callable[[_Entry], Item],
        *,
        max_items: int,
    ) -> list[ItemResult]:
        """A batch as an adapter received it: one result per entry, in order.

        More than ``max_items`` entries: ``InvalidInput``, before any is read. An entry that
        ``to_item`` cannot turn into an ``Item`` (an ``EkmsError``) has that error as its
        result; the others run."""
        check_batch_size(len(entries), max_items)
        refused: dict[int, ItemResult] = {}
        items: list[Item] = []
        for index, entry in enumerate(entries):
            try:
                items.append(to_item(entry))
            except EkmsError as exc:
                refused[index] = ItemResult(error=exc)
        results = await self._serve(operation, caller, items) if items else []
        if not refused:
            return results
        served = iter(results)
        return [refused[i] if i in refused else next(served) for i in range(len(entries))]

    async def run_columns(
        self, operation: Operation, caller: Caller, batch: ItemColumns, *, max_items: int
    ) -> ColumnResults:
        """A batch as columns (``dataplane.columns``): the same results and audit as
        ``run_batch`` for the same items, with nothing built per item that is served. More
        than ``max_items`` items: ``InvalidInput``."""
        check_batch_size(len(batch.data), max_items)
        if self._audit.strict:
            return await self._durable(self._run_columns(operation, caller, batch))
        return await self._run_columns(operation, caller, batch)

    async def _run_columns(
        self, operation: Operation, caller: Caller, batch: ItemColumns
    ) -> ColumnResults:
        runs = batch.runs()
        needs = [
            (target, stop - start) for start, stop, target in runs if isinstance(target, Target)
        ]
        cost = sum(count for _, count in needs)
        if not cost:
            return refused(batch, runs)
        snap = await self._enter(caller, operation, cost)
        permits = self._permits.table(snap, caller, operation)
        if operation is not Operation.DECRYPT:
            short = self._shortfall(snap, operation, needs, permits)
            if short is not None:
                await self.budget.reserve_for(short)
        path = self.item_path
        if snap.fail_closed_at is not None:
            return serve_items(path, operation, snap, caller, batch, runs)
        return serve_columns(path, self._audit, operation, snap, caller, batch, runs, permits)

    def open_stream(self, caller: Caller) -> StreamSlot:
        """A slot for one stream of ``caller``, held until released; ``ResourceExhausted``
        (TOO_MANY_STREAMS) past the per-caller or the total cap."""
        return self.limits.streams.open(caller.subject)

    # --- internals -------------------------------------------------------------------------------

    async def _durable(self, work: Awaitable[_Out]) -> _Out:
        """Strict audit mode: ``work``'s outcome, once the events it recorded are committed.
        A ``ServiceUnavailable`` of its own is answered as it is (its store is away anyway)."""
        try:
            out = await work
        except ServiceUnavailable:
            raise
        except EkmsError:
            await self._audit.durable()
            raise
        await self._audit.durable()
        return out

    def _shortfall(
        self,
        snap: Snapshot,
        operation: Operation,
        needs: Sequence[tuple[Target, int]],
        permits: PermitTable,
    ) -> dict[Lease, int] | None:
        """What an encrypting or rewrapping call must reserve first (``nonces``), if anything."""
        return nonce_shortfall(
            self.item_path,
            self.budget,
            snap,
            needs,
            for_encrypt=operation is Operation.ENCRYPT,
            permits=permits,
        )

    async def _compute_mac(self, caller: Caller, item: Item, key_version: int | None) -> MacResult:
        snap = await self._enter(caller, Operation.MAC, 1)
        return self._macs.compute(snap, caller, item, key_version)

    async def _verify_mac(self, caller: Caller, item: Item, mac: bytes) -> int:
        snap = await self._enter(caller, Operation.MAC, 1)
        return self._macs.verify(snap, caller, item, mac)

    def _serve(
        self, operation: Operation, caller: Caller, items: Sequence[Item]
    ) -> Awaitable[list[ItemResult]]:
        work = self._serve_now(operation, caller, items)  # one coroutine less per call
        return self._durable(work) if self._audit.strict else work

    async def _serve_now(
        self, operation: Operation, caller: Caller, items: Sequence[Item]
    ) -> list[ItemResult]:
        snap = await self._enter(caller, operation, len(items))
        permits = self._permits.table(snap, caller, operation)
        if operation is not Operation.DECRYPT:
            short = self._shortfall(snap, operation, target_runs(items), permits)
            if short is not None:
                await self.budget.reserve_for(short)
        path = self.item_path
        if snap.fail_closed_at is not None:
            return [path.run(operation, snap, caller, item)[0] for item in items]
        return serve_batch(path, self._audit, operation, snap, caller, items, permits)

    async def _enter(self, caller: Caller, operation: Operation, cost: int) -> Snapshot:
        """The rate limit, room in the audit buffer, and the snapshot a call is served from."""
        self._admit(caller, operation, cost)
        if not self._audit.has_room:  # awaited only when it waits: a coroutine costs
            await self._audit.wait_for_capacity()
        snap = self._chain.cached
        return snap if snap is not None else await self._chain.snapshot()

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
                extra=caller.audit_extra,
            )
            raise


def check_batch_size(count: int, max_items: int) -> None:
    """``InvalidInput`` for a batch of more than ``max_items`` items: adapters call it before
    they read a batch's entries."""
    if count > max_items:
        raise InvalidInput(f"a batch holds at most {max_items} items", field="items")
