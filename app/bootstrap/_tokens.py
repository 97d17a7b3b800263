"""Where bearer tokens are checked against: the configured sources, or the embedded default's
generated development secret, which ``serve`` refuses to expose beyond loopback."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

import structlog

from app.application.ports import Clock
from app.bootstrap._errors import StartupError
from app.infra.files import private_dir, warn_if_open
from app.infra.settings import Settings
from app.infra.tokens import JwtVerifier, TokenSettings

log = structlog.get_logger(__name__)


def dev_jwt_secret_file(settings: Settings) -> Path:
    return settings.data_dir / "dev-jwt-hs256.secret"


def uses_dev_secret(settings: Settings) -> bool:
    """Tokens would be checked against the generated dev secret: the embedded default (no
    ``EKMS_DATABASE_URL``) with no ``EKMS_JWT_*`` token source."""
    configured = settings.jwt_hs256_secret or settings.jwt_public_key_file or settings.jwt_jwks_url
    return settings.embedded and not configured


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``); anything else, the
    wildcard addresses included, reaches beyond this host."""
    name = host.strip().removeprefix("[").removesuffix("]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def refuse_public_bind_with_dev_secret(settings: Settings) -> None:
    """``StartupError`` when a server would listen beyond loopback while tokens are checked
    against the generated dev secret: a file anyone with the data directory can read to mint
    admin tokens, which no operator chose."""
    if not uses_dev_secret(settings):
        return
    hosts = {"EKMS_HTTP_HOST": settings.http_host, "EKMS_GRPC_HOST": settings.grpc_host}
    exposed = [f"{name}={host}" for name, host in hosts.items() if not is_loopback_host(host)]
    if exposed:
        raise StartupError(
            f"refusing to listen on {', '.join(exposed)} with the auto-generated development "
            "JWT secret: set EKMS_JWT_JWKS_URL or EKMS_JWT_PUBLIC_KEY_FILE (with "
            "EKMS_JWT_ISSUER/EKMS_JWT_AUDIENCE), or EKMS_JWT_HS256_SECRET, or bind 127.0.0.1"
        )


def resolve_token_settings(settings: Settings) -> TokenSettings | None:
    """The configured token sources; the embedded default gets a generated dev HS256 secret."""
    secret = settings.jwt_hs256_secret.get_secret_value() if settings.jwt_hs256_secret else None
    pem = settings.jwt_public_key_file.read_bytes() if settings.jwt_public_key_file else None
    if secret is None and pem is None and settings.jwt_jwks_url is None:
        if not settings.embedded:
            return None
        secret = _dev_secret(dev_jwt_secret_file(settings))
    return TokenSettings(
        hs256_secret=secret,
        public_key_pem=pem,
        jwks_url=settings.jwt_jwks_url,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        roles_claim=settings.jwt_roles_claim,
        leeway_seconds=settings.jwt_leeway_seconds,
        max_lifetime_seconds=settings.jwt_max_lifetime_seconds,
    )


def build_verifier(settings: Settings, clock: Clock) -> JwtVerifier | None:
    """The process's one token verifier, shared by REST and gRPC; ``None``: no token source
    is configured, so every protected call is refused."""
    tokens = resolve_token_settings(settings)
    return JwtVerifier(tokens, clock) if tokens else None


def _dev_secret(path: Path) -> str:
    if path.exists():
        warn_if_open(path)
        return path.read_text().strip()
    private_dir(path.parent)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(value)
    log.warning("dev_jwt_secret_created", file=str(path), hint="mint tokens with `ekms token`")
    return value
