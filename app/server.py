"""``ekms serve``: REST (uvicorn) and gRPC in one process, on one event loop."""

from __future__ import annotations

import asyncio
import signal

import structlog
import uvicorn

from app.api.app import create_app
from app.bootstrap import Container, running
from app.infra.settings import Settings

log = structlog.get_logger(__name__)


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
    http_task = asyncio.create_task(http.serve(), name="http")
    while not http.started and not http_task.done():
        await asyncio.sleep(0.01)
    if http_task.done():
        http_task.result()
    ports = [s.getsockname()[1] for server in http.servers for s in server.sockets]
    log.info("http_listening", host=settings.http_host, ports=ports)
    await stop.wait()
    log.info("shutting_down")
    http.should_exit = True
    await http_task
