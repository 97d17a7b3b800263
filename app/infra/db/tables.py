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
- ``audit_events`` is append-only (triggers refuse UPDATE and DELETE).

The external key store's tables are in ``xks_tables`` (imported at the end).
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
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)

from app.infra.db.triggers import install_append_only
from app.infra.db.types import UTCDateTime, json_type

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Domain limits: module names are 2-4 parts of at most 63 characters, identifiers 63.
NAME = 255
IDENTIFIER = 63
ENUM = 32


def revision_column() -> Column[int]:
    return Column("revision", Integer, nullable=False, server_default="0")


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
    revision_column(),
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
    revision_column(),
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
    revision_column(),
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
    revision_column(),
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
    revision_column(),
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
    revision_column(),
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
    revision_column(),
    Index("ix_module_access_policies_module_id", "module_id"),
)

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


install_append_only(audit_events)  # metadata.create_all() installs the migration's triggers


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
from app.infra.db import xks_tables as xks_tables  # noqa: E402 - registers them on ``metadata``
