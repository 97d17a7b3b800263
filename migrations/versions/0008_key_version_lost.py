"""When a key version was lost: ``DELETE /ekms/config`` ended the configuration its KEK belonged
to (every external key deleted), so its wrapped material is gone for good.

Expand only: a lost version is also ``destroyed`` (no material, as the previous head reads it);
the previous head ignores the new nullable column and keeps serving on it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import compat

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
oldest_serving_head = "0003"  # migrations/compat.py: expand only, as 0004-0007


def upgrade() -> None:
    # In place, as 0005: no batch table copy of module_keys (its partial unique index) on SQLite.
    op.add_column("module_keys", sa.Column("lost_at", sa.DateTime(timezone=True), nullable=True))
    compat.record(revision, oldest_serving_head)


def downgrade() -> None:
    compat.forget(revision)
    op.drop_column("module_keys", "lost_at")
