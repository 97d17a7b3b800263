"""Persistence: SQLAlchemy asyncio adapters for Postgres (asyncpg) and SQLite (aiosqlite).

``engine.create_engine`` opens the database, ``uow.SqlaUnitOfWork`` is the transaction the use
cases see, ``migrate`` drives Alembic (the ``migrations`` package).
"""
