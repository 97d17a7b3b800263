"""HSM-resident XKS keys: ``xks_keys.backend`` (``ekms`` or ``pkcs11``).

Expand only: a column with a server default (``ekms``), which the previous head neither reads
nor writes; its rows get the default. A ``pkcs11`` row's ``sealed_key`` is its HSM object's
label sealed under another binding than a key's, so a previous-head replica fails such a key
closed (it cannot open it as AES material) rather than using it wrongly. Self-contained.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import compat

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
oldest_serving_head = "0003"  # migrations/compat.py: expand only, as 0013


def upgrade() -> None:
    with op.batch_alter_table("xks_keys") as batch:
        batch.add_column(sa.Column("backend", sa.String(32), nullable=False, server_default="ekms"))
    compat.record(revision, oldest_serving_head)


def downgrade() -> None:
    compat.forget(revision)
    with op.batch_alter_table("xks_keys") as batch:
        batch.drop_column("backend")
