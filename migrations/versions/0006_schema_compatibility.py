"""Schema compatibility: each revision records the oldest head that still serves on it, so
readiness can accept a newer schema during a rolling upgrade (migrations/compat.py).

Expand only: a new table that older code never reads. 0005 and 0004 are themselves
expand-only down to 0003, so code at 0003 or later serves on this schema.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import compat

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
oldest_serving_head = "0003"


def upgrade() -> None:
    op.create_table(
        compat.TABLE,
        sa.Column("revision", sa.String(32), nullable=False),
        sa.Column("oldest_serving_head", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("revision", name=op.f("pk_schema_compatibility")),
    )
    compat.record(revision, oldest_serving_head)


def downgrade() -> None:
    op.drop_table(compat.TABLE)
