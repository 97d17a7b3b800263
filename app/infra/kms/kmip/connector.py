"""``KmipKmsConnector``: the KMIP server of this process (one per process, from settings).

Where calls go is only the server setting (``EKMS_KMIP_HOST`` / ``EKMS_KMIP_PORT``), never data,
as for AWS. The connection is always mutual TLS: the server's certificate is checked against
``EKMS_KMIP_CA_FILE`` (or the system's store) and its host name, and ours
(``EKMS_KMIP_CERT_FILE`` + ``EKMS_KMIP_KEY_FILE``) identifies ekms to the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.application.ports import ExternalKeyRef
from app.domain.errors import InvalidInput
from app.infra.kms.kmip._transport import Endpoint, KmipPool, tls_context
from app.infra.kms.kmip.kms import KmipKms

if TYPE_CHECKING:
    from app.infra.settings import Settings

KMIP_PROVIDER = "kmip"  # the value of ``KmsProvider.KMIP`` once the provider is wired
DEFAULT_PORT = 5696


@dataclass(frozen=True, slots=True)
class KmipSettings:
    host: str
    cert_file: Path
    key_file: Path
    ca_file: Path | None = None
    port: int = DEFAULT_PORT
    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    pool_size: int = 4

    @classmethod
    def from_settings(cls, settings: Settings) -> KmipSettings | None:
        """None when ``EKMS_KMIP_HOST`` is unset; ``ValueError`` when it is set without the
        client certificate and key (KMIP is always mutual TLS here)."""
        if not settings.kmip_host:
            return None
        if settings.kmip_cert_file is None or settings.kmip_key_file is None:
            raise ValueError(
                "EKMS_KMIP_HOST needs EKMS_KMIP_CERT_FILE and EKMS_KMIP_KEY_FILE (mutual TLS)"
            )
        return cls(
            host=settings.kmip_host,
            port=settings.kmip_port,
            cert_file=settings.kmip_cert_file,
            key_file=settings.kmip_key_file,
            ca_file=settings.kmip_ca_file,
            connect_timeout=settings.kms_connect_timeout_seconds,
            read_timeout=settings.kms_read_timeout_seconds,
        )


class KmipKmsConnector:
    """Opens ``KmipKms`` for KMIP key references, over one bounded pool of TLS connections
    (``pool_size`` connections and worker threads), closed by ``aclose()`` and reopened on the
    next call. Loads the certificates when built (blocking: call it at startup)."""

    def __init__(self, settings: KmipSettings) -> None:
        if not settings.host or not 0 < settings.port < 65536:
            raise ValueError("EKMS_KMIP_HOST and EKMS_KMIP_PORT must name a KMIP server")
        self._settings = settings
        self._context = tls_context(settings.cert_file, settings.key_file, settings.ca_file)
        self._endpoint = Endpoint(
            settings.host, settings.port, settings.connect_timeout, settings.read_timeout
        )
        self._pool: KmipPool | None = None
        self._chains: dict[str, tuple[str, ...]] = {}

    def __repr__(self) -> str:
        host, port = self._settings.host, self._settings.port
        return f"KmipKmsConnector(endpoint={self._url(host, port)!r}, pool_size={self.pool_size})"

    @staticmethod
    def _url(host: str, port: int) -> str:
        return f"kmip://[{host}]:{port}" if ":" in host else f"kmip://{host}:{port}"

    def connect(self, ref: ExternalKeyRef) -> KmipKms:
        if ref.provider != KMIP_PROVIDER:
            raise InvalidInput(f"not a KMIP key reference ({ref.provider})")
        if not ref.key_id or len(ref.key_id.encode("utf-8")) > 1024:
            raise InvalidInput("a KMIP key id is its Unique Identifier (1 to 1024 bytes)")
        return KmipKms(ref, self)

    def endpoint(self, ref: ExternalKeyRef) -> str:
        return self._url(self._settings.host, self._settings.port)

    @property
    def pool_size(self) -> int:
        return self._settings.pool_size

    @property
    def idle_connections(self) -> int:
        return self._pool.idle if self._pool else 0

    async def exchange(self, request: bytes) -> bytes:
        """Send one KMIP request, answer its response (raw errors: see ``_errors``)."""
        if self._pool is None:
            self._pool = KmipPool(self._endpoint, self._context, self._settings.pool_size)
        return await self._pool.exchange(request)

    def known_chain(self, key_id: str) -> tuple[str, ...]:
        return self._chains.get(key_id, ())

    def remember_chain(self, key_id: str, chain: tuple[str, ...]) -> None:
        self._chains[key_id] = chain

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
