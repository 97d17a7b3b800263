"""The schema's ``MetaData`` (with its constraint naming convention) and shared size limits."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Domain limits: module names are 2-4 parts of at most 63 characters, identifiers 63.
NAME = 255
IDENTIFIER = 63
ENUM = 32


def revision_column() -> Column[int]:
    """The ``revision`` column of optimistic concurrency, shared by every versioned table."""
    return Column("revision", Integer, nullable=False, server_default="0")
