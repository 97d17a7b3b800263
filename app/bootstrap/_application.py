"""The application wired to a set of ports: no I/O, no settings, nothing started.

``build_container`` calls it with the real adapters; the unit tests call it with fakes
(``tests/unit/conftest.build_world``), so both run the same wiring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from app.application.audit import AuditBuffer
from app.application.context import AppContext, NeverStalled, SoleReplica
from app.application.crypto import CryptoService
from app.application.keychain import KeyChain
from app.application.limits import DataPlaneLimits
from app.application.local_kek import LOCAL_KEK_REF
from app.application.ports import (
    ChangeFeed,
    Clock,
    ExternalKeyRef,
    KmsConnector,
    RandomSource,
    StallMeter,
    SyncLock,
    UnitOfWorkFactory,
    XksHsm,
)

Feed = TypeVar("Feed", bound=ChangeFeed)


@dataclass(frozen=True, slots=True)
class Application(Generic[Feed]):
    """What every inbound adapter is handed (the use cases' context and the data plane), and
    the change feed, whose lifespan is the caller's."""

    ctx: AppContext
    crypto: CryptoService
    changes: Feed


def wire_application(
    *,
    uow: UnitOfWorkFactory,
    kms: KmsConnector,
    clock: Clock,
    rng: RandomSource,
    changes: Callable[[KeyChain], Feed],
    instance_id: str,
    unavailable_grace: timedelta,
    audit_interval: float = 1.0,
    audit_strict: bool = False,
    limits: DataPlaneLimits | None = None,
    stalls: StallMeter | None = None,
    sync_lock: SyncLock | None = None,
    xks_hsm: XksHsm | None = None,
    local_kek_ref: ExternalKeyRef = LOCAL_KEK_REF,
) -> Application[Feed]:
    """The key chain, the audit buffer, the use cases' context and the data plane on ``uow``,
    ``kms``, ``clock`` and ``rng``. ``changes`` builds the change feed of the key chain (the
    feed applies every change to it); ``stalls``: how long the loop running KMS calls was held
    up (``None``: KMS calls share the caller's loop); ``sync_lock``: who runs the external key
    sync among replicas (``None``: this process alone); ``audit_strict``: data-plane calls
    answer only once their audit events are committed (``EKMS_AUDIT_MODE=strict``);
    ``xks_hsm``: the token of HSM-resident XKS keys (``None``: none)."""
    chain = KeyChain(uow, kms, clock, instance_id=instance_id, unavailable_grace=unavailable_grace)
    audit = AuditBuffer(uow, clock, rng, interval=audit_interval, strict=audit_strict)
    feed = changes(chain)
    ctx = AppContext(
        uow,
        kms,
        clock,
        rng,
        chain,
        audit,
        feed,
        stalls=stalls or NeverStalled(),
        sync_lock=sync_lock or SoleReplica(),
        xks_hsm=xks_hsm,
        local_kek_ref=local_kek_ref,
    )
    return Application(ctx, CryptoService(ctx, limits=limits), feed)
