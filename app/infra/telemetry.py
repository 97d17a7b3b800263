"""Feeds the Prometheus metrics from the running process, outside the hot path.

- KMS calls: an instrumented ``KmsConnector`` wrapper counts each call by operation and outcome.
- Database statements: a SQLAlchemy cursor event.
- External key state, last sync, open alerts, cache loads: read from the cached key chain
  snapshot at scrape time (no I/O in a scrape).
- Audit buffer depth and flush latency: read from the buffer.
- gRPC calls: ``PrometheusCallMetrics``, the ``CallMetrics`` the boundary interceptor reports to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.application.audit import AuditBuffer
from app.application.keychain import KeyChain
from app.application.ports import (
    ExternalKeyDescription,
    ExternalKeyRef,
    KeyManagementService,
    KmsConnector,
    KmsWrapped,
    Leader,
    RotationState,
)
from app.domain.errors import EkmsError
from app.domain.values import ExternalKeyStatus
from app.infra.metrics import (
    AUDIT_BUFFER_DEPTH,
    DB_QUERIES,
    GRPC_LATENCY,
    GRPC_REQUESTS,
    KMS_CALLS,
    REGISTRY,
)


class InstrumentedKms:
    def __init__(self, inner: KeyManagementService) -> None:
        self._inner = inner
        self.ref = inner.ref

    async def _timed(self, operation: str, call: Callable[[], Any]) -> Any:
        try:
            result = await call()
        except EkmsError as exc:
            KMS_CALLS.labels(operation, exc.reason.value).inc()
            raise
        KMS_CALLS.labels(operation, "ok").inc()
        return result

    async def wrap(self, key_to_wrap: bytes, context: Mapping[str, str]) -> KmsWrapped:
        result: KmsWrapped = await self._timed(
            "encrypt", lambda: self._inner.wrap(key_to_wrap, context)
        )
        return result

    async def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        result: bytes = await self._timed("decrypt", lambda: self._inner.unwrap(wrapped, context))
        return result

    async def rewrap(self, wrapped: bytes, context: Mapping[str, str]) -> KmsWrapped:
        result: KmsWrapped = await self._timed(
            "re_encrypt", lambda: self._inner.rewrap(wrapped, context)
        )
        return result

    async def describe(self) -> ExternalKeyDescription:
        description = await self._inner.describe()
        outcome = "ok" if description.status is not ExternalKeyStatus.UNAVAILABLE else "unavailable"
        KMS_CALLS.labels("describe_key", outcome).inc()
        return description

    async def rotation_state(self) -> RotationState:
        result: RotationState = await self._timed("list_key_rotations", self._inner.rotation_state)
        return result


class InstrumentedKmsConnector:
    def __init__(self, inner: KmsConnector) -> None:
        self._inner = inner

    def connect(self, ref: ExternalKeyRef) -> KeyManagementService:
        return InstrumentedKms(self._inner.connect(ref))

    def endpoint(self, ref: ExternalKeyRef) -> str:
        return self._inner.endpoint(ref)

    async def aclose(self) -> None:
        await self._inner.aclose()


class PrometheusCallMetrics:
    """``CallMetrics`` into the gRPC call counter (method, code) and latency histogram."""

    def observe(self, method: str, code: str, seconds: float) -> None:
        GRPC_REQUESTS.labels(method=method, code=code).inc()
        GRPC_LATENCY.labels(method=method).observe(seconds)


def count_statements(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(*_: Any) -> None:
        DB_QUERIES.inc()


class ChainCollector(Collector):
    """Scrape-time view of the key chain of the most recently started container."""

    def __init__(self) -> None:
        self.chain: KeyChain | None = None
        self.audit: AuditBuffer | None = None
        self.leader: Leader | None = None

    def collect(self) -> Iterator[Any]:
        chain = self.chain
        state = GaugeMetricFamily(
            "ekms_external_key_status", "1 for the external key's current state", labels=["state"]
        )
        last_sync = GaugeMetricFamily(
            "ekms_last_sync_timestamp_seconds", "unix time of the last status sync"
        )
        alerts = GaugeMetricFamily("ekms_open_alerts", "open key chain alerts")
        loads = CounterMetricFamily(
            "ekms_keychain_loads", "key chain snapshot loads (cache misses)"
        )
        snap = chain.cached if chain else None
        current = snap.config.external_key_status if snap and snap.config else None
        for status in ExternalKeyStatus:
            state.add_metric([status.value], 1.0 if status is current else 0.0)
        per_key = GaugeMetricFamily(
            "ekms_external_keys_status",
            "1 for each external key's current state (key: its id; the first key is position 0)",
            labels=["key", "position", "state"],
        )
        for position, key in enumerate(snap.keys if snap else ()):
            for status in ExternalKeyStatus:
                on = 1.0 if status is key.external_key_status else 0.0
                per_key.add_metric([str(key.id), str(position), status.value], on)
        if snap and snap.config and snap.config.last_sync_at:
            last_sync.add_metric([], snap.config.last_sync_at.timestamp())
        alerts.add_metric([], float(len(snap.open_alerts)) if snap else 0.0)
        loads.add_metric([], float(chain.loads) if chain else 0.0)
        flush = GaugeMetricFamily(
            "ekms_audit_last_flush_seconds", "duration of the last audit flush"
        )
        flush.add_metric([], self.audit.last_flush_seconds if self.audit else 0.0)
        audit = self._audit_families()
        leader = GaugeMetricFamily(
            "ekms_scheduler_leader", "1 while this replica holds the scheduler lock"
        )
        leader.add_metric([], 1.0 if self.leader is not None and self.leader.holding else 0.0)
        crypto = CounterMetricFamily(
            "ekms_crypto_operations",
            "data-plane items by module (or target), operation and outcome",
            labels=["module", "operation", "result"],
        )
        for (module, operation, result), count in list(
            self.audit.totals.items() if self.audit else ()
        ):
            crypto.add_metric([module, operation, result], float(count))
        yield from (state, per_key, last_sync, alerts, loads, flush, leader, crypto, *audit)

    def _audit_families(self) -> tuple[Any, ...]:
        failures = CounterMetricFamily("ekms_audit_flush_failures", "audit flushes that failed")
        waiters = GaugeMetricFamily(
            "ekms_audit_strict_waiters", "strict-mode calls waiting for their audit flush"
        )
        last = GaugeMetricFamily(
            "ekms_audit_last_flush_timestamp_seconds", "unix time the last non-empty flush ended"
        )
        ok = GaugeMetricFamily(
            "ekms_audit_last_flush_ok", "1 if the last non-empty flush committed"
        )
        strict = GaugeMetricFamily("ekms_audit_strict_mode", "1 in strict audit mode, 0 buffered")
        state = self.audit.state() if self.audit else None
        if state is not None:
            failures.add_metric([], float(state.failed_flushes))
            waiters.add_metric([], float(state.waiters))
            strict.add_metric([], 1.0 if state.strict else 0.0)
            if state.last_flush_at is not None:
                last.add_metric([], state.last_flush_at.timestamp())
                ok.add_metric([], 1.0 if state.last_flush_ok else 0.0)
        return (failures, waiters, last, ok, strict)


COLLECTOR = ChainCollector()
REGISTRY.register(COLLECTOR)


def instrument(engine: AsyncEngine, chain: KeyChain, audit: AuditBuffer, leader: Leader) -> None:
    count_statements(engine)
    COLLECTOR.leader = leader
    COLLECTOR.chain = chain
    COLLECTOR.audit = audit
    AUDIT_BUFFER_DEPTH.set_function(lambda: audit.depth)


__all__ = ["InstrumentedKmsConnector", "PrometheusCallMetrics", "instrument"]
