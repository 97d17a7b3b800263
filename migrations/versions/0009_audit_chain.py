"""The audit hash chain: ``audit_events`` gains nullable ``seq``, ``prev_hash`` and ``hash``
(unique on ``seq``), and ``audit_chain_head`` holds the chain's head (one row, position 0 and
32 zero bytes until the first chained row).

Expand only: the previous head keeps serving on it. It ignores the new columns and writes rows
without a chain position; ``ekms audit verify`` reports such rows written after the chain
started (docs/audit.md, "Rolling upgrades"). Rows written before this revision stay unchained:
the chain starts at the first chained row. Self-contained (imports nothing from ``app``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import compat

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
oldest_serving_head = "0003"  # migrations/compat.py: expand only, as 0004-0008


def upgrade() -> None:
    # Plain ADD COLUMN on both backends: a batch rebuild would lose the append-only triggers.
    op.add_column("audit_events", sa.Column("seq", sa.BigInteger, nullable=True))
    op.add_column("audit_events", sa.Column("prev_hash", sa.LargeBinary(32), nullable=True))
    op.add_column("audit_events", sa.Column("hash", sa.LargeBinary(32), nullable=True))
    op.create_index("uq_audit_events_seq", "audit_events", ["seq"], unique=True)
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_head_singleton")),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": bytes(32)}])
    compat.record(revision, oldest_serving_head)


def downgrade() -> None:
    compat.forget(revision)
    op.drop_table("audit_chain_head")
    op.drop_index("uq_audit_events_seq", table_name="audit_events")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), as in upgrade().
    for column in ("hash", "prev_hash", "seq"):
        op.execute(f"ALTER TABLE audit_events DROP COLUMN {column}")  # noqa: S608
