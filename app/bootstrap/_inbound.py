"""The inbound adapters, handed explicit services: the REST app and the gRPC server.

Both get the same ``CryptoService``, use cases' context, token verifier and readiness check
from the container; neither sees the container itself.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from fastapi import FastAPI
from starlette.applications import Starlette

from app.api.app import create_app
from app.api.services import ApiServices
from app.application.xks.proxy import XksProxy
from app.bootstrap._container import Container
from app.bootstrap._errors import StartupError
from app.grpc.server import GrpcOptions, GrpcServer, TlsFiles
from app.infra.settings import Settings
from app.infra.sigv4 import BotocoreSigV4Verifier
from app.infra.telemetry import PrometheusCallMetrics
from app.xks import create_xks_app

log = structlog.get_logger(__name__)

GRPC_SHUTDOWN_GRACE_SECONDS = 10.0


def api_services(container: Container) -> ApiServices:
    return ApiServices(
        ctx=container.ctx,
        crypto=container.crypto,
        verifier=container.verifier,
        readiness=container.readiness,
        sync_interval_minutes=container.settings.sync_interval_minutes,
        max_batch_items=container.settings.max_batch_items,
    )


def build_rest_app(container: Container) -> FastAPI:
    """The REST app for a container (not listening). Tests use it too."""
    return create_app(api_services(container))


def check_tls_files(
    prefix: str, cert: Path | None, key: Path | None, client_ca: Path | None
) -> None:
    """``StartupError`` unless a listener's ``{prefix}_*_FILE`` settings fit together: a
    certificate and its key both or neither, a client CA (mutual TLS) only with them."""
    if (cert is None) != (key is None):
        raise StartupError(f"set both {prefix}_CERT_FILE and {prefix}_KEY_FILE, or neither")
    if client_ca is not None and cert is None:
        raise StartupError(f"{prefix}_CLIENT_CA_FILE (mutual TLS) needs a server certificate")


def grpc_options(settings: Settings) -> GrpcOptions:
    """The gRPC server's options from the process settings (``EKMS_GRPC_*``)."""
    cert, key, client_ca = (
        settings.grpc_tls_cert_file,
        settings.grpc_tls_key_file,
        settings.grpc_tls_client_ca_file,
    )
    check_tls_files("EKMS_GRPC_TLS", cert, key, client_ca)
    tls = TlsFiles(cert, key, client_ca) if cert is not None and key is not None else None
    return GrpcOptions(
        host=settings.grpc_host,
        port=settings.grpc_port,
        max_message_bytes=settings.grpc_max_message_bytes,
        max_batch_items=settings.max_batch_items,
        tls=tls,
        shutdown_grace_seconds=GRPC_SHUTDOWN_GRACE_SECONDS,
        bench_echo=settings.bench_echo,
    )


def build_grpc_server(container: Container, options: GrpcOptions | None = None) -> GrpcServer:
    """The gRPC server for a running container (not started). Tests use it too."""
    if container.verifier is None:
        log.warning("grpc_no_token_verifier", hint="every Crypto call will be UNAUTHENTICATED")
    if container.settings.bench_echo:
        log.warning("grpc_bench_echo_enabled", hint="EKMS_BENCH_ECHO is for bench/ only")
    return GrpcServer(
        crypto=container.crypto,
        verifier=container.verifier,
        readiness=container.readiness,
        options=options or grpc_options(container.settings),
        metrics=PrometheusCallMetrics(),
    )


def build_xks_app(container: Container) -> Starlette:
    """The XKS proxy (AWS KMS external key store) on the container's key chain."""
    proxy = XksProxy(
        container.ctx,
        BotocoreSigV4Verifier(),
        model=f"ekms {_version()}",
        rate=container.crypto.limits.rate,
    )
    return create_xks_app(proxy)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ekms")
    except PackageNotFoundError:
        return "dev"
