"""The composition root: builds the whole process from settings, and tears it down.

Every long-lived resource (engine, KMS clients, token verifier, background tasks) is opened in
``running()`` and closed when it exits. Tests build the same container with their own settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from app.application.audit import AuditBuffer
from app.application.configuration import ConfigInput, configure_ekms
from app.application.context import AppContext
from app.application.crypto import CryptoService
from app.application.health import Readiness, check_readiness
from app.application.keychain import KeyChain
from app.application.limits import DataPlaneLimits, RateLimiter, StreamSlots
from app.application.ports import Clock, KmsConnector
from app.domain.errors import AlreadyExists
from app.domain.values import SYSTEM, KmsProvider
from app.infra.control_loop import ControlLoop
from app.infra.db.engine import create_engine
from app.infra.db.leader import make_leader
from app.infra.db.migrate import is_at_head, upgrade_to_head
from app.infra.db.notify import LocalReconcilingFeed, PgChangeFeed
from app.infra.db.uow import SqlaUnitOfWorkFactory
from app.infra.files import private_dir, warn_if_open
from app.infra.kms.aws import AwsKmsConnector
from app.infra.kms.isolated import IsolatedKmsConnector
from app.infra.kms.local import open_local_kms
from app.infra.kms.routing import RoutingKmsConnector
from app.infra.scheduler import MaintenanceScheduler
from app.infra.settings import Settings
from app.infra.system import SystemClock, SystemRandom
from app.infra.telemetry import InstrumentedKmsConnector, instrument
from app.infra.tokens import JwtVerifier, TokenSettings

log = structlog.get_logger(__name__)

LOCAL_KEY_ID = "ekms-local-root"


class StartupError(Exception):
    """The process cannot start; the message says what to do."""


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    ctx: AppContext
    crypto: CryptoService
    verifier: JwtVerifier | None
    changes: PgChangeFeed | LocalReconcilingFeed
    scheduler: MaintenanceScheduler
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def schema_at_head(self) -> bool:
        return await is_at_head(self.engine)

    async def readiness(self) -> Readiness:
        return await check_readiness(self.ctx, self.schema_at_head)


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


def build_kms(settings: Settings) -> KmsConnector:
    connectors: dict[KmsProvider, KmsConnector] = {
        KmsProvider.AWS: AwsKmsConnector(
            default_region=settings.aws_region,
            default_endpoint_url=settings.aws_endpoint_url,
            connect_timeout=settings.kms_connect_timeout_seconds,
            read_timeout=settings.kms_read_timeout_seconds,
        )
    }
    env_key = settings.local_root_key.get_secret_value() if settings.local_root_key else None
    if settings.kms_provider == "local" or env_key or settings.local_root_key_file:
        connectors[KmsProvider.LOCAL] = open_local_kms(
            env_value=env_key,
            file=settings.effective_local_root_key_file,
            create_if_missing=settings.kms_provider == "local",
        )
    return RoutingKmsConnector(connectors)


def build_container(
    settings: Settings, *, kms: KmsConnector | None = None, clock: Clock | None = None
) -> Container:
    engine = create_engine(settings.effective_database_url)
    uow = SqlaUnitOfWorkFactory(engine)
    clock = clock or SystemClock()
    rng = SystemRandom()
    control = ControlLoop()
    kms = InstrumentedKmsConnector(IsolatedKmsConnector(kms or build_kms(settings), control))
    chain = KeyChain(
        uow,
        kms,
        clock,
        instance_id=settings.instance_id,
        unavailable_grace=timedelta(minutes=settings.unavailable_grace_minutes),
    )
    audit = AuditBuffer(uow, clock, rng, interval=settings.audit_flush_seconds)
    changes: PgChangeFeed | LocalReconcilingFeed = (
        PgChangeFeed(engine, chain, reconcile_seconds=settings.reconcile_seconds)
        if engine.dialect.name == "postgresql"
        else LocalReconcilingFeed(chain)
    )
    ctx = AppContext(uow, kms, clock, rng, chain, audit, changes, stalls=control)
    tokens = resolve_token_settings(settings)
    verifier = JwtVerifier(tokens, clock) if tokens else None
    leader = make_leader(engine)
    instrument(engine, chain, audit, leader)
    scheduler = MaintenanceScheduler(
        ctx,
        leader,
        tick_seconds=settings.scheduler_tick_seconds,
        revocation_probe_seconds=settings.revocation_probe_seconds,
    )
    crypto = CryptoService(ctx, limits=build_limits(settings, clock))
    return Container(settings, engine, ctx, crypto, verifier, changes, scheduler)


def build_limits(settings: Settings, clock: Clock) -> DataPlaneLimits:
    rate = settings.rate_limit_per_caller
    return DataPlaneLimits(
        rate=None
        if rate is None
        else RateLimiter(clock, rate=rate, burst=settings.effective_rate_limit_burst),
        streams=StreamSlots(per_caller=settings.max_streams_per_caller, total=settings.max_streams),
    )


async def _prepare_schema(settings: Settings) -> None:
    url = settings.effective_database_url
    if settings.effective_auto_migrate:
        await upgrade_to_head(url)
    elif not await is_at_head(url):
        raise StartupError(
            "the database schema is not at head: run `ekms migrate` first "
            "(or set EKMS_AUTO_MIGRATE=true)"
        )


async def _configure_local_default(container: Container) -> None:
    """The embedded default configures itself against the local root key on first start."""
    if container.settings.kms_provider != "local":
        return
    try:
        await configure_ekms(
            container.ctx,
            SYSTEM,
            ConfigInput(
                KmsProvider.LOCAL,
                LOCAL_KEY_ID,
                sync_interval=timedelta(minutes=container.settings.sync_interval_minutes),
            ),
        )
        log.info("ekms_configured", provider="local", key_id=LOCAL_KEY_ID)
    except AlreadyExists:
        return


@contextlib.asynccontextmanager
async def running(
    settings: Settings, *, kms: KmsConnector | None = None, clock: Clock | None = None
) -> AsyncIterator[Container]:
    await _prepare_schema(settings)
    container = build_container(settings, kms=kms, clock=clock)
    try:
        container.changes.start()
        await _configure_local_default(container)
        container.tasks.append(asyncio.create_task(container.ctx.audit.run(), name="audit-flush"))
        if settings.scheduler_enabled:
            container.scheduler.start()
        readiness = await container.readiness()
        log.info(
            "ekms_started", ready=readiness.ready, reason=readiness.reason, checks=readiness.checks
        )
        yield container
    finally:
        await container.scheduler.aclose()
        await container.changes.aclose()
        for task in container.tasks:
            task.cancel()
        await asyncio.gather(*container.tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await container.ctx.audit.flush()
        await container.ctx.kms.aclose()
        if container.verifier is not None:
            await container.verifier.aclose()
        await container.engine.dispose()
