"""The SQL unit of work: one connection and one transaction per ``async with``."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.application.ports import (
    AuditCheckpointRepository,
    AuditRepository,
    ConfigRepository,
    ExternalKeyRepository,
    FieldConfigRepository,
    InstanceKeyRepository,
    KeyStatusRepository,
    KeyStore,
    LocalKeyRepository,
    ModuleKeyRepository,
    ModuleRepository,
    PolicyRepository,
    XksKeyRepository,
    XksStoreRepository,
)
from app.infra.db.checkpoints import SqlaAuditCheckpointRepository
from app.infra.db.erase import erase_dead_rows
from app.infra.db.errors import is_unavailable, translate_unavailable
from app.infra.db.external_keys import SqlaExternalKeyRepository
from app.infra.db.local_keks import SqlaLocalKeyRepository
from app.infra.db.repositories import (
    SqlaAuditRepository,
    SqlaConfigRepository,
    SqlaFieldConfigRepository,
    SqlaInstanceKeyRepository,
    SqlaModuleKeyRepository,
    SqlaModuleRepository,
    SqlaPolicyRepository,
)
from app.infra.db.status import SqlaKeyStatusRepository
from app.infra.db.xks import SqlaXksKeyRepository, SqlaXksStoreRepository


class SqlaUnitOfWork:
    """``async with uow:`` checks out a connection and begins a transaction; leaving the block
    rolls back whatever ``commit()`` did not commit, then returns the connection to the pool.

    The repositories exist only inside the block. A failure to reach the database (at entry,
    in a repository, or at commit) is ``ServiceUnavailable(DATABASE_UNAVAILABLE)``.
    """

    # Typed as the ports: the UnitOfWork Protocol's attributes are settable, hence invariant.
    config: ConfigRepository
    instance_keys: InstanceKeyRepository
    local_keks: LocalKeyRepository
    external_keys: ExternalKeyRepository
    modules: ModuleRepository
    keys: ModuleKeyRepository
    fields: FieldConfigRepository
    policies: PolicyRepository
    audit: AuditRepository
    checkpoints: AuditCheckpointRepository
    status: KeyStatusRepository
    xks_stores: XksStoreRepository
    xks_keys: XksKeyRepository

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    async def __aenter__(self) -> Self:
        if self._conn is not None:
            raise RuntimeError("this unit of work is already in use")
        async with translate_unavailable(connecting=True):
            conn = await self._engine.connect()
            try:
                await conn.begin()
            except BaseException:
                await conn.close()
                raise
        self._conn = conn
        self.config = SqlaConfigRepository(conn)
        self.instance_keys = SqlaInstanceKeyRepository(conn)
        self.local_keks = SqlaLocalKeyRepository(conn)
        self.external_keys = SqlaExternalKeyRepository(conn)
        self.modules = SqlaModuleRepository(conn)
        self.keys = SqlaModuleKeyRepository(conn)
        self.fields = SqlaFieldConfigRepository(conn)
        self.policies = SqlaPolicyRepository(conn)
        self.audit = SqlaAuditRepository(conn)
        self.checkpoints = SqlaAuditCheckpointRepository(conn)
        self.status = SqlaKeyStatusRepository(conn)
        self.xks_stores = SqlaXksStoreRepository(conn)
        self.xks_keys = SqlaXksKeyRepository(conn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if conn.in_transaction():
                await conn.rollback()
        except Exception as rollback_error:
            # Nothing uncommitted survives a failed rollback (the server drops the transaction
            # with the connection, which the pool discards), so a broken connection is not
            # worth an error of its own, nor worth hiding the one that ended the block.
            if exc is None and not is_unavailable(rollback_error):
                raise
        finally:
            await conn.close()

    async def commit(self) -> None:
        async with translate_unavailable():
            await self._connection().commit()

    async def rollback(self) -> None:
        async with translate_unavailable():
            await self._connection().rollback()

    def _connection(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("use the unit of work inside 'async with'")
        return self._conn


class SqlaUnitOfWorkFactory:
    """``UnitOfWorkFactory`` over one engine: every call is a fresh unit of work."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def __call__(self) -> SqlaUnitOfWork:
        return SqlaUnitOfWork(self.engine)

    async def erase_dead_rows(self, *stores: KeyStore) -> None:
        """VACUUM on Postgres, a WAL checkpoint on SQLite (see ``app.infra.db.erase``)."""
        await erase_dead_rows(self.engine, stores)


if TYPE_CHECKING:
    # mypy checks here that the adapters satisfy the ports (Protocols are structural).
    from app.application import ports

    def _conforms(engine: AsyncEngine, conn: AsyncConnection) -> None:
        _uow: ports.UnitOfWork = SqlaUnitOfWork(engine)
        _factory: ports.UnitOfWorkFactory = SqlaUnitOfWorkFactory(engine)
        _config: ports.ConfigRepository = SqlaConfigRepository(conn)
        _keks: ports.InstanceKeyRepository = SqlaInstanceKeyRepository(conn)
        _modules: ports.ModuleRepository = SqlaModuleRepository(conn)
        _keys: ports.ModuleKeyRepository = SqlaModuleKeyRepository(conn)
        _fields: ports.FieldConfigRepository = SqlaFieldConfigRepository(conn)
        _policies: ports.PolicyRepository = SqlaPolicyRepository(conn)
        _audit: ports.AuditRepository = SqlaAuditRepository(conn)
        _checkpoints: ports.AuditCheckpointRepository = SqlaAuditCheckpointRepository(conn)
