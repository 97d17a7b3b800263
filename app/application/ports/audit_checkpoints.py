"""The signed checkpoints of the audit chain and the keys that sign them, as stored."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from app.domain.audit_checkpoint import Checkpoint, SigningKeyRecord


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The chain's head: its position, hash and row (``None`` before the first chained row)."""

    seq: int
    hash: bytes
    event_id: uuid.UUID | None


class AuditCheckpointRepository(Protocol):
    async def lock_head(self) -> ChainHead:
        """The chain's head, locked as an append locks it (until the transaction ends), so
        checkpoints are made one at a time and never interleave with an append."""
        ...

    async def last(self) -> Checkpoint | None:
        """The checkpoint with the highest position."""
        ...

    async def add(self, checkpoint: Checkpoint) -> bool:
        """Store it; ``False`` (and nothing written) when one exists at its position."""
        ...

    async def page(self, after_seq: int, limit: int) -> Sequence[Checkpoint]:
        """Checkpoints with ``seq > after_seq``, ``seq`` ascending, at most ``limit``."""
        ...

    async def signing_keys(self) -> Sequence[SigningKeyRecord]:
        """Every signing key, oldest first."""
        ...

    async def add_signing_key(self, key: SigningKeyRecord) -> None: ...

    async def rewrap_signing_key(
        self, key_id: uuid.UUID, kek_id: uuid.UUID, wrapped_seed: bytes
    ) -> None:
        """Store the key's seed sealed under another KEK (a KEK rotation)."""
        ...
