"""The GCM nonce budget, enforced on the encrypt path itself.

Random 96-bit nonces: NIST SP 800-38D allows at most 2^32 encryptions under one key, so an
AES-256-GCM key version refuses its 2^32+1st encryption (``KEY_USAGE_LIMIT_REACHED``, 409 /
FAILED_PRECONDITION) whatever the scheduler does: off, failing, or not yet due. AES-SIV needs
no nonce and has no such budget.

How, without a query per encrypt: the database keeps, per key version, ``encryptions_reserved``.
A replica reserves a block (``RESERVATION_BLOCK`` encryptions, or a batch's need if larger)
with one atomic ``UPDATE ... WHERE mark + block <= limit RETURNING`` and then spends it in
memory (a ``Lease``). Concurrent reservations by several replicas are serialised by the row
lock, so together they never pass the limit. Near the end a replica takes what is left.

Crash recovery is conservative by construction: the unspent rest of a block is never handed
out again (the next reservation starts above it), so counts never go down and a restart can
only waste budget (at most one block per key version and process), never reuse it. The
encryptions actually performed are still counted in ``encryption_count`` by the audit flush.

Refuse, not rotate: a synchronous rotation on the encrypt path would have every replica race
to create the next version in the middle of a call. The scheduler rotates at 7/8 of the limit
(``NONCE_ROTATE_AT``), leaving 2^29 encryptions of headroom; the hard refusal is the backstop.
Crossing half the limit (``NONCE_WARN_AT``) opens an alert (``key_usage:<module>:<version>``),
shown by ``/ekms/status`` and counted in ``ekms_open_alerts``; the scheduler closes it once the
version is no longer active.

While the database is unreachable a replica keeps encrypting from what it has reserved, then
answers UNAVAILABLE (``DATABASE_UNAVAILABLE``) for GCM encrypts until it can reserve again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping

import structlog

from app.application.ports import ChangeFeed, Clock, RandomSource, UnitOfWork, UnitOfWorkFactory
from app.application.snapshot import ModuleView
from app.domain.alerts import Alert
from app.domain.errors import EkmsError, KeyUnavailable, Reason, ServiceUnavailable
from app.domain.module import GCM_SAFE_LIMIT, NONCE_WARN_AT, key_usage_alert_kind

log = structlog.get_logger(__name__)

RESERVATION_BLOCK = 2**16  # one reservation per 65,536 encryptions per key version
_ROUNDS = 4  # reservation rounds per call before giving up (other calls keep spending)
_RETRY_SECONDS = 2.0  # after a failed reservation, do not queue every call on the database
_TAIL_ATTEMPTS = 8  # near the limit: re-read what is left after a concurrent reservation


class Lease:
    """This process's reserved, unspent encryptions under one GCM key version."""

    __slots__ = ("exhausted", "left", "module", "module_id", "version", "warned")

    def __init__(self, module_id: uuid.UUID, version: int, module: str) -> None:
        self.module_id = module_id
        self.version = version
        self.module = module
        self.left = 0
        self.exhausted = False  # the whole budget is reserved: what is left here is the last
        self.warned = False

    def __repr__(self) -> str:
        return f"Lease(module={self.module!r}, version={self.version}, left={self.left})"

    def spend(self) -> None:
        """Take one encryption, or raise why there is none."""
        if self.left <= 0:
            raise self.refusal()
        self.left -= 1

    def refusal(self) -> EkmsError:
        """The error to raise instead of encrypting, or ``None`` while the lease has room."""
        if self.exhausted:
            return KeyUnavailable(
                f"key version {self.version} of module {self.module!r} has used its limit of "
                "2^32 AES-GCM encryptions; rotate the module key",
                reason=Reason.KEY_USAGE_LIMIT_REACHED,
            )
        return ServiceUnavailable(
            f"no encryptions could be reserved for key version {self.version}: "
            "the database is unreachable; retry",
            reason=Reason.DATABASE_UNAVAILABLE,
        )


class EncryptionBudget:
    """The leases of one process, and the reservations that fill them."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        rng: RandomSource,
        changes: ChangeFeed,
        *,
        block: int = RESERVATION_BLOCK,
        limit: int = GCM_SAFE_LIMIT,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._rng = rng
        self._changes = changes
        self.block = block
        self.limit = limit
        self._leases: dict[tuple[int, int], Lease] = {}  # by (module id as an int, version)
        self._lock = asyncio.Lock()
        self._retry_at = 0.0
        self.reservations = 0

    def lease(self, module_id: uuid.UUID, version: int, module: str) -> Lease:
        """This process's lease on a key version's GCM encryption budget."""
        ref = (module_id.int, version)  # hashing a UUID runs Python code; an int does not
        lease = self._leases.get(ref)
        if lease is None:
            lease = self._leases[ref] = Lease(module_id, version, module)
        return lease

    def lease_for(self, view: ModuleView) -> Lease | None:
        """The lease encrypts under the module's active version spend from (AES-GCM only)."""
        key = view.active
        if key is None or view.module.algorithm.deterministic:
            return None
        return self.lease(key.module_id, key.version, view.module.name)

    async def reserve_for(self, needs: Mapping[Lease, int]) -> None:
        """Make every lease hold at least its need, unless its version is exhausted.

        Never raises: if the database cannot be reached the leases stay short, and each
        encrypt they cannot cover is refused by ``Lease.spend``. Returns without awaiting
        when every lease already holds enough (the usual case)."""
        for _ in range(_ROUNDS):
            short = [(ls, n) for ls, n in needs.items() if ls.left < n and not ls.exhausted]
            if not short or self._clock.monotonic() < self._retry_at:
                return
            for lease, need in short:
                if not await self._reserve(lease, need):
                    return

    async def _reserve(self, lease: Lease, need: int) -> bool:
        async with self._lock:
            if lease.left >= need or lease.exhausted:
                return True
            try:
                opened = await self._reserve_block(lease, max(self.block, need))
            except ServiceUnavailable as exc:
                self._retry_at = self._clock.monotonic() + _RETRY_SECONDS
                log.warning("key_usage_reservation_failed", reason=exc.reason.value)
                return False
        if opened:
            await self._changes.publish("status")  # every replica's status shows the alert
        return True

    async def _reserve_block(self, lease: Lease, amount: int) -> bool:
        """One transaction: the reservation, and the alert if it crosses the warning mark.
        Returns whether an alert was opened."""
        async with self._uow_factory() as uow:
            granted, mark = await self._take(uow, lease, amount)
            opened = False
            if mark >= NONCE_WARN_AT and not lease.warned:
                opened = await uow.status.open_alert(self._alert(lease, mark))
            await uow.commit()
        self.reservations += 1
        lease.left += granted
        lease.exhausted = mark >= self.limit
        lease.warned = lease.warned or mark >= NONCE_WARN_AT
        if opened or (lease.exhausted and lease.left == 0):
            log.warning(
                "key_version_near_nonce_limit",
                module=lease.module,
                version=lease.version,
                reserved=mark,
                limit=self.limit,
            )
        return opened

    async def _take(self, uow: UnitOfWork, lease: Lease, amount: int) -> tuple[int, int]:
        """(granted, the mark after it); a mark at the limit means nothing more can be had."""
        keys = uow.keys
        mark = await keys.reserve_usage(lease.module_id, lease.version, amount, self.limit)
        if mark is not None:
            return amount, mark
        for _ in range(_TAIL_ATTEMPTS):  # the block does not fit: take what is left
            key = await keys.get(lease.module_id, lease.version)
            rest = 0 if key is None else self.limit - key.usage_mark
            if rest <= 0:
                return 0, self.limit
            mark = await keys.reserve_usage(lease.module_id, lease.version, rest, self.limit)
            if mark is not None:
                return rest, mark
        return 0, 0  # others kept reserving meanwhile: nothing this time, not exhausted

    def _alert(self, lease: Lease, mark: int) -> Alert:
        used = min(mark, self.limit) / self.limit
        return Alert(
            self._rng.uuid(),
            key_usage_alert_kind(lease.module_id, lease.version),
            f"key version {lease.version} of module {lease.module!r} has used {used:.0%} of its "
            "2^32 AES-GCM encryptions; rotate the module key (encrypts are refused at the limit)",
            self._clock.now(),
        )
