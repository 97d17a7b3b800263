"""Key access justifications: a module access policy may require one (any reason code, or one of
``justification_codes``): ``module_access_policies`` gains ``require_justification`` (false
for every existing row) and the nullable ``justification_codes`` (JSON list of codes).

Expand only: the previous head ignores both columns and serves every existing policy exactly
as before. It would also ignore a requirement set later, so set requirements only once every
replica runs this release (README, "Key access justifications"). Self-contained.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from migrations import compat

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
oldest_serving_head = "0003"  # migrations/compat.py: expand only, as 0004-0009

_TABLE = "module_access_policies"


def upgrade() -> None:
    # Plain ADD COLUMN on both backends (as 0005, 0008): no batch table copy on SQLite.
    op.add_column(
        _TABLE,
        sa.Column("require_justification", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    codes = sa.JSON().with_variant(JSONB(), "postgresql")
    op.add_column(_TABLE, sa.Column("justification_codes", codes, nullable=True))
    compat.record(revision, oldest_serving_head)


def downgrade() -> None:
    compat.forget(revision)
    for column in ("justification_codes", "require_justification"):
        op.execute(f"ALTER TABLE {_TABLE} DROP COLUMN {column}")  # noqa: S608
