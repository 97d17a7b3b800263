"""Several replicas on one database: telling them of a change, and choosing who runs the jobs."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol


class ChangeFeed(Protocol):
    """Tells every replica's key chain (this one included) that persisted state changed."""

    async def publish(self, scope: str) -> None: ...


class Leader(Protocol):
    """Which replica runs the scheduled jobs (``PgAdvisoryLeader``; ``AlwaysLeader`` alone)."""

    @property
    def holding(self) -> bool:
        """Whether this replica leads right now (for metrics)."""
        ...

    async def acquire(self) -> bool:
        """True while this replica leads; tries to take the lead when it does not."""
        ...

    async def release(self) -> None: ...


class SyncLock(Protocol):
    """Held by the replica whose external key sync runs, so a sync asked of another replica
    waits for it and answers what it recorded (``PgAdvisorySyncLock``; ``SoleReplica`` alone)."""

    def hold(self) -> AbstractAsyncContextManager[bool]:
        """Hold the lock for the block. Yields True when another replica held it and this one
        waited for it to be released; False when it was free (or the wait gave up: the block
        then runs without it)."""
        ...
