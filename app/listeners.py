"""The HTTP listeners of ``ekms serve``: the public REST port (optionally TLS, optionally
mutual TLS) and the metrics port, each a uvicorn server on the shared event loop.

- REST: ``EKMS_HTTP_HOST``/``EKMS_HTTP_PORT``; TLS with ``EKMS_HTTP_TLS_CERT_FILE`` and
  ``EKMS_HTTP_TLS_KEY_FILE``, and client certificates required (signed by
  ``EKMS_HTTP_TLS_CLIENT_CA_FILE``) when a client CA is set.
- XKS proxy: ``EKMS_XKS_HOST``/``EKMS_XKS_PORT`` (off unless the port is set), TLS and mutual
  TLS with ``EKMS_XKS_TLS_CERT_FILE``/``_KEY_FILE``/``_CLIENT_CA_FILE``, as REST's; with
  ``EKMS_XKS_TLS_CLIENT_SUBJECT`` also the client certificate's subject common name (AWS KMS
  presents ``cks.kms.<region>.amazonaws.com``): another one is cut off after the handshake.
- Metrics: ``EKMS_METRICS_HOST``/``EKMS_METRICS_PORT`` (default ``127.0.0.1:9464``; a blank
  port: no listener), plain HTTP, ``GET /metrics`` only (``app/api/metrics_app.py``).

With ``--workers N`` every worker binds the same ports with ``SO_REUSEPORT``, the metrics port
included: a scrape reaches one worker, as a REST call does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from app.api.metrics_app import metrics_app
from app.bootstrap import StartupError, check_tls_files
from app.infra.settings import Settings

log = structlog.get_logger(__name__)

METRICS_MAX_CONNECTIONS = 16
"""A scraper needs one; the cap keeps a flood of connections from growing the loop's load."""


class QuietUvicorn(uvicorn.Server):
    """A uvicorn server that leaves the signals to ``ekms serve``: two servers on one loop
    must not each swap the process's handlers (the loop's handler stops both)."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn >= 0.29
        yield


async def wait_started(servers: list[QuietUvicorn], tasks: list[asyncio.Task[None]]) -> None:
    """Return once every server accepts connections; raise what a server task died of."""
    # uvicorn only exposes a ``started`` flag, no event to wait on.
    while not all(s.started for s in servers) and not any(t.done() for t in tasks):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    for task in tasks:
        if task.done():
            task.result()


def listening_ports(server: uvicorn.Server) -> list[int]:
    return [sock.getsockname()[1] for srv in server.servers for sock in srv.sockets]


def http_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """The REST listener's configuration, TLS files loaded (``StartupError`` if they fail)."""
    files = (
        settings.http_tls_cert_file,
        settings.http_tls_key_file,
        settings.http_tls_client_ca_file,
    )
    return _tls_config(app, settings.http_host, settings.http_port, files, "EKMS_HTTP_TLS")


def xks_config(app: ASGIApp, settings: Settings) -> uvicorn.Config | None:
    """The XKS proxy listener's configuration, or None when ``EKMS_XKS_PORT`` is unset."""
    if settings.xks_port is None:
        return None
    files = (
        settings.xks_tls_cert_file,
        settings.xks_tls_key_file,
        settings.xks_tls_client_ca_file,
    )
    subject = settings.xks_tls_client_subject
    if subject is not None and settings.xks_tls_client_ca_file is None:
        raise StartupError("EKMS_XKS_TLS_CLIENT_SUBJECT needs EKMS_XKS_TLS_CLIENT_CA_FILE")
    extra: dict[str, Any] = {}
    if subject is not None:
        extra["http"] = subject_checking(AutoHTTPProtocol, subject)
    return _tls_config(app, settings.xks_host, settings.xks_port, files, "EKMS_XKS_TLS", **extra)


def subject_checking(base: type[asyncio.Protocol], common_name: str) -> type[asyncio.Protocol]:
    """``base`` (uvicorn's HTTP protocol) that drops a TLS connection whose client certificate
    does not name ``common_name`` as its subject CN (the chain is checked by the SSL context)."""

    class SubjectChecked(base):  # type: ignore[valid-type, misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            cert = ssl_object.getpeercert() if ssl_object is not None else None
            names = [
                value
                for rdn in (cert or {}).get("subject", ())
                for key, value in rdn
                if key == "commonName"
            ]
            if names != [common_name]:
                log.warning("xks_client_subject_refused")
                transport.abort()  # type: ignore[attr-defined]

    return SubjectChecked


def _tls_config(
    app: ASGIApp,
    host: str,
    port: int,
    files: tuple[Path | None, ...],
    prefix: str,
    **extra: Any,
) -> uvicorn.Config:
    cert, key, client_ca = files
    check_tls_files(prefix, cert, key, client_ca)
    config = _quiet_config(
        app,
        host,
        port,
        ssl_certfile=cert,
        ssl_keyfile=key,
        ssl_ca_certs=client_ca,
        ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca is not None else ssl.CERT_NONE,
        **extra,
    )
    try:
        config.load()  # builds the SSL context now: a bad file fails the start, not a task
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise StartupError(f"cannot load {prefix}_* files: {exc}") from exc
    return config


def metrics_config(settings: Settings) -> uvicorn.Config | None:
    """The metrics listener's configuration, or None when ``EKMS_METRICS_PORT`` is blank."""
    if settings.metrics_port is None:
        return None
    return _quiet_config(
        metrics_app,
        settings.metrics_host,
        settings.metrics_port,
        limit_concurrency=METRICS_MAX_CONNECTIONS,
    )


def _quiet_config(app: ASGIApp, host: str, port: int, **extra: Any) -> uvicorn.Config:
    """A listener's configuration: our own logging (no uvicorn log config, no access log), no
    lifespan (``ekms serve`` owns it), no ``Server`` header."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        **extra,
    )


def listen_socket(
    host: str, port: int, hint: str, *, reuse_port: bool = False, listen: bool = True
) -> socket.socket:
    """A TCP socket bound to ``host:port`` (with ``SO_REUSEPORT`` if asked), listening unless
    it only reserves the port; ``StartupError`` naming the settings if it cannot bind."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise StartupError(f"cannot bind {host}:{port} ({exc}): check {hint} settings") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listen:
            sock.listen(2048)
            sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot bind {host}:{port} ({exc}): check {hint} settings") from exc
    return sock
