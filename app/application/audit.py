"""Audit for the data plane without a database round trip per call.

Data-plane events are aggregated in memory by (actor, action, module, target, result, reason,
decided-by) and written in batches by ``flush()``, which a background task calls every
``interval`` seconds, and once more at shutdown. Key usage counts (for the GCM nonce limit)
ride along in the same transaction.

Nothing is silently dropped: if a flush fails, its batch is merged back and retried. When
more than ``capacity`` distinct aggregates are pending (the database has been away for a
while), callers wait in ``wait_for_capacity()``: back-pressure, not loss.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import datetime

import structlog

from app.application.ports import Clock, RandomSource, UnitOfWorkFactory
from app.domain.audit import AuditEvent, AuditResult

log = structlog.get_logger(__name__)

Extra = tuple[tuple[str, str], ...]
"""Further (name, value) pairs an event is aggregated by and that land in its ``details``."""
AggregateKey = tuple[str, str, str | None, str | None, AuditResult, str | None, str | None, Extra]
UsageKey = tuple[uuid.UUID, int]


class AuditBuffer:
    """Data-plane audit events, aggregated in memory and flushed about once a second."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        rng: RandomSource,
        *,
        capacity: int = 100_000,
        interval: float = 1.0,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._rng = rng
        self.capacity = capacity
        self.interval = interval
        self._pending: Counter[AggregateKey] = Counter()
        self._usage: Counter[UsageKey] = Counter()
        self._room = asyncio.Event()
        self._room.set()
        self._flush_lock = asyncio.Lock()
        self.flushed_events = 0
        self.failed_flushes = 0
        self.last_flush_seconds = 0.0
        # Cumulative data-plane outcomes by (module or target, operation, outcome), for metrics.
        self.totals: Counter[tuple[str, str, str]] = Counter()

    @property
    def depth(self) -> int:
        """How many aggregated events wait for the next flush."""
        return len(self._pending)

    def record(
        self,
        *,
        actor: str,
        action: str,
        result: AuditResult,
        module: str | None = None,
        target: str | None = None,
        reason: str | None = None,
        decided_by: str | None = None,
        count: int = 1,
        extra: Extra = (),
    ) -> None:
        """Count one data-plane outcome under its aggregation key.

        ``extra`` pairs (a justification, an XKS request's metadata) are part of the key, so
        events that differ in them are separate rows, and each pair is in the row's details.
        """
        self._pending[(actor, action, module, target, result, reason, decided_by, extra)] += count
        outcome = "success" if result is AuditResult.SUCCESS else (reason or result.value)
        self.totals[(module or target or "unknown", action, outcome)] += count
        if len(self._pending) >= self.capacity:
            self._room.clear()

    def count_usage(self, module_id: uuid.UUID, version: int, n: int = 1) -> None:
        """Count encryptions per key version, persisted with the next flush."""
        self._usage[(module_id, version)] += n

    async def wait_for_capacity(self) -> None:
        """Wait while the buffer is full (back-pressure), rather than drop events."""
        if not self._room.is_set():
            await self._room.wait()

    async def flush(self) -> int:
        """Write what is pending. Returns the number of events written; re-queues on failure."""
        async with self._flush_lock:
            if not self._pending and not self._usage:
                return 0
            batch, self._pending = self._pending, Counter()
            usage, self._usage = self._usage, Counter()
            now = self._clock.now()
            started = self._clock.monotonic()
            events = [_event(self._rng.uuid(), now, key, n) for key, n in batch.items()]
            try:
                async with self._uow_factory() as uow:
                    if usage:
                        await uow.keys.add_usage(usage)
                    if events:  # last: the append locks the audit chain's head until commit
                        await uow.audit.append(events)
                    await uow.commit()
            except Exception as exc:  # whatever failed, the batch is kept and retried
                self.failed_flushes += 1
                self._merge_back(batch, usage)
                log.warning(
                    "audit_flush_failed", pending=len(self._pending), error=type(exc).__name__
                )
                raise
            self.flushed_events += sum(batch.values())
            self.last_flush_seconds = self._clock.monotonic() - started
            if len(self._pending) < self.capacity:
                self._room.set()
            return len(events)

    def _merge_back(self, batch: Mapping[AggregateKey, int], usage: Mapping[UsageKey, int]) -> None:
        self._pending.update(batch)
        self._usage.update(usage)
        if len(self._pending) >= self.capacity:
            self._room.clear()

    async def run(self) -> None:
        """Flush forever, every ``interval`` seconds; failures are retried on the next tick."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:  # noqa: S112 - logged in flush(); retried on the next tick
                continue


def _event(event_id: uuid.UUID, now: datetime, key: AggregateKey, count: int) -> AuditEvent:
    actor, action, module, target, result, reason, decided_by, extra = key
    details: dict[str, object] = {"decided_by": decided_by} if decided_by else {}
    details.update(extra)
    return AuditEvent(
        id=event_id,
        at=now,
        actor=actor,
        action=action,
        result=result,
        module=module,
        target=target,
        reason=reason,
        details=details,
        count=count,
    )
