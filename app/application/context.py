"""What every use case is handed: the ports and the shared in-memory services."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.application.audit import AuditBuffer
from app.application.keychain import KeyChain
from app.application.local_kek import LOCAL_KEK_REF
from app.application.ports import (
    ChangeFeed,
    Clock,
    ExternalKeyRef,
    KmsConnector,
    RandomSource,
    StallMark,
    StallMeter,
    SyncLock,
    UnitOfWork,
    UnitOfWorkFactory,
    XksHsm,
)
from app.application.single_flight import SingleFlight
from app.domain.audit import AuditEvent, AuditResult
from app.domain.values import Caller

if TYPE_CHECKING:
    from app.application.sync import SyncReport


class NeverStalled:
    """A ``StallMeter`` for KMS calls that share the caller's loop (tests, fakes)."""

    def mark(self) -> StallMark:
        return StallMark(0.0, 0.0)

    def stalled_since(self, mark: StallMark) -> float:
        return 0.0


class SoleReplica:
    """A ``SyncLock`` for one process (SQLite, tests): no other replica to wait for."""

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[bool]:
        yield False


@dataclass(frozen=True, slots=True)
class AppContext:
    uow: UnitOfWorkFactory
    kms: KmsConnector
    clock: Clock
    rng: RandomSource
    chain: KeyChain
    audit: AuditBuffer
    changes: ChangeFeed
    stalls: StallMeter = field(default_factory=lambda: NeverStalled())
    sync_lock: SyncLock = field(default_factory=lambda: SoleReplica())
    # The PKCS#11 token for HSM-resident XKS keys (None: the pkcs11 provider is not set up).
    xks_hsm: XksHsm | None = None
    # The external key sync of this process: every caller asking while it runs shares it.
    sync_runs: SingleFlight[SyncReport] = field(default_factory=lambda: SingleFlight())
    # What wraps a new local KEK (EKMS_LOCAL_KEK_PROVIDER): the local root key by default.
    local_kek_ref: ExternalKeyRef = LOCAL_KEK_REF

    def event(
        self,
        caller: Caller,
        action: str,
        *,
        result: AuditResult = AuditResult.SUCCESS,
        module: str | None = None,
        target: str | None = None,
        reason: str | None = None,
        details: dict[str, object] | None = None,
    ) -> AuditEvent:
        """An admin audit event, written in the same transaction as the change it records."""
        return AuditEvent(
            id=self.rng.uuid(),
            at=self.clock.now(),
            actor=caller.subject,
            action=action,
            result=result,
            module=module,
            target=target,
            reason=reason,
            details=details or {},
        )

    async def commit_audited(self, uow: UnitOfWork, *events: AuditEvent) -> None:
        """Append ``events`` to the audit trail and commit: a change and its record together."""
        await uow.audit.append(list(events))
        await uow.commit()
