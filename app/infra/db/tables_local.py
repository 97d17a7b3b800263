"""The local KEK's table (migration 0010): one row, the KEK that wraps the DEKs of modules with
``external_wrap=false``, itself wrapped under the local root key (``app/domain/local_kek``).

``module_keys.local_kek_id`` names it without a foreign key (SQLite cannot drop a column that
has one, so 0010 would not downgrade): the row is never deleted, so the name cannot dangle.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    Uuid,
)

from app.infra.db._metadata import NAME, metadata
from app.infra.db.types import UTCDateTime, json_type

local_instance_keys = Table(
    "local_instance_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("singleton", Integer, nullable=False, server_default="1"),
    Column("wrapped_kek", LargeBinary, nullable=False),
    Column("key_name", String(2048), nullable=False),
    Column("encryption_context", json_type(), nullable=False),
    Column("fingerprint", String(NAME), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("singleton"),
    CheckConstraint("singleton = 1", name="singleton"),
)
