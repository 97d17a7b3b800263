"""The audit hash chain: each chained row's hash covers its content and the previous row's hash.

``hash = SHA-256(prev_hash || canonical(event))``, where ``prev_hash`` is the 32 bytes of the
previous row's hash (32 zero bytes, ``GENESIS``, before the first chained row) and
``canonical(event)`` is UTF-8 JSON with sorted keys and no whitespace (docs/audit.md). The chain
position ``seq`` (1, 2, ...) orders the rows; it is not hashed: the order is what the links say.

``ChainWalk`` checks rows fed in ``seq`` order and names the first break: ``altered`` (content
does not match its hash, or was re-hashed), ``deleted`` (a position is missing),
``reordered`` (a row links to a row that is elsewhere in the chain), ``inserted`` (a row
without a chain position after the chain started, or past the recorded head). ``checkpoint``
is the signed checkpoints' own break (``CheckpointWalk``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum

from app.domain.audit import AuditEvent

GENESIS = bytes(32)


def canonical(event: AuditEvent) -> bytes:
    """The bytes a row's hash covers: its content as sorted, compact UTF-8 JSON."""
    document = {
        "action": event.action,
        "actor": event.actor,
        "at": event.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "count": event.count,
        "details": event.details,
        "id": str(event.id),
        "module": event.module,
        "reason": event.reason,
        "result": event.result.value,
        "target": event.target,
    }
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def link(prev_hash: bytes, event: AuditEvent) -> bytes:
    """The hash of ``event`` chained after a row whose hash is ``prev_hash``."""
    return hashlib.sha256(prev_hash + canonical(event)).digest()


@dataclass(frozen=True, slots=True)
class ChainedEvent:
    """An audit event with its chain position and hashes, as stored."""

    event: AuditEvent
    seq: int
    prev_hash: bytes
    hash: bytes


def chain(prev_seq: int, prev_hash: bytes, events: list[AuditEvent]) -> list[ChainedEvent]:
    """Chain ``events`` after the head ``(prev_seq, prev_hash)``, in order."""
    out: list[ChainedEvent] = []
    for offset, event in enumerate(events, start=1):
        digest = link(prev_hash, event)
        out.append(ChainedEvent(event, prev_seq + offset, prev_hash, digest))
        prev_hash = digest
    return out


class Break(StrEnum):
    ALTERED = "altered"
    DELETED = "deleted"
    REORDERED = "reordered"
    INSERTED = "inserted"
    CHECKPOINT = "checkpoint"  # a signed checkpoint that fails (app/domain/audit_checkpoint.py)


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first place the chain does not hold: what, at which position and row."""

    kind: Break
    seq: int | None
    event_id: uuid.UUID | None
    detail: str


class ChainWalk:
    """Checks chained rows fed in ``seq`` order; ``first_break`` is set at the first problem.

    ``start`` is the expected first position (1 for the whole chain) and ``prev_hash`` the hash
    it must link to (``None``: trust the first row's link, as after ``--since``).
    """

    def __init__(self, start: int = 1, prev_hash: bytes | None = GENESIS) -> None:
        self.expected_seq = start
        self.prev_hash = prev_hash
        self.count = 0
        self.first_break: ChainBreak | None = None

    def feed(self, row: ChainedEvent, linked_elsewhere: bool) -> ChainBreak | None:
        """Check the next row; ``linked_elsewhere``: its ``prev_hash`` is another row's hash."""
        found = self._check(row, linked_elsewhere)
        if found is None:
            self.count += 1
            self.expected_seq = row.seq + 1
            self.prev_hash = row.hash
        elif self.first_break is None:
            self.first_break = found
        return found

    def needs_lookup(self, row: ChainedEvent) -> bool:
        """Whether the row's link is broken, so the caller must say if it points elsewhere."""
        return self.prev_hash is not None and row.prev_hash != self.prev_hash

    def _check(self, row: ChainedEvent, linked_elsewhere: bool) -> ChainBreak | None:
        event_id = row.event.id
        if row.seq > self.expected_seq:
            return ChainBreak(
                Break.DELETED, self.expected_seq, None, f"position {self.expected_seq} is missing"
            )
        if link(row.prev_hash, row.event) != row.hash:
            return ChainBreak(Break.ALTERED, row.seq, event_id, "content does not match its hash")
        if self.needs_lookup(row):
            if linked_elsewhere:
                return ChainBreak(
                    Break.REORDERED, row.seq, event_id, "links to a row at another position"
                )
            return ChainBreak(
                Break.ALTERED, row.seq - 1, None, "the previous row was changed and re-hashed"
            )
        return None

    def finish(self, ends: tuple[int, int] | None, unchained: uuid.UUID | None) -> None:
        """Compare the recorded head with the last stored position (read in one snapshot),
        and report a row without a chain position after the chain started."""
        if self.first_break is not None:
            return
        head, last = ends if ends is not None else (None, None)
        if head is not None and last is not None and head > last:
            self.first_break = ChainBreak(
                Break.DELETED, last + 1, None, f"the head is at {head}, the rows end at {last}"
            )
        elif head is not None and last is not None and head < last:
            self.first_break = ChainBreak(
                Break.INSERTED, head + 1, None, f"rows past the recorded head {head}"
            )
        elif unchained is not None:
            self.first_break = ChainBreak(
                Break.INSERTED,
                None,
                unchained,
                "a row without a chain position after the chain started "
                "(inserted, or written by a replica older than schema 0009)",
            )
