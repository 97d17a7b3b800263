"""The ekms schema as SQLAlchemy Core tables (no ORM: repositories map rows by hand).

Conventions: ids are ``Uuid`` (native on Postgres, 32 hex on SQLite); enums as their string
values (an ``Algorithm`` as its label, ``'AES-256-GCM'``); a ``timedelta`` as whole seconds in a
``*_seconds`` column; wrapped keys as raw bytes; mutable entities have an integer ``revision``.
``migrations/versions`` must create exactly this schema (``tests/integration/test_migrations``).

Invariants the database enforces itself, on both backends:

- ``ekms_config`` holds at most one row (``singleton`` is always 1 and unique);
- at most one ``external_instance_keys`` row is active;
- a module has at most one ``active`` key version;
- a key version holds key material unless, and only unless, it is destroyed;
- ``audit_events`` and ``audit_checkpoints`` are append-only (triggers refuse UPDATE and
  DELETE); the audit trail's tables are in ``tables_audit``,
  the external key store's in ``tables_xks``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)

# The metadata and the size limits are shared with ``tables_audit`` (the audit trail's tables)
# ``tables_local`` (the local KEK's) and ``tables_xks`` (the external key store's).
from app.infra.db._metadata import ENUM as ENUM
from app.infra.db._metadata import IDENTIFIER as IDENTIFIER
from app.infra.db._metadata import NAME as NAME
from app.infra.db._metadata import NAMING_CONVENTION as NAMING_CONVENTION
from app.infra.db._metadata import metadata as metadata
from app.infra.db._metadata import revision_column as _revision
from app.infra.db.tables_audit import audit_chain_head as audit_chain_head
from app.infra.db.tables_audit import audit_checkpoints as audit_checkpoints
from app.infra.db.tables_audit import audit_events as audit_events
from app.infra.db.tables_audit import audit_signing_keys as audit_signing_keys
from app.infra.db.tables_local import local_instance_keys as local_instance_keys
from app.infra.db.tables_xks import xks_keys as xks_keys
from app.infra.db.tables_xks import xks_stores as xks_stores
from app.infra.db.types import UTCDateTime, json_type


def _observed() -> list[Column[Any]]:
    """What the sync last saw of an external key: fresh columns for each table."""
    return [
        Column("external_key_status", String(ENUM), nullable=False),
        Column("status_reason", Text),
        Column("status_reason_code", String(ENUM)),
        Column("deletion_date", UTCDateTime),
        Column("last_sync_at", UTCDateTime),
        Column("unavailable_since", UTCDateTime),
    ]


ekms_config = Table(
    "ekms_config",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("singleton", Integer, nullable=False, server_default="1"),
    Column("instance_id", String(NAME), nullable=False),
    Column("provider", String(ENUM), nullable=False),
    Column("key_id", String(2048), nullable=False),
    Column("region", String(64)),
    Column("endpoint_url", String(2048)),
    Column("sync_interval_seconds", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("active", Boolean, nullable=False),
    *_observed(),
    _revision(),
    Column("revocation_policy", String(ENUM), nullable=False, server_default="any"),
    UniqueConstraint("singleton"),
    CheckConstraint("singleton = 1", name="singleton"),
    CheckConstraint("sync_interval_seconds > 0", name="sync_interval_positive"),
)

external_instance_keys = Table(
    "external_instance_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("wrapped_kek", LargeBinary, nullable=False),
    Column("kms_key_arn", String(2048), nullable=False),
    Column("rotation_marker", String(1024), nullable=False),
    Column("encryption_context", json_type(), nullable=False),
    Column("fingerprint", String(NAME), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("rewrapped_at", UTCDateTime),
    Column("active", Boolean, nullable=False),
    _revision(),
    # Several external keys wrap one KEK: the KEK's own row (id = the KEK id, active) is
    # wrapped under the first key; each other key's EKEK is a row naming the KEK in kek_id.
    Column("external_key_id", Uuid),
    Column("kek_id", Uuid),
    Index("ix_external_instance_keys_kek_id", "kek_id"),
    Index(
        "uq_external_instance_keys_one_active",
        "active",
        unique=True,
        postgresql_where=text("active"),
        sqlite_where=text("active = 1"),
    ),
)

# The configuration's external keys; the lowest position is the first key, whose state the
# ekms_config row mirrors (where the previous schema head reads it).
external_keys = Table(
    "external_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("position", Integer, nullable=False),
    Column("provider", String(ENUM), nullable=False),
    Column("key_id", String(2048), nullable=False),
    Column("region", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    *_observed(),
    _revision(),
    UniqueConstraint("position"),
)

crypto_modules = Table(
    "crypto_modules",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(NAME), nullable=False),
    Column("algorithm", String(ENUM), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("external_wrap", Boolean, nullable=False),
    Column("default_access", String(ENUM), nullable=False),
    Column("state", String(ENUM), nullable=False),
    Column("description", String(1024), nullable=False, server_default=""),
    Column("rotation_period_seconds", Integer),
    Column("destroy_deactivated_after_seconds", Integer),
    _revision(),
    UniqueConstraint("name"),
)

module_keys = Table(
    "module_keys",
    metadata,
    Column("module_id", Uuid, ForeignKey("crypto_modules.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("wrapped_dek", LargeBinary),
    Column("kek_id", Uuid, ForeignKey("external_instance_keys.id")),
    Column("state", String(ENUM), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("activated_at", UTCDateTime),
    Column("deactivated_at", UTCDateTime),
    Column("suspended_from", String(ENUM)),
    Column("state_changed_at", UTCDateTime),
    Column("destroyed_at", UTCDateTime),
    Column("encryption_count", BigInteger, nullable=False, server_default="0"),
    Column("encryptions_reserved", BigInteger, nullable=False, server_default="0"),
    Column("state_reason", String(500)),  # 0005
    Column("lost_at", UTCDateTime),  # 0009: its configuration ended (state destroyed)
    Column("local_kek_id", Uuid),  # 0010: wrapped under local_instance_keys (no FK: kept forever)
    _revision(),
    PrimaryKeyConstraint("module_id", "version"),
    CheckConstraint("version >= 1", name="version_positive"),
    CheckConstraint(
        "(state = 'destroyed') = (wrapped_dek IS NULL)", name="material_unless_destroyed"
    ),
    Index(
        "uq_module_keys_one_active",
        "module_id",
        unique=True,
        postgresql_where=text("state = 'active'"),
        sqlite_where=text("state = 'active'"),
    ),
    Index("ix_module_keys_kek_id", "kek_id"),
)

encrypted_field_configs = Table(
    "encrypted_field_configs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("table_name", String(IDENTIFIER), nullable=False),
    Column("column_name", String(IDENTIFIER), nullable=False),
    Column("module_id", Uuid, ForeignKey("crypto_modules.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("active", Boolean, nullable=False),
    _revision(),
    UniqueConstraint("table_name", "column_name"),
    Index("ix_encrypted_field_configs_module_id", "module_id"),
)

module_access_policies = Table(
    "module_access_policies",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("module_id", Uuid, ForeignKey("crypto_modules.id"), nullable=False),
    Column("target_type", String(ENUM), nullable=False),
    Column("target", String(256), nullable=False),
    Column("operations", json_type(), nullable=False),
    Column("result", String(ENUM), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("description", String(1024), nullable=False, server_default=""),
    _revision(),
    Column("require_justification", Boolean, nullable=False, server_default=text("false")),
    Column("justification_codes", json_type()),  # 0012 (both): NULL or [] with the flag: any
    Index("ix_module_access_policies_module_id", "module_id"),
)

external_key_status_history = Table(
    "external_key_status_history",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("previous", String(ENUM), nullable=False),
    Column("status", String(ENUM), nullable=False),
    Column("reason", Text),
    Column("external_key_id", Uuid),  # None: the first key (rows before several keys)
    Index("ix_external_key_status_history_at", "at"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("kind", String(NAME), nullable=False),
    Column("message", Text, nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
    Index(
        "uq_alerts_one_open_per_kind",
        "kind",
        unique=True,
        postgresql_where=text("closed_at IS NULL"),
        sqlite_where=text("closed_at IS NULL"),
    ),
)

# Rolling upgrades (migrate.schema_state): per revision from 0005, the oldest head serving on it.
schema_compatibility = Table(
    "schema_compatibility",
    metadata,
    Column("revision", String(32), primary_key=True),
    Column("oldest_serving_head", String(32), nullable=False),
)
