"""``GrpcServer``: the grpc.aio server of ``ekms serve``, on the process's one event loop.

Serves ``ekms.v1.Crypto`` behind two interceptors (``boundary`` outermost, then ``auth``), the
readiness-driven ``grpc.health.v1.Health`` service, and server reflection; for the benchmark
only, ``ekms.bench.v1.Echo`` behind the same interceptors when ``bench_echo`` is set (never by
default). Listens in plaintext, or with TLS when a certificate and key are given, or with
mutual TLS when a client CA is given too (clients without a certificate signed by it are
refused during the handshake).

Limits: ``max_message_bytes`` for requests and responses (a larger message fails with
RESOURCE_EXHAUSTED), ``max_batch_items`` per batch (INVALID_ARGUMENT).

``stop(grace)`` is graceful: health goes NOT_SERVING, the server stops accepting calls, calls in
flight get ``grace`` seconds to finish and are cancelled after that.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import grpc
from ekms_client.gen.ekms.v1 import crypto_pb2, crypto_pb2_grpc
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from app.application.crypto import CryptoService
from app.application.ports import CallMetrics, TokenVerifier
from app.grpc.auth import AuthInterceptor
from app.grpc.boundary import BoundaryInterceptor
from app.grpc.health import ReadinessCheck, ReadinessHealth
from app.grpc.servicer import CryptoServicer

CRYPTO_SERVICE_NAME = crypto_pb2.DESCRIPTOR.services_by_name["Crypto"].full_name


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files: the server's certificate chain and key; a client CA turns on mutual TLS."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


@dataclass(frozen=True, slots=True)
class GrpcOptions:
    host: str = "127.0.0.1"
    port: int = 50051
    max_message_bytes: int = 8 * 1024 * 1024
    max_batch_items: int = 10_000
    tls: TlsFiles | None = None
    health_interval_seconds: float = 1.0
    shutdown_grace_seconds: float = 10.0
    bench_echo: bool = False
    """Also serve ``ekms.bench.v1.Echo`` (bench/ only; see ``app.grpc.bench_echo``)."""

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"


def server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """Read the PEM files (once, at start) into server credentials."""
    client_ca = tls.client_ca_file.read_bytes() if tls.client_ca_file else None
    return grpc.ssl_server_credentials(
        [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


class GrpcServer:
    def __init__(
        self,
        *,
        crypto: CryptoService,
        verifier: TokenVerifier | None,
        readiness: ReadinessCheck,
        options: GrpcOptions,
        metrics: CallMetrics | None = None,
    ) -> None:
        self.options = options
        self._crypto = crypto
        self._verifier = verifier
        self._metrics = metrics
        self.health = ReadinessHealth(readiness, options.health_interval_seconds)
        self._server: grpc.aio.Server | None = None
        self.port: int | None = None
        self.draining = asyncio.Event()
        """Set once a stop has begun: new calls are refused, calls in flight may finish."""

    async def start(self) -> int:
        """Bind, start serving, return the bound port (useful with port 0).

        ``OSError`` when the address cannot be bound or a TLS file cannot be read.
        """
        if self._server is not None:
            raise RuntimeError("the gRPC server is already started")
        limit = self.options.max_message_bytes
        server = grpc.aio.server(
            interceptors=[BoundaryInterceptor(self._metrics), AuthInterceptor(self._verifier)],
            options=[
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
            ],
        )
        crypto_pb2_grpc.add_CryptoServicer_to_server(  # type: ignore[no-untyped-call]
            CryptoServicer(self._crypto, max_batch_items=self.options.max_batch_items), server
        )
        if self.options.bench_echo:
            from app.grpc.bench_echo import add_echo_servicer

            add_echo_servicer(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, server)
        reflection.enable_server_reflection(
            (CRYPTO_SERVICE_NAME, grpc_health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        address = self.options.address
        try:
            if self.options.tls is not None:
                port = server.add_secure_port(address, server_credentials(self.options.tls))
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc's way of saying the bind failed
            raise OSError(f"the gRPC server could not listen on {address}") from exc
        if not port:
            raise OSError(f"the gRPC server could not listen on {address}")
        await self.health.refresh()  # the first Check must not see a default SERVING
        await server.start()
        self.health.start()
        self._server, self.port = server, int(port)
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Graceful stop; idempotent. ``grace`` defaults to the configured grace period."""
        server, self._server = self._server, None
        if server is None:
            return
        stopping = asyncio.ensure_future(
            server.stop(self.options.shutdown_grace_seconds if grace is None else grace)
        )
        # grpc begins its shutdown (listeners closed, new calls refused) in the first step of
        # the stop task; one tick later the server is draining.
        await asyncio.sleep(0)
        self.draining.set()
        await self.health.shutdown()  # watchers hear NOT_SERVING
        await stopping
