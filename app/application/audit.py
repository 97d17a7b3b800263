"""Audit for the data plane without a database round trip per call.

Data-plane events are aggregated in memory by (actor, action, module, target, result, reason,
decided-by) and written in batches by ``flush()``, which a background task calls every
``interval`` seconds, and once more at shutdown. Key usage counts (for the GCM nonce limit)
ride along in the same transaction.

Nothing is silently dropped: if a flush fails, its batch is merged back and retried. When
more than ``capacity`` distinct aggregates are pending (the database has been away for a
while), callers wait in ``wait_for_capacity()``: back-pressure, not loss.

Strict mode (``strict=True``, ``EKMS_AUDIT_MODE=strict``) is group commit: a data-plane call
records its event as in buffered mode, then awaits ``durable()``, which returns once a flush
holding that event has committed. ``run()`` then flushes as soon as someone waits (not on the
tick), one flush at a time: whoever arrives while a flush is in flight is written, with
everyone else who arrived meanwhile, by the next one (one transaction for all). A flush that
fails fails every call waiting on it with ``ServiceUnavailable`` (``AUDIT_UNAVAILABLE``): fail
closed. Its events are still merged back and written later, so the trail may hold an event
of a call that was answered UNAVAILABLE; it never lacks one of a call that was answered.
A caller must call ``durable()`` with no ``await`` between its last ``record()`` and it: the
events pending at that moment are the ones it waits for.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import structlog

from app.application.audit_keys import AggregateKey as AggregateKey
from app.application.audit_keys import CountKey, aggregate_event, by_uuid
from app.application.audit_keys import Extra as Extra
from app.application.audit_keys import UsageKey as UsageKey
from app.application.ports import Clock, RandomSource, UnitOfWorkFactory
from app.domain.audit import AuditEvent, AuditResult
from app.domain.errors import Reason, ServiceUnavailable

log = structlog.get_logger(__name__)

STRICT_RETRY_SECONDS = 0.1
"""Strict mode: the pause after a failed flush before the next attempt (callers arriving
meanwhile wait for that attempt)."""
STRICT_FLUSH_TIMEOUT_SECONDS = 5.0
"""Strict mode: a flush that has not committed by then fails (its callers answer UNAVAILABLE)
rather than hold every caller while the database path hangs (a dropped, not refused, path)."""


def audit_unavailable() -> ServiceUnavailable:
    """What a data-plane call answers in strict mode when its event could not be written."""
    return ServiceUnavailable(
        "the audit trail cannot be written (strict audit mode); retry later",
        reason=Reason.AUDIT_UNAVAILABLE,
    )


@dataclass(frozen=True, slots=True)
class AuditState:
    """What status and metrics show of the buffer: its mode and its last flush."""

    strict: bool
    interval: float
    last_flush_at: datetime | None  # the last flush that had something to write, when it ended
    last_flush_ok: bool | None
    pending: int
    waiters: int
    failed_flushes: int


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
        strict: bool = False,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._rng = rng
        self.capacity = capacity
        self.interval = interval
        self.strict = strict
        self.flush_timeout = STRICT_FLUSH_TIMEOUT_SECONDS if strict else None
        self._round: asyncio.Future[None] | None = None  # strict: who waits for the pending
        self._wake = asyncio.Event()  # strict: someone waits; flush now
        self._pending: Counter[AggregateKey] = Counter()
        self._usage: Counter[CountKey] = Counter()
        self._room = asyncio.Event()
        self._room.set()
        self._flush_lock = asyncio.Lock()
        self.flushed_events = 0
        self.failed_flushes = 0
        self.last_flush_seconds = 0.0
        self.last_flush_at: datetime | None = None
        self.last_flush_ok: bool | None = None
        self.waiters = 0  # strict: calls waiting in durable()
        # Cumulative data-plane outcomes by (module or target, operation, outcome), for metrics.
        self.totals: Counter[tuple[str, str, str]] = Counter()

    def state(self) -> AuditState:
        return AuditState(
            strict=self.strict,
            interval=self.interval,
            last_flush_at=self.last_flush_at,
            last_flush_ok=self.last_flush_ok,
            pending=self.depth,
            waiters=self.waiters,
            failed_flushes=self.failed_flushes,
        )

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
        self._usage[(module_id.int, version)] += n

    @property
    def has_room(self) -> bool:
        """The buffer takes events now: ``wait_for_capacity`` would return at once."""
        return self._room.is_set()

    async def wait_for_capacity(self) -> None:
        """Wait while the buffer is full (back-pressure), rather than drop events."""
        if not self._room.is_set():
            await self._room.wait()

    async def durable(self) -> None:
        """Strict mode: return once every event recorded so far is committed, or raise
        ``ServiceUnavailable`` (``AUDIT_UNAVAILABLE``) if the flush holding them failed.
        Buffered mode: return at once."""
        if not self.strict:
            return
        waiting = self._round
        if waiting is None:
            waiting = self._round = asyncio.get_running_loop().create_future()
            waiting.add_done_callback(_retrieved)  # every waiter may have gone: no warning
        self._wake.set()
        self.waiters += 1
        try:
            await asyncio.shield(waiting)  # a caller that goes away does not cancel the others
        except ServiceUnavailable:
            raise audit_unavailable() from None
        finally:
            self.waiters -= 1

    async def flush(self) -> int:
        """Write what is pending. Returns the number of events written; re-queues on failure."""
        async with self._flush_lock:
            waiting, self._round = self._round, None
            if not self._pending and not self._usage:
                _settle(waiting, None)
                return 0
            batch, self._pending = self._pending, Counter()
            usage, self._usage = self._usage, Counter()
            now = self._clock.now()
            started = self._clock.monotonic()
            events = [aggregate_event(self._rng.uuid(), now, key, n) for key, n in batch.items()]
            try:
                async with asyncio.timeout(self.flush_timeout):
                    await self._write(events, by_uuid(usage))
            except Exception as exc:  # whatever failed, the batch is kept and retried
                self.failed_flushes += 1
                self.last_flush_at, self.last_flush_ok = self._clock.now(), False
                self._merge_back(batch, usage)
                _settle(waiting, audit_unavailable())
                log.warning(
                    "audit_flush_failed", pending=len(self._pending), error=type(exc).__name__
                )
                raise
            except BaseException:  # cancelled (shutdown): kept, and its waiters wait for the next
                self._merge_back(batch, usage)
                self._carry(waiting)
                raise
            _settle(waiting, None)
            self.last_flush_at, self.last_flush_ok = self._clock.now(), True
            self.flushed_events += sum(batch.values())
            self.last_flush_seconds = self._clock.monotonic() - started
            if len(self._pending) < self.capacity:
                self._room.set()
            return len(events)

    async def _write(self, events: list[AuditEvent], usage: Mapping[UsageKey, int]) -> None:
        async with self._uow_factory() as uow:
            if usage:
                await uow.keys.add_usage(usage)
            if events:  # last: the append locks the audit chain's head until commit
                await uow.audit.append(events)
            await uow.commit()

    def _carry(self, waiting: asyncio.Future[None] | None) -> None:
        """Hand the waiters of an interrupted flush on to the next one."""
        if waiting is None:
            return
        if self._round is None:
            self._round = waiting
            return
        self._round.add_done_callback(lambda done: _settle(waiting, _error_of(done)))

    def _merge_back(self, batch: Mapping[AggregateKey, int], usage: Mapping[CountKey, int]) -> None:
        self._pending.update(batch)
        self._usage.update(usage)
        if len(self._pending) >= self.capacity:
            self._room.clear()

    async def run(self) -> None:
        """Flush forever, every ``interval`` seconds; failures are retried on the next tick.
        Strict mode: also (and at once) whenever a caller waits in ``durable()``."""
        while True:
            if self.strict:
                await self._woken()
            else:
                await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:  # logged in flush(); retried on the next tick
                if self.strict:
                    await asyncio.sleep(STRICT_RETRY_SECONDS)

    async def _woken(self) -> None:
        """Until a caller waits, or ``interval`` seconds (what nobody waits for is written too)."""
        try:
            await asyncio.wait_for(self._wake.wait(), self.interval)
        except TimeoutError:
            pass
        self._wake.clear()


def _retrieved(done: asyncio.Future[None]) -> None:
    _error_of(done)


def _error_of(done: asyncio.Future[None]) -> BaseException | None:
    return audit_unavailable() if done.cancelled() else done.exception()


def _settle(waiting: asyncio.Future[None] | None, error: BaseException | None) -> None:
    if waiting is None or waiting.done():
        return
    if error is None:
        waiting.set_result(None)
    else:
        waiting.set_exception(error)
