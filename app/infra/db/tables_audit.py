"""The audit trail's tables: the events (hash-chained), the chain's head, the signed
checkpoints of the head and the keys that sign them (app/domain/audit_checkpoint.py)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    Uuid,
)

from app.infra.db._metadata import ENUM, NAME, metadata
from app.infra.db.triggers import install_append_only
from app.infra.db.types import UTCDateTime, json_type

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", String(NAME), nullable=False),
    Column("result", String(ENUM), nullable=False),
    Column("module", String(NAME)),
    Column("target", Text),
    Column("reason", Text),
    Column("details", json_type(), nullable=False),
    Column("count", Integer, nullable=False, server_default="1"),
    # The hash chain (app/domain/audit_chain.py); NULL on rows written before 0009.
    Column("seq", BigInteger),
    *(Column(name, LargeBinary(32)) for name in ("prev_hash", "hash")),
    Index("uq_audit_events_seq", "seq", unique=True),
    # Every query pages by (at, id); the filtered ones start from their filter column.
    Index("ix_audit_events_at_id", "at", "id"),
    Index("ix_audit_events_actor", "actor", "at", "id"),
    Index("ix_audit_events_action", "action", "at", "id"),
    Index("ix_audit_events_module", "module", "at", "id"),
)

# One row (id 1): the chain's head, locked by each append so that replicas keep one chain.
audit_chain_head = Table(
    "audit_chain_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    CheckConstraint("id = 1", name="singleton"),
)

# The keys that sign checkpoints: the Ed25519 seed sealed under the KEK (rewrapped with it).
audit_signing_keys = Table(
    "audit_signing_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("kek_id", Uuid, nullable=False),
    Column("wrapped_seed", LargeBinary, nullable=False),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Signed chain heads, one per position at most (the primary key): append-only like the events.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", Uuid, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("key_id", Uuid, nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
)

# metadata.create_all() installs the same triggers as the migrations.
install_append_only(audit_events)
install_append_only(audit_checkpoints)
