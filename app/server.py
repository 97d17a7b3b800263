"""``ekms serve``: REST (uvicorn) and gRPC in one process, on one event loop."""

from __future__ import annotations

import asyncio
import signal

import structlog
import uvicorn

from app.api.app import create_app
from app.bootstrap import Container, StartupError, running
from app.grpc.server import GrpcOptions, GrpcServer, TlsFiles
from app.infra.metrics import GRPC_LATENCY, GRPC_REQUESTS
from app.infra.settings import Settings

log = structlog.get_logger(__name__)


GRPC_SHUTDOWN_GRACE_SECONDS = 10.0


class _Uvicorn(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # we own the signals
        return None


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            break
    async with running(settings) as container:
        await _serve_container(container, stop)


async def _serve_container(container: Container, stop: asyncio.Event) -> None:
    settings = container.settings
    http = _Uvicorn(
        uvicorn.Config(
            create_app(container),
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
        )
    )
    grpc_server = build_grpc_server(container)
    try:
        grpc_port = await grpc_server.start()
    except OSError as exc:
        raise StartupError(f"{exc} ({type(exc).__name__}: check EKMS_GRPC_* settings)") from exc
    log.info(
        "grpc_listening",
        host=settings.grpc_host,
        port=grpc_port,
        tls=grpc_server.options.tls is not None,
        mutual_tls=bool(grpc_server.options.tls and grpc_server.options.tls.client_ca_file),
    )
    http_task = asyncio.create_task(http.serve(), name="http")
    try:
        # uvicorn only exposes a ``started`` flag, no event to wait on.
        while not http.started and not http_task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if http_task.done():
            http_task.result()
        ports = [s.getsockname()[1] for server in http.servers for s in server.sockets]
        log.info("http_listening", host=settings.http_host, ports=ports)
        await stop.wait()
        log.info("shutting_down")
    finally:
        # Both servers stop accepting at once; calls in flight get the grace period.
        http.should_exit = True
        await asyncio.gather(grpc_server.stop(), http_task, return_exceptions=True)


# --- gRPC wiring -------------------------------------------------------------------------------


class _PrometheusCallMetrics:
    def observe(self, method: str, code: str, seconds: float) -> None:
        GRPC_REQUESTS.labels(method=method, code=code).inc()
        GRPC_LATENCY.labels(method=method).observe(seconds)


def grpc_options(settings: Settings) -> GrpcOptions:
    """The gRPC server's options from the process settings (``EKMS_GRPC_*``)."""
    cert, key, client_ca = (
        settings.grpc_tls_cert_file,
        settings.grpc_tls_key_file,
        settings.grpc_tls_client_ca_file,
    )
    if (cert is None) != (key is None):
        raise StartupError(
            "set both EKMS_GRPC_TLS_CERT_FILE and EKMS_GRPC_TLS_KEY_FILE, or neither"
        )
    if client_ca is not None and cert is None:
        raise StartupError("EKMS_GRPC_TLS_CLIENT_CA_FILE (mutual TLS) needs a server certificate")
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
        metrics=_PrometheusCallMetrics(),
    )
