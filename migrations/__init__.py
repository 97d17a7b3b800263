"""Alembic migrations of the ekms schema, shipped inside the wheel.

Driven programmatically by ``app.infra.db.migrate`` (``ekms migrate``); no ``alembic.ini``.
Every revision must leave the database equal to ``app.infra.db.tables.metadata``;
``tests/integration/test_migrations.py`` checks that on Postgres and SQLite.
"""
