"""Signed audit checkpoints: ``audit_signing_keys`` (the Ed25519 seed sealed under the KEK, the
public key in clear) and ``audit_checkpoints`` (signed chain heads, one per position,
append-only like ``audit_events``).

Expand only: older code ignores both tables. Self-contained (imports nothing from ``app``; the
trigger statements are a frozen copy).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import compat

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
oldest_serving_head = "0003"  # migrations/compat.py: expand only, as 0004-0009

_PG_APPEND_ONLY = (
    "CREATE FUNCTION ekms_audit_checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_checkpoints is append-only: % refused', TG_OP "
    "USING ERRCODE = 'integrity_constraint_violation'; END $$",
    "CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints "
    "FOR EACH ROW EXECUTE FUNCTION ekms_audit_checkpoints_append_only()",
    "CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints "
    "FOR EACH ROW EXECUTE FUNCTION ekms_audit_checkpoints_append_only()",
    "CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints "
    "FOR EACH STATEMENT EXECUTE FUNCTION ekms_audit_checkpoints_append_only()",
)
_PG_DROP = ("DROP FUNCTION IF EXISTS ekms_audit_checkpoints_append_only()",)
_SQLITE_APPEND_ONLY = (
    "CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints "
    "BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints "
    "BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only: DELETE refused'); END",
)


def upgrade() -> None:
    op.create_table(
        "audit_signing_keys",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("kek_id", sa.Uuid, nullable=False),
        sa.Column("wrapped_seed", sa.LargeBinary, nullable=False),
        sa.Column("public_key", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_signing_keys")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("key_id", sa.Uuid, nullable=False),
        sa.Column("signature", sa.LargeBinary(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoints")),
    )
    dialect = op.get_context().dialect.name
    for statement in _PG_APPEND_ONLY if dialect == "postgresql" else _SQLITE_APPEND_ONLY:
        op.execute(statement)
    compat.record(revision, oldest_serving_head)


def downgrade() -> None:
    compat.forget(revision)
    op.drop_table("audit_checkpoints")  # its triggers go with it
    if op.get_context().dialect.name == "postgresql":
        for statement in _PG_DROP:
            op.execute(statement)
    op.drop_table("audit_signing_keys")
