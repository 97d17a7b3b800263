"""DDL that SQLAlchemy's Table cannot express: the append-only guard on ``audit_events`` (and,
from schema 0011, on ``audit_checkpoints``).

A refused change raises an integrity error on both backends (SQLSTATE 23000 on Postgres,
``SQLITE_CONSTRAINT_TRIGGER`` on SQLite), so it surfaces as ``sqlalchemy.exc.IntegrityError``.

The migration keeps its own frozen copy of these statements (a migration must not change when
this module does); the schema test checks that the migrated database has the triggers.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import DDL, Table, event


@dataclass(frozen=True, slots=True)
class DialectDDL:
    create: tuple[str, ...]
    drop: tuple[str, ...]


AUDIT_TRIGGERS: dict[str, tuple[str, ...]] = {
    "postgresql": ("audit_events_no_update", "audit_events_no_delete", "audit_events_no_truncate"),
    "sqlite": ("audit_events_no_update", "audit_events_no_delete"),
}

_PG_FUNCTION = "ekms_audit_events_append_only"

AUDIT_APPEND_ONLY: dict[str, DialectDDL] = {
    "postgresql": DialectDDL(
        create=(
            f"CREATE FUNCTION {_PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP "
            "USING ERRCODE = 'integrity_constraint_violation'; END $$",
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
            f"FOR EACH ROW EXECUTE FUNCTION {_PG_FUNCTION}()",
            "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
            f"FOR EACH ROW EXECUTE FUNCTION {_PG_FUNCTION}()",
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {_PG_FUNCTION}()",
        ),
        drop=(
            "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
            "DROP TRIGGER IF EXISTS audit_events_no_delete ON audit_events",
            "DROP TRIGGER IF EXISTS audit_events_no_update ON audit_events",
            f"DROP FUNCTION IF EXISTS {_PG_FUNCTION}()",
        ),
    ),
    "sqlite": DialectDDL(
        create=(
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END",
            "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END",
        ),
        drop=(
            "DROP TRIGGER IF EXISTS audit_events_no_delete",
            "DROP TRIGGER IF EXISTS audit_events_no_update",
        ),
    ),
}


def _ddl(statement: str, dialect: str) -> DDL:
    # DDL() applies %-formatting to its text; the trigger bodies use a literal %.
    ddl = DDL(statement.replace("%", "%%"))  # type: ignore[no-untyped-call]
    return ddl.execute_if(dialect=dialect)


def append_only(table: str) -> dict[str, DialectDDL]:
    """The same guard on another table (``audit_checkpoints``): its own function and triggers."""
    return {
        dialect: DialectDDL(
            tuple(s.replace("audit_events", table) for s in ddl.create),
            tuple(s.replace("audit_events", table) for s in ddl.drop),
        )
        for dialect, ddl in AUDIT_APPEND_ONLY.items()
    }


CHECKPOINT_TRIGGERS: dict[str, tuple[str, ...]] = {
    dialect: tuple(n.replace("audit_events", "audit_checkpoints") for n in names)
    for dialect, names in AUDIT_TRIGGERS.items()
}


def install_append_only(table: Table) -> None:
    """Have ``metadata.create_all()`` create (and ``drop_all()`` drop) the guard's DDL."""
    guard = AUDIT_APPEND_ONLY if table.name == "audit_events" else append_only(table.name)
    for dialect, statements in guard.items():
        for statement in statements.create:
            event.listen(table, "after_create", _ddl(statement, dialect))
        for statement in statements.drop:
            event.listen(table, "before_drop", _ddl(statement, dialect))
