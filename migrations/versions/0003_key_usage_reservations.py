"""Key usage reservations: the GCM nonce budget each replica reserves before encrypting.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# Not for 0002's code (migrations/compat.py): it would encrypt without reserving nonces, so
# the replicas at 0003 could no longer keep the budget they enforce.
oldest_serving_head = "0003"


def upgrade() -> None:
    # Existing rows start at 0: a reservation starts above max(encryption_count, reserved).
    op.add_column(
        "module_keys",
        sa.Column("encryptions_reserved", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("module_keys", "encryptions_reserved")
