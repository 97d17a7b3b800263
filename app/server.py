"""``ekms serve``: REST (uvicorn), gRPC and the metrics listener in one process, on one loop.

``serve_workers`` (``ekms serve --workers N``) forks N such processes on the same ports:
each worker runs the whole server (REST, gRPC, metrics, scheduler, audit flusher, key chain)
and the kernel spreads connections over them (``SO_REUSEPORT``: gRPC sets it by default on
Linux, the HTTP and metrics sockets are bound with it here). Workers share nothing but the
database: the key chain stays coherent through the Postgres change feed, exactly as between
replicas, and one worker at a time holds the scheduler lock. So ``--workers`` needs Postgres;
with SQLite it refuses. A scrape of the metrics port reaches one worker.

Before anything starts, ``serve`` refuses to listen beyond loopback with the generated dev
JWT secret (``refuse_public_bind_with_dev_secret``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from app.api.app import create_app
from app.bootstrap import Container, StartupError, refuse_public_bind_with_dev_secret, running
from app.grpc.server import GrpcOptions, GrpcServer, TlsFiles
from app.infra.metrics import GRPC_LATENCY, GRPC_REQUESTS
from app.infra.settings import Settings
from app.listeners import (
    QuietUvicorn,
    http_config,
    listen_socket,
    listening_ports,
    metrics_config,
    wait_started,
)

log = structlog.get_logger(__name__)


GRPC_SHUTDOWN_GRACE_SECONDS = 10.0


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
    http = QuietUvicorn(http_config(create_app(container), settings))
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
    bound: list[socket.socket] = []
    try:  # the metrics port bound here: a taken port is a StartupError, not a dead task
        if reuse_port:
            http_at = (settings.http_host, settings.http_port, "EKMS_HTTP_*")
            bound.append(listen_socket(*http_at, reuse_port=True))
        if config is not None:
            metrics_at = (config.host, config.port, "EKMS_METRICS_*")
            bound.append(listen_socket(*metrics_at, reuse_port=reuse_port))
    except StartupError:
        for sock in bound:
            sock.close()
        await grpc_server.stop()
        raise
    http_sockets = bound[:1] if reuse_port else None
    metrics_sockets = bound[-1:] if config is not None else None
    tasks = [asyncio.create_task(http.serve(sockets=http_sockets), name="http")]
    if metrics is not None:
        tasks.append(asyncio.create_task(metrics.serve(sockets=metrics_sockets), name="metrics"))
    servers = [http] if metrics is None else [http, metrics]
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
        if on_listening is not None:
            on_listening()
        await stop.wait()
        log.info("shutting_down")
    finally:
        # Every server stops accepting at once; calls in flight get the grace period.
        for server in servers:
            server.should_exit = True
        await asyncio.gather(grpc_server.stop(), *tasks, return_exceptions=True)


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


# --- several worker processes on the same ports ------------------------------------------------


Runner = Callable[[Coroutine[Any, Any, None]], None]
"""Runs a coroutine to completion on a fresh event loop (``uvloop.run`` or ``asyncio.run``)."""

WORKER_STOP_SECONDS = GRPC_SHUTDOWN_GRACE_SECONDS + 20.0


def serve_workers(settings: Settings, workers: int, run: Runner) -> int:
    """Fork ``workers`` processes, each a whole ``ekms serve`` on the same ports; supervise them.

    The first worker starts alone (it migrates when asked to and creates first-start files);
    the others follow once it listens. SIGTERM/SIGINT are passed on to every worker. If a
    worker dies, the others are stopped and the exit code is 1 (the supervisor of the host,
    systemd or Kubernetes, restarts the whole set). Returns the exit code.
    """
    if settings.effective_database_url.startswith("sqlite"):
        raise StartupError(
            "--workers needs Postgres (EKMS_DATABASE_URL): workers learn of each other's "
            "changes through its change feed, and SQLite serves one process"
        )
    # Reserve the ports (bound, not listening: the kernel sends no connection here) so that
    # port 0 resolves once and every worker binds the same port.
    wanted = {
        "http_port": (settings.http_host, settings.http_port, "EKMS_HTTP_*"),
        "grpc_port": (settings.grpc_host, settings.grpc_port, "EKMS_GRPC_*"),
    }
    if settings.metrics_port is not None:
        wanted["metrics_port"] = (settings.metrics_host, settings.metrics_port, "EKMS_METRICS_*")
    reserved = [_reserve(*where) for where in wanted.values()]
    ports = {name: sock.getsockname()[1] for name, sock in zip(wanted, reserved, strict=True)}
    worker_settings = settings.model_copy(update=ports)
    children: set[int] = set()
    state = {"stopping": False}

    def forward(signum: int, _frame: object) -> None:
        state["stopping"] = True
        for pid in children:
            _kill(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        log.info("workers_starting", workers=workers, **ports)
        first_ready = _fork_worker(worker_settings, run, children, previous)
        if first_ready and not state["stopping"]:
            for _ in range(workers - 1):
                _fork_worker(worker_settings, run, children, previous, wait=False)
        return _supervise(children, state)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sock in reserved:
            sock.close()


def _reserve(host: str, port: int, hint: str) -> socket.socket:
    return listen_socket(host, port, hint, reuse_port=True, listen=False)


def _fork_worker(
    settings: Settings,
    run: Runner,
    children: set[int],
    handlers: dict[signal.Signals, Any],
    *,
    wait: bool = True,
) -> bool:
    """Fork one worker; with ``wait``, return once it listens (False if it died first)."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        os.close(ready_r)
        code = 0
        try:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            run(serve(settings, reuse_port=True, on_listening=lambda: _notify(ready_w)))
        except StartupError as exc:
            log.error("worker_startup_failed", error=str(exc))
            code = 2
        except BaseException:  # a worker never returns into the parent's code
            log.exception("worker_failed")
            code = 1
        finally:
            os._exit(code)
    os.close(ready_w)
    children.add(pid)
    log.info("worker_started", pid=pid)
    try:
        return os.read(ready_r, 1) == b"1" if wait else True
    finally:
        os.close(ready_r)


def _notify(fd: int) -> None:
    try:
        os.write(fd, b"1")
        os.close(fd)
    except OSError:
        pass


def _kill(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _supervise(children: set[int], state: dict[str, bool]) -> int:
    exit_code = 0
    stop_deadline: float | None = None
    while children:
        if state["stopping"] and stop_deadline is None:
            stop_deadline = time.monotonic() + WORKER_STOP_SECONDS
        if stop_deadline is not None and time.monotonic() > stop_deadline:
            for pid in children:
                log.warning("worker_killed", pid=pid, reason="did not stop in time")
                _kill(pid, signal.SIGKILL)
            stop_deadline = time.monotonic() + 5.0
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            time.sleep(0.2)
            continue
        children.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        if not state["stopping"]:
            log.error("worker_exited", pid=pid, code=code, hint="stopping the other workers")
            state["stopping"] = True
            exit_code = code if code > 0 else 1
            for other in children:
                _kill(other, signal.SIGTERM)
        else:
            log.info("worker_stopped", pid=pid, code=code)
    log.info("workers_stopped", exit_code=exit_code)
    return exit_code
