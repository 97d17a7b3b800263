"""The metrics listener's app: ``GET /metrics`` (Prometheus text) and nothing else.

It runs on its own listener (``EKMS_METRICS_HOST``/``EKMS_METRICS_PORT``), not on the public
port, so that a NetworkPolicy or a firewall can open it to the scraper alone: the labels name
every module, every ``table.column`` the REST data plane was called with, and how many calls
each access policy refused. Scrapes run on the server's event loop (the scrape-time collector
reads the key chain snapshot without locks) and are neither counted nor logged as requests.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Receive, Scope, Send

from app.infra.metrics import REGISTRY

METRICS_PATH = "/metrics"


async def metrics_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":  # lifespan is off; websockets are not served
        return
    if scope["path"] != METRICS_PATH:
        await _plain(send, 404, b"not found: only GET /metrics is served here\n")
    elif scope["method"] not in ("GET", "HEAD"):
        await _plain(send, 405, b"method not allowed\n", [(b"allow", b"GET, HEAD")])
    else:
        body = generate_latest(REGISTRY)
        await _send(send, 200, CONTENT_TYPE_LATEST.encode(), body, head=scope["method"] == "HEAD")


async def _plain(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    await _send(send, status, b"text/plain; charset=utf-8", body, extra=extra)


async def _send(
    send: Send,
    status: int,
    content_type: bytes,
    body: bytes,
    *,
    head: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
