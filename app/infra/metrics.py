"""Prometheus metrics, defined once. Labels never carry key material, tokens or plaintext."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

HTTP_REQUESTS = Counter(
    "ekms_http_requests_total", "REST requests", ["method", "route", "status"], registry=REGISTRY
)
HTTP_LATENCY = Histogram(
    "ekms_http_request_seconds",
    "REST latency",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
GRPC_REQUESTS = Counter(
    "ekms_grpc_requests_total", "gRPC calls", ["method", "code"], registry=REGISTRY
)
GRPC_LATENCY = Histogram(
    "ekms_grpc_request_seconds",
    "gRPC latency",
    ["method"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
KMS_CALLS = Counter(
    "ekms_kms_calls_total", "external KMS calls", ["operation", "outcome"], registry=REGISTRY
)
DB_QUERIES = Counter("ekms_db_queries_total", "database statements executed", registry=REGISTRY)
AUDIT_BUFFER_DEPTH = Gauge(
    "ekms_audit_buffer_depth", "aggregated audit events waiting to be written", registry=REGISTRY
)
GC_PAUSES = Histogram(
    "ekms_gc_pause_seconds",
    "garbage-collector pauses by generation (see app.infra.gc_tuning)",
    ["generation"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
    registry=REGISTRY,
)
GC_FROZEN = Gauge(
    "ekms_gc_frozen_objects",
    "objects moved to the collector's permanent generation after start-up (gc.freeze)",
    registry=REGISTRY,
)
GC_THRESHOLD = Gauge(
    "ekms_gc_threshold",
    "the collector's threshold by generation",
    ["generation"],
    registry=REGISTRY,
)
