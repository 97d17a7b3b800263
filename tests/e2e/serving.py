"""``ekms serve`` in this process on the embedded default (SQLite and the local provider under
a temporary data directory, the generated dev secret), on free loopback ports.

- ``embedded_settings(data_dir, **overrides)``: such settings, every port free;
- ``serving(settings)``: runs ``serve`` until the block ends, entered once every listener
  accepts connections.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from app.infra.settings import Settings
from app.server import serve


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def embedded_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "http_port": free_port(),
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "scheduler_enabled": False,
        "log_json": False,
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Settings]:
    stop, listening = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(settings, stop=stop, on_listening=listening.set))
    waiter = asyncio.create_task(listening.wait())
    try:
        await asyncio.wait({task, waiter}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # a failed start raises here
        assert listening.is_set(), "ekms serve did not listen within 60 s"
        yield settings
    finally:
        waiter.cancel()
        stop.set()
        await asyncio.wait_for(task, timeout=30)
