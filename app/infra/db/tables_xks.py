"""The external key store's tables (on the one ``metadata``; ``tables`` re-exports them).

- ``xks_stores``: one row per logical key store; name and URI prefix unique; ``credentials`` a
  JSON list of ``{access_key_id, sealed_secret (base64 of the KEK-sealed secret), kek_id,
  created_at}`` (one or two: the rotation overlap);
- ``xks_keys``: AES-256 keys, the material sealed under the KEK (``sealed_key``, ``kek_id``);
  ``external_key_id`` unique within its store; deleted with their store. ``backend``: ``ekms``
  (``sealed_key`` is the AES key) or ``pkcs11`` (the key is an HSM object; ``sealed_key`` is
  its label, sealed under the KEK with its own binding). Added by 0014.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, LargeBinary, String, Table, UniqueConstraint, Uuid

from app.infra.db._metadata import ENUM, IDENTIFIER, metadata, revision_column
from app.infra.db.types import UTCDateTime, json_type

xks_stores = Table(
    "xks_stores",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(IDENTIFIER), nullable=False),
    Column("uri_prefix", String(128), nullable=False),
    Column("region", String(64), nullable=False),
    Column("credentials", json_type(), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    revision_column(),
    UniqueConstraint("name"),
    UniqueConstraint("uri_prefix"),
)

xks_keys = Table(
    "xks_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("store_id", Uuid, ForeignKey("xks_stores.id", ondelete="CASCADE"), nullable=False),
    Column("external_key_id", String(128), nullable=False),
    Column("usage", json_type(), nullable=False),
    Column("status", String(ENUM), nullable=False),
    Column("sealed_key", LargeBinary, nullable=False),
    Column("kek_id", Uuid, nullable=False),
    Column("allowed_principals", json_type(), nullable=False),
    Column("allowed_operations", json_type(), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    revision_column(),
    Column("backend", String(ENUM), nullable=False, server_default="ekms"),
    UniqueConstraint("store_id", "external_key_id"),
)
