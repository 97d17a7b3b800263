"""Mutual-TLS connections to the KMIP server, pooled, driven from worker threads.

KMIP is a blocking request/response protocol on one TLS stream (section 10 of the KMIP
profiles: TLS 1.2 or later, port 5696). ``KmipPool`` owns a thread pool of ``size`` workers and
at most ``size`` connections: each worker holds one connection for the length of one request,
and an idle connection is kept for the next. A connection that the server closed while idle is
found out on reuse: the request is then sent once more on a fresh connection (Encrypt, Decrypt
and GetAttributes change nothing on the server, so a repeat is harmless).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

MAX_RESPONSE_BYTES = 1 << 20
_HEADER = 8


class ConnectionLost(ConnectionError):
    """The server closed the stream before a whole response arrived."""


class ResponseTooLarge(ValueError):
    """The server announced a response larger than ``MAX_RESPONSE_BYTES``."""


def _no_passphrase() -> bytes:
    # Never prompt on a terminal for an encrypted key file: refuse it instead.
    return b""


def tls_context(cert_file: Path, key_file: Path, ca_file: Path | None) -> ssl.SSLContext:
    """Client context: TLS 1.2+, the server's certificate verified against ``ca_file`` (or the
    system's store) and its host name checked, our certificate presented (mutual TLS).

    Blocking file reads: call it at startup. Errors name the setting, never the file's bytes."""
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"EKMS_KMIP_CA_FILE cannot be loaded ({type(exc).__name__})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_file), str(key_file), password=_no_passphrase)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            "EKMS_KMIP_CERT_FILE / EKMS_KMIP_KEY_FILE cannot be loaded (PEM certificate and its "
            f"unencrypted private key expected; {type(exc).__name__})"
        ) from None
    return context


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    connect_timeout: float
    read_timeout: float


class KmipConnection:
    """One TLS stream to the server. Not thread-safe: one request at a time."""

    def __init__(self, endpoint: Endpoint, context: ssl.SSLContext) -> None:
        raw = socket.create_connection(
            (endpoint.host, endpoint.port), timeout=endpoint.connect_timeout
        )
        try:
            self._sock = context.wrap_socket(raw, server_hostname=endpoint.host)
        except BaseException:
            raw.close()
            raise
        self._sock.settimeout(endpoint.read_timeout)

    def exchange(self, message: bytes) -> bytes:
        self._sock.sendall(message)
        header = self._read(_HEADER)
        length = int.from_bytes(header[4:8], "big")
        if length > MAX_RESPONSE_BYTES:
            raise ResponseTooLarge(f"the KMIP response announces {length} bytes")
        return header + self._read(length)

    def _read(self, count: int) -> bytes:
        chunks: list[bytes] = []
        remaining = count
        while remaining:
            chunk = self._sock.recv(min(remaining, 65536))
            if not chunk:
                raise ConnectionLost("the KMIP server closed the connection")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


_STALE = (ConnectionLost, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError)


class KmipPool:
    """At most ``size`` connections and ``size`` requests in flight; ``close()`` ends both."""

    def __init__(self, endpoint: Endpoint, context: ssl.SSLContext, size: int) -> None:
        if size < 1:
            raise ValueError("the KMIP pool needs at least one connection")
        self._endpoint = endpoint
        self._context = context
        self._idle: list[KmipConnection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="ekms-kmip")
        self.size = size

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def exchange(self, message: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._exchange, message)

    def _exchange(self, message: bytes) -> bytes:
        connection, reused = self._take()
        try:
            response = connection.exchange(message)
        except _STALE:
            connection.close()
            if not reused:
                raise
            connection = KmipConnection(self._endpoint, self._context)
            try:
                response = connection.exchange(message)
            except BaseException:
                connection.close()
                raise
        except BaseException:
            connection.close()
            raise
        self._give_back(connection)
        return response

    def _take(self) -> tuple[KmipConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return KmipConnection(self._endpoint, self._context), False

    def _give_back(self, connection: KmipConnection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        """Stop taking requests and close the idle connections (a request still running
        closes its own connection when it ends)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
