"""Bodies of /audit, and its opaque cursor."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from app.application.audit_verify import ChainReport
from app.domain.audit import AuditEvent, AuditResult
from app.domain.audit_chain import Break
from app.domain.errors import InvalidInput

_CURSOR_VERSION = "a1"


def encode_cursor(at: datetime, event_id: uuid.UUID) -> str:
    """The position after which the next page starts. Opaque to callers: only pass it back."""
    raw = f"{_CURSOR_VERSION}|{at.isoformat()}|{event_id}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, at, event_id = raw.split("|")
        if version != _CURSOR_VERSION:
            raise ValueError
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError
        return when.astimezone(UTC), uuid.UUID(event_id)
    except (ValueError, OverflowError, binascii.Error, UnicodeError):
        raise InvalidInput("cursor is not one this server returned", field="cursor") from None


class AuditEventOut(BaseModel):
    id: uuid.UUID
    at: datetime
    actor: str
    action: str = Field(examples=["key.revoke"])
    result: AuditResult
    module: str | None
    target: str | None
    reason: str | None
    details: dict[str, object]
    count: int = Field(description="identical data-plane events aggregated into this one")

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            id=event.id,
            at=event.at,
            actor=event.actor,
            action=event.action,
            result=event.result,
            module=event.module,
            target=event.target,
            reason=event.reason,
            details=dict(event.details),
            count=event.count,
        )


class AuditPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "id": "6f1c1d2e-9a8b-4c7d-8e9f-0a1b2c3d4e5f",
                            "at": "2026-01-01T12:00:00Z",
                            "actor": "alice",
                            "action": "module.create",
                            "result": "success",
                            "module": "global.payroll",
                            "target": None,
                            "reason": None,
                            "details": {"algorithm": "AES-256-GCM", "key_version": 1},
                            "count": 1,
                        }
                    ],
                    "next_cursor": "YTF8MjAyNi0wMS0wMVQxMjowMDowMCswMDowMHw2ZjFj",
                }
            ]
        }
    )

    items: list[AuditEventOut]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


class ChainBreakOut(BaseModel):
    kind: Break = Field(description="altered, deleted, reordered, inserted or checkpoint")
    seq: int | None = Field(description="the chain position concerned, when it has one")
    event_id: uuid.UUID | None = Field(description="the row concerned, when it still exists")
    detail: str


class AuditVerifyOut(BaseModel):
    ok: bool = Field(description="true when every walked row holds and none is missing")
    checked: int = Field(description="chained rows checked before the first break, or all")
    started_at: datetime | None = Field(description="the first walked row's time")
    first_break: ChainBreakOut | None
    checkpoints: int = Field(description="signed checkpoints found to match the chain")
    keys_verified: bool = Field(
        description="every signing key those checkpoints name was proven sealed under the KEK "
        "(false while the key chain cannot serve: signatures then checked against the stored "
        "public keys only)"
    )

    @classmethod
    def of(cls, report: ChainReport) -> AuditVerifyOut:
        found = report.first_break
        return cls(
            ok=report.ok,
            checked=report.checked,
            started_at=report.started_at,
            checkpoints=report.checkpoints,
            keys_verified=report.keys_verified,
            first_break=None
            if found is None
            else ChainBreakOut(
                kind=found.kind, seq=found.seq, event_id=found.event_id, detail=found.detail
            ),
        )
