"""Expand/contract bookkeeping for rolling upgrades.

Every revision module declares ``oldest_serving_head``: the oldest head revision whose code
still serves correctly on the schema this revision leaves. An expand-only revision (new tables,
nullable or defaulted columns the older code ignores) names the previous revision's value or
an older one; a revision that contracts (drops or renames what older code reads, or changes a
meaning older code relies on) names itself.

From 0006 on, ``upgrade()`` calls ``record(revision, oldest_serving_head)`` and ``downgrade()``
calls ``forget(revision)``, so the database itself says which older heads may serve on it: an
older replica does not have the newer revision files (``app.infra.db.migrate.schema_state``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

TABLE = "schema_compatibility"

_table = sa.table(
    TABLE,
    sa.column("revision", sa.String(32)),
    sa.column("oldest_serving_head", sa.String(32)),
)


def record(revision: str, oldest_serving_head: str) -> None:
    """Say, in the database, that code at ``oldest_serving_head`` or later serves on it."""
    op.bulk_insert(_table, [{"revision": revision, "oldest_serving_head": oldest_serving_head}])


def forget(revision: str) -> None:
    """Undo ``record`` (the revision's downgrade)."""
    op.execute(_table.delete().where(_table.c.revision == revision))
