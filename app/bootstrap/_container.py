"""The process's container: every long-lived resource, built from the settings, and the one
lifespan (``running``) that opens and closes them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol, TypedDict, Unpack

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from app.application.audit_checkpoints import Checkpointer
from app.application.configuration import ConfigInput, configure_ekms
from app.application.context import AppContext
from app.application.crypto import CryptoService
from app.application.health import Readiness, check_readiness
from app.application.keychain import KeyChain
from app.application.limits import DataPlaneLimits, RateLimiter, StreamSlots
from app.application.ports import (
    ChangeFeed,
    Clock,
    KmsConnector,
    RandomSource,
    UnitOfWorkFactory,
)
from app.bootstrap._application import wire_application
from app.bootstrap._errors import StartupError
from app.bootstrap._providers import build_kms, build_xks_hsm, local_kek_ref
from app.bootstrap._tokens import build_verifier
from app.domain.errors import AlreadyExists
from app.domain.values import SYSTEM, KmsProvider
from app.infra.control_loop import ControlLoop
from app.infra.db.engine import create_engine
from app.infra.db.leader import make_leader
from app.infra.db.migrate import SchemaState, schema_state, upgrade_to_head
from app.infra.db.notify import LocalReconcilingFeed, PgChangeFeed
from app.infra.db.sync_lock import make_sync_lock
from app.infra.db.uow import SqlaUnitOfWorkFactory
from app.infra.kms.isolated import IsolatedKmsConnector
from app.infra.kms.pkcs11.xks import Pkcs11XksHsm
from app.infra.scheduler import MaintenanceScheduler
from app.infra.settings import Settings
from app.infra.system import SystemClock, SystemRandom
from app.infra.telemetry import InstrumentedKmsConnector, instrument
from app.infra.tokens import JwtVerifier

log = structlog.get_logger(__name__)

LOCAL_KEY_ID = "ekms-local-root"


class RunningChangeFeed(ChangeFeed, Protocol):
    """A ``ChangeFeed`` with the lifespan ``running`` gives it (listen, reconcile, stop)."""

    def start(self) -> None: ...

    async def aclose(self) -> None: ...


class Overrides(TypedDict, total=False):
    """The ports a test may hand ``build_container`` and ``running`` in place of the adapters
    the settings name (``None``: the settings' adapter)."""

    uow: UnitOfWorkFactory | None
    kms: KmsConnector | None
    clock: Clock | None
    rng: RandomSource | None
    changes: Callable[[KeyChain], RunningChangeFeed] | None


@dataclass
class Container:
    """Everything one process runs on; ``build_rest_app`` and ``build_grpc_server`` hand its
    services to the inbound adapters."""

    settings: Settings
    engine: AsyncEngine
    ctx: AppContext
    crypto: CryptoService
    verifier: JwtVerifier | None
    changes: RunningChangeFeed
    scheduler: MaintenanceScheduler
    checkpointer: Checkpointer
    xks_hsm: Pkcs11XksHsm | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def schema_state(self) -> str:
        return (await schema_state(self.engine)).value

    async def readiness(self) -> Readiness:
        return await check_readiness(self.ctx, self.schema_state)


def build_limits(settings: Settings, clock: Clock) -> DataPlaneLimits:
    rate = settings.rate_limit_per_caller
    return DataPlaneLimits(
        rate=None
        if rate is None
        else RateLimiter(clock, rate=rate, burst=settings.effective_rate_limit_burst),
        streams=StreamSlots(per_caller=settings.max_streams_per_caller, total=settings.max_streams),
    )


def build_container(settings: Settings, **overrides: Unpack[Overrides]) -> Container:
    """The process from ``settings``. Each port given replaces the adapter the settings name;
    ``changes`` builds the change feed on the container's key chain."""
    uow, kms, rng = overrides.get("uow"), overrides.get("kms"), overrides.get("rng")
    changes = overrides.get("changes")
    engine = create_engine(
        settings.effective_database_url,
        idle_in_transaction_timeout=settings.db_idle_in_transaction_timeout_seconds,
    )
    clock = overrides.get("clock") or SystemClock()
    control = ControlLoop()
    xks_hsm = build_xks_hsm(settings)

    def change_feed(chain: KeyChain) -> RunningChangeFeed:
        if changes is not None:
            return changes(chain)
        if engine.dialect.name == "postgresql":
            return PgChangeFeed(engine, chain, reconcile_seconds=settings.reconcile_seconds)
        return LocalReconcilingFeed(chain)

    app = wire_application(
        uow=uow or SqlaUnitOfWorkFactory(engine),
        kms=InstrumentedKmsConnector(IsolatedKmsConnector(kms or build_kms(settings), control)),
        clock=clock,
        rng=rng or SystemRandom(),
        changes=change_feed,
        instance_id=settings.instance_id,
        unavailable_grace=timedelta(minutes=settings.unavailable_grace_minutes),
        audit_interval=settings.audit_flush_seconds,
        audit_strict=settings.audit_mode == "strict",
        limits=build_limits(settings, clock),
        stalls=control,
        sync_lock=make_sync_lock(engine),
        xks_hsm=xks_hsm,
        local_kek_ref=local_kek_ref(settings),
    )
    ctx = app.ctx
    leader = make_leader(engine)
    instrument(engine, ctx.chain, ctx.audit, leader)
    scheduler = MaintenanceScheduler(
        ctx,
        leader,
        tick_seconds=settings.scheduler_tick_seconds,
        revocation_probe_seconds=settings.revocation_probe_seconds,
    )
    verifier = build_verifier(settings, clock)
    checkpointer = Checkpointer(
        ctx, rows=settings.audit_checkpoint_rows, seconds=settings.audit_checkpoint_seconds
    )
    return Container(
        settings, engine, ctx, app.crypto, verifier, app.changes, scheduler, checkpointer, xks_hsm
    )


async def _prepare_schema(settings: Settings) -> None:
    url = settings.effective_database_url
    state = await schema_state(url)
    if state in (SchemaState.AT_HEAD, SchemaState.AHEAD_COMPATIBLE):
        return  # ahead but compatible: a newer release migrated during a rolling upgrade
    if state is SchemaState.AHEAD:
        raise StartupError(
            "the database schema is ahead of this release and does not say this release can "
            "serve on it: run the newer release"
        )
    if settings.effective_auto_migrate:
        await upgrade_to_head(url)
    else:
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
async def running(settings: Settings, **overrides: Unpack[Overrides]) -> AsyncIterator[Container]:
    """The schema brought to head (or checked), the container built, its background work
    started; everything closed on exit. The ports are ``build_container``'s overrides."""
    await _prepare_schema(settings)
    container = build_container(settings, **overrides)
    try:
        container.changes.start()
        await _configure_local_default(container)
        container.tasks.append(asyncio.create_task(container.ctx.audit.run(), name="audit-flush"))
        container.tasks.append(
            asyncio.create_task(container.checkpointer.run(), name="audit-checkpoints")
        )
        if settings.scheduler_enabled:
            container.scheduler.start()
        readiness = await container.readiness()
        log.info(
            "ekms_started", ready=readiness.ready, reason=readiness.reason, checks=readiness.checks
        )
        yield container
    finally:
        await container.scheduler.aclose()
        await container.ctx.sync_runs.aclose()
        await container.changes.aclose()
        for task in container.tasks:
            task.cancel()
        await asyncio.gather(*container.tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await container.ctx.audit.flush()
        await container.ctx.kms.aclose()
        if container.xks_hsm is not None:
            await container.xks_hsm.aclose()
        if container.verifier is not None:
            await container.verifier.aclose()
        await container.engine.dispose()
