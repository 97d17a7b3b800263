"""Change propagation between replicas: Postgres LISTEN/NOTIFY, with a periodic reconcile.

``publish()`` applies a change to this replica's key chain at once and NOTIFYs the others on
channel ``ekms_changes``; each listener invalidates (or purges) its own chain. Notifications
can be lost (a listener reconnecting, a replica paused), so every replica also reloads its
snapshot every ``reconcile_seconds``: the backstop bounds how stale a cache can get.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import asyncpg
import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.application.keychain import KeyChain

log = structlog.get_logger(__name__)

CHANNEL = "ekms_changes"


def apply_change(chain: KeyChain, scope: str) -> None:
    if scope == "purge":
        chain.purge()
    else:
        chain.invalidate()


def _setter(event: asyncio.Event) -> Any:
    return lambda _conn: event.set()


class PgChangeFeed:
    def __init__(
        self, engine: AsyncEngine, chain: KeyChain, *, reconcile_seconds: float = 30.0
    ) -> None:
        self._engine = engine
        self._chain = chain
        self.reconcile_seconds = reconcile_seconds
        self.sender = uuid.uuid4().hex
        self._conn: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self.received = 0

    async def publish(self, scope: str) -> None:
        apply_change(self._chain, scope)
        payload = json.dumps({"scope": scope, "sender": self.sender})
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": CHANNEL, "payload": payload},
                )
        except Exception as exc:  # the reconcile loop still converges the other replicas
            log.warning("change_notify_failed", scope=scope, error=type(exc).__name__)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if message.get("sender") == self.sender:
            return
        self.received += 1
        apply_change(self._chain, str(message.get("scope", "")))

    async def _listen_forever(self) -> None:
        url = make_url(self._engine.url).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while True:
            lost = asyncio.Event()
            try:
                self._conn = await asyncpg.connect(dsn, timeout=5)
                self._conn.add_termination_listener(_setter(lost))
                await self._conn.add_listener(CHANNEL, self._on_notify)
                # Anything may have changed while we were not listening.
                self._chain.invalidate()
                log.info("change_feed_listening", channel=CHANNEL)
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=5)
                    if not lost.is_set() and self._conn.is_closed():
                        lost.set()
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("change_feed_disconnected", error=type(exc).__name__)
            finally:
                if self._conn is not None and not self._conn.is_closed():
                    with contextlib.suppress(Exception):
                        await self._conn.close()
                self._conn = None
            await asyncio.sleep(1)

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(self.reconcile_seconds)
            self._chain.invalidate()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="change-feed-listen"),
            asyncio.create_task(self._reconcile_forever(), name="change-feed-reconcile"),
        ]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()


class LocalReconcilingFeed:
    """One process (SQLite): changes apply locally; no other replica to tell."""

    def __init__(self, chain: KeyChain) -> None:
        self._chain = chain

    async def publish(self, scope: str) -> None:
        apply_change(self._chain, scope)

    def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
