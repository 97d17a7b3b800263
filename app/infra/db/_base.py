"""What every SQL repository shares: guarded execution, inserts, optimistic updates."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import ColumnElement, CursorResult, Executable, RowMapping, Table, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.errors import Conflict, EkmsError, Reason
from app.infra.db.errors import constraint_violation, is_unique_violation, translate_unavailable


class Versioned(Protocol):
    revision: int


def concurrent_update(what: str) -> Conflict:
    return Conflict(
        f"{what} was changed concurrently; reload it and retry", reason=Reason.CONCURRENT_UPDATE
    )


class SqlRepository:
    """A repository bound to the unit of work's connection (and so to its transaction)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def _execute(
        self, statement: Executable, params: Sequence[Mapping[str, Any]] | None = None
    ) -> CursorResult[Any]:
        """Execute ``statement``; unique violations stay ``IntegrityError`` (callers map them),
        other integrity errors become ``ConstraintViolation``, raised outside the ``except`` so
        that not even ``__context__`` keeps the driver's message (it may contain the row)."""
        try:
            async with translate_unavailable():
                return await self._conn.execute(statement, params)
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise
            violation = constraint_violation(exc)
        raise violation

    async def _rows(self, statement: Executable) -> list[RowMapping]:
        return list((await self._execute(statement)).mappings())

    async def _one(self, statement: Executable) -> RowMapping | None:
        return (await self._execute(statement)).mappings().first()

    async def _insert(
        self, table: Table, values: Mapping[str, Any], duplicate: Callable[[], EkmsError]
    ) -> None:
        """Insert one row; a unique violation becomes ``duplicate()``.

        The insert runs in a savepoint so that, on both backends, the transaction stays usable
        after the error (Postgres would otherwise refuse every later statement).
        """
        try:
            async with translate_unavailable():
                async with self._conn.begin_nested():
                    await self._execute(insert(table).values(**values))
        except IntegrityError as exc:
            raise duplicate() from exc  # _execute lets only unique violations through

    async def _update_versioned(
        self,
        table: Table,
        key: Sequence[ColumnElement[bool]],
        values: Mapping[str, Any],
        entity: Versioned,
        what: str,
        duplicate: Callable[[], EkmsError] | None = None,
    ) -> None:
        """``UPDATE ... WHERE <key> AND revision = <entity.revision>``, bumping the revision.

        No row updated means someone else saved first (or the row is gone): ``Conflict``.
        A unique violation (a second active key, a taken name) is ``duplicate()``, by default
        the same ``Conflict``. Unlike inserts, updates run without a savepoint: after an error
        the unit of work is done and must be rolled back.
        """
        primary_key = set(table.primary_key.columns.keys())
        changes = {name: value for name, value in values.items() if name not in primary_key}
        statement = (
            update(table)
            .where(*key, table.c.revision == entity.revision)
            .values(**changes, revision=entity.revision + 1)
        )
        try:
            result = await self._execute(statement)
        except IntegrityError as exc:  # a unique violation, see _execute
            raise (duplicate or (lambda: concurrent_update(what)))() from exc
        if result.rowcount != 1:
            raise concurrent_update(what)
        entity.revision += 1
