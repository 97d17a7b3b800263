"""Bodies of /audit/checkpoints and the status's audit signing key."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.application.audit import AuditState
from app.application.audit_checkpoints import SigningKeyInfo
from app.domain.audit_checkpoint import Checkpoint
from app.domain.errors import InvalidInput


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class CheckpointOut(BaseModel):
    seq: int = Field(description="the chain position signed (the head then)")
    event_id: uuid.UUID = Field(description="the row at that position")
    hash: str = Field(description="that row's hash, 64 hex digits")
    at: datetime = Field(description="when the checkpoint was signed")
    count: int = Field(
        description="positions since the previous checkpoint (seq - count = its seq)"
    )
    key_id: uuid.UUID = Field(description="the signing key")
    algorithm: Literal["Ed25519"] = "Ed25519"
    public_key: str = Field(description="the signing key's raw 32-byte public key, base64")
    signature: str = Field(description="Ed25519 signature of `payload`, base64")
    payload: str = Field(
        description="the exact signed bytes (UTF-8 JSON of the fields above, docs/audit.md)"
    )

    @classmethod
    def of(cls, checkpoint: Checkpoint, public_key: bytes) -> CheckpointOut:
        return cls(
            seq=checkpoint.seq,
            event_id=checkpoint.event_id,
            hash=checkpoint.hash.hex(),
            at=checkpoint.at,
            count=checkpoint.count,
            key_id=checkpoint.key_id,
            public_key=_b64(public_key),
            signature=_b64(checkpoint.signature),
            payload=checkpoint.payload().decode(),
        )


class CheckpointPage(BaseModel):
    items: list[CheckpointOut]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


def decode_checkpoint_cursor(cursor: str) -> int:
    """The position after which the next page starts (the cursor is a position, as text)."""
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 19:
        raise InvalidInput("cursor is not one this server returned", field="cursor")
    return int(cursor)


class SigningKeyOut(BaseModel):
    key_id: uuid.UUID
    algorithm: Literal["Ed25519"] = "Ed25519"
    public_key: str = Field(description="raw 32-byte public key, base64: pin it to check exports")

    @classmethod
    def of(cls, key: SigningKeyInfo | None) -> SigningKeyOut | None:
        return None if key is None else cls(key_id=key.key_id, public_key=_b64(key.public_key))


class AuditStateOut(BaseModel):
    """How this replica writes data-plane audit events (``EKMS_AUDIT_MODE``)."""

    mode: Literal["buffered", "strict"]
    flush_interval_seconds: float = Field(description="EKMS_AUDIT_FLUSH_SECONDS")
    last_flush_at: datetime | None = Field(
        description="when the last flush that had events to write ended (null: none yet)"
    )
    last_flush_ok: bool | None = Field(description="whether it committed (null: none yet)")
    pending: int = Field(description="aggregated events waiting for the next flush")
    strict_waiters: int = Field(description="strict calls waiting for their flush to commit")
    failed_flushes: int = Field(description="flushes that failed since this replica started")

    @classmethod
    def of(cls, state: AuditState) -> AuditStateOut:
        return cls(
            mode="strict" if state.strict else "buffered",
            flush_interval_seconds=state.interval,
            last_flush_at=state.last_flush_at,
            last_flush_ok=state.last_flush_ok,
            pending=state.pending,
            strict_waiters=state.waiters,
            failed_flushes=state.failed_flushes,
        )
