"""Checking the signed checkpoints alongside the chain walk (``ChainWalk``).

A checkpoint breaks, kind ``checkpoint``, when its signature does not verify under its signing
key's public key, when that key is unknown or its public key does not match its sealed seed,
or when checkpoints are missing before it (its ``seq - count`` is not the previous one's
``seq``). Against the chain: the row at a checkpoint's position must have the signed hash
(else ``altered``: a row at or before it was changed and the chain re-hashed after it), and
no checkpoint may lie past the chain's last row (else ``deleted``: the tail was cut).
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Mapping, Sequence

from app.domain.audit_chain import Break, ChainBreak, ChainedEvent
from app.domain.audit_checkpoint import Checkpoint, signature_holds


class CheckpointWalk:
    """The checkpoints at or after the walk's start, checked as the rows go by.

    ``keys`` maps each signing key id to its public key; ``forged`` names the keys whose
    public key does not open their sealed seed. ``contiguous_from`` is the position the first
    checkpoint must count from (0 for a walk of the whole chain; ``None``: do not check it).
    """

    def __init__(
        self,
        checkpoints: Sequence[Checkpoint],
        keys: Mapping[uuid.UUID, bytes],
        forged: frozenset[uuid.UUID] = frozenset(),
        contiguous_from: int | None = 0,
    ) -> None:
        self._by_seq = {c.seq: c for c in checkpoints}
        self._own: dict[int, ChainBreak] = {}
        previous = contiguous_from
        for c in sorted(checkpoints, key=lambda c: c.seq):
            found = _own_break(c, keys, forged, previous)
            if found is not None:
                self._own[c.seq] = found
            previous = c.seq
        self.checked = 0

    def __len__(self) -> int:
        return len(self._by_seq)

    def check(self, row: ChainedEvent) -> ChainBreak | None:
        """Check a row the chain walk accepted against the checkpoint at its position."""
        checkpoint = self._by_seq.get(row.seq)
        if checkpoint is None:
            return None
        own = self._own.get(row.seq)
        if own is not None:
            return own
        if not hmac.compare_digest(checkpoint.hash, row.hash) or checkpoint.event_id != (
            row.event.id
        ):
            return ChainBreak(
                Break.ALTERED,
                row.seq,
                row.event.id,
                f"does not match the checkpoint signed at position {row.seq}: a row at or "
                "before it was changed and the chain re-hashed",
            )
        self.checked += 1
        return None

    def finish(self, last_seq: int) -> ChainBreak | None:
        """After a walk that reached ``last_seq`` intact: a checkpoint past it means rows the
        checkpoint was signed for are gone (the tail cut, even with the head moved back)."""
        beyond = sorted(seq for seq in self._by_seq if seq > last_seq)
        if not beyond:
            return None
        return ChainBreak(
            Break.DELETED,
            last_seq + 1,
            None,
            f"the checkpoint at position {beyond[-1]} was signed for rows past the last one "
            f"({last_seq}): the chain's tail was cut",
        )


def _own_break(
    c: Checkpoint,
    keys: Mapping[uuid.UUID, bytes],
    forged: frozenset[uuid.UUID],
    previous: int | None,
) -> ChainBreak | None:
    public_key = keys.get(c.key_id)
    if public_key is None:
        return _broken(c, f"signed by an unknown key {c.key_id}")
    if c.key_id in forged:
        return _broken(c, f"its signing key {c.key_id} does not match its sealed seed")
    if not signature_holds(public_key, c):
        return _broken(c, "its signature does not verify: the checkpoint was changed")
    if previous is not None and c.seq - c.count != previous:
        return _broken(
            c, f"checkpoints are missing between positions {previous} and {c.seq} (deleted)"
        )
    return None


def _broken(c: Checkpoint, why: str) -> ChainBreak:
    return ChainBreak(Break.CHECKPOINT, c.seq, c.event_id, f"checkpoint at {c.seq}: {why}")
