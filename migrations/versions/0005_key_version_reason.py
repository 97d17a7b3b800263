"""The reason given with a key version's last lifecycle action (revoke requires one).

Expand only: the previous head ignores the new nullable column and keeps serving on it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
oldest_serving_head = "0003"  # migrations/compat.py (0006 creates its table)


def upgrade() -> None:
    # In place, as 0003: no batch table copy of module_keys (its partial unique index) on SQLite.
    op.add_column("module_keys", sa.Column("state_reason", sa.String(500), nullable=True))


def downgrade() -> None:
    op.drop_column("module_keys", "state_reason")
