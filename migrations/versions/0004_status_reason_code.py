"""The kind of an Unavailable status: a refusal (access denied, the key no longer unwraps the
EKEK) fails closed at once; no answer from the KMS gets the grace period.

Expand only: the previous head ignores the new nullable column and keeps serving on it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
oldest_serving_head = "0003"  # migrations/compat.py


def upgrade() -> None:
    with op.batch_alter_table("ekms_config") as batch:
        batch.add_column(sa.Column("status_reason_code", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ekms_config") as batch:
        batch.drop_column("status_reason_code")
