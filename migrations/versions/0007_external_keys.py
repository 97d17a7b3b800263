"""Several external keys wrap one KEK: an ``external_keys`` table (the existing configuration's
key migrated as the first, with the configuration's id), the EKEK rows name their key and the
KEK they wrap, the status history names its key, and the configuration gains
``revocation_policy`` (``any`` by default).

Expand only: the previous head keeps serving on it. It reads and writes the first key's state in
``ekms_config`` as before (the new head mirrors the first key there); it sees only the KEK's own
EKEK row as active (a second key's EKEK rows are inactive); new columns are nullable or have a
server default. Self-contained (imports nothing from ``app``), like every revision.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import compat

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
oldest_serving_head = "0003"  # migrations/compat.py: expand only, as 0004-0006


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "external_keys",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(2048), nullable=False),
        sa.Column("region", sa.String(64)),
        _ts("created_at", nullable=False),
        sa.Column("external_key_status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.Text),
        sa.Column("status_reason_code", sa.String(32)),
        _ts("deletion_date"),
        _ts("last_sync_at"),
        _ts("unavailable_since"),
        sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_keys")),
        sa.UniqueConstraint("position", name=op.f("uq_external_keys_position")),
    )
    with op.batch_alter_table("ekms_config") as batch:
        batch.add_column(
            sa.Column("revocation_policy", sa.String(32), nullable=False, server_default="any")
        )
    with op.batch_alter_table("external_instance_keys") as batch:
        batch.add_column(sa.Column("external_key_id", sa.Uuid, nullable=True))
        batch.add_column(sa.Column("kek_id", sa.Uuid, nullable=True))
        batch.create_index(op.f("ix_external_instance_keys_kek_id"), ["kek_id"])
    with op.batch_alter_table("external_key_status_history") as batch:
        batch.add_column(sa.Column("external_key_id", sa.Uuid, nullable=True))
    op.execute(
        "INSERT INTO external_keys (id, position, provider, key_id, region, created_at, "
        "external_key_status, status_reason, status_reason_code, deletion_date, last_sync_at, "
        "unavailable_since, revision) "
        "SELECT id, 0, provider, key_id, region, created_at, external_key_status, "
        "status_reason, status_reason_code, deletion_date, last_sync_at, unavailable_since, 0 "
        "FROM ekms_config"
    )
    op.execute("UPDATE external_instance_keys SET external_key_id = (SELECT id FROM ekms_config)")
    compat.record(revision, oldest_serving_head)


def downgrade() -> None:
    compat.forget(revision)
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch rebuild of
    # external_instance_keys would drop a table module_keys references.
    op.execute("ALTER TABLE external_key_status_history DROP COLUMN external_key_id")
    op.execute("DELETE FROM external_instance_keys WHERE kek_id IS NOT NULL")
    op.drop_index(op.f("ix_external_instance_keys_kek_id"), table_name="external_instance_keys")
    op.execute("ALTER TABLE external_instance_keys DROP COLUMN kek_id")
    op.execute("ALTER TABLE external_instance_keys DROP COLUMN external_key_id")
    with op.batch_alter_table("ekms_config") as batch:
        batch.drop_column("revocation_policy")
    op.drop_table("external_keys")
