"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import compat
${imports if imports else ""}
revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}
# The oldest head whose code still serves on this schema (migrations/compat.py): the previous
# revision's value (or older) for an expand-only change, this revision for a contracting one.
oldest_serving_head = ${repr(up_revision)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}
    compat.record(revision, oldest_serving_head)


def downgrade() -> None:
    compat.forget(revision)
    ${downgrades if downgrades else "pass"}
