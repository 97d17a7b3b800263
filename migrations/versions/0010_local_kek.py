"""Modules outside the external wrap: ``local_instance_keys`` holds the instance's local KEK (one
row, wrapped under the local root key), and ``module_keys.local_kek_id`` names it on the
versions of modules with ``external_wrap=false`` (their ``kek_id`` is then NULL).

Expand only: the previous head ignores the new table and column and keeps serving on it. Until
every replica runs this head, create no module with ``external_wrap=false``: an older replica
reads such a version as one without usable material, and its KEK rotation refuses to run while
one exists. Self-contained (imports nothing from ``app``), like every revision.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations import compat

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
oldest_serving_head = "0003"  # migrations/compat.py: expand only, as 0004-0009

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "local_instance_keys",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("singleton", sa.Integer, nullable=False, server_default="1"),
        sa.Column("wrapped_kek", sa.LargeBinary, nullable=False),
        sa.Column("key_name", sa.String(2048), nullable=False),
        sa.Column("encryption_context", _JSON, nullable=False),
        sa.Column("fingerprint", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_instance_keys")),
        sa.UniqueConstraint("singleton", name=op.f("uq_local_instance_keys_singleton")),
        sa.CheckConstraint("singleton = 1", name=op.f("ck_local_instance_keys_singleton")),
    )
    # In place, as 0005 and 0008: no batch table copy of module_keys on SQLite.
    op.add_column("module_keys", sa.Column("local_kek_id", sa.Uuid, nullable=True))
    compat.record(revision, oldest_serving_head)


def downgrade() -> None:
    compat.forget(revision)
    op.drop_column("module_keys", "local_kek_id")
    op.drop_table("local_instance_keys")
