"""Turning driver and SQLAlchemy errors into ekms errors at the persistence boundary.

Messages never carry SQL text or parameters (a parameter may be a wrapped key). For connection
failures the original exception stays reachable as ``__cause__`` for the logs; engines are
created with ``hide_parameters=True`` so even that one does not print parameters. A violated
CHECK, NOT NULL or foreign key constraint is different: Postgres repeats the whole failing row in
its message, so it becomes a ``ConstraintViolation`` that names the constraint and keeps no
link to the driver's error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from sqlalchemy import exc as sa_exc

from app.domain.errors import EkmsError, Reason, ServiceUnavailable

# SQLSTATE classes that mean "try again later": connection exception, insufficient resources,
# operator intervention (shutdown, statement timeout), system error, and transaction rollback
# (serialization failure, deadlock), which a retry resolves.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "58", "40")
_UNIQUE_SQLSTATE = "23505"
_SQLITE_UNIQUE = ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, the DBAPI error it wraps, and their causes."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        pending.extend((orig if isinstance(orig, BaseException) else None, current.__cause__))


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of ``exc`` or of the driver error it wraps (Postgres); None if it has none."""
    for err in _chain(exc):
        state = getattr(err, "sqlstate", None)
        if isinstance(state, str) and state:
            return state
    return None


def is_unavailable(exc: BaseException, *, connecting: bool = False) -> bool:
    """Whether ``exc`` means the database cannot be reached or used right now.

    While ``connecting`` (checking out a connection and opening the transaction) any driver or
    SQLAlchemy error counts: a wrong database name or password is also "unreachable".
    """
    if isinstance(exc, OSError | TimeoutError | sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.OperationalError):
        return True
    state = sqlstate(exc)
    if state is not None and state[:2] in _TRANSIENT_SQLSTATE_CLASSES:
        return True
    if connecting:
        return isinstance(exc, sa_exc.DBAPIError) or state is not None
    return any(isinstance(err, OSError | TimeoutError) for err in _chain(exc))


def is_unique_violation(exc: sa_exc.IntegrityError) -> bool:
    """A duplicate key (unique constraint, unique index or primary key) on either backend."""
    if sqlstate(exc) == _UNIQUE_SQLSTATE:
        return True
    return any(getattr(err, "sqlite_errorname", None) in _SQLITE_UNIQUE for err in _chain(exc))


class ConstraintViolation(Exception):
    """A write broke a schema invariant other than uniqueness: a bug in the caller, not bad
    input, so it is deliberately not an ``EkmsError`` (it surfaces as an internal error)."""


_CONSTRAINT_KINDS = {
    "23502": "not-null constraint",
    "23503": "foreign key constraint",
    "23514": "check constraint",
}


def constraint_violation(exc: sa_exc.IntegrityError) -> ConstraintViolation:
    """A ``ConstraintViolation`` naming what was violated, without the driver's message."""
    for err in _chain(exc):
        name = getattr(err, "constraint_name", None) or getattr(err, "column_name", None)
        if isinstance(name, str) and name:
            state = getattr(err, "sqlstate", None)
            kind = _CONSTRAINT_KINDS.get(state or "", "constraint")
            return ConstraintViolation(f"the database refused the write: {kind} {name}")
        if getattr(err, "sqlite_errorname", None):
            # SQLite's messages name the constraint and never contain values.
            return ConstraintViolation(f"the database refused the write: {err}")
    return ConstraintViolation("the database refused the write: a constraint was violated")


def database_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "the database is unavailable; retry later", reason=Reason.DATABASE_UNAVAILABLE
    )


@asynccontextmanager
async def translate_unavailable(*, connecting: bool = False) -> AsyncIterator[None]:
    """Re-raise connection-level failures inside the block as ``ServiceUnavailable``."""
    try:
        yield
    except EkmsError:
        raise  # already translated (nested blocks)
    except Exception as exc:
        if is_unavailable(exc, connecting=connecting):
            raise database_unavailable() from exc
        raise
