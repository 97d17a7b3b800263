"""The prefork supervisor of ``ekms serve --workers N``: N worker processes on the same ports.

Each worker runs a whole server (``app.server.serve``: REST, gRPC, metrics, scheduler, audit
flusher, key chain), and the kernel spreads connections over them (``SO_REUSEPORT``: gRPC sets
it by default on Linux, the HTTP and metrics sockets are bound with it). Workers share nothing
but the database: the key chain stays coherent through the Postgres change feed, exactly as
between replicas, and one worker at a time holds the scheduler lock. So ``--workers`` needs
Postgres; with SQLite it refuses. A scrape of the metrics port reaches one worker.

This module knows processes, ports and signals, not what a worker serves: the worker is
passed in (``Worker``).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from app.bootstrap import GRPC_SHUTDOWN_GRACE_SECONDS, StartupError
from app.infra.settings import Settings
from app.listeners import listen_socket

log = structlog.get_logger(__name__)

Runner = Callable[[Coroutine[Any, Any, None]], None]
"""Runs a coroutine to completion on a fresh event loop (``uvloop.run`` or ``asyncio.run``)."""

Worker = Callable[[Settings, Callable[[], None]], Coroutine[Any, Any, None]]
"""One worker's server: ``worker(settings, on_listening)`` serves on ``settings``' ports (bound
with ``SO_REUSEPORT``), calls ``on_listening()`` once every listener accepts connections, and
returns once SIGTERM/SIGINT told it to stop."""

WORKER_STOP_SECONDS = GRPC_SHUTDOWN_GRACE_SECONDS + 20.0


def serve_workers(settings: Settings, workers: int, run: Runner, worker: Worker) -> int:
    """Fork ``workers`` processes, each running ``worker`` on the same ports; supervise them.

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
    fork = (worker_settings, run, worker, children, previous)
    try:
        log.info("workers_starting", workers=workers, **ports)
        first_ready = _fork_worker(*fork)
        if first_ready and not state["stopping"]:
            for _ in range(workers - 1):
                _fork_worker(*fork, wait=False)
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
    worker: Worker,
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
            run(worker(settings, lambda: _notify(ready_w)))
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
