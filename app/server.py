"""``ekms serve``: REST (uvicorn), gRPC, the metrics and the XKS proxy listeners in one process,
on one loop.

``serve`` builds the process through the composition root (``app.bootstrap``), starts every
listener, and stops them together. ``serve_workers`` (``ekms serve --workers N``) runs N such
processes on the same ports under the prefork supervisor (``app.supervisor``).

Before anything starts, ``serve`` refuses to listen beyond loopback with the generated dev
JWT secret (``refuse_public_bind_with_dev_secret``).
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from app import supervisor
from app.bootstrap import (
    Container,
    StartupError,
    build_grpc_server,
    build_rest_app,
    build_xks_app,
    refuse_public_bind_with_dev_secret,
    running,
)
from app.infra import gc_tuning
from app.infra.settings import Settings
from app.listeners import (
    QuietUvicorn,
    http_config,
    listen_socket,
    listening_ports,
    metrics_config,
    wait_started,
    xks_config,
)

log = structlog.get_logger(__name__)


async def serve(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    reuse_port: bool = False,
    on_listening: Callable[[], None] | None = None,
) -> None:
    """Run until ``stop`` is set (or SIGINT/SIGTERM). ``reuse_port``: bind HTTP and metrics
    with ``SO_REUSEPORT`` (a worker of ``serve_workers``); ``on_listening``: called once every
    listener accepts connections."""
    refuse_public_bind_with_dev_secret(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            break
    async with running(settings) as container:
        await _serve_container(container, stop, reuse_port=reuse_port, on_listening=on_listening)


async def _serve_container(
    container: Container,
    stop: asyncio.Event,
    *,
    reuse_port: bool = False,
    on_listening: Callable[[], None] | None = None,
) -> None:
    settings = container.settings
    http = QuietUvicorn(http_config(build_rest_app(container), settings))
    config = metrics_config(settings)
    metrics = QuietUvicorn(config) if config is not None else None
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
    xks_cfg = xks_config(build_xks_app(container), settings)
    xks = QuietUvicorn(xks_cfg) if xks_cfg is not None else None
    bound: list[socket.socket] = []
    http_sockets = metrics_sockets = xks_sockets = None
    try:  # the metrics and XKS ports bound here: a taken port is a StartupError, not a dead task
        if reuse_port:
            http_at = (settings.http_host, settings.http_port, "EKMS_HTTP_*")
            http_sockets = [listen_socket(*http_at, reuse_port=True)]
            bound += http_sockets
        if config is not None:
            metrics_at = (config.host, config.port, "EKMS_METRICS_*")
            metrics_sockets = [listen_socket(*metrics_at, reuse_port=reuse_port)]
            bound += metrics_sockets
        if xks_cfg is not None:
            xks_at = (xks_cfg.host, xks_cfg.port, "EKMS_XKS_*")
            xks_sockets = [listen_socket(*xks_at, reuse_port=reuse_port)]
            bound += xks_sockets
    except StartupError:
        for sock in bound:
            sock.close()
        await grpc_server.stop()
        raise
    tasks = [asyncio.create_task(http.serve(sockets=http_sockets), name="http")]
    servers = [http]
    if metrics is not None:
        tasks.append(asyncio.create_task(metrics.serve(sockets=metrics_sockets), name="metrics"))
        servers.append(metrics)
    if xks is not None:
        tasks.append(asyncio.create_task(xks.serve(sockets=xks_sockets), name="xks"))
        servers.append(xks)
    try:
        await wait_started(servers, tasks)
        log.info(
            "http_listening",
            host=settings.http_host,
            ports=listening_ports(http),
            tls=settings.http_tls_cert_file is not None,
            mutual_tls=settings.http_tls_client_ca_file is not None,
        )
        if metrics is not None:
            log.info(
                "metrics_listening", host=settings.metrics_host, ports=listening_ports(metrics)
            )
        if xks is not None:
            log.info(
                "xks_listening",
                host=settings.xks_host,
                ports=listening_ports(xks),
                tls=settings.xks_tls_cert_file is not None,
                mutual_tls=settings.xks_tls_client_ca_file is not None,
            )
        _tune_gc(settings)
        if on_listening is not None:
            on_listening()
        await stop.wait()
        log.info("shutting_down")
    finally:
        # Every server stops accepting at once; calls in flight get the grace period.
        gc_tuning.PAUSES.refreeze_after_next_full_collection(None)  # it is this loop's
        for server in servers:
            server.should_exit = True
        await asyncio.gather(grpc_server.stop(), *tasks, return_exceptions=True)


def _tune_gc(settings: Settings) -> None:
    """Start-up is over: freeze what it left alive, set gen0's threshold, time collections."""
    gc_tuning.PAUSES.install()
    state = gc_tuning.apply(
        gc_tuning.GcTuning(freeze=settings.gc_freeze, threshold0=settings.gc_gen0_threshold)
    )
    if settings.gc_freeze:  # and what the first calls load lazily, once
        loop = asyncio.get_running_loop()
        gc_tuning.PAUSES.refreeze_after_next_full_collection(loop.call_soon_threadsafe)
    log.info("gc_tuned", frozen_objects=state.frozen_objects, thresholds=list(state.thresholds))


def serve_workers(settings: Settings, workers: int, run: supervisor.Runner) -> int:
    """``workers`` processes of ``serve`` on the same ports, under the prefork supervisor;
    returns its exit code (see ``app.supervisor.serve_workers``)."""
    return supervisor.serve_workers(settings, workers, run, _worker)


def _worker(settings: Settings, on_listening: Callable[[], None]) -> Coroutine[Any, Any, None]:
    return serve(settings, reuse_port=True, on_listening=on_listening)
