"""The initial ekms schema: configuration, instance keys, modules, key versions, field
configurations, access policies, and the append-only audit trail.

Written by hand to match ``app.infra.db.tables`` at the time; deliberately self-contained (it
imports nothing from ``app``), so later changes to the application cannot change this revision.
Names are final (``op.f``): the metadata's naming convention must not rewrite them.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
oldest_serving_head = "0001"  # migrations/compat.py

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _revision() -> sa.Column:
    return sa.Column("revision", sa.Integer(), nullable=False, server_default="0")


_PG_APPEND_ONLY = (
    "CREATE FUNCTION ekms_audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP "
    "USING ERRCODE = 'integrity_constraint_violation'; END $$",
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION ekms_audit_events_append_only()",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION ekms_audit_events_append_only()",
    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION ekms_audit_events_append_only()",
)
_PG_DROP_APPEND_ONLY = (
    "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
    "DROP TRIGGER IF EXISTS audit_events_no_delete ON audit_events",
    "DROP TRIGGER IF EXISTS audit_events_no_update ON audit_events",
    "DROP FUNCTION IF EXISTS ekms_audit_events_append_only()",
)
_SQLITE_APPEND_ONLY = (
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END",
)
_SQLITE_DROP_APPEND_ONLY = (
    "DROP TRIGGER IF EXISTS audit_events_no_delete",
    "DROP TRIGGER IF EXISTS audit_events_no_update",
)


def upgrade() -> None:
    op.create_table(
        "ekms_config",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("singleton", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("instance_id", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(2048), nullable=False),
        sa.Column("region", sa.String(64), nullable=True),
        sa.Column("endpoint_url", sa.String(2048), nullable=True),
        sa.Column("sync_interval_seconds", sa.Integer(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("external_key_status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        _ts("deletion_date"),
        _ts("last_sync_at"),
        _ts("unavailable_since"),
        _revision(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ekms_config")),
        sa.UniqueConstraint("singleton", name=op.f("uq_ekms_config_singleton")),
        sa.CheckConstraint("singleton = 1", name=op.f("ck_ekms_config_singleton")),
        sa.CheckConstraint(
            "sync_interval_seconds > 0", name=op.f("ck_ekms_config_sync_interval_positive")
        ),
    )

    op.create_table(
        "external_instance_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("wrapped_kek", sa.LargeBinary(), nullable=False),
        sa.Column("kms_key_arn", sa.String(2048), nullable=False),
        sa.Column("rotation_marker", sa.String(1024), nullable=False),
        sa.Column("encryption_context", _JSON, nullable=False),
        sa.Column("fingerprint", sa.String(255), nullable=False),
        _ts("created_at", nullable=False),
        _ts("rewrapped_at"),
        sa.Column("active", sa.Boolean(), nullable=False),
        _revision(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_instance_keys")),
    )
    op.create_index(
        op.f("uq_external_instance_keys_one_active"),
        "external_instance_keys",
        ["active"],
        unique=True,
        postgresql_where=sa.text("active"),
        sqlite_where=sa.text("active = 1"),
    )

    op.create_table(
        "crypto_modules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.Column("external_wrap", sa.Boolean(), nullable=False),
        sa.Column("default_access", sa.String(32), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("description", sa.String(1024), nullable=False, server_default=""),
        sa.Column("rotation_period_seconds", sa.Integer(), nullable=True),
        sa.Column("destroy_deactivated_after_seconds", sa.Integer(), nullable=True),
        _revision(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crypto_modules")),
        sa.UniqueConstraint("name", name=op.f("uq_crypto_modules_name")),
    )

    op.create_table(
        "module_keys",
        sa.Column("module_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("wrapped_dek", sa.LargeBinary(), nullable=True),
        sa.Column("kek_id", sa.Uuid(), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        _ts("created_at", nullable=False),
        _ts("activated_at"),
        _ts("deactivated_at"),
        sa.Column("suspended_from", sa.String(32), nullable=True),
        _ts("state_changed_at"),
        _ts("destroyed_at"),
        sa.Column("encryption_count", sa.BigInteger(), nullable=False, server_default="0"),
        _revision(),
        sa.PrimaryKeyConstraint("module_id", "version", name=op.f("pk_module_keys")),
        sa.ForeignKeyConstraint(
            ["module_id"],
            ["crypto_modules.id"],
            name=op.f("fk_module_keys_module_id_crypto_modules"),
        ),
        sa.ForeignKeyConstraint(
            ["kek_id"],
            ["external_instance_keys.id"],
            name=op.f("fk_module_keys_kek_id_external_instance_keys"),
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_module_keys_version_positive")),
        sa.CheckConstraint(
            "(state = 'destroyed') = (wrapped_dek IS NULL)",
            name=op.f("ck_module_keys_material_unless_destroyed"),
        ),
    )
    op.create_index(
        op.f("uq_module_keys_one_active"),
        "module_keys",
        ["module_id"],
        unique=True,
        postgresql_where=sa.text("state = 'active'"),
        sqlite_where=sa.text("state = 'active'"),
    )
    op.create_index(op.f("ix_module_keys_kek_id"), "module_keys", ["kek_id"])

    op.create_table(
        "encrypted_field_configs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("table_name", sa.String(63), nullable=False),
        sa.Column("column_name", sa.String(63), nullable=False),
        sa.Column("module_id", sa.Uuid(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _revision(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_encrypted_field_configs")),
        sa.ForeignKeyConstraint(
            ["module_id"],
            ["crypto_modules.id"],
            name=op.f("fk_encrypted_field_configs_module_id_crypto_modules"),
        ),
        sa.UniqueConstraint(
            "table_name",
            "column_name",
            name=op.f("uq_encrypted_field_configs_table_name_column_name"),
        ),
    )
    op.create_index(
        op.f("ix_encrypted_field_configs_module_id"), "encrypted_field_configs", ["module_id"]
    )

    op.create_table(
        "module_access_policies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("module_id", sa.Uuid(), nullable=False),
        sa.Column("target_type", sa.String(32), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("operations", _JSON, nullable=False),
        sa.Column("result", sa.String(32), nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(1024), nullable=False, server_default=""),
        _revision(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_module_access_policies")),
        sa.ForeignKeyConstraint(
            ["module_id"],
            ["crypto_modules.id"],
            name=op.f("fk_module_access_policies_module_id_crypto_modules"),
        ),
    )
    op.create_index(
        op.f("ix_module_access_policies_module_id"), "module_access_policies", ["module_id"]
    )

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        _ts("at", nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.String(255), nullable=False),
        sa.Column("result", sa.String(32), nullable=False),
        sa.Column("module", sa.String(255), nullable=True),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", _JSON, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False, server_default="1"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_at_id"), "audit_events", ["at", "id"])
    op.create_index(op.f("ix_audit_events_actor"), "audit_events", ["actor", "at", "id"])
    op.create_index(op.f("ix_audit_events_action"), "audit_events", ["action", "at", "id"])
    op.create_index(op.f("ix_audit_events_module"), "audit_events", ["module", "at", "id"])

    for statement in _append_only(create=True):
        op.execute(statement)


def downgrade() -> None:
    for statement in _append_only(create=False):
        op.execute(statement)
    # Indexes and constraints go with their tables; children before parents.
    op.drop_table("audit_events")
    op.drop_table("module_access_policies")
    op.drop_table("encrypted_field_configs")
    op.drop_table("module_keys")
    op.drop_table("crypto_modules")
    op.drop_table("external_instance_keys")
    op.drop_table("ekms_config")


def _append_only(*, create: bool) -> tuple[str, ...]:
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        return _PG_APPEND_ONLY if create else _PG_DROP_APPEND_ONLY
    if dialect == "sqlite":
        return _SQLITE_APPEND_ONLY if create else _SQLITE_DROP_APPEND_ONLY
    raise NotImplementedError(f"ekms supports Postgres and SQLite, not {dialect}")
