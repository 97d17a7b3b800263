"""The external key store (XKS proxy): ``xks_stores`` and ``xks_keys``.

Expand only: new tables, which the previous head ignores. Self-contained (imports nothing from
``app``).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from migrations import compat

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
oldest_serving_head = "0003"  # migrations/compat.py: expand only, as 0004-0009


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def _revision() -> sa.Column[int]:
    return sa.Column("revision", sa.Integer, nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "xks_stores",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("uri_prefix", sa.String(128), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("credentials", _json(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _revision(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xks_stores")),
        sa.UniqueConstraint("name", name=op.f("uq_xks_stores_name")),
        sa.UniqueConstraint("uri_prefix", name=op.f("uq_xks_stores_uri_prefix")),
    )
    op.create_table(
        "xks_keys",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("store_id", sa.Uuid, nullable=False),
        sa.Column("external_key_id", sa.String(128), nullable=False),
        sa.Column("usage", _json(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary, nullable=False),
        sa.Column("kek_id", sa.Uuid, nullable=False),
        sa.Column("allowed_principals", _json(), nullable=False),
        sa.Column("allowed_operations", _json(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _revision(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xks_keys")),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["xks_stores.id"],
            name=op.f("fk_xks_keys_store_id_xks_stores"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "store_id", "external_key_id", name=op.f("uq_xks_keys_store_id_external_key_id")
        ),
    )
    compat.record(revision, oldest_serving_head)


def downgrade() -> None:
    compat.forget(revision)
    op.drop_table("xks_keys")
    op.drop_table("xks_stores")
